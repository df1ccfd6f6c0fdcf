"""Sequence-to-sequence models (T5, BART, Marian): log-likelihoods of given targets, and translations.

Every variant of a seq2seq probe set carries target texts (``Variant.targets``: name -> text, e.g.
the translation with the feminine and with the masculine form of an occupation). The score head
returns, per variant:

- ``loglik:<name>``: log P(target | source), summed over the target's tokens (the tokenizer's
  ``text_target`` encoding, end-of-sequence token included; the decoder reads them shifted right
  behind the model's decoder start token, exactly as ``model(..., labels=...)`` does);
- ``gender_preference`` = loglik:feminine - loglik:masculine, when the targets are named so;
- ``expected_probability``: the probability of the target the variant's ``label`` names among
  its targets, softmax of their log-likelihoods (with two targets: sigmoid of the loglik margin;
  NaN for variants without a label): how surely the model picks the form the source calls for,
  in probability units like a classifier's output, so that the paired comparison of two groups
  is not dominated by how long each form is in tokens.

The source is the variant's text, encoded like any other model input; a T5 model whose config
names a task prefix for the set's language pair (``task_specific_params["translation_en_to_de"]
["prefix"] == "translate English to German: "``) gets that prefix in front of every source, at
scoring and at generation. The prefix is part of the model's input, not of the text: attributions
and attention statistics cover the text's own tokens.

What Captum explains: the encoder's token embedding module is hooked, and the encoder calls it
exactly once, on the input ids. The decoder's embedding module shares its weights (T5, BART and
Marian tie them); when it is the very same module object, the decoder's call goes through a
hook-free wrapper, so the hook never sees the target tokens. Attributions therefore explain a
target's log-likelihood by the source tokens, and sum to f(source) - f(pad baseline) up to the
convergence delta.

``translate`` generates translations (greedy, or seeded sampling for several samples); the
runner stores them in the ``generations`` table and ``audit.metrics.translation`` turns them into
findings (which form each translation uses, accuracy per group and the gap between groups).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audit.batching import Encoded, run_with_backoff, token_budget_batches
from audit.errors import UserError
from audit.targets.base import ScoreHead, Target
from probes.schema import ProbeSet, Variant
from probes.translation import NEITHER, classify_output

GENDER_FORMS = ("feminine", "masculine")
GENDER_PREFERENCE = "gender_preference"
EXPECTED_PROBABILITY = "expected_probability"
LOGLIK_PREFIX = "loglik:"
_HALF = (torch.float16, torch.bfloat16)
IGNORE_INDEX = -100
"""Label positions that are padding (transformers' convention: the loss ignores them)."""


class _HookFree(nn.Module):
    """Calls an embedding module's own forward without its hooks (so Captum's hook on the shared
    module does not fire on the decoder's call); holds no parameters of its own."""

    _inner: Any

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "_inner", inner)

    @property
    def weight(self) -> Any:
        return self._inner.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        inner: Any = self._inner
        return type(inner).forward(inner, input_ids)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _SetTargets:
    """One probe set's targets, tokenized once: per variant x target name, the label ids."""

    names: list[str]
    labels: torch.Tensor
    """(variants, names, longest) label ids, IGNORE_INDEX after each target's end."""
    lengths: torch.Tensor
    """(variants, names) tokens of each target."""
    expected: torch.Tensor
    """(variants,) index into ``names`` of the variant's label; -1 without one."""


class Seq2SeqTarget(Target):
    task = "seq2seq"
    windows_supported = False
    """A target translates the whole source; a window of it has no target of its own."""

    def __init__(self, model: nn.Module, tokenizer: Any, device: torch.device, max_length: int) -> None:
        super().__init__(model, tokenizer, device, max_length)
        config = getattr(model, "config", None)
        if not getattr(config, "is_encoder_decoder", False):
            raise UserError(
                f"{type(model).__name__} is not an encoder-decoder model; --task seq2seq needs one (T5, BART, "
                "Marian, ...). For a decoder-only model use --task causal-lm"
            )
        self._encoder: Any = self.model.get_encoder()
        self._decoder: Any = self.model.get_decoder()
        self._embeddings: nn.Module = (
            getattr(self._encoder, "embed_tokens", None) or self._encoder.get_input_embeddings()
        )
        self._decoder_shares_module = getattr(self._decoder, "embed_tokens", None) is self._embeddings
        self._prefix_scale: float | None | bool = False
        """Factor the encoder applies to token embeddings computed from ids (checked once; None:
        none found, so prefixes are refused; False: not checked yet)."""

    # --- what the runner and Captum see --------------------------------------------------------

    def embedding_layer(self) -> nn.Module:
        """The encoder's token embedding module: the one call Captum's hook sees is on the source ids."""
        return self._embeddings

    def transformer(self) -> nn.Module:
        """The encoder: attention statistics describe its self-attention over the source."""
        return self._encoder  # type: ignore[no-any-return]

    def check_probe_set(self, probe_set: ProbeSet) -> list[str]:
        variants = probe_set.variants
        name = probe_set.name
        if probe_set.kind != "counterfactual":
            return [
                f"probe set {name!r} is a {probe_set.kind} set; seq2seq models are audited with sets whose variants "
                "carry target texts (kind: translation YAML, or target columns in a CSV/JSONL of variants)"
            ]
        if not any(v.targets for v in variants):
            return [
                f"probe set {name!r} has no target texts; a seq2seq audit scores log P(target | text) for each "
                "variant's targets (kind: translation YAML, or target / target:NAME columns in a CSV/JSONL of variants)"
            ]
        problems = []
        names = sorted(variants[0].targets)
        different = [v for v in variants if sorted(v.targets) != names]
        if different:
            v = different[0]
            problems.append(
                f"probe set {name!r}: variant {v.instance_id}/{v.variant} has targets {sorted(v.targets) or 'none'} "
                f"but {variants[0].instance_id}/{variants[0].variant} has {names}; give every variant the same target names"
            )
        unknown = sorted({v.label for v in variants if v.label is not None and v.label not in v.targets})
        if unknown:
            problems.append(
                f"probe set {name!r}: label(s) {unknown} name no target ({names}); a seq2seq label names the target "
                "the source calls for"
            )
        prefixes = self._prefixes(probe_set)
        if len(prefixes) > 1:
            problems.append(
                f"probe set {name!r} mixes language pairs with different task prefixes for this model "
                f"({sorted(prefixes)}); split it into one set per target language"
            )
        elif prefixes and self._embedding_scale() is None:
            problems.append(
                f"probe set {name!r} needs the task prefix {next(iter(prefixes))!r}, but {type(self.model).__name__}'s "
                "encoder embeds tokens in a way the audit cannot reproduce for a prefix; write the prefix into "
                "the texts instead"
            )
        return problems

    # --- the score head ------------------------------------------------------------------------

    def task_prefix(self, probe_set: ProbeSet) -> str | None:
        """The model's task prefix for the set's language pair (T5: "translate English to German: "),
        or None."""
        prefixes = self._prefixes(probe_set)
        return next(iter(prefixes)) if len(prefixes) == 1 else None

    def _prefixes(self, probe_set: ProbeSet) -> set[str]:
        params = getattr(self.model.config, "task_specific_params", None) or {}
        found = set()
        for source, target in {(v.lang, v.target_lang) for v in probe_set.variants if v.target_lang}:
            entry = params.get(f"translation_{source}_to_{target}")
            prefix = entry.get("prefix") if isinstance(entry, dict) else None
            if isinstance(prefix, str) and prefix:
                found.add(prefix)
        return found

    def head(self, probe_set: ProbeSet) -> ScoreHead:
        variants = probe_set.variants
        tables = self._tokenize_targets(variants)
        names = tables.names
        outputs = [f"{LOGLIK_PREFIX}{n}" for n in names]
        gender = all(form in names for form in GENDER_FORMS)
        if gender:
            outputs.append(GENDER_PREFERENCE)
        labelled = bool((tables.expected >= 0).any()) and len(names) > 1
        if labelled:
            outputs.append(EXPECTED_PROBABILITY)
        prefix = self.task_prefix(probe_set)
        prefix_ids = self._prefix_ids(prefix)
        feminine = names.index(GENDER_FORMS[0]) if gender else -1
        masculine = names.index(GENDER_FORMS[1]) if gender else -1

        def forward(
            input_ids: torch.Tensor, attention_mask: torch.Tensor, variant_index: torch.Tensor | None = None
        ) -> torch.Tensor:
            if variant_index is None:
                raise ValueError("a seq2seq score head needs each row's variant index (its targets)")
            loglik = self.target_logliks(input_ids, attention_mask, variant_index, tables, prefix_ids)
            columns = [loglik[:, k] for k in range(len(names))]
            if gender:
                columns.append(loglik[:, feminine] - loglik[:, masculine])
            if labelled:
                columns.append(
                    _expected_probability(
                        loglik, tables.expected.to(loglik.device)[variant_index.to(loglik.device)]
                    )
                )
            return torch.stack(columns, dim=1)

        def predict_labels(scores: np.ndarray) -> list[str | None]:
            """The target the model finds most likely."""
            return [names[int(i)] for i in scores[:, : len(names)].argmax(axis=1)]

        tested = [o for o in (GENDER_PREFERENCE, EXPECTED_PROBABILITY) if o in outputs] or outputs

        def attribution_output(expected: list[str | None], scores: np.ndarray) -> str:
            """The gender preference (defined for every variant); else the loglik of the stated
            target, else of the target the variants favour."""
            if gender:
                return GENDER_PREFERENCE
            stated = {label for label in expected if label is not None}
            if len(stated) == 1:
                return f"{LOGLIK_PREFIX}{stated.pop()}"
            return outputs[int(scores[:, : len(names)].mean(axis=0).argmax())]

        notes: dict[str, Any] = {"task_prefix": prefix, "targets": names}
        if gender:
            notes["expected_effects"] = [GENDER_PREFERENCE]
        return ScoreHead(
            outputs, forward, predict_labels, attribution_output, compared_outputs=tested, notes=notes
        )

    def _tokenize_targets(self, variants: Sequence[Variant]) -> _SetTargets:
        names = list(variants[0].targets)
        ids = [
            self.tokenizer(
                text_target=[v.targets[name] for v in variants],
                truncation=True,
                max_length=self.max_length,
                verbose=False,
            )["input_ids"]
            for name in names
        ]
        longest = max(len(row) for per_name in ids for row in per_name)
        labels = torch.full((len(variants), len(names), longest), IGNORE_INDEX, dtype=torch.long)
        lengths = torch.zeros((len(variants), len(names)), dtype=torch.long)
        for k, per_name in enumerate(ids):
            for i, row in enumerate(per_name):
                labels[i, k, : len(row)] = torch.tensor(row, dtype=torch.long)
                lengths[i, k] = len(row)
        expected = torch.tensor(
            [names.index(v.label) if v.label in names else -1 for v in variants], dtype=torch.long
        )
        return _SetTargets(names, labels.to(self.device), lengths.to(self.device), expected.to(self.device))

    def target_logliks(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        variant_index: torch.Tensor,
        tables: _SetTargets,
        prefix_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(batch, names) log P(target | source) of each row's targets, summed over target tokens."""
        hidden, mask = self._encode(input_ids, attention_mask, prefix_ids)
        index = variant_index.to(tables.labels.device)
        longest = int(tables.lengths[index].max())
        labels = tables.labels[index, :, :longest].to(hidden.device)  # (batch, names, longest)
        batch, n_names = labels.shape[:2]
        flat = labels.reshape(batch * n_names, longest)
        decoder_input_ids = self._shift_right(flat)
        from transformers.modeling_outputs import BaseModelOutput

        with self._decoder_without_hooks():
            logits = self.model(
                encoder_outputs=BaseModelOutput(last_hidden_state=hidden.repeat_interleave(n_names, dim=0)),
                attention_mask=mask.repeat_interleave(n_names, dim=0),
                decoder_input_ids=decoder_input_ids,
                use_cache=False,
            ).logits
        log_probs = F.log_softmax(logits.float() if logits.dtype in _HALF else logits, dim=-1)
        valid = flat != IGNORE_INDEX
        token = log_probs.gather(-1, flat.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (token * valid).sum(dim=-1).view(batch, n_names)

    def _shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        """Decoder inputs for these labels, as the model builds them from ``labels=``."""
        prepare: Callable[..., torch.Tensor] | None = getattr(
            self.model, "prepare_decoder_input_ids_from_labels", None
        )
        if prepare is not None:
            return prepare(labels=labels)
        config = self.model.config
        start = config.decoder_start_token_id
        pad = config.pad_token_id if config.pad_token_id is not None else 0
        shifted = labels.new_full(labels.shape, pad)
        shifted[:, 1:] = labels[:, :-1]
        shifted[:, 0] = start
        return shifted.masked_fill(shifted == IGNORE_INDEX, pad)

    @contextmanager
    def _decoder_without_hooks(self) -> Iterator[None]:
        """While inside, a decoder that shares the encoder's embedding module calls it hook-free."""
        if not self._decoder_shares_module:
            yield
            return
        original = self._decoder.embed_tokens
        self._decoder.embed_tokens = _HookFree(original)
        try:
            yield
        finally:
            self._decoder.embed_tokens = original

    # --- sources and the task prefix -----------------------------------------------------------

    def _prefix_ids(self, prefix: str | None) -> torch.Tensor | None:
        if not prefix:
            return None
        ids = self.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        return torch.tensor(ids, dtype=torch.long, device=self.device) if ids else None

    def _leading_specials(self) -> int:
        """Special tokens the tokenizer puts before a text (BART's <s>: 1; T5, Marian: 0)."""
        ids = self.tokenizer("a")["input_ids"]
        special = set(self.tokenizer.all_special_ids)
        count = 0
        while count < len(ids) and ids[count] in special:
            count += 1
        return count

    def _encode(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, prefix_ids: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's hidden states and the attention mask they go with (prefix included)."""
        if prefix_ids is None:
            hidden = self._encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return hidden, attention_mask
        scale = self._embedding_scale()
        if scale is None:
            raise UserError(f"{type(self.model).__name__}: a task prefix cannot be added to its inputs")
        embedded = self._embeddings(input_ids) * scale  # the one hooked call, on exactly input_ids
        prefix = _HookFree(self._embeddings)(prefix_ids.to(input_ids.device)) * scale
        lead = self._leading_specials()
        batch = input_ids.shape[0]
        parts = [embedded[:, :lead], prefix.unsqueeze(0).expand(batch, -1, -1), embedded[:, lead:]]
        ones = attention_mask.new_ones((batch, prefix.shape[0]))
        mask = torch.cat([attention_mask[:, :lead], ones, attention_mask[:, lead:]], dim=1)
        hidden = self._encoder(inputs_embeds=torch.cat(parts, dim=1), attention_mask=mask).last_hidden_state
        return hidden, mask

    def _embedding_scale(self) -> float | None:
        """The factor by which the encoder scales token embeddings it computes from ids itself
        (Marian: sqrt(d_model); T5, BART: 1, BART's module scales inside), found by comparing the
        encoder's output for ids with its output for embeddings; None when neither factor agrees."""
        if self._prefix_scale is not False:
            return self._prefix_scale  # type: ignore[return-value]
        ids = torch.tensor([self.tokenizer("a b c")["input_ids"]], dtype=torch.long, device=self.device)
        mask = torch.ones_like(ids)
        found: float | None = None
        with torch.no_grad():
            reference = self._encoder(input_ids=ids, attention_mask=mask).last_hidden_state.float()
            plain = _HookFree(self._embeddings)(ids)
            for scale in (1.0, getattr(self._encoder, "embed_scale", None)):
                if scale is None:
                    continue
                out = self._encoder(inputs_embeds=plain * float(scale), attention_mask=mask).last_hidden_state
                if torch.allclose(out.float(), reference, atol=1e-4, rtol=1e-3):
                    found = float(scale)
                    break
        self._prefix_scale = found
        return found

    def source_ids(self, encoded: Encoded, prefix: str | None) -> list[int]:
        """The ids the model reads for one encoded source: the prefix after any leading special token."""
        ids = list(encoded.input_ids)
        prefix_ids = self._prefix_ids(prefix)
        if prefix_ids is None:
            return ids
        lead = self._leading_specials()
        return ids[:lead] + prefix_ids.tolist() + ids[lead:]

    # --- generation ----------------------------------------------------------------------------

    def translate(
        self,
        probe_set: ProbeSet,
        sources: Sequence[Encoded],
        *,
        n_samples: int = 1,
        sample: bool = False,
        seeds: Sequence[int] | None = None,
        max_new_tokens: int | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        batch_tokens: int = 4096,
        on_done: Callable[[int], None] | None = None,
    ) -> list[list[Translation]]:
        """Per source, ``n_samples`` generated outputs with the task prefix added as in scoring:
        greedy (one per source, sources batched), or sampled with source i's samples drawn from
        ``seeds[i]`` (the same seed for every variant of an instance gives common random numbers)."""
        if n_samples < 1:
            raise ValueError("n_samples must be at least 1")
        if not sample and n_samples > 1:
            raise ValueError("greedy decoding gives one output per source; sample for several")
        if sample and (seeds is None or len(seeds) != len(sources)):
            raise ValueError("sampling needs one seed per source")
        prefix = self.task_prefix(probe_set)
        ids = [self.source_ids(s, prefix) for s in sources]
        limit = max_new_tokens if max_new_tokens is not None else self.default_max_new_tokens(probe_set)
        from transformers import GenerationConfig

        config = GenerationConfig(
            max_new_tokens=limit,
            do_sample=sample,
            temperature=temperature if sample else None,
            top_p=top_p if sample else None,
            top_k=None,
            num_beams=1,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self._eos_id(),
            decoder_start_token_id=self.model.config.decoder_start_token_id,
        )
        results: list[list[Translation]] = [[] for _ in sources]

        @torch.no_grad()
        def step(batch: list[int]) -> list[list[Translation]]:
            rows = [ids[i] for i in batch for _ in range(n_samples)]
            width = max(len(r) for r in rows)
            pad = self.tokenizer.pad_token_id
            input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.device)
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=self.device)
            devices = [self.device.index or 0] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                if sample:
                    assert seeds is not None and len(batch) == 1
                    torch.manual_seed(seeds[batch[0]])
                out = self.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)
            decoded = [self._translation(row) for row in out.tolist()]
            return [decoded[k * n_samples : (k + 1) * n_samples] for k in range(len(batch))]

        # sampled sources run one at a time: a source's samples must not depend on its batch
        batches = (
            [[i] for i in range(len(ids))]
            if sample
            else token_budget_batches([len(r) for r in ids], batch_tokens)
        )
        for batch in batches:
            for done, outputs in run_with_backoff(batch, step):
                for i, per_source in zip(done, outputs, strict=True):
                    results[i] = per_source
                if on_done is not None:
                    on_done(len(done))
        return results

    def _eos_id(self) -> int | None:
        configured = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if isinstance(configured, list):
            configured = configured[0] if configured else None
        return int(configured) if configured is not None else self.tokenizer.eos_token_id

    def _translation(self, row: list[int]) -> Translation:
        """One generated decoder sequence: its text and how many tokens it has before the end."""
        start = self.model.config.decoder_start_token_id
        tokens = row[1:] if row and row[0] == start else row
        eos = self._eos_id()
        stop = next((i for i, token in enumerate(tokens) if token == eos), None)
        kept = tokens if stop is None else tokens[:stop]
        text = self.tokenizer.decode(kept, skip_special_tokens=True).strip()
        return Translation(text, len(kept), stop is not None)

    def default_max_new_tokens(self, probe_set: ProbeSet) -> int:
        """Twice the longest target's tokens, plus 8, within the model's maximum."""
        names = list(probe_set.variants[0].targets) if probe_set.variants else []
        texts = [v.targets[n] for v in probe_set.variants for n in names if n in v.targets]
        encoded = self.tokenizer(text_target=texts, verbose=False)["input_ids"] if texts else []
        longest = max((len(ids) for ids in encoded), default=16)
        return max(8, min(self.max_length, 2 * longest + 8))


@dataclass(frozen=True)
class Translation:
    text: str
    """The generated text (special tokens removed, surrounding white space stripped)."""
    n_new_tokens: int
    """Tokens generated before the end-of-sequence token (or the limit)."""
    stopped: bool
    """The model ended the output before the limit."""


def _expected_probability(loglik: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """Each row's probability of its expected target among its targets (softmax of the
    log-likelihoods); NaN for rows without one."""
    has = expected >= 0
    probability = torch.softmax(loglik, dim=1).gather(1, expected.clamp(min=0).unsqueeze(1)).squeeze(1)
    return torch.where(has, probability, torch.full_like(probability, math.nan))


def generated_form(text: str, variant: Variant) -> str:
    """Which target a generated output uses, by the variant's target words (``NEITHER`` when none
    or several, or when the variant names no words)."""
    return classify_output(text, variant.target_words) if variant.target_words else NEITHER
