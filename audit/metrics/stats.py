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
- ``sign_flip_intervals``: the inverted sign-flip test, over the very patterns of its p-value: the
  shifts mu whose test of ``deltas - mu`` has p > 1 - confidence. It excludes 0 exactly when that
  p-value is at most 1 - confidence (``interval_alpha``): ties and all, by construction (the
  p-value at 0 and the interval's ends are counts and order statistics of the same per-pattern
  bounds). With n <= 5 at 95% no shift can be rejected: ``(-inf, inf)``.
- ``paired_mean_intervals`` (every paired mean row: mean_delta, parity, key/swap effects, middle
  dip, generation accuracy gap, preference_ambig): the inversion up to ``INVERSION_MAX_N`` = 29
  values, BCa above, and the inversion again on any column whose BCa interval disagrees with its
  test. The agreement is with the raw p-value at level 1 - confidence; ``significant`` reads the
  Benjamini-Hochberg q-value at ``alpha``, a different (multiplicity-adjusted) question, so an
  interval may exclude 0 while its row is not significant, never while its p-value is above
  1 - confidence. Rows say which interval they carry (findings ``ci_method``).
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
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
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


@dataclass(frozen=True)
class SignFlips:
    """The sign patterns of one sign-flip test over ``n`` values, shared by its p-values and the
    intervals that invert it (so that the two cannot disagree).

    ``keep``: (M, n) int8, 1 where a pattern keeps a value's sign, 0 where it flips it. Exact:
    all ``2**n`` patterns (the identity among them). Monte Carlo: ``M`` random patterns, and the
    identity is counted once more (the ``(b + 1) / (m + 1)`` correction).
    """

    keep: np.ndarray
    exact: bool

    @property
    def n(self) -> int:
        return int(self.keep.shape[1])

    @property
    def total(self) -> int:
        """The denominator of the p-value: ``2**n`` (exact) or ``m + 1`` (Monte Carlo)."""
        return int(self.keep.shape[0]) + (0 if self.exact else 1)


def sign_flips(
    n: int, *, n_permutations: int, rng: RngLike, exact_max_n: int = EXACT_SIGN_FLIP_MAX_N
) -> SignFlips:
    """All ``2**n`` sign patterns when ``n <= exact_max_n`` (``rng`` unused), else
    ``n_permutations`` random ones (drawn in the same chunks as ever, so seeds keep their p-values)."""
    _check_count(n, "n")
    _check_count(n_permutations, "n_permutations")
    if n <= exact_max_n:
        return SignFlips(((_all_sign_patterns(n) + 1) / 2).astype(np.int8), exact=True)
    generator = _generator(rng)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    blocks = []
    done = 0
    while done < n_permutations:
        rows = min(chunk, n_permutations - done)
        blocks.append(1 - generator.integers(0, 2, size=(rows, n), dtype=np.int8))
        done += rows
    return SignFlips(np.concatenate(blocks).astype(np.int8), exact=False)


def _half_mean_bounds(
    keep: np.ndarray, columns: np.ndarray, tolerance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per pattern x column: the interval of shifts mu at which the pattern counts, widened by the
    tie tolerance (lo - tol, hi + tol).

    A pattern keeps the signs of the values in P and flips those in N. For the shifted values
    e = d - mu, |sum(s * e)| >= |sum(e)| exactly when sum_P(e) * sum_N(e) <= 0, that is when mu lies
    between mean_P(d) and mean_N(d). Patterns with P or N empty always count (+-inf bounds). Every
    such interval holds mean(d), so the share of patterns that count falls as mu leaves the mean:
    the set of mu the test does not reject is an interval.
    """
    n = keep.shape[1]
    total = columns.sum(axis=0)
    low = np.empty((keep.shape[0], columns.shape[1]))
    high = np.empty_like(low)
    rows = max(1, _CHUNK_ELEMENTS // max(n, columns.shape[1]))
    for start in range(0, keep.shape[0], rows):
        block = keep[start : start + rows].astype(float)
        size = block.sum(axis=1)
        always = (size == 0) | (size == n)
        kept_sum = block @ columns
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_kept = kept_sum / size[:, None]
            mean_flipped = (total - kept_sum) / (n - size)[:, None]
        part_low, part_high = low[start : start + rows], high[start : start + rows]
        np.minimum(mean_kept, mean_flipped, out=part_low)
        np.maximum(mean_kept, mean_flipped, out=part_high)
        part_low -= tolerance
        part_high += tolerance
        part_low[always] = -np.inf
        part_high[always] = np.inf
    return low, high


def _tie_tolerance(columns: np.ndarray) -> np.ndarray:
    return np.asarray(_TIE_RTOL * np.abs(columns).mean(axis=0), dtype=float)


def _sign_flip_pass(flips: SignFlips, columns: np.ndarray, rank: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the patterns that count at mu = 0 (the identity of a Monte Carlo test included)
    and, for ``rank`` (the K of ``rejection_count`` less that identity), the inverted interval (G, 2).

    A pattern counts at 0 when 0 lies in its widened interval; as every interval holds the mean,
    that is the smaller of the counts of "low <= 0" and "high >= 0", and the interval's ends are the
    rank-th smallest low and rank-th largest high: the same numbers, so 0 is outside the interval
    exactly when fewer than K patterns count, i.e. when p <= alpha. Exact tests enumerate each
    pattern with its mirror image (same half means): only the half that keeps the last value's sign
    is computed, and counted twice.
    """
    if columns.shape[0] != flips.n:
        raise ValueError(f"sign patterns are for n={flips.n} values, columns have n={columns.shape[0]}")
    keep, weight = flips.keep, 1
    if flips.exact and flips.n > 1:
        keep, weight = keep[keep[:, -1] == 1], 2
    n_columns = columns.shape[1]
    counts = np.zeros(n_columns)
    intervals = np.empty((n_columns, 2))
    tolerance = _tie_tolerance(columns)
    block = max(1, _CHUNK_ELEMENTS // max(1, keep.shape[0]))
    for start in range(0, n_columns, block):
        part = slice(start, start + block)
        low, high = _half_mean_bounds(keep, columns[:, part], tolerance[part])
        counts[part] = weight * np.minimum((low <= 0).sum(axis=0), (high >= 0).sum(axis=0))
        if rank is not None and rank > 0:
            order = -(-rank // weight) - 1  # the rank-th of the values counted weight times each
            intervals[part, 0] = np.partition(low, order, axis=0)[order]
            intervals[part, 1] = -np.partition(-high, order, axis=0)[order]
    if rank is not None and rank <= 0:
        intervals[:, 0], intervals[:, 1] = -np.inf, np.inf
    return counts + (0 if flips.exact else 1), intervals


def flips_pvalues(flips: SignFlips, columns: np.ndarray) -> np.ndarray:
    """Two-sided sign-flip p-values of "mean 0" for each column of ``columns`` (n, G) over ``flips``."""
    counts, _ = _sign_flip_pass(flips, columns, None)
    return np.asarray(counts / flips.total, dtype=float)


def rejection_count(total: int, alpha: float) -> int:
    """The fewest counting patterns K whose p-value K / total exceeds ``alpha`` (float arithmetic, as
    the p-values are computed): p <= alpha exactly when fewer than K patterns count."""
    k = max(0, math.floor(alpha * total) - 1)
    while k / total <= alpha:
        k += 1
    return k


def interval_alpha(confidence: float) -> float:
    """The test level an interval of this confidence agrees with: 1 - confidence (0.95 -> 0.05)."""
    _check_confidence(confidence)
    return round(1.0 - confidence, 12)


def sign_flip_tests(
    flips: SignFlips, columns: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``columns`` (n, G): the inverted sign-flip interval (G, 2) and the p-value (G,),
    from one pass over the patterns; the interval excludes 0 exactly when p <= 1 - confidence.

    The interval: the shifts mu whose sign-flip test of ``column - mu`` has p > 1 - confidence, over
    the same patterns as the p-value. Its ends are order statistics of the patterns' half means
    (``_half_mean_bounds``); ``(-inf, inf)`` when no shift can be rejected (n <= 5 at 95%: the
    smallest p-value, 2 / 2**n, is above 0.05). Coverage is exact when the differences are symmetric
    about their mean; tests/test_interval_agreement.py measures it under skew.
    """
    rank = rejection_count(flips.total, interval_alpha(confidence)) - (0 if flips.exact else 1)
    counts, intervals = _sign_flip_pass(flips, columns, rank)
    return intervals, np.asarray(counts / flips.total, dtype=float)


def sign_flip_intervals(flips: SignFlips, columns: np.ndarray, confidence: float) -> np.ndarray:
    """The inverted sign-flip intervals of ``sign_flip_tests`` alone (G, 2)."""
    return sign_flip_tests(flips, columns, confidence)[0]


def sign_flip_pvalues(
    columns: np.ndarray, *, n_permutations: int, rng: RngLike, exact_max_n: int = EXACT_SIGN_FLIP_MAX_N
) -> np.ndarray:
    """Two-sided sign-flip p-values for "mean 0" of each column of ``columns`` (n, G).

    All columns share one set of sign patterns: exact enumeration of all 2**n when
    ``n <= exact_max_n``, else ``n_permutations`` random patterns and ``(b + 1) / (m + 1)``.
    """
    flips = sign_flips(columns.shape[0], n_permutations=n_permutations, rng=rng, exact_max_n=exact_max_n)
    return flips_pvalues(flips, columns)


def sign_flip_pvalue(deltas: np.ndarray | list[float], *, n_permutations: int = 10000, rng: RngLike) -> float:
    """Two-sided paired permutation (sign-flip) test that the mean of ``deltas`` is 0.

    Under the null each paired difference is as likely to have either sign; the p-value is the
    share of sign patterns whose |sum| is at least the observed |sum| (ties count). Exact for
    ``n <= EXACT_SIGN_FLIP_MAX_N`` (``rng`` unused), Monte Carlo with ``(b + 1) / (m + 1)`` otherwise.
    """
    array = _finite_vector(deltas, "deltas")
    return float(sign_flip_pvalues(array[:, None], n_permutations=n_permutations, rng=rng)[0])


INVERSION_MAX_N = 29
"""Paired means over at most this many values get the sign-flip inversion interval; larger ones BCa
(replaced by the inversion where BCa and the test disagree). See ``paired_mean_intervals``."""

SIGN_FLIP_INVERSION, BCA_BOOTSTRAP = "sign-flip inversion", "BCa bootstrap"
"""``ci_method`` of paired mean rows (the findings table)."""
PERMUTATION_INVERSION = "permutation inversion"
"""``ci_method`` of SEAT rows whose interval inverts their permutation test (``association_shift_tests``)."""
PERCENTILE_BOOTSTRAP, WILSON = "percentile bootstrap", "Wilson"
"""``ci_method`` of the other intervals: percentile bootstrap replicates, Wilson score intervals of
descriptive rates (no test to agree with)."""
CLOPPER_PEARSON = "Clopper-Pearson"
"""``ci_method`` of a share's exact binomial interval (``clopper_pearson``: it agrees with the two-sided
binomial test of 1/2)."""


def excludes_zero(intervals: np.ndarray) -> np.ndarray:
    """Per (low, high) row: the closed interval leaves 0 out."""
    return np.asarray((intervals[:, 0] > 0) | (intervals[:, 1] < 0), dtype=bool)


def paired_mean_intervals(
    columns: np.ndarray,
    flips: SignFlips,
    bootstrap: Callable[[], np.ndarray],
    confidence: float,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Intervals, sign-flip p-values and interval methods of the means of ``columns`` (n, G), such that
    every interval excludes 0 exactly when its p-value is at most ``1 - confidence``.

    n <= ``INVERSION_MAX_N``: the inverted sign-flip test (BCa is too narrow there: at n = 10 it
    covers about 90% for a nominal 95%). Larger n: BCa over ``bootstrap()`` (the bootstrap counts,
    drawn only when needed), except on the columns where it and the test disagree, which get the
    inversion. Constant columns get ``(value, value)`` from BCa and a zero-width interval (widened by
    the tie tolerance) from the inversion when it can reject; n <= 5 at 95% gives ``(-inf, inf)``.
    """
    n_columns = columns.shape[1]
    if flips.n <= INVERSION_MAX_N:
        inverted, p_values = sign_flip_tests(flips, columns, confidence)
        return inverted, p_values, [SIGN_FLIP_INVERSION] * n_columns
    p_values = flips_pvalues(flips, columns)
    intervals = bca_mean_intervals(columns, bootstrap(), confidence)
    disagree = excludes_zero(intervals) != (p_values <= interval_alpha(confidence))
    if disagree.any():
        intervals[disagree] = sign_flip_intervals(flips, columns[:, disagree], confidence)
    methods = [SIGN_FLIP_INVERSION if flag else BCA_BOOTSTRAP for flag in disagree]
    return intervals, p_values, methods


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


def partition_indicators(
    total: int, n_x: int, *, n_permutations: int, rng: RngLike
) -> tuple[np.ndarray, bool]:
    """The partitions of a SEAT permutation test over ``total`` pooled items, X' of size ``n_x``:
    (M, total) indicators (1 = in X') and whether they are all of them (exact: every partition,
    the observed one among them) or ``n_permutations`` random ones (Monte Carlo: the observed one is
    counted once more). All partitions when there are at most ``n_permutations``."""
    _check_count(n_permutations, "n_permutations")
    n_y = total - n_x
    if n_x < 1 or n_y < 1:
        raise ValueError(f"both target sets need at least one item, got {n_x} and {n_y}")
    base = np.zeros(total)
    base[:n_x] = 1.0
    n_partitions = math.comb(total, n_x)
    if n_partitions <= n_permutations:
        indicators = np.zeros((n_partitions, total))
        for row, chosen in enumerate(combinations(range(total), n_x)):
            indicators[row, list(chosen)] = 1.0
        return indicators, True
    generator = _generator(rng)
    chunk = max(1, _CHUNK_ELEMENTS // total)
    blocks = []
    done = 0
    while done < n_permutations:
        rows = min(chunk, n_permutations - done)
        blocks.append(generator.permuted(np.broadcast_to(base, (rows, total)), axis=1))
        done += rows
    return np.concatenate(blocks), False


def association_pvalues(columns: np.ndarray, n_x: int, *, n_permutations: int, rng: RngLike) -> np.ndarray:
    """Two-sided SEAT permutation p-values for each column of ``columns`` (n_x + n_y, G).

    The first ``n_x`` rows of a column are X's scores, the rest Y's. All partitions of the
    pooled items into sizes n_x and n_y are enumerated when there are at most
    ``n_permutations`` of them; otherwise ``n_permutations`` random partitions are drawn and the
    p-value is ``(b + 1) / (m + 1)``. Shared partitions across columns.
    """
    total = columns.shape[0]
    indicators, exact = partition_indicators(total, n_x, n_permutations=n_permutations, rng=rng)
    base = np.zeros(total)
    base[:n_x] = 1.0
    observed = _partition_statistics(base[None, :], columns, n_x)[0]
    threshold = observed - _TIE_RTOL * np.abs(columns).max(axis=0)
    at_least = np.zeros(columns.shape[1])
    rows = max(1, _CHUNK_ELEMENTS // max(total, columns.shape[1]))
    for start in range(0, len(indicators), rows):
        statistics = _partition_statistics(indicators[start : start + rows], columns, n_x)
        at_least += (statistics >= threshold).sum(axis=0)
    if exact:
        return np.asarray(at_least / len(indicators), dtype=float)
    return np.asarray((at_least + 1.0) / (len(indicators) + 1.0), dtype=float)


def association_shift_tests(
    columns: np.ndarray, indicators: np.ndarray, exact: bool, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """The SEAT permutation test inverted over shifts: per column of ``columns`` (2n, G; X's n scores
    then Y's n), the shifts D such that the test of X - D against Y has p > 1 - confidence (G, 2),
    and the test's p-value at D = 0 (G,), from the same ``partition_indicators`` (equal set sizes).

    For a partition with k of X's items in X', mean(X') - mean(Y') of the shifted scores is
    A - D * (2k - n) / n; it reaches the observed |A0 - D| on an interval of D around A0 (a concave
    quadratic), so the accepted shifts form an interval whose ends are order statistics, and 0 lies
    outside it exactly when p <= 1 - confidence (as in ``sign_flip_tests``).
    """
    total = columns.shape[0]
    n = total // 2
    if total != 2 * n:
        raise ValueError(f"the shift interval needs target sets of equal size, got {total} items")
    pooled = columns.sum(axis=0)
    in_x = indicators @ columns  # (M, G)
    spread = in_x / n - (pooled - in_x) / n  # A per partition
    observed = columns[:n].mean(axis=0) - columns[n:].mean(axis=0)
    slope = ((2 * indicators[:, :n].sum(axis=1) - n) / n)[:, None]  # B per partition
    a = slope**2 - 1.0
    b = -2.0 * (spread * slope - observed)
    c = spread**2 - observed**2
    always = (np.abs(np.abs(slope) - 1.0) < 1e-12)[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.sqrt(np.maximum(b**2 - 4 * a * c, 0.0))
        first, second = (-b + root) / (2 * a), (-b - root) / (2 * a)
    tolerance = _tie_tolerance(columns)
    low = np.minimum(first, second) - tolerance
    high = np.maximum(first, second) + tolerance
    low[always], high[always] = -np.inf, np.inf
    extra = 0 if exact else 1
    counts = np.minimum((low <= 0).sum(axis=0), (high >= 0).sum(axis=0)) + extra
    denominator = len(indicators) + extra
    rank = rejection_count(denominator, interval_alpha(confidence)) - extra
    intervals = np.empty((columns.shape[1], 2))
    if rank <= 0:
        intervals[:, 0], intervals[:, 1] = -np.inf, np.inf
    else:
        intervals[:, 0] = np.partition(low, rank - 1, axis=0)[rank - 1]
        intervals[:, 1] = -np.partition(-high, rank - 1, axis=0)[rank - 1]
    return intervals, np.asarray(counts / denominator, dtype=float)


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


def clopper_pearson(successes: int, trials: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of the proportion ``successes / trials``: each end the
    proportion whose one-sided binomial tail at the observed count is (1 - confidence) / 2; exactly 0
    or 1 at the edges. Equal to scipy's ``binomtest(...).proportion_ci(confidence, "exact")`` (within
    1e-12), without its per-call cost.

    It excludes 1/2 exactly when the two-sided binomial test of 1/2 (``scipy.stats.binomtest``) has
    p <= 1 - confidence: at 1/2 the binomial is symmetric, so that test's p-value is twice the smaller
    tail, the very tail each end inverts (checked for every count up to 150 trials at 80, 90, 95 and
    99% in tests/test_preference.py). At other null proportions the two can disagree."""
    _check_confidence(confidence)
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {successes} of {trials}")
    tail = (1.0 - confidence) / 2.0
    low = 0.0 if successes == 0 else float(special.betaincinv(successes, trials - successes + 1, tail))
    high = (
        1.0 if successes == trials else float(special.betaincinv(successes + 1, trials - successes, 1 - tail))
    )
    return low, high


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
10-12, translation.py 11-12."""


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
    ci_method: str
    """How the interval was made: ``SIGN_FLIP_INVERSION`` or ``BCA_BOOTSTRAP`` (``paired_mean_intervals``)."""


def mean_tests(
    columns: list[np.ndarray], random: RandomMatrices, *, confidence: float, n_permutations: int
) -> list[MeanTest]:
    """Per column (in order): its mean, an interval that agrees with its test (``paired_mean_intervals``),
    the two-sided sign-flip p-value and Cohen's d_z. Columns with the same n share one bootstrap and
    one sign-flip matrix."""
    by_size: dict[int, list[int]] = {}
    for index, values in enumerate(columns):
        by_size.setdefault(values.size, []).append(index)
    results: dict[int, MeanTest] = {}
    for n, indices in by_size.items():
        matrix = np.column_stack([columns[i] for i in indices])
        flips = sign_flips(n, n_permutations=n_permutations, rng=random.rng(SIGN_FLIP_PURPOSE, n))
        intervals, p_values, methods = paired_mean_intervals(
            matrix, flips, partial(random.counts, n), confidence
        )
        for index, (low, high), p, method in zip(indices, intervals, p_values, methods, strict=True):
            values = columns[index]
            results[index] = MeanTest(
                float(values.mean()), float(low), float(high), float(p), cohens_dz(values), n, method
            )
    return [results[index] for index in range(len(columns))]
