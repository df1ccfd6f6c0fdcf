"""Intervals that agree with their tests: coverage by simulation, agreement as a property.

Paired mean rows carry the inverted sign-flip test up to n = 29 and BCa above, replaced by the
inversion where BCa and the test disagree (audit/metrics/stats.py ``paired_mean_intervals``). Here:

- coverage at 95% for n = 6, 10, 20, 50 under symmetric and skewed differences, against the exact
  level the discrete test allows, within 4 binomial standard errors of the simulation count;
- no row, from the statistics function or from the findings builder, whose interval excludes 0
  while its p-value is above 1 - confidence, or holds 0 while its p-value is at most that level
  (hypothesis draws the deltas: ties, zeros, constant vectors, n from 1 to 40);
- the issue's case: ten MiniLM deltas whose BCa interval excluded 0 with p = 0.20.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.metrics import stats
from audit.metrics.options import TestOptions
from audit.metrics.paired import build_effects, build_findings
from tests.test_paired import make_tables

CONFIDENCE = 0.95
SIMULATIONS = 4000
PERMUTATIONS = 2000
"""Monte Carlo sign patterns of the simulated tests above n = 16 (the tool's default is 10,000)."""


def standard_error(coverage: float) -> float:
    return math.sqrt(coverage * (1 - coverage) / SIMULATIONS)


def exact_symmetric_coverage(n: int, confidence: float = CONFIDENCE) -> float:
    """Coverage of the inverted exact sign-flip test for continuous symmetric differences.

    Patterns s and -s give the same |sum|, so the 2**n patterns hold 2**(n-1) values, each twice,
    the observed one among them uniformly ranked; the test rejects when fewer than K patterns reach
    it, i.e. when its rank from the top is at most (K - 1) // 2 of 2**(n-1).
    """
    total = 2**n
    k = stats.rejection_count(total, stats.interval_alpha(confidence))
    return 1 - ((k - 1) // 2) / 2 ** (n - 1)


def sample(kind: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """(n, SIMULATIONS) differences and their true mean."""
    shape = (n, SIMULATIONS)
    if kind == "normal":
        return rng.normal(0.3, 1.0, shape), 0.3
    if kind == "uniform":
        return rng.uniform(-1.0, 2.0, shape), 0.5
    if kind == "exponential":  # skewness 2
        return rng.exponential(1.0, shape) - 0.8, 0.2
    if kind == "lognormal":  # sigma 1: skewness 6.2
        return rng.lognormal(0.0, 1.0, shape) - 1.0, math.exp(0.5) - 1.0
    raise ValueError(kind)


def tool_intervals(columns: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The intervals the findings builders compute (stats.paired_mean_intervals), one per column."""
    n = columns.shape[0]
    random = stats.RandomMatrices(seed, 2000)
    flips = stats.sign_flips(n, n_permutations=PERMUTATIONS, rng=random.rng(stats.SIGN_FLIP_PURPOSE, n))
    return stats.paired_mean_intervals(columns, flips, lambda: random.counts(n), CONFIDENCE)


def coverage(intervals: np.ndarray, mean: float) -> float:
    return float(np.mean((intervals[:, 0] <= mean) & (mean <= intervals[:, 1])))


SYMMETRIC = ["normal", "uniform"]
SKEWED = ["exponential", "lognormal"]

# Measured at SIMULATIONS = 4000 (seeded, so these runs are reproducible); the inversion assumes
# symmetric differences and under-covers the mean of skewed ones at small n, as does BCa (worse).
# Lower bounds: the measured coverage minus 4 standard errors, rounded down.
SKEWED_FLOOR = {
    ("exponential", 6): 0.91,  # measured 0.933 (BCa 0.827)
    ("exponential", 10): 0.88,  # 0.905 (0.876)
    ("exponential", 20): 0.90,  # 0.921 (0.911)
    ("exponential", 50): 0.91,  # 0.930 (0.930)
    ("lognormal", 6): 0.87,  # 0.894 (0.773)
    ("lognormal", 10): 0.83,  # 0.852 (0.827)
    ("lognormal", 20): 0.85,  # 0.871 (0.877)
    ("lognormal", 50): 0.88,  # 0.905 (0.914)
}


@pytest.fixture(scope="module")
def simulated() -> dict[tuple[str, int], dict[str, float]]:
    """Coverage of the tool's interval and of plain BCa, per distribution and n."""
    started = time.perf_counter()
    results = {}
    for kind in [*SYMMETRIC, *SKEWED]:
        for n in (6, 10, 20, 50):
            columns, mean = sample(kind, n, np.random.default_rng([n, len(kind), 13]))
            intervals, _, methods = tool_intervals(columns, seed=n)
            bca = stats.bca_mean_intervals(columns, stats.RandomMatrices(n, 2000).counts(n), CONFIDENCE)
            results[(kind, n)] = {
                "tool": coverage(intervals, mean),
                "bca": coverage(bca, mean),
                "inverted_share": methods.count(stats.SIGN_FLIP_INVERSION) / len(methods),
            }
    elapsed = time.perf_counter() - started
    assert elapsed < 60, f"the coverage simulation took {elapsed:.1f} s (vectorized, it takes about 20)"
    return results


@pytest.mark.parametrize("kind", SYMMETRIC)
@pytest.mark.parametrize("n", [6, 10, 20, 50])
def test_coverage_is_nominal_for_symmetric_differences(
    simulated: dict[tuple[str, int], dict[str, float]], kind: str, n: int
) -> None:
    # the exact test is discrete: at n = 6 its level is 1/32, so the inversion covers 31/32
    target = exact_symmetric_coverage(n) if n <= stats.EXACT_SIGN_FLIP_MAX_N else CONFIDENCE
    got = simulated[(kind, n)]["tool"]
    assert abs(got - target) <= 4 * standard_error(target), (kind, n, got, target)


@pytest.mark.parametrize("n", [6, 10])
def test_bca_alone_undercovers_at_small_n(simulated: dict[tuple[str, int], dict[str, float]], n: int) -> None:
    """Why small n gets the inversion: BCa's coverage is far below 95% there (normal differences)."""
    assert simulated[("normal", n)]["bca"] < CONFIDENCE - 4 * standard_error(CONFIDENCE)


@pytest.mark.parametrize("kind", SKEWED)
@pytest.mark.parametrize("n", [6, 10, 20, 50])
def test_coverage_under_skew_has_honest_bounds(
    simulated: dict[tuple[str, int], dict[str, float]], kind: str, n: int
) -> None:
    result = simulated[(kind, n)]
    tolerance = 4 * standard_error(CONFIDENCE)
    assert SKEWED_FLOOR[(kind, n)] <= result["tool"] <= CONFIDENCE + tolerance, (kind, n, result)
    # never worse than the BCa interval it replaces (beyond simulation noise)
    assert result["tool"] >= result["bca"] - tolerance, (kind, n, result)


def test_large_n_keeps_bca_where_it_agrees(simulated: dict[tuple[str, int], dict[str, float]]) -> None:
    assert simulated[("normal", 50)]["inverted_share"] < 0.1
    assert simulated[("lognormal", 50)]["inverted_share"] > 0  # skew makes BCa and the test disagree


# ---------------------------------------------------------------------------------------------
# Agreement: interval excludes 0 <=> p <= 1 - confidence


def excludes_zero(low: float, high: float) -> bool:
    return low > 0 or high < 0


deltas_strategy = st.one_of(
    # floats with ties, zeros and cancelling values
    st.lists(
        st.sampled_from([0.0, 0.5, -0.5, 1.0, -1.0, 0.25, 2.0, 0.1, 0.2, -0.3]), min_size=1, max_size=40
    ),
    st.lists(
        st.floats(min_value=-5, max_value=5, allow_nan=False, allow_subnormal=False), min_size=1, max_size=40
    ),
    # shifted skewed draws near the edge of significance
    st.tuples(st.integers(1, 40), st.integers(0, 10**6), st.floats(0.0, 1.0)).map(
        lambda t: list(np.random.default_rng(t[1]).exponential(1.0, t[0]) - 1.0 + t[2])
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deltas=deltas_strategy, confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]), seed=st.integers(0, 50))
def test_interval_excludes_zero_exactly_when_p_is_at_most_alpha(
    deltas: list[float], confidence: float, seed: int
) -> None:
    column = np.asarray(deltas, dtype=float)[:, None]
    n = column.shape[0]
    random = stats.RandomMatrices(seed, 200)
    flips = stats.sign_flips(n, n_permutations=500, rng=random.rng(stats.SIGN_FLIP_PURPOSE, n))
    intervals, p_values, _ = stats.paired_mean_intervals(column, flips, lambda: random.counts(n), confidence)
    (low, high), p = intervals[0], float(p_values[0])
    assert excludes_zero(low, high) == (p <= stats.interval_alpha(confidence))
    assert low <= float(column.mean()) <= high
    # the p-value is the sign-flip test's, whatever the interval (same patterns as before)
    assert p == float(stats.sign_flip_pvalues(column, n_permutations=500, rng=random.rng(1, n))[0])


@settings(max_examples=150, deadline=None)
@given(
    deltas=st.lists(
        st.floats(min_value=-5, max_value=5, allow_nan=False, allow_subnormal=False), min_size=6, max_size=14
    ).filter(lambda d: np.ptp(d) > 1e-3)
)
def test_inverted_interval_is_the_set_the_test_does_not_reject(deltas: list[float]) -> None:
    """Just inside each end the test of deltas - mu keeps mu; just outside it rejects (exact test)."""
    column = np.asarray(deltas, dtype=float)[:, None]
    flips = stats.sign_flips(column.shape[0], n_permutations=1, rng=0)
    low, high = stats.sign_flip_intervals(flips, column, CONFIDENCE)[0]
    alpha = stats.interval_alpha(CONFIDENCE)
    step = 1e-6 * float(np.ptp(column))

    def p_at(mu: float) -> float:
        return float(stats.flips_pvalues(flips, column - mu)[0])

    assert p_at(low + step) > alpha and p_at(high - step) > alpha
    assert p_at(low - step) <= alpha and p_at(high + step) <= alpha


def effects_of(columns: list[np.ndarray]) -> pd.DataFrame:
    """One pair of groups per column ("g00" vs "h00", ...), scores 0.5 + delta vs 0.5."""
    scores = {}
    for j, deltas in enumerate(columns):
        for i, delta in enumerate(deltas):
            scores[(f"c{j}-i{i}", f"g{j:02d}", "prob:positive")] = 0.5 + float(delta)
            scores[(f"c{j}-i{i}", f"h{j:02d}", "prob:positive")] = 0.5
    return build_effects(*make_tables(scores))


large_skewed = st.tuples(st.integers(30, 60), st.integers(0, 10**6), st.floats(0.15, 0.5)).map(
    lambda t: list(np.random.default_rng(t[1]).exponential(1.0, t[0]) - 1.0 + t[2])
)
"""n >= 30 (BCa's side), skewed and near the edge of significance: where BCa and the test disagree."""


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    columns=st.lists(st.one_of(deltas_strategy, large_skewed), min_size=1, max_size=6),
    confidence=st.sampled_from([0.9, 0.95]),
    seed=st.integers(0, 20),
)
def test_findings_builder_rows_agree_with_their_tests(
    columns: list[list[float]], confidence: float, seed: int
) -> None:
    """Through paired.build_findings: every tested mean_delta row agrees with its p-value."""
    options = TestOptions(confidence=confidence, seed=seed, n_resamples=200, n_permutations=500)
    findings = build_findings(effects_of([np.asarray(c) for c in columns]), options)
    rows = findings[findings["metric"] == "mean_delta"]
    assert len(rows) == len(columns)
    for row in rows.itertuples():
        assert excludes_zero(row.ci_low, row.ci_high) == (row.p_value <= stats.interval_alpha(confidence)), (
            row
        )
        expected = stats.SIGN_FLIP_INVERSION if row.n <= stats.INVERSION_MAX_N else None
        assert row.ci_method in (expected or (stats.SIGN_FLIP_INVERSION, stats.BCA_BOOTSTRAP))


# ---------------------------------------------------------------------------------------------
# Known cases

ISSUE_DELTAS = [
    0.001049,
    0.001333,
    0.047676,
    0.018523,
    0.004462,
    0.06762,
    -0.007992,
    -0.003211,
    -0.006682,
    0.000689,
]
"""minilm-sentiment, gender, --max-instances 40: female - nonbinary P(positive) (rounded to 1e-6)."""


def test_issue_case_interval_now_holds_zero_like_its_test() -> None:
    deltas = np.array(ISSUE_DELTAS)
    random = stats.RandomMatrices(0, 2000)
    old = stats.bca_mean_intervals(deltas[:, None], random.counts(10), CONFIDENCE)[0]
    assert old[0] > 0  # what the issue saw: BCa excluded 0 ...
    findings = build_findings(effects_of([deltas]), TestOptions())
    row = findings[findings["metric"] == "mean_delta"].iloc[0]
    assert row["p_value"] == pytest.approx(206 / 1024)  # ... while the exact test gives p = 0.20
    assert row["ci_method"] == stats.SIGN_FLIP_INVERSION
    assert row["ci_low"] < 0 < row["ci_high"]
    assert row["ci_low"] == pytest.approx(-0.0031625, abs=1e-6)
    assert row["ci_high"] == pytest.approx(0.0314570, abs=1e-6)


SKEWED_30 = [
    -0.64, -0.379, -0.422, -0.185, -0.417, 0.479, 1.598, 1.06, 2.002, 0.234, -0.3, -0.37, 1.357, 0.129,
    0.204, -0.36, 0.835, -0.51, 0.928, 0.707, 0.795, -0.521, 0.921, 0.523, 0.467, -0.578, 0.418, -0.485,
    -0.137, 0.249,
]  # fmt: skip
"""30 shifted exponential differences whose BCa interval excludes 0 while the sign-flip p is 0.06."""


def test_large_n_row_where_bca_disagrees_gets_the_inversion() -> None:
    deltas = np.array(SKEWED_30)
    options = TestOptions()
    random = stats.RandomMatrices(options.seed, options.n_resamples)
    bca = stats.bca_mean_intervals(deltas[:, None], random.counts(30), CONFIDENCE)[0]
    findings = build_findings(effects_of([deltas]), options)
    row = findings[findings["metric"] == "mean_delta"].iloc[0]
    assert bca[0] > 0 and row["p_value"] > 0.05  # the disagreement the rule must resolve
    assert row["ci_method"] == stats.SIGN_FLIP_INVERSION
    assert row["ci_low"] <= 0 <= row["ci_high"]


def test_large_n_row_where_bca_agrees_keeps_it() -> None:
    effects = effects_of([np.random.default_rng(4).normal(0.5, 1.0, 40)])
    options = TestOptions()
    random = stats.RandomMatrices(options.seed, options.n_resamples)
    deltas = effects["delta"].to_numpy(dtype=float)
    bca = stats.bca_mean_intervals(deltas[:, None], random.counts(40), CONFIDENCE)[0]
    row = build_findings(effects, options).iloc[0]
    assert row["ci_method"] == stats.BCA_BOOTSTRAP
    assert (row["ci_low"], row["ci_high"]) == (bca[0], bca[1])


def test_too_few_values_to_reject_give_the_whole_line() -> None:
    """n = 5 at 95%: the smallest p-value is 2/32 > 0.05, so no mean can be ruled out."""
    row = build_findings(effects_of([np.array([1.0, 2.0, 3.0, 4.0, 5.0])]), TestOptions()).iloc[0]
    assert row["p_value"] == pytest.approx(2 / 32)
    assert (row["ci_low"], row["ci_high"]) == (-math.inf, math.inf)
    six = build_findings(effects_of([np.arange(1.0, 7.0)]), TestOptions()).iloc[0]
    # n = 6: p = 2/64 and the inversion is [min, max] (31 of 32 symmetric samples hold their centre)
    assert six["p_value"] == pytest.approx(2 / 64)
    assert (six["ci_low"], six["ci_high"]) == pytest.approx((1.0, 6.0), abs=1e-6)


def test_every_builder_row_names_its_interval_method() -> None:
    effects = effects_of([np.array([0.1, -0.2, 0.3, 0.05]), np.random.default_rng(1).normal(0, 1, 35)])
    findings = build_findings(effects, TestOptions())
    assert findings["ci_method"].notna().all()
    assert set(findings["ci_method"]) <= {stats.SIGN_FLIP_INVERSION, stats.BCA_BOOTSTRAP, stats.WILSON}


def test_findings_builder_agrees_on_many_skewed_rows_either_side_of_n_30() -> None:
    """One build_findings call over 240 pairs of skewed deltas (n = 8..60) near the edge of
    significance: every row agrees with its test, and the BCa rows it had to replace are there."""
    rng = np.random.default_rng(21)
    sizes = rng.integers(8, 61, size=240)
    columns = [rng.exponential(1.0, n) - 1.0 + 2.2 / math.sqrt(n) for n in sizes]
    options = TestOptions(n_resamples=500, n_permutations=1000)
    findings = build_findings(effects_of(columns), options)
    rows = findings[findings["metric"] == "mean_delta"]
    assert len(rows) == len(columns)
    alpha = stats.interval_alpha(options.confidence)
    agree = [excludes_zero(r.ci_low, r.ci_high) == (r.p_value <= alpha) for r in rows.itertuples()]
    assert all(agree), rows[~np.array(agree)]
    large = rows[rows["n"] > stats.INVERSION_MAX_N]
    assert (rows.loc[rows["n"] <= stats.INVERSION_MAX_N, "ci_method"] == stats.SIGN_FLIP_INVERSION).all()
    replaced = (large["ci_method"] == stats.SIGN_FLIP_INVERSION).sum()
    assert 0 < replaced < len(large) / 2, replaced
    assert ((rows["p_value"] <= alpha) & (rows["p_value"] > alpha / 4)).sum() > 20  # near the edge indeed


# ---------------------------------------------------------------------------------------------
# SEAT: the permutation test of the two target sets, inverted over shifts


def seat_effects(pairs: list[tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Association scores of groups "g<j>" (a) and "h<j>" (b) per instance, output assoc:pleasant."""
    scores = {}
    for j, (a, b) in enumerate(pairs):
        for i, (score_a, score_b) in enumerate(zip(a, b, strict=True)):
            scores[(f"c{j}-i{i}", f"g{j:02d}", "assoc:pleasant")] = float(score_a)
            scores[(f"c{j}-i{i}", f"h{j:02d}", "assoc:pleasant")] = float(score_b)
    return build_effects(*make_tables(scores))


seat_strategy = st.tuples(
    st.integers(1, 40), st.integers(0, 10**6), st.floats(0.0, 1.5), st.sampled_from([None, 0.25])
).map(
    lambda t: (
        np.random.default_rng(t[1]).normal(t[2] / math.sqrt(t[0]), 1.0, t[0]).round(1 if t[3] else 12),
        np.random.default_rng(t[1] + 1).normal(0.0, 1.0, t[0]).round(1 if t[3] else 12),
    )
)
"""X and Y scores of n = 1..40 items near the edge of significance; rounded to 0.1 half the time (ties)."""


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs=st.lists(seat_strategy, min_size=1, max_size=3), seed=st.integers(0, 20))
def test_seat_rows_agree_with_their_permutation_test(
    pairs: list[tuple[np.ndarray, np.ndarray]], seed: int
) -> None:
    options = TestOptions(seed=seed, n_resamples=200, n_permutations=400)
    findings = build_findings(seat_effects(pairs), options)
    rows = findings[findings["metric"] == "seat_effect_size"]
    assert len(rows) == len(pairs)
    for row in rows.itertuples():
        assert excludes_zero(row.ci_low, row.ci_high) == (row.p_value <= 0.05), row
        assert row.ci_low <= row.effect <= row.ci_high, row
        if row.n <= stats.INVERSION_MAX_N:
            assert row.ci_method == stats.PERMUTATION_INVERSION


def test_seat_many_rows_agree_and_replace_the_bootstrap_where_it_disagrees() -> None:
    rng = np.random.default_rng(5)
    sizes = rng.integers(4, 45, size=120)
    pairs = [(rng.normal(2.0 / math.sqrt(n), 1.0, n), rng.normal(0.0, 1.0, n)) for n in sizes]
    findings = build_findings(seat_effects(pairs), TestOptions(n_resamples=500, n_permutations=1000))
    rows = findings[findings["metric"] == "seat_effect_size"]
    agree = [excludes_zero(r.ci_low, r.ci_high) == (r.p_value <= 0.05) for r in rows.itertuples()]
    assert len(rows) == len(pairs) and all(agree)
    large = rows[rows["n"] > stats.INVERSION_MAX_N]
    assert set(large["ci_method"]) <= {stats.PERCENTILE_BOOTSTRAP, stats.PERMUTATION_INVERSION}
    assert (large["ci_method"] == stats.PERCENTILE_BOOTSTRAP).any()


def test_seat_shift_interval_ends_are_where_the_test_starts_to_reject() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(0.8, 1.0, 9), rng.normal(0.0, 1.0, 9)
    indicators, exact = stats.partition_indicators(18, 9, n_permutations=2000, rng=3)
    intervals, _ = stats.association_shift_tests(np.concatenate([x, y])[:, None], indicators, exact, 0.95)
    low, high = intervals[0]

    def p_at(shift: float) -> float:
        return float(
            stats.association_shift_tests(np.concatenate([x - shift, y])[:, None], indicators, exact, 0.95)[
                1
            ][0]
        )

    step = 1e-6
    assert p_at(low + step) > 0.05 and p_at(high - step) > 0.05
    assert p_at(low - step) <= 0.05 and p_at(high + step) <= 0.05
    # and at shift 0 the p-value is the SEAT test's own
    assert p_at(0.0) == pytest.approx(
        stats.association_pvalues(np.concatenate([x, y])[:, None], 9, n_permutations=2000, rng=3)[0]
    )


# ---------------------------------------------------------------------------------------------
# BBQ's ambiguous bias score: percentile bootstrap, or the exact binomial interval where they disagree


def ambiguous_answers(n_pro: int, n_anti: int, n_unknown: int, seed: int) -> pd.DataFrame:
    """An answers table of one ambiguous BBQ category with these answer counts (shuffled)."""
    kinds = np.array(["pro"] * n_pro + ["anti"] * n_anti + ["unknown"] * n_unknown)
    np.random.default_rng(seed).shuffle(kinds)
    p_pro = np.where(kinds == "pro", 0.6, 0.2)
    p_anti = np.where(kinds == "anti", 0.6, 0.2)
    return pd.DataFrame(
        {
            "probe_set": "bbq",
            "instance_id": [f"i{k}" for k in range(kinds.size)],
            "attribute": "age",
            "context_condition": "ambig",
            "answer_pro": kinds == "pro",
            "answer_anti": kinds == "anti",
            "is_correct": kinds == "unknown",
            "p_pro": p_pro,
            "p_anti": p_anti,
        }
    )


@settings(max_examples=60, deadline=None)
@given(
    n_pro=st.integers(0, 30), n_anti=st.integers(0, 30), n_unknown=st.integers(0, 10), seed=st.integers(0, 9)
)
def test_bias_score_ambig_agrees_with_its_binomial_test(
    n_pro: int, n_anti: int, n_unknown: int, seed: int
) -> None:
    from audit.metrics.multiple_choice import build_choice_findings

    if n_pro + n_anti + n_unknown == 0:
        return
    options = TestOptions(seed=seed, n_resamples=300, n_permutations=300)
    findings = build_choice_findings(ambiguous_answers(n_pro, n_anti, n_unknown, seed), options)
    for metric in ("bias_score_ambig", "preference_ambig"):
        row = findings[findings["metric"] == metric].iloc[0]
        assert excludes_zero(row["ci_low"], row["ci_high"]) == (row["p_value"] <= 0.05), row
        assert row["ci_low"] - 1e-12 <= row["effect"] <= row["ci_high"] + 1e-12, row


def test_clopper_pearson_agrees_with_the_binomial_test_of_one_half() -> None:
    """Why the exact interval is the fallback: at 1/2 the two-sided binomial p-value is the doubled
    one-sided one, which Clopper-Pearson inverts (every count up to 25 trials, and the counts at the
    edge of significance for 50, 100 and 200; checked offline for every count up to 150)."""
    from scipy.stats import binomtest

    cases = [(wins, trials) for trials in range(1, 26) for wins in range(trials + 1)]
    for trials in (50, 100, 200):
        # the largest count of wins still rejected, and its neighbours
        edge = max(w for w in range(trials // 2) if binomtest(w, trials, 0.5).pvalue <= 0.05)
        cases += [(w, trials) for w in range(edge - 2, edge + 3)]
    for wins, trials in cases:
        test = binomtest(wins, trials, 0.5)
        ci = test.proportion_ci(CONFIDENCE, "exact")
        assert ((ci.low > 0.5) or (ci.high < 0.5)) == (test.pvalue <= 0.05), (wins, trials)
