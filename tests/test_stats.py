"""The statistics against independent computations: enumeration, scipy, simulation, hand arithmetic."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats as scipy_stats

from audit.metrics.stats import (
    EXACT_SIGN_FLIP_MAX_N,
    association_effect_size,
    association_pvalue,
    benjamini_hochberg,
    bootstrap_ci,
    cohens_dz,
    flip_rate_ci,
    sign_flip_pvalue,
)


def enumerated_sign_flip_p(deltas: list[float]) -> float:
    """Share of all sign patterns whose |sum| reaches the observed |sum| (ties count)."""
    observed = abs(sum(deltas))
    hits = 0
    patterns = list(itertools.product([1, -1], repeat=len(deltas)))
    for signs in patterns:
        if abs(sum(s * d for s, d in zip(signs, deltas, strict=True))) >= observed - 1e-12:
            hits += 1
    return hits / len(patterns)


def integer_sign_flip_p(deltas: np.ndarray) -> float:
    """Exact sign-flip p for integer deltas by convolving the distribution of sum(+-d_i)."""
    total = int(np.abs(deltas).sum())
    counts = np.zeros(2 * total + 1, dtype=object)  # exact big integers
    counts[total] = 1
    for d in np.abs(deltas).astype(int):
        shifted = np.zeros_like(counts)
        if d == 0:
            shifted = counts * 2
        else:
            shifted[d:] += counts[:-d]
            shifted[:-d] += counts[d:]
        counts = shifted
    sums = np.arange(-total, total + 1)
    observed = abs(int(deltas.sum()))
    return float(counts[np.abs(sums) >= observed].sum() / counts.sum())


@pytest.mark.parametrize(
    "deltas",
    [
        [0.5, -0.25, 0.0, 1.0, 0.5, -0.5, 0.75],  # ties in magnitude and a zero
        [1.0, 1.0, 1.0, 1.0],  # all equal: only the two constant patterns reach it
        [0.25, 0.0, 0.0, -0.25, 0.5],  # zeros and a cancelling pair
        [2.0, -1.0, -1.0],  # observed sum 0: every pattern ties
        [0.3],
    ],
)
def test_sign_flip_equals_enumeration_with_ties_and_zeros(deltas: list[float]) -> None:
    assert sign_flip_pvalue(deltas, rng=0) == pytest.approx(enumerated_sign_flip_p(deltas), abs=1e-12)


def test_sign_flip_exact_on_random_floats_and_ignores_rng() -> None:
    deltas = np.random.default_rng(3).normal(0.3, 1.0, size=12)
    expected = enumerated_sign_flip_p(list(deltas))
    assert sign_flip_pvalue(deltas, rng=0) == pytest.approx(expected, abs=1e-12)
    assert sign_flip_pvalue(deltas, rng=99) == sign_flip_pvalue(deltas, rng=0)


def test_sign_flip_known_values() -> None:
    assert sign_flip_pvalue([1.0, 1.0, 1.0, 1.0], rng=0) == pytest.approx(2 / 16)
    assert sign_flip_pvalue([0.0, 0.0, 0.0], rng=0) == 1.0
    assert sign_flip_pvalue([0.7], rng=0) == 1.0


def test_sign_flip_monte_carlo_close_to_exact_for_moderate_n() -> None:
    rng = np.random.default_rng(11)
    deltas = rng.integers(-6, 9, size=EXACT_SIGN_FLIP_MAX_N + 10).astype(float)
    exact = integer_sign_flip_p(deltas)
    assert 0.01 < exact < 0.5  # a p-value where closeness is informative
    m = 20000
    sampled = sign_flip_pvalue(deltas, n_permutations=m, rng=5)
    assert abs(sampled - exact) < 4 * math.sqrt(exact * (1 - exact) / m) + 1 / m


def test_sign_flip_monte_carlo_uses_plus_one_correction() -> None:
    deltas = np.full(40, 1.0) + np.linspace(0, 0.1, 40)  # no random pattern can reach it
    assert sign_flip_pvalue(deltas, n_permutations=999, rng=0) == pytest.approx(1 / 1000)


def test_benjamini_hochberg_equals_scipy() -> None:
    rng = np.random.default_rng(2)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 0.01, size=10), [0.0, 1.0, 0.03, 0.03]])
    expected = scipy_stats.false_discovery_control(p, method="bh")
    np.testing.assert_allclose(benjamini_hochberg(p), expected, rtol=0, atol=1e-12)


def test_benjamini_hochberg_passes_nan_through_and_leaves_it_out_of_the_family() -> None:
    p = np.array([0.01, np.nan, 0.04, 0.03, np.nan, 0.5])
    q = benjamini_hochberg(p)
    assert np.isnan(q[[1, 4]]).all()
    present = ~np.isnan(p)
    np.testing.assert_allclose(q[present], scipy_stats.false_discovery_control(p[present], method="bh"))
    assert np.isnan(benjamini_hochberg([np.nan, np.nan])).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        benjamini_hochberg([0.2, 1.5])


def test_bootstrap_ci_covers_the_true_mean_at_about_the_nominal_rate() -> None:
    rng = np.random.default_rng(7)
    true_mean = 1.0  # exponential(1): skewed
    covered = 0
    n_simulations = 400
    for _ in range(n_simulations):
        sample = rng.exponential(true_mean, size=30)
        low, high = bootstrap_ci(sample, n_resamples=1000, rng=rng)
        covered += low <= true_mean <= high
    assert 0.90 <= covered / n_simulations <= 0.98


def test_bootstrap_ci_agrees_with_scipy_bca() -> None:
    sample = np.random.default_rng(4).gamma(2.0, size=25)
    low, high = bootstrap_ci(sample, n_resamples=20000, rng=1)
    reference = scipy_stats.bootstrap(
        (sample,), np.mean, method="BCa", n_resamples=20000, rng=2
    ).confidence_interval
    width = reference.high - reference.low
    assert abs(low - reference.low) < 0.05 * width
    assert abs(high - reference.high) < 0.05 * width


def test_bootstrap_ci_degenerate_inputs_give_a_point_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bootstrap_ci([0.25], rng=0) == (0.25, 0.25)
        low, high = bootstrap_ci([0.1, 0.1, 0.1], rng=0)
    assert low == high == pytest.approx(0.1)
    with pytest.raises(ValueError):
        bootstrap_ci([], rng=0)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, np.nan], rng=0)


def test_bootstrap_ci_is_reproducible_for_a_seed() -> None:
    sample = np.random.default_rng(0).normal(size=50)
    assert bootstrap_ci(sample, rng=3) == bootstrap_ci(sample, rng=3)
    assert bootstrap_ci(sample, rng=3) != bootstrap_ci(sample, rng=4)


def test_cohens_dz() -> None:
    assert cohens_dz([1.0, 2.0, 3.0]) == pytest.approx(2.0)  # mean 2, sd 1
    assert cohens_dz([-1.0, 1.0, -2.0, 2.0]) == 0.0
    assert cohens_dz([0.0, 0.0, 0.0]) == 0.0
    assert cohens_dz([0.1, 0.1]) == math.inf
    assert cohens_dz([-0.1, -0.1]) == -math.inf
    assert math.isnan(cohens_dz([0.4]))


def test_association_effect_size_by_hand() -> None:
    # pooled [1, 2, 3, 0, 1, 1]: mean 4/3, sum of squares 48/9, var 16/15; mean difference 4/3
    d = association_effect_size([1.0, 2.0, 3.0], [0.0, 1.0, 1.0])
    assert d == pytest.approx((4 / 3) / math.sqrt(16 / 15))
    assert association_effect_size([0.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == pytest.approx(-d)
    assert association_effect_size([0.2, 0.2], [0.2, 0.2]) == 0.0


def enumerated_partition_p(s_x: list[float], s_y: list[float]) -> float:
    pooled = s_x + s_y
    observed = abs(np.mean(s_x) - np.mean(s_y))
    hits = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(s_x)):
        x = [pooled[i] for i in chosen]
        y = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        total += 1
        hits += abs(np.mean(x) - np.mean(y)) >= observed - 1e-12
    return hits / total


@pytest.mark.parametrize(
    ("s_x", "s_y"),
    [
        ([0.9, 0.7, 0.8, 0.4], [0.1, 0.3, 0.35, 0.2]),
        ([0.5, 0.5, 0.25], [0.25, 0.0, 0.5, 0.75, 0.5]),  # unequal sizes, ties
        ([0.1, 0.2], [0.2, 0.1]),  # observed difference 0: p = 1
    ],
)
def test_association_pvalue_equals_partition_enumeration(s_x: list[float], s_y: list[float]) -> None:
    assert association_pvalue(s_x, s_y, rng=0) == pytest.approx(enumerated_partition_p(s_x, s_y), abs=1e-12)


def test_association_pvalue_sampled_close_to_exact() -> None:
    rng = np.random.default_rng(8)
    s_x = list(rng.normal(0.4, 1.0, size=8))
    s_y = list(rng.normal(0.0, 1.0, size=8))
    exact = enumerated_partition_p(s_x, s_y)  # 12,870 partitions
    m = 5000  # fewer than the partitions: sampled
    sampled = association_pvalue(s_x, s_y, n_permutations=m, rng=1)
    assert abs(sampled - exact) < 4 * math.sqrt(exact * (1 - exact) / m) + 1 / m


def test_flip_rate_wilson_interval_matches_scipy() -> None:
    flips = np.array([True] * 7 + [False] * 33)
    result = flip_rate_ci(flips)
    reference = scipy_stats.binomtest(7, 40).proportion_ci(confidence_level=0.95, method="wilson")
    assert result.rate == pytest.approx(7 / 40)
    assert (result.n, result.n_flipped) == (40, 7)
    assert result.ci_low == pytest.approx(reference.low)
    assert result.ci_high == pytest.approx(reference.high)
    none = flip_rate_ci([False] * 10)
    assert (none.rate, none.ci_low) == (0.0, 0.0) and 0 < none.ci_high < 0.35
    assert flip_rate_ci([True] * 10).ci_high == 1.0
    with pytest.raises(ValueError):
        flip_rate_ci(np.array([True, None], dtype=object))
