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

Either way the attributions of a pair sum to f(a) - f(b) up to the path integral's discretisation
error, which is recorded per pair (``completeness_error``: |sum - (f(a) - f(b))| / |f(a) - f(b)|).

``integrate_path`` is the one place the path integral is computed (Captum's
LayerIntegratedGradients at a fixed number of steps), so an adaptive-steps integrator can replace it
without touching the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import LayerIntegratedGradients
from torch import nn

from audit.attribution.base import ScoreFunction
from audit.attribution.batches import EncodedExample
from audit.batching import pad_right, run_with_backoff, token_budget_batches

PAIR_IG_TOLERANCE = 0.05
"""A pair whose attributions miss f(a) - f(b) by more than this share of it is not converged."""
REFINE_TO = 0.01
"""Pairs that miss f(a) - f(b) by more than this share are integrated again with twice the steps,
up to ``max_steps``."""


def step_plan(ig_steps: int) -> tuple[int, int]:
    """(first, most) steps of pair IG for the run's --ig-steps. The path from b to a moves only the
    swapped tokens' embeddings, so it is short and most pairs are complete within 1% in a few steps:
    start at a quarter of --ig-steps (at least 8) and double where needed, up to 8x --ig-steps."""
    return max(8, ig_steps // 4), 8 * ig_steps


ABSOLUTE_FLOOR = 1e-6
"""Below this absolute gap a pair counts as converged whatever its share (float32 rounding of a
delta near zero would otherwise make every unbiased pair 'unconverged')."""


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
    completeness_error: float
    """|sum of attributions - (f(a) - f(b))| / |f(a) - f(b)| (inf when f(a) = f(b) and the sum is not 0)."""
    converged: bool


def integrate_path(
    forward: ScoreFunction,
    embedding_layer: nn.Module,
    inputs: torch.Tensor,
    baselines: torch.Tensor,
    additional: tuple[torch.Tensor, ...],
    targets: list[int],
    n_steps: int,
    internal_batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Integrated gradients of ``forward``'s column ``targets[row]`` from ``baselines`` to ``inputs``
    through the embedding layer: (per-token attributions (batch, tokens), Captum's convergence delta
    (batch,), steps used)."""
    method = LayerIntegratedGradients(forward, embedding_layer)
    attributions, delta = method.attribute(
        inputs=inputs,
        baselines=baselines,
        target=targets,
        additional_forward_args=additional,
        n_steps=n_steps,
        internal_batch_size=max(internal_batch_size, len(inputs)),
        return_convergence_delta=True,
    )
    return attributions.detach().float().sum(dim=-1), delta.detach().float(), n_steps


def pair_integrated_gradients(
    forward: ScoreFunction,
    embedding_layer: nn.Module,
    pairs: Sequence[AlignedPair],
    *,
    pad_id: int,
    device: torch.device,
    n_steps: int = 32,
    internal_batch_size: int = 64,
    batch_tokens: int = 4096,
    tolerance: float = PAIR_IG_TOLERANCE,
    refine_to: float = REFINE_TO,
    max_steps: int | None = None,
    on_done: Callable[[int], None] | None = None,
) -> list[PairAttribution]:
    """Attribute f(a) - f(b) of every aligned pair to a's tokens (see the module docstring), in the
    pairs' order; pairs of similar length run together, a batch out of memory is split in half.
    A pair whose sum misses the delta by more than ``refine_to`` of it runs again with twice the
    steps, up to ``max_steps`` (default ``n_steps``: no refinement); ``converged`` says whether it ends within ``tolerance``."""
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
            score_a = explained(forward, ids_a, mask, variant_a, targets)
            crossed = explained(forward, ids_b, mask, variant_a, targets)
            score_b = explained(forward, ids_b, mask, variant_b, targets)
        per_token, _, steps = integrate_path(
            forward, embedding_layer, ids_a, ids_b, (mask, variant_a), targets.tolist(), steps_now[0],
            internal_batch_size,
        )  # fmt: skip
        per_token = per_token.cpu().double() * mask.cpu()
        differs = ((ids_a != ids_b) & mask.bool()).cpu()
        target_term = (crossed - score_b)[:, None] * differs / differs.sum(dim=1, keepdim=True).clamp(min=1)
        totals = per_token + target_term
        out = []
        for row, pair in enumerate(chosen):
            n = len(pair.a.input_ids)
            values = totals[row, :n].cpu().numpy().astype(np.float64)
            delta = float(score_a[row]) - float(score_b[row])
            gap = abs(float(values.sum()) - delta)
            error = gap / abs(delta) if delta != 0 else (0.0 if gap == 0 else float("inf"))
            out.append(
                PairAttribution(
                    attributions=values,
                    score_a=float(score_a[row]),
                    score_b=float(score_b[row]),
                    crossed=float(crossed[row]),
                    n_steps=steps,
                    completeness_error=error,
                    converged=bool(error <= tolerance or gap <= ABSOLUTE_FLOOR),
                )
            )
        return out

    results: list[PairAttribution | None] = [None] * len(pairs)
    todo, steps_now = list(range(len(pairs))), [n_steps]
    most = n_steps if max_steps is None else max_steps
    while todo and steps_now[0] <= most:
        lengths = [len(pairs[i].a.input_ids) for i in todo]
        for batch in token_budget_batches(lengths, batch_tokens, max_batch_size=internal_batch_size):
            for done, attributed in run_with_backoff([todo[k] for k in batch], run):
                for index, result in zip(done, attributed, strict=True):
                    results[index] = result
                if on_done is not None and steps_now[0] == n_steps:
                    on_done(len(done))
        todo = [i for i in todo if not within(results[i], refine_to)]
        steps_now[0] *= 2
    return [r for r in results if r is not None]


def within(result: PairAttribution | None, share: float) -> bool:
    """Whether a pair's attributions add up to its delta within ``share`` of it (or ABSOLUTE_FLOOR)."""
    if result is None:
        return False
    gap = abs(float(result.attributions.sum()) - (result.score_a - result.score_b))
    return result.completeness_error <= share or gap <= ABSOLUTE_FLOOR


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
