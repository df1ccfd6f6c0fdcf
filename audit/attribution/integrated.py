"""Integrated gradients with a completeness guarantee: steps chosen per example until the token
attributions add up to the explained difference, from any baseline of the input's shape.

    integrated_gradients(forward, embedding_layer, input_ids, baseline_ids, attention_mask,
                         output_index, variant_index, settings) -> IntegratedGradientsResult

The path is the straight line between the embedding layer's outputs for ``baseline_ids`` and for
``input_ids`` (the layer's output is replaced along it by a forward hook, as Captum's layer methods
do; the score function is called exactly as the scorer calls it). Per example and token, the
attribution is the integral over alpha in [0, 1] of grad_e F(path(alpha)) . (e_x - e_b), summed
over the embedding dimension; the attributions of an example sum to f(x) - f(baseline) exactly,
up to the quadrature's error, which is measured and bounded:

completeness error = |sum of attributions - (f(x) - f(baseline))| / max(|reference|, FLOOR)

where the reference is f(x) - f(baseline) itself unless the caller names another difference the
attributions are part of (pair integrated gradients, audit/attribution/pairs.py: the path explains
f(a) - f_a(b) and is held to a share of the pair's delta f(a) - f(b)).

Rules (``IntegrationSettings.rule``):

- ``trapezoid`` (default): the trapezoid rule on a grid of ``n_steps`` points, refined where it is
  wrong. On every interval [a, b] of the grid the exact integral of the slope dF/dalpha is known,
  F(b) - F(a) (F is evaluated at every point anyway), so each interval's own completeness error is
  measured and the intervals that carry the error are bisected, round after round, until the
  example's error is within the tolerance or it has used ``max_steps`` points. Nothing evaluated
  is thrown away. Deep decoders need this: their integrand is smooth but swings by thousands of
  nats per unit alpha in a narrow stretch of the path (bench/RESULTS.md, "Integrated gradients on
  decoders"), where a uniform grid would need thousands of points everywhere.
- ``gausslegendre`` (Captum's default rule): ``n_steps`` Gauss-Legendre nodes; an example still off
  is run again at twice the nodes, up to ``max_steps``.

Only the examples still off are evaluated in the next round; their points are batched together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

IntegrationRule = Literal["trapezoid", "gausslegendre"]
RULES: tuple[str, ...] = ("trapezoid", "gausslegendre")

COMPLETENESS_FLOOR = 1e-4
"""Where |f(x) - f(baseline)| is below this (in the output's own unit: a probability, nats, a
similarity), the completeness error is measured against it instead: the relative error of a
difference of zero is undefined, so the tolerance becomes an absolute one (tolerance x 1e-4)."""


@dataclass(frozen=True)
class IntegrationSettings:
    """How integrated gradients integrates along the path."""

    n_steps: int = 32
    """Points (trapezoid) or nodes (Gauss-Legendre) of the first round."""
    max_steps: int = 1024
    """At most this many points per example; an example still off then is flagged."""
    tolerance: float = 0.05
    """Largest completeness error accepted (a share of |f(x) - f(baseline)|)."""
    rule: str = "trapezoid"
    """"trapezoid" (adaptive bisection) or "gausslegendre" (doubling)."""
    internal_batch_size: int = 64
    """Path points (rows) per forward/backward pass; bounds memory."""

    def __post_init__(self) -> None:
        if self.n_steps < 2:
            raise ValueError(f"n_steps must be at least 2, got {self.n_steps}")
        if self.max_steps < self.n_steps:
            raise ValueError(f"max_steps ({self.max_steps}) must be at least n_steps ({self.n_steps})")
        if not self.tolerance > 0:
            raise ValueError(f"the tolerance must be positive, got {self.tolerance}")
        if self.rule not in RULES:
            raise ValueError(f"unknown integration rule {self.rule!r}; choose one of {list(RULES)}")
        if self.internal_batch_size < 1:
            raise ValueError(f"internal_batch_size must be at least 1, got {self.internal_batch_size}")


@dataclass
class IntegratedGradientsResult:
    """Per example of a padded batch (numpy, float64)."""

    attributions: np.ndarray
    """(batch, tokens): attribution per token, zero at padding."""
    scores: np.ndarray
    """(batch,): f(x)."""
    baseline_scores: np.ndarray
    """(batch,): f(baseline)."""
    n_steps: np.ndarray
    """(batch,): points (gradient evaluations) the kept attribution used."""
    convergence_delta: np.ndarray = field(init=False)
    """(batch,): sum of attributions - (f(x) - f(baseline))."""
    completeness_error: np.ndarray = field(init=False)
    """(batch,): |convergence_delta| / max(|f(x) - f(baseline)|, COMPLETENESS_FLOOR)."""
    converged: np.ndarray = field(init=False)
    """(batch,): completeness_error <= the tolerance."""
    tolerance: float = 0.05
    reference: np.ndarray | None = None
    """(batch,): the difference the error is a share of; None: f(x) - f(baseline)."""

    def __post_init__(self) -> None:
        self.convergence_delta = self.attributions.sum(axis=1) - (self.scores - self.baseline_scores)
        self.completeness_error = completeness_error(
            self.convergence_delta,
            self.scores - self.baseline_scores if self.reference is None else self.reference,
        )
        self.converged = self.completeness_error <= self.tolerance


def completeness_error(delta: np.ndarray, difference: np.ndarray) -> np.ndarray:
    """|delta| / max(|f(x) - f(baseline)|, COMPLETENESS_FLOOR), elementwise."""
    return np.abs(np.asarray(delta, dtype=np.float64)) / np.maximum(
        np.abs(np.asarray(difference, dtype=np.float64)), COMPLETENESS_FLOOR
    )


class PathEvaluator:
    """F and the per-token slope grad_e F . (e_x - e_b) at points of the examples' paths."""

    def __init__(
        self,
        forward: Callable[..., torch.Tensor],
        embedding_layer: nn.Module,
        input_ids: torch.Tensor,
        baseline_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        output_index: torch.Tensor,
        variant_index: torch.Tensor | None,
        rows_per_pass: int,
    ) -> None:
        self.forward = forward
        self.layer = embedding_layer
        self.input_ids = input_ids
        self.mask = attention_mask
        self.output_index = output_index
        self.variant_index = variant_index
        self.rows_per_pass = rows_per_pass
        self.baseline_ids = baseline_ids
        with torch.no_grad():
            self.input_embeds = embedding_layer(input_ids)
            self.baseline_embeds = embedding_layer(baseline_ids)
        self.direction = self.input_embeds - self.baseline_embeds

    def scores(self, ids: torch.Tensor) -> np.ndarray:
        """f(ids) for every example (no gradients, no hook)."""
        with torch.no_grad():
            out = self.forward(ids, *self._arguments(torch.arange(len(ids), device=ids.device)))
        picked = out.gather(1, self.output_index[:, None]).squeeze(1)
        return picked.double().cpu().numpy()

    def evaluate(self, examples: Sequence[int], alphas: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """(F at each point, (points, tokens) slope per token) for the points (examples[k], alphas[k])."""
        values, slopes = [], []
        for start in range(0, len(examples), self.rows_per_pass):
            rows = torch.tensor(
                list(examples[start : start + self.rows_per_pass]), device=self.input_ids.device
            )
            alpha = torch.tensor(
                list(alphas[start : start + self.rows_per_pass]),
                dtype=self.direction.dtype,
                device=rows.device,
            )[:, None, None]
            value, slope = self._pass(rows, alpha)
            values.append(value)
            slopes.append(slope)
        return np.concatenate(values), np.concatenate(slopes)

    def _pass(self, rows: torch.Tensor, alpha: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        direction = self.direction[rows]
        # lerp is exact at both ends: F(0) is f(baseline) and F(1) is f(x), as the scorer computes them
        path = (
            torch.lerp(self.baseline_embeds[rows], self.input_embeds[rows], alpha)
            .detach()
            .requires_grad_(True)
        )

        def replace(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
            # only the call on the batch's ids (a head may embed other things through the module)
            return path if isinstance(output, torch.Tensor) and output.shape == path.shape else output

        handle = self.layer.register_forward_hook(replace)
        try:
            with torch.enable_grad():
                out = self.forward(self.input_ids[rows], *self._arguments(rows))
                picked = out.gather(1, self.output_index[rows][:, None]).squeeze(1)
                (gradient,) = torch.autograd.grad(picked.sum(), path)
        finally:
            handle.remove()
        slope = (gradient.double() * direction.double()).sum(dim=-1) * self.mask[rows].double()
        return picked.detach().double().cpu().numpy(), slope.detach().cpu().numpy()

    def _arguments(self, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mask = self.mask[rows]
        return (mask,) if self.variant_index is None else (mask, self.variant_index[rows])


def integrated_gradients(
    forward: Callable[..., torch.Tensor],
    embedding_layer: nn.Module,
    input_ids: torch.Tensor,
    baseline_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    output_index: torch.Tensor,
    variant_index: torch.Tensor | None = None,
    settings: IntegrationSettings | None = None,
    reference: np.ndarray | None = None,
) -> IntegratedGradientsResult:
    """Integrated gradients of column ``output_index[b]`` of ``forward`` for each row b, from
    ``baseline_ids`` (same shape as ``input_ids``: the pad-token baseline, or another variant's ids
    aligned token for token) to ``input_ids``, complete within ``settings.tolerance`` where
    ``settings.max_steps`` points allow it (``converged`` says where they did not).

    ``forward(ids, attention_mask[, variant_index])`` is a score head's function; the mask and the
    variant index are the input's, used for every point of the path and for the baseline.

    ``reference`` (batch,): the difference each example's completeness error is a share of, where
    the attributions explain part of a larger one (default f(x) - f(baseline)).
    """
    settings = settings or IntegrationSettings()
    if baseline_ids.shape != input_ids.shape:
        raise ValueError(
            f"the baseline ids {tuple(baseline_ids.shape)} must have the input ids' shape {tuple(input_ids.shape)}"
        )
    if reference is not None and np.shape(reference) != (len(input_ids),):
        raise ValueError(
            f"reference {np.shape(reference)} must have one value per example ({len(input_ids)})"
        )
    evaluator = PathEvaluator(
        forward,
        embedding_layer,
        input_ids,
        baseline_ids,
        attention_mask,
        output_index,
        variant_index,
        settings.internal_batch_size,
    )
    known = None if reference is None else np.asarray(reference, dtype=np.float64)
    if settings.rule == "gausslegendre":
        return _gauss_legendre(evaluator, settings, known)
    return _adaptive_trapezoid(evaluator, settings, known)


@dataclass
class _Grid:
    """One example's trapezoid grid: points, F and the per-token slopes there, sorted by alpha."""

    alphas: np.ndarray
    values: np.ndarray
    slopes: np.ndarray
    reference: float | None = None
    """The difference the error is a share of; None: F(1) - F(0)."""

    def scale(self) -> float:
        difference = self.values[-1] - self.values[0] if self.reference is None else self.reference
        return max(abs(difference), COMPLETENESS_FLOOR)

    def add(self, alphas: np.ndarray, values: np.ndarray, slopes: np.ndarray) -> None:
        order = np.argsort(np.concatenate([self.alphas, alphas]), kind="stable")
        self.alphas = np.concatenate([self.alphas, alphas])[order]
        self.values = np.concatenate([self.values, values])[order]
        self.slopes = np.concatenate([self.slopes, slopes])[order]

    def attributions(self) -> np.ndarray:
        width = np.diff(self.alphas)[:, None]
        return (width * (self.slopes[1:] + self.slopes[:-1]) / 2).sum(axis=0)

    def error(self) -> float:
        return abs(float(self.attributions().sum()) - (self.values[-1] - self.values[0])) / self.scale()

    def refinement(self, tolerance: float, budget: int) -> np.ndarray:
        """Midpoints of the intervals whose own error (trapezoid of the slope vs F(b) - F(a)) is
        above their share of the tolerance, largest first, at most ``budget`` of them."""
        width = np.diff(self.alphas)
        total = self.slopes.sum(axis=1)
        local = np.abs(width * (total[1:] + total[:-1]) / 2 - np.diff(self.values))
        allowed = tolerance * self.scale() / len(width)
        order = np.argsort(-local, kind="stable")
        chosen = order[local[order] > allowed][:budget]
        if len(chosen) == 0:
            chosen = order[:1]
        return np.sort(self.alphas[chosen] + width[chosen] / 2)


def _adaptive_trapezoid(
    evaluator: PathEvaluator, settings: IntegrationSettings, reference: np.ndarray | None
) -> IntegratedGradientsResult:
    n = len(evaluator.input_ids)
    start = np.linspace(0.0, 1.0, settings.n_steps)
    examples = np.repeat(np.arange(n), len(start))
    values, slopes = evaluator.evaluate(examples.tolist(), np.tile(start, n).tolist())
    grids = [
        _Grid(
            start.copy(),
            values[examples == b],
            slopes[examples == b],
            None if reference is None else float(reference[b]),
        )
        for b in range(n)
    ]
    pending = [b for b in range(n) if grids[b].error() > settings.tolerance]
    while pending:
        points = {
            b: grids[b].refinement(settings.tolerance, settings.max_steps - len(grids[b].alphas))
            for b in pending
            if len(grids[b].alphas) < settings.max_steps
        }
        if not points:
            break
        rows = [b for b, alphas in points.items() for _ in alphas]
        values, slopes = evaluator.evaluate(rows, np.concatenate(list(points.values())).tolist())
        owner = np.asarray(rows)
        for b, alphas in points.items():
            grids[b].add(alphas, values[owner == b], slopes[owner == b])
        pending = [b for b in points if grids[b].error() > settings.tolerance]
    return IntegratedGradientsResult(
        attributions=np.stack([g.attributions() for g in grids]),
        scores=np.array([g.values[-1] for g in grids]),
        baseline_scores=np.array([g.values[0] for g in grids]),
        n_steps=np.array([len(g.alphas) for g in grids]),
        tolerance=settings.tolerance,
        reference=reference,
    )


def gauss_legendre_nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the n-point Gauss-Legendre rule on [0, 1]."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return (nodes + 1) / 2, weights / 2


def _gauss_legendre(
    evaluator: PathEvaluator, settings: IntegrationSettings, reference: np.ndarray | None
) -> IntegratedGradientsResult:
    n = len(evaluator.input_ids)
    scores = evaluator.scores(evaluator.input_ids)
    baseline_scores = evaluator.scores(evaluator.baseline_ids)
    attributions = np.zeros(tuple(evaluator.input_ids.shape), dtype=np.float64)
    used = np.zeros(n, dtype=np.int64)
    pending = list(range(n))
    steps = settings.n_steps
    while pending and steps <= settings.max_steps:
        nodes, weights = gauss_legendre_nodes(steps)
        rows = np.repeat(pending, steps)
        _, slopes = evaluator.evaluate(rows.tolist(), np.tile(nodes, len(pending)).tolist())
        for b in pending:
            attributions[b] = (weights[:, None] * slopes[rows == b]).sum(axis=0)
            used[b] = steps
        difference = scores - baseline_scores
        errors = completeness_error(
            attributions.sum(axis=1) - difference, difference if reference is None else reference
        )
        pending = [b for b in pending if errors[b] > settings.tolerance]
        steps *= 2
    return IntegratedGradientsResult(
        attributions=attributions,
        scores=scores,
        baseline_scores=baseline_scores,
        n_steps=used,
        tolerance=settings.tolerance,
        reference=reference,
    )
