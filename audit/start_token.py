"""The start token a causal LM's texts are conditioned on, so that their first token is scored too.

A decoder scores a token by ``log p(token | tokens before it)``: the first token of a text has
nothing before it, so without a start token it is never scored (and a swap in the first word,
"He" / "She", counts only through what follows it). lm-evaluation-harness 0.4.x conditions
every text on the tokenizer's BOS token, else its EOS token (``HFLM.prefix_token_id``); probelens
does the same by default. The choice (``--start-token``):

- ``bos``: the tokenizer's BOS token, else its EOS token (the default, lm-evaluation-harness's);
- ``eos``: the tokenizer's EOS token (GPT-2's ``<|endoftext|>`` is both);
- ``none``: no start token at all, the tokenizer's own leading special tokens removed too: the
  first text token is not scored;
- any other value: a literal token, either a token of the vocabulary as written there
  (``<|endoftext|>``) or a text that the tokenizer makes into exactly one token; anything else is
  refused.

The start token is written into the fast tokenizer's post-processor as a special token, so every
encoding with special tokens gets it (whole texts, continuation prompts, generation prompts, the
texts a causal-LM generation scorer reads) with offsets (0, 0) and the special-token flag: it is
never a focus token, and Integrated Gradients keeps it in its baseline, so it gets no attribution
(gradient x input, which has no baseline, does give it one). Every text starts with
exactly that one token: a tokenizer that already adds it (Llama's ``<s>``) is left as it is, never
given a second one; a tokenizer that adds another leading special token has it replaced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from audit.errors import UserError

CHOICES = ("bos", "eos", "none")
"""The named choices; any other value of ``--start-token`` is a literal token."""
DEFAULT = "bos"


@dataclass(frozen=True)
class StartToken:
    """Which token every text of a causal LM starts with; recorded in the manifest."""

    choice: str
    """As asked: bos, eos, none, or the literal token."""
    token: str | None
    """The token every text starts with (None: no start token)."""
    token_id: int | None
    added: bool
    """True when probelens put it there; False when the tokenizer adds it itself (or for none)."""
    removed: tuple[str, ...] = ()
    """The tokenizer's own leading special tokens that were taken away (none, or a replaced one)."""

    def describe(self) -> dict[str, Any]:
        return {
            "choice": self.choice,
            "token": self.token,
            "token_id": self.token_id,
            "added_by_probelens": self.added,
            "tokenizer_tokens_removed": list(self.removed),
            "first_token_scored": self.token is not None,
        }


def leading_special_ids(tokenizer: Any) -> list[int]:
    """The special tokens the tokenizer puts in front of a text."""
    encoded = tokenizer("a", add_special_tokens=True, return_special_tokens_mask=True)
    lead: list[int] = []
    for token_id, special in zip(encoded["input_ids"], encoded["special_tokens_mask"], strict=True):
        if not special:
            break
        lead.append(int(token_id))
    return lead


def resolve(tokenizer: Any, choice: str, name: str) -> tuple[str, int] | None:
    """The (token, id) a choice stands for with this tokenizer; None for ``none``."""
    if choice == "none":
        return None
    if choice in ("bos", "eos"):
        candidates = ("bos_token", "eos_token") if choice == "bos" else ("eos_token",)
        for attribute in candidates:
            token = getattr(tokenizer, attribute, None)
            token_id = getattr(tokenizer, attribute + "_id", None)
            if token is not None and token_id is not None:
                return str(token), int(token_id)
        wanted = "a BOS nor an EOS token" if choice == "bos" else "an EOS token"
        raise UserError(
            f"--start-token {choice}: the tokenizer of {name} has neither {wanted}; name a token of its "
            "vocabulary (--start-token TOKEN), or use --start-token none (the first token of a text is then "
            "not scored)"
        )
    if not choice:
        raise UserError("--start-token is empty; use bos, eos, none or a token of the model's vocabulary")
    unknown = tokenizer.unk_token_id
    token_id = tokenizer.convert_tokens_to_ids(choice)
    if isinstance(token_id, int) and (token_id != unknown or choice == tokenizer.unk_token):
        return choice, token_id
    ids = tokenizer(choice, add_special_tokens=False)["input_ids"]
    if len(ids) == 1 and ids[0] != unknown:
        return str(tokenizer.convert_ids_to_tokens(int(ids[0]))), int(ids[0])
    pieces = tokenizer.convert_ids_to_tokens([int(i) for i in ids])
    raise UserError(
        f"--start-token {choice!r} is not one token of {name}'s tokenizer (it makes {len(ids)}: {pieces}); "
        "give a token of its vocabulary as written there (e.g. its BOS or EOS token), or bos, eos or none"
    )


def apply_start_token(tokenizer: Any, choice: str, name: str) -> StartToken:
    """Make every encoding of ``tokenizer`` with special tokens start with the chosen token (the
    tokenizer is changed in place: it is the model's own copy, loaded for this run)."""
    wanted = resolve(tokenizer, choice, name)
    lead = leading_special_ids(tokenizer)
    target = [] if wanted is None else [wanted[1]]
    token, token_id = wanted if wanted is not None else (None, None)
    if lead == target:
        return StartToken(choice, token, token_id, added=False)
    removed = tuple(str(t) for t in tokenizer.convert_ids_to_tokens(lead))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise UserError(
            f"--start-token {choice}: the tokenizer of {name} ({type(tokenizer).__name__}) is a slow (Python) "
            "tokenizer, whose special tokens probelens cannot change; save the model with a fast tokenizer "
            "(a tokenizer.json beside it, e.g. AutoTokenizer.from_pretrained(..., use_fast=True)."
            f"save_pretrained(...)), or use --start-token {removed[0] if removed else 'none'} to keep what it "
            "does (the first token of a text is then scored only if the tokenizer puts a token before it)"
        )
    document = json.loads(backend.to_str())
    processor = document.get("post_processor")
    rewritten = _rewrite(processor, wanted, has_leading=bool(lead))
    if rewritten is None:
        raise UserError(
            f"--start-token {choice}: the tokenizer of {name} puts {list(removed)} in front of every text "
            f"with a post-processor of type {processor.get('type') if processor else None!r}, which probelens "
            f"cannot change; use --start-token {removed[0] if removed else 'none'} to keep what it does"
        )
    document["post_processor"] = rewritten
    from tokenizers import Tokenizer

    backend.post_processor = Tokenizer.from_str(json.dumps(document)).post_processor
    got = leading_special_ids(tokenizer)
    if got != target:  # a post-processor that did not do what its description says
        raise UserError(
            f"--start-token {choice}: the tokenizer of {name} still starts texts with "
            f"{tokenizer.convert_ids_to_tokens(got)} after the change; use --start-token none or bos"
        )
    return StartToken(choice, token, token_id, added=wanted is not None, removed=removed)


def _rewrite(
    processor: dict[str, Any] | None, wanted: tuple[str, int] | None, *, has_leading: bool
) -> dict[str, Any] | None:
    """The post-processor's description with ``wanted`` as the only leading special token (None:
    this kind of post-processor cannot be changed so)."""
    if processor is None:
        return _template(wanted)
    kind = processor.get("type")
    if kind == "TemplateProcessing":
        return _retemplate(processor, wanted)
    if kind == "Sequence":
        members = list(processor.get("processors", []))
        templates = [i for i, m in enumerate(members) if m.get("type") == "TemplateProcessing"]
        if templates:
            members[templates[-1]] = _retemplate(members[templates[-1]], wanted)
        elif has_leading:
            return None
        else:
            members.append(_template(wanted))
        return {**processor, "processors": members}
    if has_leading:  # BertProcessing, RobertaProcessing: a fixed [CLS]-style token
        return None
    return {"type": "Sequence", "processors": [processor, _template(wanted)]}  # e.g. GPT-2's ByteLevel


def _template(wanted: tuple[str, int] | None) -> dict[str, Any]:
    empty = {
        "type": "TemplateProcessing",
        "single": [{"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {},
    }
    return _retemplate(empty, wanted)


def _retemplate(template: dict[str, Any], wanted: tuple[str, int] | None) -> dict[str, Any]:
    """A TemplateProcessing description whose single and pair templates start with ``wanted``
    (the special tokens it had in front of sequence A removed; those after it kept)."""
    special_tokens = dict(template.get("special_tokens", {}))
    start: list[dict[str, Any]] = []
    if wanted is not None:
        token, token_id = wanted
        special_tokens[token] = {"id": token, "ids": [token_id], "tokens": [token]}
        start = [{"SpecialToken": {"id": token, "type_id": 0}}]

    def lead_with_start(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        first = next(i for i, item in enumerate(items) if "Sequence" in item)
        return start + items[first:]

    return {
        **template,
        "single": lead_with_start(list(template["single"])),
        "pair": lead_with_start(list(template["pair"])),
        "special_tokens": special_tokens,
    }
