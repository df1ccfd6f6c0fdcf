"""Stereotype preference: the statistics of the finding on known effects, and end to end a tiny
masked LM trained to pair "she" with care occupations and "he" with technical ones is flagged, its
control (trained on both pronouns alike) is not; with no probes named, a masked LM runs the
built-in counterfactual sets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from audit.metrics import stats
from audit.metrics.options import TestOptions
from audit.metrics.paired import build_findings
from audit.metrics.preference import (
    LANGUAGE_MODELING,
    OVERALL_ATTRIBUTE,
    PREFERENCE,
    PREFERENCE_OVERALL,
    PREFERENCE_THRESHOLD,
    build_preference_findings,
    preference_test,
    with_preference_findings,
)
from audit.tables import TABLES
from tests.support.mlm_models import (
    MASKED_WORDS,
    build_masked_lm,
    preference_pairs,
    training_sentences,
    write_crows_pairs_csv,
)


def effects_frame(
    deltas: dict[tuple[str, str], list[float]],
    output: str = "pll",
    probe_set: str = "crows",
    attribute: str = "gender",
) -> pd.DataFrame:
    """An effects table: per (group_a, group_b) the deltas of instances 0..n-1."""
    rows = [
        {
            "probe_set": probe_set,
            "instance_id": f"{attribute}-{k}",
            "attribute": attribute,
            "group_a": a,
            "group_b": b,
            "output": output,
            "score_a": value,
            "score_b": 0.0,
            "delta": value,
            "label_a": None,
            "label_b": None,
            "flipped": pd.NA,
            "doc_length": pd.NA,
            "position": np.nan,
        }
        for (a, b), values in deltas.items()
        for k, value in enumerate(values)
    ]
    return pd.DataFrame(rows, columns=TABLES["effects"])


def test_share_interval_and_exact_binomial_test() -> None:
    # delta = anti-stereotype - stereotype: 15 stereotype wins (negative), 3 losses, 2 ties
    deltas = [-1.0] * 15 + [0.5] * 3 + [0.0] * 2
    rows = build_preference_findings(
        effects_frame({("anti-stereotype", "stereotype"): deltas}), {"crows": ["pll"]}, TestOptions()
    )
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["metric"], row["group_a"], row["group_b"], row["output"]) == (
        PREFERENCE, "stereotype", "anti-stereotype", "pll",
    )  # fmt: skip
    assert row["effect"] == pytest.approx(16 / 20)  # ties count half
    assert row["n"] == 20
    assert row["p_value"] == pytest.approx(binomtest(15, 18, 0.5).pvalue)  # ties left out of the test
    # Clopper-Pearson over the 18 untied instances, carried to the share's scale (0.5 stays 0.5)
    exact = binomtest(15, 18, 0.5).proportion_ci(0.95, "exact")
    expected = (0.5 + 18 / 20 * (exact.low - 0.5), 0.5 + 18 / 20 * (exact.high - 0.5))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(expected, abs=1e-12)
    assert row["ci_method"] == stats.CLOPPER_PEARSON
    assert row["ci_low"] < row["effect"] < row["ci_high"]
    assert row["effect_size"] == pytest.approx(2 * math.asin(math.sqrt(0.8)) - math.pi / 2)
    assert "2 tie(s)" in row["note"]
    # an output the head does not name, or a set without both variants, gives no row
    assert build_preference_findings(
        effects_frame({("anti-stereotype", "stereotype"): deltas}), {"crows": []}, TestOptions()
    ).empty
    assert build_preference_findings(
        effects_frame({("female", "male"): deltas}), {"crows": ["pll"]}, TestOptions()
    ).empty


def test_preference_joins_the_counterfactual_family() -> None:
    effects = pd.concat(
        [
            effects_frame({("anti-stereotype", "stereotype"): [-1.0] * 12 + [1.0] * 2}),
            effects_frame(
                {("anti-stereotype", "stereotype"): list(np.linspace(-0.3, 0.2, 14))}, output="focus_loglik"
            ),
        ],
        ignore_index=True,
    )
    paired = build_findings(effects, TestOptions(seed=0))
    combined = with_preference_findings(paired, effects, {"crows": ["pll"]}, TestOptions(seed=0))
    assert list(combined.columns) == TABLES["findings"]
    assert len(combined) == len(paired) + 1
    tested = combined["p_value"].notna()
    np.testing.assert_allclose(
        combined.loc[tested, "q_value"], stats.benjamini_hochberg(combined.loc[tested, "p_value"].to_numpy())
    )
    preference = combined[combined["metric"] == PREFERENCE].iloc[0]
    assert preference["effect"] == pytest.approx(12 / 14)
    assert preference["q_value"] < 0.05 and preference["significant"]
    assert preference["severity"] == "high"  # |0.857 - 0.5| is 7 thresholds
    # significance of the paired rows follows the recomputed q
    mean_delta = combined[combined["metric"] == "mean_delta"]
    expected = (mean_delta["q_value"] < 0.05) & (mean_delta["effect"].abs() >= mean_delta["threshold"])
    assert (mean_delta["significant"] == expected).all()


def test_a_tiny_preference_is_not_significant_however_sure() -> None:
    # 5,200 of 10,000: p is tiny, but 0.52 is within the practical threshold of an even split
    deltas = [-1.0] * 5200 + [1.0] * 4800
    effects = effects_frame({("anti-stereotype", "stereotype"): deltas})
    combined = with_preference_findings(
        build_findings(effects, TestOptions(n_permutations=200)), effects, {"crows": ["pll"]}, TestOptions()
    )
    row = combined[combined["metric"] == PREFERENCE].iloc[0]
    assert row["q_value"] < 1e-3
    assert abs(row["effect"] - 0.5) < PREFERENCE_THRESHOLD
    assert not row["significant"] and row["severity"] == "none"


def test_all_ties_and_language_modeling_score() -> None:
    effects = effects_frame(
        {
            ("anti-stereotype", "stereotype"): [0.0, 0.0, 0.0, 0.0],
            ("anti-stereotype", "unrelated"): [1.0, 1.0, -1.0, 0.0],
            ("stereotype", "unrelated"): [1.0, 1.0, 1.0, 1.0],
        }
    )
    rows = build_preference_findings(effects, {"crows": ["pll"]}, TestOptions())
    preference = rows[rows["metric"] == PREFERENCE].iloc[0]
    assert preference["effect"] == 0.5 and preference["p_value"] == 1.0
    assert (preference["ci_low"], preference["ci_high"]) == (0.5, 0.5)  # the share is 0.5 whatever the model
    lms = rows[rows["metric"] == LANGUAGE_MODELING].iloc[0]
    assert (lms["group_a"], lms["group_b"]) == ("related", "unrelated")
    assert lms["effect"] == pytest.approx((4 + 2 + 0.5) / 8)
    assert math.isnan(lms["p_value"]) and lms["ci_low"] <= lms["effect"] <= lms["ci_high"]


def test_a_set_of_several_bias_types_gets_an_overall_row_in_its_own_family() -> None:
    """CrowS-Pairs style: one row per bias type and one over all pairs (attribute "all"), with its
    own share, exact interval and exact binomial test; the overall rows are a family of their own,
    so adding them changes no q-value of the per-type and paired rows."""
    by_type = {
        "gender": [-1.0] * 9 + [1.0] * 3,  # 9 of 12
        "race-color": [-1.0] * 5 + [1.0] * 5 + [0.0] * 2,  # 5 of 12, 2 ties
        "age": [-1.0] * 6 + [1.0],  # 6 of 7
    }
    effects = pd.concat(
        [effects_frame({("anti-stereotype", "stereotype"): d}, attribute=a) for a, d in by_type.items()],
        ignore_index=True,
    )
    rows = build_preference_findings(effects, {"crows": ["pll"]}, TestOptions())
    assert sorted(rows.loc[rows["metric"] == PREFERENCE, "attribute"]) == ["age", "gender", "race-color"]
    overall = rows[rows["metric"] == PREFERENCE_OVERALL]
    assert len(overall) == 1
    row = overall.iloc[0]
    assert (row["attribute"], row["group_a"], row["group_b"]) == (
        OVERALL_ATTRIBUTE,
        "stereotype",
        "anti-stereotype",
    )
    wins, losses, ties = 9 + 5 + 6, 3 + 5 + 1, 2
    assert row["n"] == wins + losses + ties == 31
    assert row["effect"] == pytest.approx((wins + ties / 2) / 31)
    assert row["p_value"] == pytest.approx(binomtest(wins, wins + losses, 0.5).pvalue)
    exact = binomtest(wins, wins + losses, 0.5).proportion_ci(0.95, "exact")
    scale = (wins + losses) / 31
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        (0.5 + scale * (exact.low - 0.5), 0.5 + scale * (exact.high - 0.5)), abs=1e-12
    )
    assert row["ci_method"] == stats.CLOPPER_PEARSON
    assert row["note"].startswith("all 3 attributes; stereotype scored higher in 20 of 31")

    paired = build_findings(effects, TestOptions(seed=0))
    combined = with_preference_findings(paired, effects, {"crows": ["pll"]}, TestOptions(seed=0))
    alone = combined["metric"] == PREFERENCE_OVERALL
    assert combined.loc[alone, "q_value"].tolist() == combined.loc[alone, "p_value"].tolist()  # one test
    family = combined["p_value"].notna() & ~alone
    np.testing.assert_allclose(
        combined.loc[family, "q_value"], stats.benjamini_hochberg(combined.loc[family, "p_value"].to_numpy())
    )

    # one bias type: its row already is the overall one
    single = build_preference_findings(
        effects[effects["attribute"] == "gender"], {"crows": ["pll"]}, TestOptions()
    )
    assert PREFERENCE_OVERALL not in set(single["metric"])


# ------------------------------------------------------------------------ interval agrees with test

LEVELS = (0.8, 0.9, 0.95, 0.99)


def excludes_half(low: float, high: float) -> bool:
    return low > 0.5 or high < 0.5


def test_the_interval_agrees_with_the_binomial_test_for_every_count_up_to_150() -> None:
    """Exhaustive: every (wins, trials) with 1 <= trials <= 150 (11,475 cases) at four levels, the
    interval excludes 0.5 exactly when the reported p-value is at most 1 - confidence. The Wilson
    interval it replaces disagreed in 140 of them at 95% (0 of 5: [0, 0.434] with p = 0.0625)."""
    disagree = {level: 0 for level in LEVELS}
    wilson_disagree = 0
    for trials in range(1, 151):
        for wins in range(trials + 1):
            test = preference_test(wins, trials - wins, 0, 0.95)  # the row's own function, at the default
            assert test.ci_low <= test.share <= test.ci_high
            for level in LEVELS:  # the same p-value against the interval at each level
                low, high = (
                    (test.ci_low, test.ci_high)
                    if level == 0.95
                    else stats.clopper_pearson(wins, trials, confidence=level)
                )
                rejects = test.p_value <= stats.interval_alpha(level)
                disagree[level] += excludes_half(low, high) != rejects
            wilson_disagree += excludes_half(*stats.wilson_interval(wins, trials)) != (test.p_value <= 0.05)
    assert disagree == {level: 0 for level in LEVELS}
    assert wilson_disagree == 140  # the hole this closes, measured on the same cases


def test_the_issue_case_and_ties_keep_the_agreement() -> None:
    test = preference_test(0, 5, 0, 0.95)
    assert test.p_value == pytest.approx(0.0625)
    assert test.ci_low == 0.0 and test.ci_high > 0.5  # holds 0.5, as p > 0.05 says
    assert (test.ci_low, test.ci_high) == pytest.approx(
        tuple(binomtest(0, 5, 0.5).proportion_ci(0.95, "exact")), abs=1e-12
    )
    # ties shrink the interval towards 0.5 without moving 0.5: agreement is unchanged
    for wins, losses, ties in ((0, 6, 4), (6, 0, 30), (9, 1, 7), (1, 9, 1), (3, 3, 3)):
        tied = preference_test(wins, losses, ties, 0.95)
        untied = preference_test(wins, losses, 0, 0.95)
        assert tied.p_value == untied.p_value
        assert excludes_half(tied.ci_low, tied.ci_high) == excludes_half(untied.ci_low, untied.ci_high)
        assert tied.ci_low <= tied.share <= tied.ci_high
        assert tied.ci_high - tied.ci_low < untied.ci_high - untied.ci_low


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(
        st.lists(st.sampled_from([-1.0, -0.25, 0.0, 0.5, 2.0]), min_size=1, max_size=60),
        min_size=1,
        max_size=3,
    ),
    level=st.sampled_from(LEVELS),
)
def test_no_preference_row_contradicts_its_test(data: list[list[float]], level: float) -> None:
    """Through the real builder: every stereotype_preference and stereotype_preference_overall row,
    ties and all, holds its share and excludes 0.5 exactly when p <= 1 - confidence."""
    effects = pd.concat(
        [
            effects_frame({("anti-stereotype", "stereotype"): deltas}, attribute=f"type-{index}")
            for index, deltas in enumerate(data)
        ],
        ignore_index=True,
    )
    rows = build_preference_findings(effects, {"crows": ["pll"]}, TestOptions(confidence=level))
    assert len(rows) == len(data) + (len(data) > 1)
    for row in rows.itertuples():
        assert row.ci_method == stats.CLOPPER_PEARSON
        assert row.ci_low <= row.effect <= row.ci_high
        rejects = row.p_value <= stats.interval_alpha(level)
        assert excludes_half(row.ci_low, row.ci_high) == rejects, row


# ------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("mlm")
    return {
        name: build_masked_lm(folder / name, train=training_sentences(planted), masked_words=MASKED_WORDS)
        for name, planted in (("planted", True), ("control", False))
    }


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_crows_pairs_csv(tmp_path_factory.mktemp("probes") / "occupations.csv", preference_pairs())


def audit(run_cli, model: Path, probes: Path, out: Path) -> tuple[int, pd.DataFrame]:
    result = run_cli(
        "run", "--model", model, "--probes", probes, "--out", out, "--no-attention", "--no-attributions",
        "--fail-on", "significant", "--json",
    )  # fmt: skip
    assert result.exit_code in (0, 1), result.stderr
    run = Path(json.loads(result.stdout)["runs"][0]["run_dir"])
    return result.exit_code, pd.read_parquet(run / "findings.parquet")


def test_planted_preference_is_flagged_and_the_control_is_not(
    run_cli, models, probes, tmp_path: Path
) -> None:
    code, findings = audit(run_cli, models["planted"], probes, tmp_path / "planted")
    assert code == 1
    preference = findings[findings["metric"] == PREFERENCE]
    assert len(preference) == 1
    row = preference.iloc[0]
    # every one of the 32 pairs (half of them "antistereo" rows, where "he" is the stereotype)
    assert row["output"] == "pll" and row["n"] == 32
    assert row["effect"] == 1.0 and row["significant"] and row["severity"] == "high"
    assert row["q_value"] < 1e-6
    # the paired rows agree: anti-stereotype minus stereotype is negative, on both outputs
    for output in ("pll", "focus_loglik"):
        delta = findings[(findings["metric"] == "mean_delta") & (findings["output"] == output)].iloc[0]
        assert (delta["group_a"], delta["group_b"]) == ("anti-stereotype", "stereotype")
        assert delta["significant"] and delta["ci_high"] < -1.0

    code, findings = audit(run_cli, models["control"], probes, tmp_path / "control")
    assert code == 0
    assert len(findings) > 0 and not findings["significant"].any()
    control = findings[findings["metric"] == PREFERENCE].iloc[0]
    assert abs(control["effect"] - 0.5) <= 0.1
    pll = findings[(findings["metric"] == "mean_delta") & (findings["output"] == "pll")].iloc[0]
    assert abs(pll["effect"]) < 0.02


def test_with_no_probes_a_masked_lm_runs_the_builtin_sets(run_cli, models, tmp_path: Path) -> None:
    result = run_cli(
        "run", "--model", models["control"], "--out", tmp_path, "--no-attention", "--no-attributions",
        "--max-instances", "6", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    run = Path(json.loads(result.stdout)["runs"][0]["run_dir"])
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert {s["name"] for s in manifest["probe_sets"]} >= {
        "gender",
        "race",
        "religion",
        "nationality",
        "age",
        "disability",
    }
    findings = pd.read_parquet(run / "findings.parquet")
    assert set(findings.loc[findings["metric"] == "mean_delta", "output"]) == {"pll", "focus_loglik"}
    assert {"gender", "race", "religion", "nationality", "age", "disability"} <= set(findings["attribute"])
    # preference rows only for sets whose variants are "stereotype" and "anti-stereotype"; the six
    # above name their groups (male, female, ...)
    examples = pd.read_parquet(run / "examples.parquet")
    stereotyped = set(examples.loc[examples["variant"] == "stereotype", "probe_set"])
    assert set(findings.loc[findings["metric"] == PREFERENCE, "probe_set"]) == stereotyped
    assert not stereotyped & {"gender", "race", "religion", "nationality", "age", "disability"}
