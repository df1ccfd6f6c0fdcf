"""Pair integrated gradients: what in variant a's tokens explains f(a) - f(b), for two variants that
align token for token (same token count, special tokens at the same places).

The path runs from variant b's token embeddings (the baseline) to variant a's, through the same
score-head column the finding compares, with the head told that every point of the path is variant
a (``variant_index`` = a's). What that means for b, and how the attributions still add up to the
finding's delta f(a) - f(b):

- heads that read only the input (classifiers, embeddings, plain modules): f_a(b), b's input scored
  as variant a, *is* f(b); the path integral explains all of f(a) - f(b);
- heads that score each variant's own tokens or spans, looked up by ``variant_index`` (a causal
  LM's whole-text likelihood, a masked LM's focus tokens, an answer or a name span, a translation's
  target): f_a(b) is "a's targets read in b's context". The path integral explains
  f(a) - f_a(b), what changing the context from b's to a's does; the rest, f_a(b) - f(b) (scoring
  a's own tokens instead of b's, in b's context), is computed exactly by two forward passes and
  belongs to the positions whose tokens differ (only there do the targets differ), so it is
  shared equally among them.

Either way the attributions of a pair sum to f(a) - f(b) up to the path integral's quadrature
error. The path is integrated by audit/attribution/integrated.py (the same integrator, rules and step
cap as every other integrated-gradients attribution), held to a share of the pair's delta rather than
of the path's own difference: since the remainder is exact,

    completeness_error = |sum of attributions - (f(a) - f(b))| / max(|f(a) - f(b)|, COMPLETENESS_FLOOR)
                       = |path sum - (f(a) - f_a(b))| / max(|f(a) - f(b)|, COMPLETENESS_FLOOR)

and ``converged`` is completeness_error <= the tolerance (``pair_tolerance``: the run's
--ig-tolerance, at most PAIR_TOLERANCE_CAP).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from audit.attribution.base import ScoreFunction
from audit.attribution.batches import EncodedExample
from audit.attribution.integrated import IntegrationSettings, integrated_gradients
from audit.batching import pad_right, run_in_length_batches

PAIR_TOLERANCE_CAP = 0.01
"""Pair IG is integrated until its attributions add up to the pair's delta within the run's
--ig-tolerance or this share, whichever is smaller: the path from b to a moves only the swapped
tokens' embeddings, so it is short and 1% costs few steps, and the pair's rows are read as a
decomposition of the finding's delta."""


def pair_tolerance(run_tolerance: float) -> float:
    """The completeness tolerance of pair IG in a run with this --ig-tolerance."""
    return min(run_tolerance, PAIR_TOLERANCE_CAP)


def aligned(a: EncodedExample, b: EncodedExample) -> bool:
    """Whether two encoded variants align token for token: same length, special tokens at the same
    places, and at least one token that differs (identical inputs have nothing to explain)."""
    return (
        len(a.input_ids) == len(b.input_ids)
        and list(a.special) == list(b.special)
        and list(a.input_ids) != list(b.input_ids)
    )


@dataclass(frozen=True)
class AlignedPair:
    """Two aligned variants and the score-head column explained."""

    a: EncodedExample
    b: EncodedExample
    variant_a: int
    variant_b: int
    output_index: int


@dataclass(frozen=True)
class PairAttribution:
    """One pair's token attributions (one per token of a), summing to score_a - score_b."""

    attributions: np.ndarray
    score_a: float
    """f(a): a's input, a's variant."""
    score_b: float
    """f(b): b's input, b's variant."""
    crossed: float
    """f_a(b): b's input scored as variant a (the path's start)."""
    n_steps: int
    """Points of the path integral (gradient evaluations)."""
    completeness_error: float
    """|sum of attributions - (f(a) - f(b))| / max(|f(a) - f(b)|, COMPLETENESS_FLOOR)."""
    converged: bool
    """completeness_error <= the tolerance it was integrated to."""


def pair_integrated_gradients(
    forward: ScoreFunction,
    embedding_layer: nn.Module,
    pairs: Sequence[AlignedPair],
    *,
    pad_id: int,
    device: torch.device,
    settings: IntegrationSettings | None = None,
    batch_tokens: int = 4096,
    on_done: Callable[[int], None] | None = None,
) -> list[PairAttribution]:
    """Attribute f(a) - f(b) of every aligned pair to a's tokens (see the module docstring), in the
    pairs' order, complete within ``settings.tolerance`` of the pair's delta where
    ``settings.max_steps`` allow it; pairs of similar length run together, a batch out of memory is
    split in half."""
    settings = settings or IntegrationSettings(tolerance=PAIR_TOLERANCE_CAP)
    for position, pair in enumerate(pairs):
        if not aligned(pair.a, pair.b):
            raise ValueError(f"pair {position} does not align token for token; use occlusion for it")

    def run(batch: list[int]) -> list[PairAttribution]:
        chosen = [pairs[i] for i in batch]
        ids_a = pad_right([p.a.input_ids for p in chosen], pad_id, device)
        ids_b = pad_right([p.b.input_ids for p in chosen], pad_id, device)
        mask = pad_right([[1] * len(p.a.input_ids) for p in chosen], 0, device)
        variant_a = torch.tensor([p.variant_a for p in chosen], dtype=torch.long, device=device)
        variant_b = torch.tensor([p.variant_b for p in chosen], dtype=torch.long, device=device)
        targets = torch.tensor([p.output_index for p in chosen], dtype=torch.long, device=device)
        with torch.no_grad():
            score_a = explained(forward, ids_a, mask, variant_a, targets).numpy()
            score_b = explained(forward, ids_b, mask, variant_b, targets).numpy()
        path = integrated_gradients(
            forward, embedding_layer, ids_a, ids_b, mask, targets, variant_a, settings,
            reference=score_a - score_b,
        )  # fmt: skip
        # f(a) and f_a(b) as the integral's ends computed them, so the pair's gap is the path's own
        crossed = path.baseline_scores
        differs = ((ids_a != ids_b) & mask.bool()).cpu().numpy()
        shares = differs / np.maximum(differs.sum(axis=1, keepdims=True), 1)
        totals = path.attributions + (crossed - score_b)[:, None] * shares
        return [
            PairAttribution(
                attributions=totals[row, : len(pair.a.input_ids)].astype(np.float64),
                score_a=float(path.scores[row]),
                score_b=float(score_b[row]),
                crossed=float(crossed[row]),
                n_steps=int(path.n_steps[row]),
                completeness_error=float(path.completeness_error[row]),
                converged=bool(path.converged[row]),
            )
            for row, pair in enumerate(chosen)
        ]

    lengths = [len(pair.a.input_ids) for pair in pairs]
    return run_in_length_batches(
        lengths, batch_tokens, run, max_batch_size=settings.internal_batch_size, on_done=on_done
    )


def explained(
    forward: ScoreFunction,
    ids: torch.Tensor,
    mask: torch.Tensor,
    variant_index: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """Column ``targets[row]`` of each row's scores, in float64 on the CPU."""
    scores = forward(ids, mask, variant_index)
    return scores.gather(1, targets[:, None]).squeeze(1).detach().double().cpu()
