"""The statistics behind every finding: bootstrap intervals, permutation tests, FDR control, effect sizes.

Pure numpy/scipy. Every random procedure takes an explicit ``rng`` (a ``numpy.random.Generator``
or an integer seed), so a run with a fixed seed gives the same numbers.

What each function returns at the edges (documented once here, tested in tests/test_stats.py):

- ``bootstrap_ci``: BCa interval for the mean. With one value, or when all values are equal, the
  bootstrap distribution is a single point and the interval is ``(mean, mean)``: zero width, no
  NaN, no warning. Read it together with ``n``; one value is never significant (its sign-flip
  p-value is 1).
- ``sign_flip_pvalue``: exact over all ``2**n`` sign patterns when ``n <= EXACT_SIGN_FLIP_MAX_N``,
  Monte Carlo with the ``(b + 1) / (m + 1)`` correction otherwise. Zero deltas stay in: flipping
  a zero changes nothing, so they only dilute the mean, exactly as they should. All-zero deltas
  give ``p = 1``.
- ``benjamini_hochberg``: q-values identical to ``scipy.stats.false_discovery_control(p,
  method="bh")``; NaN entries are left out of the family and come back as NaN.
- ``cohens_dz``: ``mean / sd`` (ddof=1). Constant deltas: 0 when the mean is 0, ``+-inf``
  otherwise. One value: NaN (the sd is undefined).
- ``association_effect_size``: SEAT/WEAT d; 0 when every score is equal.
- ``flip_rate_ci``: rate with a Wilson score interval and no p-value. A flip rate describes how
  often the predicted label changes between two variants; "rate > 0" is not a hypothesis worth
  testing (any nonzero count rejects it), and the direction of a change is already tested, with
  more power, by the ``mean_delta`` test of each label's probability. Flip-rate findings are
  therefore descriptive: no p-value, not in the BH family, never flagged significant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import special

EXACT_SIGN_FLIP_MAX_N = 16
"""Sign-flip tests enumerate all 2**n patterns up to this many deltas (65,536 patterns)."""

_CHUNK_ELEMENTS = 2_000_000
"""Random matrices are drawn in row chunks of about this many entries to bound memory."""

_TIE_RTOL = 1e-9
"""Permuted statistics within this fraction of the data's scale of the observed one count as ties."""

RngLike = np.random.Generator | int


def _generator(rng: RngLike) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng must be a numpy Generator or an integer seed, got {type(rng).__name__}")


def _finite_vector(values: np.ndarray | list[float], name: str, *, min_size: int = 1) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size < min_size:
        raise ValueError(f"{name} needs at least {min_size} value(s), got {array.size}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def _check_count(value: int, name: str) -> None:
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")


# ---------------------------------------------------------------------------------------------
# Bootstrap


def bootstrap_counts(n: int, n_resamples: int, rng: RngLike) -> np.ndarray:
    """How often each of ``n`` items is drawn in each of ``n_resamples`` resamples, shape (B, n).

    One resample index matrix turned into counts, so that the bootstrap means of many columns
    with the same ``n`` are one matrix product: ``counts @ columns / n``.
    """
    _check_count(n, "n")
    _check_count(n_resamples, "n_resamples")
    generator = _generator(rng)
    indices = generator.integers(0, n, size=(n_resamples, n))
    flat = indices + (np.arange(n_resamples) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=n_resamples * n).reshape(n_resamples, n).astype(float)


def bca_mean_intervals(columns: np.ndarray, counts: np.ndarray, confidence: float) -> np.ndarray:
    """BCa intervals for the mean of each column of ``columns`` (n, G); returns (G, 2).

    ``counts`` comes from ``bootstrap_counts(n, ...)``. Bias correction z0 uses the mid-rank
    fraction of bootstrap means below the estimate (clipped to [1/(2B), 1 - 1/(2B)]); the
    acceleration is the jackknife one, which for the mean is skewness-based and closed-form.
    Where ``1 - a * (z0 + z)`` is not positive the adjusted level goes to that side's extreme.
    Constant columns get ``(mean, mean)``.
    """
    _check_confidence(confidence)
    n, n_columns = columns.shape
    n_resamples = counts.shape[0]
    if counts.shape[1] != n:
        raise ValueError(f"counts are for n={counts.shape[1]} items, columns have n={n}")
    means = columns.mean(axis=0)
    intervals = np.column_stack([means, means])
    varying = np.ptp(columns, axis=0) > 0
    if not varying.any():
        return intervals
    data = columns[:, varying]
    theta = means[varying]
    boot = counts @ data / n  # (B, G')
    below = (boot < theta).sum(axis=0) + 0.5 * (boot == theta).sum(axis=0)
    fraction = np.clip(below / n_resamples, 0.5 / n_resamples, 1 - 0.5 / n_resamples)
    z0 = special.ndtri(fraction)
    centered = data - theta
    acceleration = (centered**3).sum(axis=0) / (6.0 * ((centered**2).sum(axis=0)) ** 1.5)
    tail = (1.0 - confidence) / 2.0
    levels = []
    for z, extreme in ((special.ndtri(tail), 0.0), (special.ndtri(1.0 - tail), 1.0)):
        shifted = z0 + z
        denominator = 1.0 - acceleration * shifted
        with np.errstate(divide="ignore", invalid="ignore"):
            level = special.ndtr(z0 + shifted / denominator)
        levels.append(np.where(denominator > 0, level, extreme))
    for column, (low_level, high_level) in enumerate(zip(levels[0], levels[1], strict=True)):
        low, high = np.quantile(boot[:, column], [low_level, high_level])
        index = np.flatnonzero(varying)[column]
        intervals[index] = (float(low), float(high))
    return intervals


def bootstrap_ci(
    values: np.ndarray | list[float],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    rng: RngLike,
) -> tuple[float, float]:
    """BCa bootstrap confidence interval for the mean of ``values``.

    Returns ``(mean, mean)`` for a single value or constant values (see the module docstring).
    Raises ValueError for an empty array or non-finite values.
    """
    array = _finite_vector(values, "values")
    _check_confidence(confidence)
    _check_count(n_resamples, "n_resamples")
    if np.ptp(array) == 0:
        mean = float(array.mean())
        return (mean, mean)
    counts = bootstrap_counts(array.size, n_resamples, rng)
    low, high = bca_mean_intervals(array[:, None], counts, confidence)[0]
    return (float(low), float(high))


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Equal-tailed percentile interval of bootstrap replicates (non-finite replicates ignored)."""
    _check_confidence(confidence)
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return (math.nan, math.nan)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return (float(low), float(high))


# ---------------------------------------------------------------------------------------------
# Paired sign-flip (permutation) test


def _all_sign_patterns(n: int) -> np.ndarray:
    bits = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
    return (1 - 2 * bits).astype(float)


def sign_flip_pvalues(
    columns: np.ndarray, *, n_permutations: int, rng: RngLike, exact_max_n: int = EXACT_SIGN_FLIP_MAX_N
) -> np.ndarray:
    """Two-sided sign-flip p-values for "mean 0" of each column of ``columns`` (n, G).

    All columns share one set of sign patterns: exact enumeration of all 2**n when
    ``n <= exact_max_n``, else ``n_permutations`` random patterns and ``(b + 1) / (m + 1)``.
    """
    _check_count(n_permutations, "n_permutations")
    n, n_columns = columns.shape
    observed = np.abs(columns.sum(axis=0))
    tolerance = _TIE_RTOL * np.abs(columns).sum(axis=0)
    threshold = observed - tolerance
    at_least = np.zeros(n_columns)
    if n <= exact_max_n:
        # all 2**n patterns, a block of them at a time, so memory stays bounded for many columns
        patterns = _all_sign_patterns(n)
        block = max(1, _CHUNK_ELEMENTS // max(n, n_columns))
        for start in range(0, len(patterns), block):
            at_least += (np.abs(patterns[start : start + block] @ columns) >= threshold).sum(axis=0)
        return np.asarray(at_least / len(patterns), dtype=float)
    generator = _generator(rng)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    done = 0
    while done < n_permutations:
        rows = min(chunk, n_permutations - done)
        signs = 1.0 - 2.0 * generator.integers(0, 2, size=(rows, n), dtype=np.int8)
        at_least += (np.abs(signs @ columns) >= threshold).sum(axis=0)
        done += rows
    return np.asarray((at_least + 1.0) / (n_permutations + 1.0), dtype=float)


def sign_flip_pvalue(deltas: np.ndarray | list[float], *, n_permutations: int = 10000, rng: RngLike) -> float:
    """Two-sided paired permutation (sign-flip) test that the mean of ``deltas`` is 0.

    Under the null each paired difference is as likely to have either sign; the p-value is the
    share of sign patterns whose |sum| is at least the observed |sum| (ties count). Exact for
    ``n <= EXACT_SIGN_FLIP_MAX_N`` (``rng`` unused), Monte Carlo with ``(b + 1) / (m + 1)`` otherwise.
    """
    array = _finite_vector(deltas, "deltas")
    return float(sign_flip_pvalues(array[:, None], n_permutations=n_permutations, rng=rng)[0])


# ---------------------------------------------------------------------------------------------
# Multiple testing


def benjamini_hochberg(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN in, NaN out, not counted in the family."""
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p_values must be one-dimensional, got shape {p.shape}")
    present = ~np.isnan(p)
    if np.any((p[present] < 0) | (p[present] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    q = np.full(p.shape, np.nan)
    m = int(present.sum())
    if m == 0:
        return q
    observed = p[present]
    order = np.argsort(observed, kind="stable")
    scaled = observed[order] * m / np.arange(1, m + 1)
    monotone = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(monotone, 1.0)
    q[present] = adjusted
    return q


# ---------------------------------------------------------------------------------------------
# Effect sizes


def cohens_dz(deltas: np.ndarray | list[float]) -> float:
    """Cohen's d_z: mean of the paired differences over their standard deviation (ddof=1)."""
    array = _finite_vector(deltas, "deltas")
    mean = float(array.mean())
    if array.size == 1:
        return math.nan
    if np.ptp(array) == 0:
        return 0.0 if mean == 0 else math.copysign(math.inf, mean)
    return mean / float(array.std(ddof=1))


def association_effect_size(s_x: np.ndarray | list[float], s_y: np.ndarray | list[float]) -> float:
    """SEAT/WEAT effect size d (Caliskan et al. 2017).

    ``s_x``, ``s_y``: association scores s(w, A, B) of the items of target sets X and Y.
    ``d = (mean(s_x) - mean(s_y)) / std(s_x ∪ s_y, ddof=1)``; 0 when every score is equal.
    """
    x = _finite_vector(s_x, "s_x")
    y = _finite_vector(s_y, "s_y")
    pooled = np.concatenate([x, y])
    if np.ptp(pooled) == 0:
        return 0.0
    return float((x.mean() - y.mean()) / pooled.std(ddof=1))


def _partition_statistics(indicators: np.ndarray, columns: np.ndarray, n_x: int) -> np.ndarray:
    """|mean(X') - mean(Y')| for each partition row of ``indicators`` (1 = in X') and each column."""
    n_y = columns.shape[0] - n_x
    in_x = indicators @ columns
    return np.abs(in_x / n_x - (columns.sum(axis=0) - in_x) / n_y)


def association_pvalues(columns: np.ndarray, n_x: int, *, n_permutations: int, rng: RngLike) -> np.ndarray:
    """Two-sided SEAT permutation p-values for each column of ``columns`` (n_x + n_y, G).

    The first ``n_x`` rows of a column are X's scores, the rest Y's. All partitions of the
    pooled items into sizes n_x and n_y are enumerated when there are at most
    ``n_permutations`` of them; otherwise ``n_permutations`` random partitions are drawn and the
    p-value is ``(b + 1) / (m + 1)``. Shared partitions across columns.
    """
    _check_count(n_permutations, "n_permutations")
    total, n_columns = columns.shape
    n_y = total - n_x
    if n_x < 1 or n_y < 1:
        raise ValueError(f"both target sets need at least one item, got {n_x} and {n_y}")
    base = np.zeros(total)
    base[:n_x] = 1.0
    observed = _partition_statistics(base[None, :], columns, n_x)[0]
    scale = np.abs(columns).max(axis=0)
    threshold = observed - _TIE_RTOL * scale
    n_partitions = math.comb(total, n_x)
    if n_partitions <= n_permutations:
        indicators = np.zeros((n_partitions, total))
        for row, chosen in enumerate(combinations(range(total), n_x)):
            indicators[row, list(chosen)] = 1.0
        statistics = _partition_statistics(indicators, columns, n_x)
        return np.asarray((statistics >= threshold).mean(axis=0), dtype=float)
    generator = _generator(rng)
    at_least = np.zeros(n_columns)
    chunk = max(1, _CHUNK_ELEMENTS // total)
    done = 0
    while done < n_permutations:
        rows = min(chunk, n_permutations - done)
        indicators = generator.permuted(np.broadcast_to(base, (rows, total)), axis=1)
        at_least += (_partition_statistics(indicators, columns, n_x) >= threshold).sum(axis=0)
        done += rows
    return np.asarray((at_least + 1.0) / (n_permutations + 1.0), dtype=float)


def association_pvalue(
    s_x: np.ndarray | list[float],
    s_y: np.ndarray | list[float],
    *,
    n_permutations: int = 10000,
    rng: RngLike,
) -> float:
    """Two-sided SEAT/WEAT permutation test: is X's mean association different from Y's?

    Over all partitions of X ∪ Y into sets of sizes |X| and |Y| (exact when there are at most
    ``n_permutations`` partitions, sampled otherwise), the share whose |mean difference| is at
    least the observed one. Caliskan et al. report the one-sided version; this is two-sided.
    """
    x = _finite_vector(s_x, "s_x")
    y = _finite_vector(s_y, "s_y")
    columns = np.concatenate([x, y])[:, None]
    return float(association_pvalues(columns, x.size, n_permutations=n_permutations, rng=rng)[0])


# ---------------------------------------------------------------------------------------------
# Flip rate


@dataclass(frozen=True)
class FlipRate:
    """How often the predicted label differs between paired variants, with a Wilson interval."""

    rate: float
    ci_low: float
    ci_high: float
    n: int
    n_flipped: int


def flip_rate_ci(flips: np.ndarray | list[bool], *, confidence: float = 0.95) -> FlipRate:
    """Flip rate and its Wilson score interval. Descriptive only: see the module docstring."""
    _check_confidence(confidence)
    array = np.asarray(flips)
    if array.ndim != 1:
        raise ValueError(f"flips must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError("flips needs at least one value")
    if array.dtype != bool:
        if not np.all(np.isin(array, [0, 1, True, False])):
            raise ValueError("flips must be booleans (missing labels have to be dropped first)")
        array = array.astype(bool)
    n = int(array.size)
    k = int(array.sum())
    low, high = wilson_interval(k, n, confidence=confidence)
    return FlipRate(rate=k / n, ci_low=low, ci_high=high, n=n, n_flipped=k)


def wilson_interval(successes: float, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the rate ``successes / n`` (successes may be fractional, e.g. ties
    counted half); exactly 0 or 1 at the edges."""
    _check_confidence(confidence)
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    rate = successes / n
    z = float(special.ndtri(1.0 - (1.0 - confidence) / 2.0))
    denominator = 1.0 + z**2 / n
    centre = (rate + z**2 / (2 * n)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / n + z**2 / (4 * n**2)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


# ---------------------------------------------------------------------------------------------
# Random matrices and paired mean tests shared by the findings builders

BOOTSTRAP_PURPOSE, SIGN_FLIP_PURPOSE = 0, 1
"""Purposes of the draws ``mean_tests`` makes (``default_rng([seed, purpose, n])``). Other purposes
in use: paired.py 2-3, long_context.py 4, preference.py 4, multilingual.py 7, multiple_choice.py
10-13, translation.py 11-12."""


class RandomMatrices:
    """Bootstrap counts per n, drawn once from ``default_rng([seed, purpose, n])`` and reused, so a
    row's numbers depend only on the seed, its n and its data, not on the other rows."""

    def __init__(self, seed: int, n_resamples: int) -> None:
        self.seed = seed
        self.n_resamples = n_resamples
        self._counts: dict[tuple[int, int], np.ndarray] = {}

    def rng(self, purpose: int, n: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, purpose, n])

    def counts(self, n: int, purpose: int = BOOTSTRAP_PURPOSE) -> np.ndarray:
        key = (n, purpose)
        if key not in self._counts:
            self._counts[key] = bootstrap_counts(n, self.n_resamples, self.rng(purpose, n))
        return self._counts[key]


@dataclass(frozen=True)
class MeanTest:
    """The test of one column of per-instance values against mean 0."""

    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    effect_size: float
    n: int


def mean_tests(
    columns: list[np.ndarray], random: RandomMatrices, *, confidence: float, n_permutations: int
) -> list[MeanTest]:
    """Per column (in order): its mean, BCa interval, two-sided sign-flip p-value and Cohen's d_z.
    Columns with the same n share one bootstrap and one sign-flip matrix."""
    by_size: dict[int, list[int]] = {}
    for index, values in enumerate(columns):
        by_size.setdefault(values.size, []).append(index)
    results: dict[int, MeanTest] = {}
    for n, indices in by_size.items():
        matrix = np.column_stack([columns[i] for i in indices])
        intervals = bca_mean_intervals(matrix, random.counts(n), confidence)
        p_values = sign_flip_pvalues(
            matrix, n_permutations=n_permutations, rng=random.rng(SIGN_FLIP_PURPOSE, n)
        )
        for index, (low, high), p in zip(indices, intervals, p_values, strict=True):
            values = columns[index]
            results[index] = MeanTest(
                float(values.mean()), float(low), float(high), float(p), cohens_dz(values), n
            )
    return [results[index] for index in range(len(columns))]
