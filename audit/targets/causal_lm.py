"""Causal (decoder) language models: GPT-2, Llama, Qwen and the like, scored by log-likelihood.

Two kinds of score, both in nats (natural-log probabilities, so 0 is certain and every value is
negative):

- ``loglik``: the log-likelihood of the whole text, the sum over every one of its tokens of
  ``log p(token | start token, tokens before it)``. Every text starts with a start token
  (audit/start_token.py, ``--start-token``; by default the tokenizer's BOS, else its EOS, as
  lm-evaluation-harness does), which is the context of the first text token and is not scored
  itself: so the first word counts ("He" / "She" at the start of a sentence is scored, not only
  what follows it). With ``--start-token none`` the first text token has no context and is not
  scored. Counterfactual variants compare it (CrowS-Pairs for decoders: is "She is a nurse."
  more likely than "He is a nurse."?). Variants named ``stereotype`` / ``anti-stereotype`` also
  get the share of instances whose stereotypical text is the more likely one.
- ``loglik:<continuation>``, when the probe set lists ``continuations`` (BOLD / HolisticBias
  style): ``log P(continuation | start token, text)`` for each continuation, the same
  continuations for every variant, so the variants (the same prompt with different identity
  terms) are compared on each.

Both are one differentiable function of the input ids, so Captum explains exactly the compared
number. Continuations are placed right after each row's last real token (inputs are right-padded)
and passed as ``inputs_embeds``: the prompt goes through the embedding module (which Captum
hooks), the continuation tokens through ``F.embedding`` on its weight (not hooked), so prompt
tokens get the attributions.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from audit.targets.base import ScoreHead, Target
from probes.schema import ProbeSet

WHOLE_TEXT_OUTPUT = "loglik"
CONTINUATION_PREFIX = "loglik:"

LOGIT_BUDGET = 1 << 26
"""At most this many logits (rows x positions x vocabulary) exist per model pass, 256 MiB as
float32: a batch that would need more is run as several passes over fewer rows (SmolLM2's
vocabulary of 49,152 at 20 tokens: 68 rows per pass)."""


def continuation_text(continuation: str) -> str:
    """The text that follows the prompt: the continuation, after one space unless it starts with
    white space or punctuation ("she" -> " she", ", she said" stays)."""
    first = continuation[:1]
    return continuation if not first or first.isspace() or not first.isalnum() else " " + continuation


def continuation_output(continuation: str) -> str:
    return CONTINUATION_PREFIX + continuation.strip()


def trailing_special_tokens(tokenizer: Any) -> int:
    """How many special tokens the tokenizer appends after a text (an EOS some tokenizers add);
    continuations and generated text go before them, so they are dropped there."""
    encoded = tokenizer("a", add_special_tokens=True, return_special_tokens_mask=True)
    special = list(encoded["special_tokens_mask"])
    count = 0
    while count < len(special) and special[len(special) - 1 - count]:
        count += 1
    return count


class CausalLMTarget(Target):
    task = "causal-lm"
    windows_supported = False
    """A text's log-likelihood sums over its tokens: overlapping windows would count tokens twice
    and drop the context a window starts without, so long texts are cut and flagged instead."""

    def __init__(self, model: nn.Module, tokenizer: Any, device: torch.device, max_length: int) -> None:
        super().__init__(model, tokenizer, device, max_length)
        self.trailing_specials = trailing_special_tokens(tokenizer)
        self._keeps_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters

    def transformer(self) -> nn.Module:
        """The decoder without its output layer: attention statistics need no vocabulary logits."""
        base = getattr(self.model, "base_model", None)
        return base if isinstance(base, nn.Module) and base is not self.model else self.model

    def check_probe_set(self, probe_set: ProbeSet) -> list[str]:
        if probe_set.kind == "long_document":
            return [
                f"probe set {probe_set.name!r} is a long-document set, which causal LMs do not support: the "
                "log-likelihood of a document counts the key sentence's own tokens and the filler's, so "
                "'the key sentence moved the score' would be true of any sentence. Audit a causal LM with "
                "counterfactual sets (whole-text log-likelihood, or continuations)"
            ]
        if probe_set.kind == "parallel":
            return [
                f"probe set {probe_set.name!r} is a parallel (multilingual) set, which causal LMs do not "
                "support: log-likelihoods of texts in different languages differ with their length and "
                "tokenization, so comparing them with the reference language measures the tokenizer, not bias"
            ]
        problems = []
        for continuation in probe_set.continuations:
            ids = self.tokenizer(continuation_text(continuation), add_special_tokens=False)["input_ids"]
            if not ids:
                problems.append(
                    f"probe set {probe_set.name!r}: continuation {continuation!r} has no tokens for this tokenizer"
                )
        return problems

    def head(self, probe_set: ProbeSet) -> ScoreHead:
        if probe_set.continuations:
            return self.continuation_head(probe_set)
        return self.text_head(probe_set)

    # --- whole-text log-likelihood -------------------------------------------------------------

    def text_head(self, probe_set: ProbeSet) -> ScoreHead:
        """One output, ``loglik``: the log-likelihood of the whole text.

        Targets (the tokens whose probability is summed) are each variant's own token ids, looked
        up by ``variant_index``, not read from ``input_ids``: Integrated Gradients evaluates the
        score at its baseline ids, and the baseline text must be scored on the same targets (only
        the context changes), or its convergence delta would mix two different sums.
        """
        encoded = self.tokenizer(
            [v.text for v in probe_set.variants],
            add_special_tokens=True,
            truncation=True,
            max_length=self.max_length,
            verbose=False,
        )["input_ids"]
        targets = [torch.tensor(ids, dtype=torch.long) for ids in encoded]

        def forward(
            input_ids: torch.Tensor, attention_mask: torch.Tensor, variant_index: torch.Tensor | None = None
        ) -> torch.Tensor:
            labels = self._text_targets(input_ids, attention_mask, variant_index, targets)
            # embedded once, through the module Captum hooks, then run in slices of rows: calling the
            # hooked module once per slice would hand every slice the whole batch's embeddings
            embeds = self.embedding_layer()(input_ids)
            rows = self._rows_per_pass(input_ids.shape[1])
            parts = [
                self._text_loglik(embeds[i : i + rows], attention_mask[i : i + rows], labels[i : i + rows])
                for i in range(0, len(input_ids), rows)
            ]
            return torch.cat(parts)[:, None]

        return self._score_head([WHOLE_TEXT_OUTPUT], forward, "whole text")

    def _text_targets(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        variant_index: torch.Tensor | None,
        targets: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """Each row's own token ids where its length matches its variant's encoding (a whole text,
        or IG's baseline of it); the row's input ids otherwise (a sliding window of a long text)."""
        if variant_index is None:
            return input_ids
        labels = input_ids.clone()
        lengths = attention_mask.sum(dim=1).tolist()
        for row, (variant, length) in enumerate(zip(variant_index.tolist(), lengths, strict=True)):
            own = targets[variant]
            if len(own) == length:
                labels[row, :length] = own.to(labels.device)
        return labels

    def _text_loglik(
        self, embeds: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        logits = self.model(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).logits
        # position 0 is the start token (the tokenizer's, audit/start_token.py): the context of the
        # first text token, never scored itself; with --start-token none it is the first text token
        logp = _token_logprobs(logits[:, :-1], labels[:, 1:])
        scored = attention_mask[:, 1:].to(logp.dtype)
        return (logp * scored).sum(dim=1)

    # --- continuations -------------------------------------------------------------------------

    def continuation_head(self, probe_set: ProbeSet) -> ScoreHead:
        """One output per continuation, ``loglik:<continuation>`` = log P(continuation | text)."""
        continuations = list(probe_set.continuations)
        outputs = [continuation_output(c) for c in continuations]
        ids = [
            torch.tensor(
                self.tokenizer(continuation_text(c), add_special_tokens=False)["input_ids"],
                dtype=torch.long,
                device=self.device,
            )
            for c in continuations
        ]

        def forward(
            input_ids: torch.Tensor, attention_mask: torch.Tensor, variant_index: torch.Tensor | None = None
        ) -> torch.Tensor:
            embedding = self.embedding_layer()
            prompt = embedding(input_ids)  # the module Captum hooks: prompt tokens get the attributions
            lengths = attention_mask.sum(dim=1) - self.trailing_specials
            # with gradients on (attributions), each pass keeps only its inputs and is recomputed in
            # the backward pass if its column is the one explained: one continuation's activations
            # in memory, not all of them
            checkpointed = torch.is_grad_enabled()
            columns = []
            for continuation in ids:
                rows = self._rows_per_pass(input_ids.shape[1] + len(continuation))
                parts = []
                for i in range(0, len(input_ids), rows):
                    arguments = (prompt[i : i + rows], lengths[i : i + rows], continuation, embedding)
                    parts.append(
                        checkpoint(self._continuation_loglik, *arguments, use_reentrant=False)
                        if checkpointed
                        else self._continuation_loglik(*arguments)
                    )
                columns.append(torch.cat(parts))
            return torch.stack(columns, dim=1)

        return self._score_head(outputs, forward, "continuations")

    def _continuation_loglik(
        self, prompt: torch.Tensor, lengths: torch.Tensor, continuation: torch.Tensor, embedding: nn.Module
    ) -> torch.Tensor:
        """log P(continuation | prompt) per row; the continuation starts right after each row's
        last real prompt token (padding and trailing special tokens come after it)."""
        batch, length, _ = prompt.shape
        n = len(continuation)
        total = length + n
        weight: torch.Tensor = embedding.weight  # type: ignore[assignment]
        follow = F.embedding(continuation, weight) * _embedding_scale(embedding)
        follow = follow.to(prompt.dtype)[None].expand(batch, n, -1)
        source = torch.cat([prompt, follow], dim=1)  # (batch, length + n, hidden)
        position = torch.arange(total, device=prompt.device)[None, :].expand(batch, total)
        offset = position - lengths[:, None]  # position relative to the continuation's start
        in_prompt = offset < 0
        in_continuation = (offset >= 0) & (offset < n)
        filler = torch.full_like(position, total - 1)  # padding: any row works, it is masked
        index = torch.where(in_prompt, position, torch.where(in_continuation, length + offset, filler))
        embeds = source.gather(1, index[:, :, None].expand(-1, -1, source.shape[-1]))
        mask = (in_prompt | in_continuation).to(torch.long)
        predicting = lengths[:, None] - 1 + torch.arange(n, device=prompt.device)[None, :]  # (batch, n)
        first = int(predicting.min())
        last = int(predicting.max()) + 1
        extra: dict[str, Any] = {}
        if self._keeps_logits:
            extra["logits_to_keep"] = torch.arange(first, last, device=prompt.device)
        logits = self.model(inputs_embeds=embeds, attention_mask=mask, use_cache=False, **extra).logits
        shift = first if self._keeps_logits else 0
        picked = logits.gather(1, (predicting - shift)[:, :, None].expand(-1, -1, logits.shape[-1]))
        return _token_logprobs(picked, continuation[None, :].expand(batch, n)).sum(dim=1)

    # --- shared --------------------------------------------------------------------------------

    def _rows_per_pass(self, positions: int) -> int:
        vocabulary = int(getattr(self.model.config, "vocab_size", 0) or 1)
        return max(1, LOGIT_BUDGET // max(1, positions * vocabulary))

    def _score_head(self, outputs: list[str], forward: Any, scored: str) -> ScoreHead:
        def predict_labels(scores: np.ndarray) -> list[str | None]:
            return [None] * len(scores)

        def attribution_output(expected: list[str | None], scores: np.ndarray) -> str:
            """The output on which the instance's variants differ most."""
            return outputs[int(np.ptp(scores, axis=0).argmax())]

        return ScoreHead(
            outputs,
            forward,
            predict_labels,
            attribution_output,
            notes={"score": "log-likelihood (nats)", "scored": scored},
            preference_outputs=list(outputs),
        )


def _token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) at each position: (batch, positions, vocabulary) logits -> (batch, positions)."""
    logits = logits.float()
    return logits.gather(-1, targets[..., None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def _embedding_scale(embedding: nn.Module) -> Any:
    """Models whose embedding module scales its output (Gemma: by sqrt(hidden size)) keep the
    factor on the module; the continuation's embeddings get it too."""
    scale = getattr(embedding, "embed_scale", None)
    return 1.0 if scale is None else scale
