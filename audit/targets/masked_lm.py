"""Masked language models: how likely the model finds the words the variants share, and the words
that differ.

Two outputs per variant, both log-likelihoods (natural log, summed over tokens):

- ``pll``: the pseudo-log-likelihood of the *shared* tokens, CrowS-Pairs style (Nangia et al.
  2020): each scored token is masked in turn and log p(original token) is read at its position;
  the sum over the scored tokens is the score. Scored tokens are the non-special tokens that
  overlap no focus span of the variant (``Variant.focus`` marks the characters that differ between
  variants), so two variants are compared on the same words, conditioned on the words that
  differ; a variant without focus spans scores all its non-special tokens.
- ``focus_loglik``: every focus token masked at once, the sum of log p of the original focus
  tokens (0 for a variant without focus): how likely the differing words are in the shared
  context. It is what attributions explain when the instance has focus spans (``pll`` otherwise);
  the focus tokens themselves are masked there, so their attribution is 0 by construction.

Batching: one forward over a batch builds every masked copy of every row (one per scored token,
plus one per row with focus), runs them in chunks of at most ``copy_tokens`` padded tokens, and
adds each copy's log-probability back to its row. The token embeddings are computed once, on
exactly the ``input_ids`` received (Captum's layer hook sees the tensor it expects); the copies
replace the masked positions with the [MASK] embedding and go through the model as
``inputs_embeds``, so the whole score is differentiable in the embeddings. With gradients on,
each chunk is checkpointed: integrated gradients then needs the memory of one chunk, not of all
copies. The log-softmax is taken only at the masked positions (a pre-hook on the output
projection keeps just those rows of the hidden states), not over the whole vocabulary at every
position.

Which tokens are scored is computed per variant in ``head()`` by tokenizing the variant's whole
text exactly as ``audit.batching.encode_texts`` does, and looked up in ``forward`` by each row's
variant index. The original token ids (the log-probability targets) come from there too, not
from ``input_ids``, so a baseline input (integrated gradients) is scored on the same targets as
the real one. Hence texts cannot be windowed (``windows_supported = False``) and only
counterfactual sets fit this target.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from audit.attribution.batches import focus_token_mask
from audit.batching import encode_texts, pad_right
from audit.errors import UserError
from audit.targets.base import ScoreHead, Target
from probes.schema import ProbeSet

PLL = "pll"
FOCUS_LOGLIK = "focus_loglik"
OUTPUTS = (PLL, FOCUS_LOGLIK)


@dataclass(frozen=True)
class VariantTokens:
    """One variant as the model reads it, and which of its token positions are scored."""

    input_ids: tuple[int, ...]
    scored: tuple[int, ...]
    """Positions masked one at a time for ``pll``: non-special tokens outside every focus span."""
    focus: tuple[int, ...]
    """Positions masked together for ``focus_loglik``: non-special tokens overlapping a focus span."""


class MaskedLMTarget(Target):
    task = "masked-lm"
    windows_supported = False
    copy_tokens = 8192
    """Padded tokens per forward pass of masked copies (copies x sequence length)."""

    def __init__(self, model: nn.Module, tokenizer: Any, device: torch.device, max_length: int) -> None:
        super().__init__(model, tokenizer, device, max_length)
        if getattr(tokenizer, "mask_token_id", None) is None:
            raise UserError(
                "the tokenizer has no mask token, which a masked-LM audit needs (it masks tokens one at a "
                "time); load the model's own tokenizer, or audit it as another task with --task"
            )
        self.mask_token_id = int(tokenizer.mask_token_id)
        self._mask_embedding: torch.Tensor | None = None

    def check_probe_set(self, probe_set: ProbeSet) -> list[str]:
        if probe_set.kind == "counterfactual":
            return []
        why = {
            "long_document": "long documents are built to be cut or windowed, and a masked LM's per-token "
            "masks are computed on each whole text",
            "parallel": "a pseudo-log-likelihood sums over each language's own tokens, so the numbers of two "
            "languages are not comparable",
        }.get(probe_set.kind, "a masked LM scores counterfactual variants only")
        return [
            f"probe set {probe_set.name!r} is a {probe_set.kind.replace('_', '-')} set, which masked-LM audits "
            f"do not support: {why}; use a counterfactual set (e.g. gender, a CrowS-Pairs CSV)"
        ]

    # --- per-variant data ------------------------------------------------------------------

    def variant_tokens(self, probe_set: ProbeSet) -> list[VariantTokens]:
        """Every variant's token ids and its scored and focus positions (see the module docstring)."""
        variants = probe_set.variants
        encoded = encode_texts(self.tokenizer, [v.text for v in variants], self.max_length)
        result = []
        for variant, example in zip(variants, encoded, strict=True):
            in_focus = focus_token_mask(example, [(s.start, s.end) for s in variant.focus if s.end > s.start])
            real = [not special for special in example.special]
            result.append(
                VariantTokens(
                    input_ids=tuple(example.input_ids),
                    scored=tuple(
                        i for i, (r, f) in enumerate(zip(real, in_focus, strict=True)) if r and not f
                    ),
                    focus=tuple(i for i, f in enumerate(in_focus) if f),
                )
            )
        return result

    def mask_embedding(self) -> torch.Tensor:
        """The input embedding of the mask token, (hidden,), computed once outside any hook."""
        if self._mask_embedding is None:
            with torch.no_grad():
                ids = torch.tensor([[self.mask_token_id]], device=self.device)
                self._mask_embedding = self.embedding_layer()(ids)[0, 0].detach()
        return self._mask_embedding

    # --- scoring ---------------------------------------------------------------------------

    def head(self, probe_set: ProbeSet) -> ScoreHead:
        tokens = self.variant_tokens(probe_set)
        mask_vector = self.mask_embedding()

        def forward(
            input_ids: torch.Tensor, attention_mask: torch.Tensor, variant_index: torch.Tensor | None = None
        ) -> torch.Tensor:
            if variant_index is None:
                raise ValueError("masked-LM scores need each row's variant index (which tokens to mask)")
            rows = [tokens[int(i)] for i in variant_index.tolist()]
            lengths = attention_mask.sum(dim=1).tolist()
            for row, (variant, n_tokens) in enumerate(zip(rows, lengths, strict=True)):
                if len(variant.input_ids) != int(n_tokens):
                    raise ValueError(
                        f"row {row} has {int(n_tokens)} tokens but its variant has {len(variant.input_ids)}: "
                        "masked-LM scores need each variant's whole text as one input"
                    )
            targets = pad_right([v.input_ids for v in rows], 0, input_ids.device)
            embeds = self.embedding_layer()(input_ids)
            pll = self.masked_log_probs(
                embeds, attention_mask, targets, mask_vector, [[(p,) for p in v.scored] for v in rows]
            )
            focus = self.masked_log_probs(
                embeds, attention_mask, targets, mask_vector, [[v.focus] if v.focus else [] for v in rows]
            )
            return torch.stack([pll, focus], dim=1)

        def predict_labels(scores: np.ndarray) -> list[str | None]:
            return [None] * len(scores)

        def attribution_output(expected: list[str | None], scores: np.ndarray) -> str:
            """The focus words' log-likelihood when the instance has focus tokens (a variant's
            focus_loglik is 0 exactly when it has none), else the pseudo-log-likelihood."""
            return FOCUS_LOGLIK if np.any(scores[:, OUTPUTS.index(FOCUS_LOGLIK)] != 0) else PLL

        return ScoreHead(
            list(OUTPUTS),
            forward,
            predict_labels,
            attribution_output,
            compared_outputs=list(OUTPUTS),
            preference_outputs=[PLL],
        )

    def masked_log_probs(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        targets: torch.Tensor,
        mask_vector: torch.Tensor,
        copies: Sequence[Sequence[tuple[int, ...]]],
    ) -> torch.Tensor:
        """Per row, the sum over its masked copies of log p(target token) at each copy's masked
        positions. ``copies[row]`` lists the copies of that row, each as the positions it masks."""
        batch, width = attention_mask.shape
        total = torch.zeros(batch, dtype=torch.float32, device=embeds.device)
        flat = [(row, positions) for row, row_copies in enumerate(copies) for positions in row_copies]
        if not flat:
            return total
        per_chunk = max(1, self.copy_tokens // width)
        for start in range(0, len(flat), per_chunk):
            chunk = flat[start : start + per_chunk]
            most = max(len(positions) for _, positions in chunk)
            where_rows = np.zeros((len(chunk), most), dtype=np.int64)
            valid_rows = np.zeros((len(chunk), most), dtype=bool)
            for k, (_, positions) in enumerate(chunk):
                where_rows[k, : len(positions)] = positions
                valid_rows[k, : len(positions)] = True
            owners = torch.tensor([row for row, _ in chunk], device=embeds.device)
            where = torch.from_numpy(where_rows).to(embeds.device)
            valid = torch.from_numpy(valid_rows).to(embeds.device)

            def score(
                embeds: torch.Tensor,
                owners: torch.Tensor = owners,
                where: torch.Tensor = where,
                valid: torch.Tensor = valid,
            ) -> torch.Tensor:
                return self._copy_log_probs(
                    embeds, attention_mask, targets, mask_vector, owners, where, valid
                )

            if torch.is_grad_enabled() and embeds.requires_grad:
                values = checkpoint(score, embeds, use_reentrant=False)
            else:
                values = score(embeds)
            total = total.index_add(0, owners, values)
        return total

    def _copy_log_probs(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        targets: torch.Tensor,
        mask_vector: torch.Tensor,
        owners: torch.Tensor,
        where: torch.Tensor,
        valid: torch.Tensor,
    ) -> torch.Tensor:
        """One chunk of masked copies: row ``owners[k]`` with positions ``where[k][valid[k]]``
        masked; returns each copy's summed log p of the original tokens there, (copies,)."""
        n_copies, width = len(owners), embeds.shape[1]
        masked = torch.zeros((n_copies, width), dtype=torch.bool, device=embeds.device)
        masked[
            torch.arange(n_copies, device=embeds.device)[:, None].expand_as(where)[valid], where[valid]
        ] = True
        copies = torch.where(masked[..., None], mask_vector.to(embeds.dtype), embeds[owners])
        logits = self._logits_at(copies, attention_mask[owners], where)
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        wanted = targets[owners].gather(1, where)
        picked = log_probs.gather(-1, wanted[..., None]).squeeze(-1)
        return (picked * valid).sum(dim=1)

    def _logits_at(
        self, embeds: torch.Tensor, attention_mask: torch.Tensor, where: torch.Tensor
    ) -> torch.Tensor:
        """The model's logits at positions ``where`` (copies, k) of each copy: (copies, k, vocab).

        A pre-hook on the output projection keeps only those positions of the hidden states, so the
        vocabulary-sized matrix is computed for them alone (what follows the projection in a masked-LM
        head is per token). If the projection is not found or not called as expected, the full
        logits are computed and indexed instead."""
        rows = torch.arange(len(embeds), device=embeds.device)[:, None]
        projection = (
            self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        )
        applied: list[bool] = []

        def keep_positions(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            hidden = args[0] if args else None
            if applied or not isinstance(hidden, torch.Tensor) or hidden.shape[:2] != embeds.shape[:2]:
                return None
            applied.append(True)
            return (hidden[rows, where], *args[1:])

        handle = (
            projection.register_forward_pre_hook(keep_positions)
            if isinstance(projection, nn.Module)
            else None
        )
        try:
            logits = self.model(inputs_embeds=embeds, attention_mask=attention_mask).logits
        finally:
            if handle is not None:
                handle.remove()
        if applied and logits.shape[:2] == where.shape:
            return logits
        if applied:  # something after the projection was not per token: compute everything
            logits = self.model(inputs_embeds=embeds, attention_mask=attention_mask).logits
        return logits[rows, where]
