"""build_effects and build_findings on small hand-made tables with known answers."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from audit.metrics.options import TestOptions
from audit.metrics.paired import REST, build_effects, build_findings
from audit.metrics.stats import association_effect_size, association_pvalue, sign_flip_pvalue
from audit.tables import TABLES


def make_tables(
    scores: dict[tuple[str, str, str], float],
    labels: dict[tuple[str, str, str], str] | None = None,
    *,
    probe_set: str = "pairs",
    attribute: str = "gender",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """examples and predictions from {(instance_id, group, output): score}."""
    labels = labels or {}
    examples = {}
    predictions = []
    for (instance_id, group, output), score in scores.items():
        example_id = f"{probe_set}/{instance_id}/{group}"
        examples[example_id] = {
            "example_id": example_id,
            "probe_set": probe_set,
            "instance_id": instance_id,
            "variant": group,
            "attribute": attribute,
        }
        label = labels.get((instance_id, group, output))
        predictions.append({"example_id": example_id, "output": output, "score": score, "label": label})
    return pd.DataFrame(list(examples.values())), pd.DataFrame(predictions)


def effects_from_deltas(deltas: np.ndarray, output: str = "prob:positive") -> pd.DataFrame:
    """Instances with groups "female" and "male" whose score difference female - male is given."""
    scores = {}
    for i, delta in enumerate(deltas):
        scores[(f"i{i}", "male", output)] = 0.5
        scores[(f"i{i}", "female", output)] = 0.5 + float(delta)
    return build_effects(*make_tables(scores))


def row(findings: pd.DataFrame, **where: str) -> pd.Series:
    selected = findings
    for column, value in where.items():
        selected = selected[selected[column] == value]
    assert len(selected) == 1, f"expected one row for {where}, found {len(selected)}"
    return selected.iloc[0]


def test_effects_pair_groups_in_sorted_order_with_signed_delta_and_flips() -> None:
    examples, predictions = make_tables(
        {
            ("i1", "male", "prob:positive"): 0.9,  # listed first, but "female" < "male"
            ("i1", "female", "prob:positive"): 0.3,
            ("i2", "male", "prob:positive"): 0.6,
            ("i2", "female", "prob:positive"): 0.7,
        },
        labels={
            ("i1", "male", "prob:positive"): "positive",
            ("i1", "female", "prob:positive"): "negative",
            ("i2", "male", "prob:positive"): "positive",
            ("i2", "female", "prob:positive"): "positive",
        },
    )
    effects = build_effects(examples, predictions)
    assert list(effects.columns) == TABLES["effects"]
    assert list(effects["instance_id"]) == ["i1", "i2"]
    assert (effects["group_a"] == "female").all() and (effects["group_b"] == "male").all()
    np.testing.assert_allclose(effects["delta"], [0.3 - 0.9, 0.7 - 0.6])
    np.testing.assert_allclose(effects["delta"], effects["score_a"] - effects["score_b"])
    assert list(effects["flipped"]) == [True, False]
    assert list(effects["label_a"]) == ["negative", "positive"]


def test_effects_rest_rows_for_more_than_two_groups() -> None:
    scores = {("i1", "a", "assoc:x"): 1.0, ("i1", "b", "assoc:x"): 2.0, ("i1", "c", "assoc:x"): 6.0}
    scores |= {("i2", "a", "assoc:x"): 0.0, ("i2", "b", "assoc:x"): 1.0}  # two groups: no rest
    effects = build_effects(*make_tables(scores))
    first = effects[effects["instance_id"] == "i1"]
    assert list(zip(first["group_a"], first["group_b"], strict=True)) == [
        ("a", "b"),
        ("a", "c"),
        ("b", "c"),
        ("a", REST),
        ("b", REST),
        ("c", REST),
    ]
    rest = first[first["group_b"] == REST]
    np.testing.assert_allclose(rest["score_b"], [(2 + 6) / 2, (1 + 6) / 2, (1 + 2) / 2])
    np.testing.assert_allclose(rest["delta"], [1 - 4, 2 - 3.5, 6 - 1.5])
    assert rest["label_b"].isna().all() and rest["flipped"].isna().all()
    second = effects[effects["instance_id"] == "i2"]
    assert list(second["group_b"]) == ["b"]
    assert effects["flipped"].isna().all()  # no labels anywhere


def test_effects_reject_bad_inputs() -> None:
    examples, predictions = make_tables({("i1", "a", "o"): 1.0, ("i1", "b", "o"): 0.0})
    with pytest.raises(ValueError, match="repeat"):
        build_effects(examples, pd.concat([predictions, predictions.iloc[:1]]))
    stray = pd.DataFrame([{"example_id": "nowhere", "output": "o", "score": 0.0, "label": None}])
    with pytest.raises(ValueError, match="not in examples"):
        build_effects(examples, pd.concat([predictions, stray]))
    with pytest.raises(ValueError, match="missing column"):
        build_effects(examples.drop(columns="attribute"), predictions)
    named_rest, rest_predictions = make_tables({("i1", "rest", "o"): 1.0, ("i1", "b", "o"): 0.0})
    with pytest.raises(ValueError, match="rest"):
        build_effects(named_rest, rest_predictions)


def test_planted_shift_is_significant_with_the_right_sign_and_a_ci_around_it() -> None:
    rng = np.random.default_rng(0)
    effects = effects_from_deltas(0.1 + rng.normal(0, 0.05, size=40))
    findings = build_findings(effects, TestOptions())
    assert list(findings.columns) == TABLES["findings"]
    finding = row(findings, metric="mean_delta")
    assert finding["group_a"] == "female" and finding["effect"] > 0
    assert finding["ci_low"] <= 0.1 <= finding["ci_high"] and finding["ci_low"] > 0
    assert finding["p_value"] < 0.001 and finding["q_value"] < 0.05
    assert finding["n"] == 40 and finding["threshold"] == 0.02
    assert finding["significant"] and finding["severity"] == "high"  # 0.1 / 0.02 = 5 >= 4
    flipped = effects_from_deltas(-(0.1 + rng.normal(0, 0.05, size=40)))
    assert row(build_findings(flipped, TestOptions()), metric="mean_delta")["effect"] < 0


def test_symmetric_null_is_not_significant() -> None:
    noise = np.random.default_rng(1).normal(0, 0.2, size=30)
    findings = build_findings(effects_from_deltas(np.concatenate([noise, -noise])), TestOptions())
    finding = row(findings, metric="mean_delta")
    assert abs(finding["effect"]) < 1e-12
    assert finding["p_value"] > 0.9
    assert finding["ci_low"] < 0 < finding["ci_high"]
    assert not finding["significant"] and finding["severity"] == "none"


@pytest.mark.parametrize(
    ("min_effect", "severity"),
    [(0.0, "high"), (0.02, "high"), (0.03, "medium"), (0.06, "low"), (0.2, "none")],
)
def test_min_effect_gates_significance_and_sets_severity(min_effect: float, severity: str) -> None:
    effects = effects_from_deltas(0.1 + np.random.default_rng(2).normal(0, 0.02, size=30))
    finding = row(build_findings(effects, TestOptions(min_effect=min_effect)), metric="mean_delta")
    assert finding["q_value"] < 0.05  # the test rejects in every case ...
    assert finding["significant"] == (severity != "none")  # ... the practical threshold decides
    assert finding["severity"] == severity


def test_small_n_p_values_are_exact_and_q_values_are_bh_over_all_tests() -> None:
    rng = np.random.default_rng(3)
    scores = {}
    for i in range(12):
        for group, shift in (("a", 0.15), ("b", 0.0), ("c", 0.05)):
            for output in ("prob:x", "prob:y"):
                scores[(f"i{i}", group, output)] = shift + rng.normal(0, 0.1)
    effects = build_effects(*make_tables(scores))
    findings = build_findings(effects, TestOptions())
    deltas = effects[
        (effects["group_a"] == "a") & (effects["group_b"] == "c") & (effects["output"] == "prob:y")
    ]
    finding = row(findings, group_a="a", group_b="c", output="prob:y")
    assert finding["p_value"] == pytest.approx(sign_flip_pvalue(deltas["delta"].to_numpy(), rng=0))
    assert finding["effect"] == pytest.approx(deltas["delta"].mean())
    assert finding["effect_size"] == pytest.approx(deltas["delta"].mean() / deltas["delta"].std(ddof=1))
    # 3 named pairs + 3 rest comparisons, 2 outputs each; no labels, so no flip rows
    assert len(findings) == 12 and set(findings["metric"]) == {"mean_delta"}
    # rest rows are descriptive: no p-value, so the BH family is the 6 named-pair tests
    rest = findings["group_b"] == REST
    assert findings.loc[rest, "p_value"].isna().all() and findings.loc[rest, "q_value"].isna().all()
    tested = findings[~rest]
    expected_q = scipy_stats.false_discovery_control(tested["p_value"].to_numpy(), method="bh")
    np.testing.assert_allclose(tested["q_value"], expected_q)


def test_rest_rows_do_not_flag_groups_without_an_effect() -> None:
    """Only group a is shifted; b and c are identical. Pairwise tests flag a-b and a-c; the rest
    contrasts of b and c move by effect/2 but are descriptive, so nothing accuses b or c."""
    rng = np.random.default_rng(7)
    scores = {}
    for i in range(40):
        base = rng.normal(0, 0.1)
        for group, shift in (("a", 0.05), ("b", 0.0), ("c", 0.0)):
            scores[(f"i{i}", group, "prob:x")] = base + shift
    findings = build_findings(build_effects(*make_tables(scores)), TestOptions())
    flagged = {(r.group_a, r.group_b) for r in findings.itertuples() if r.significant}
    assert flagged == {("a", "b"), ("a", "c")}
    b_rest = row(findings, group_a="b", group_b=REST)
    assert b_rest["effect"] == pytest.approx(-0.025) and b_rest["ci_high"] < 0
    assert np.isnan(b_rest["p_value"]) and not b_rest["significant"]


def test_flip_rate_is_one_descriptive_row_per_pair() -> None:
    scores = {}
    labels = {}
    for i in range(10):
        for group in ("female", "male"):
            for output, score in (("prob:negative", 0.4), ("prob:positive", 0.6)):
                scores[(f"i{i}", group, output)] = score
                # the predicted label is shared by all outputs of a variant; 3 of 10 flip
                labels[(f"i{i}", group, output)] = "negative" if group == "male" and i < 3 else "positive"
    findings = build_findings(build_effects(*make_tables(scores, labels)), TestOptions())
    flip = row(findings, metric="flip_rate")
    assert flip["effect"] == pytest.approx(0.3) and flip["n"] == 10
    assert pd.isna(flip["output"]) and np.isnan(flip["p_value"]) and np.isnan(flip["q_value"])
    assert flip["ci_low"] < 0.3 < flip["ci_high"]
    assert not flip["significant"] and flip["severity"] == "none"
    assert list(findings["metric"]) == ["mean_delta", "mean_delta", "flip_rate"]


def test_seat_row_for_association_outputs() -> None:
    rng = np.random.default_rng(4)
    scores = {}
    for i in range(6):
        scores[(f"i{i}", "european", "assoc:pleasant_vs_unpleasant")] = 0.3 + rng.normal(0, 0.05)
        scores[(f"i{i}", "african", "assoc:pleasant_vs_unpleasant")] = 0.1 + rng.normal(0, 0.05)
        scores[(f"i{i}", "asian", "assoc:pleasant_vs_unpleasant")] = 0.2 + rng.normal(0, 0.05)
    effects = build_effects(*make_tables(scores, attribute="race"))
    findings = build_findings(effects, TestOptions())
    pair = effects[(effects["group_a"] == "african") & (effects["group_b"] == "european")]
    seat = row(findings, metric="seat_effect_size", group_a="african", group_b="european")
    d = association_effect_size(pair["score_a"].to_numpy(), pair["score_b"].to_numpy())
    assert seat["effect"] == pytest.approx(d) and seat["effect_size"] == pytest.approx(d) and d < -1
    # C(12, 6) = 924 partitions <= n_permutations: exact, so any rng gives the same p
    assert seat["p_value"] == pytest.approx(
        association_pvalue(pair["score_a"].to_numpy(), pair["score_b"].to_numpy(), rng=0)
    )
    assert seat["threshold"] == 0.2 and seat["n"] == 6
    assert seat["ci_low"] <= d <= seat["ci_high"]
    assert seat["significant"] and seat["severity"] == "high"
    seat_rows = findings[findings["metric"] == "seat_effect_size"]
    assert len(seat_rows) == 3 and REST not in set(seat_rows["group_b"])  # 3 named pairs, no rest


def test_findings_are_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(5)
    effects = effects_from_deltas(0.02 + rng.normal(0, 0.1, size=60))  # n > 16: Monte Carlo p
    first = build_findings(effects, TestOptions(n_resamples=500, n_permutations=2000, seed=7))
    pd.testing.assert_frame_equal(
        first, build_findings(effects, TestOptions(n_resamples=500, n_permutations=2000, seed=7))
    )
    other = build_findings(effects, TestOptions(n_resamples=500, n_permutations=2000, seed=8))
    assert first["ci_low"].iloc[0] != other["ci_low"].iloc[0]


def test_empty_effects_give_empty_findings_with_the_contract_columns() -> None:
    examples = pd.DataFrame(columns=["example_id", "probe_set", "instance_id", "variant", "attribute"])
    predictions = pd.DataFrame(columns=["example_id", "output", "score", "label"])
    effects = build_effects(examples, predictions)
    assert list(effects.columns) == TABLES["effects"] and effects.empty
    findings = build_findings(effects, TestOptions())
    assert list(findings.columns) == TABLES["findings"] and findings.empty
    with pytest.raises(ValueError, match="min_effect"):
        build_findings(effects, TestOptions(min_effect=-0.1))


def test_a_run_sized_table_takes_seconds() -> None:
    rng = np.random.default_rng(6)
    groups = ["g0", "g1", "g2", "g3", "g4"]  # 10 pairs + 5 rest comparisons
    outputs = ["prob:positive", "prob:negative", "assoc:pleasant"]
    n_instances = 2000
    ids = [f"i{i}" for i in range(n_instances)]
    examples = pd.DataFrame(
        [
            {
                "example_id": f"s/{i}/{g}",
                "probe_set": "s",
                "instance_id": i,
                "variant": g,
                "attribute": "gender",
            }
            for i in ids
            for g in groups
        ]
    )
    example_ids = np.repeat(examples["example_id"].to_numpy(), len(outputs))
    shift = np.repeat((examples["variant"] == "g0").to_numpy() * 0.1, len(outputs))
    score = rng.normal(0, 1, size=example_ids.size) + shift
    predictions = pd.DataFrame(
        {
            "example_id": example_ids,
            "output": np.tile(outputs, len(examples)),
            "score": score,
            "label": np.where(score > 0, "positive", "negative"),
        }
    )
    started = time.perf_counter()
    effects = build_effects(examples, predictions)
    findings = build_findings(effects, TestOptions())
    elapsed = time.perf_counter() - started
    assert len(effects) == n_instances * len(outputs) * 15
    # 15 comparisons x 3 outputs + 10 SEAT rows + 10 flip rows
    assert len(findings) == 45 + 10 + 10
    assert row(findings, group_a="g0", group_b="g1", output="prob:positive")["significant"]
    assert not row(findings, group_a="g0", group_b=REST, output="prob:positive")["significant"]
    assert elapsed < 20, f"effects + findings took {elapsed:.1f} s"


def test_seat_interval_agrees_with_its_unpaired_test() -> None:
    """A small paired shift under large template-to-template variation: the paired mean_delta test
    finds it; SEAT (two exchangeable sets) does not, and its interval must say the same."""
    rng = np.random.default_rng(11)
    scores = {}
    for i in range(40):
        template = rng.normal(0, 0.10)
        scores[(f"i{i}", "female", "assoc:x_vs_y")] = template - 0.03 + rng.normal(0, 0.002)
        scores[(f"i{i}", "male", "assoc:x_vs_y")] = template + rng.normal(0, 0.002)
    findings = build_findings(build_effects(*make_tables(scores)), TestOptions())
    paired = row(findings, metric="mean_delta")
    seat = row(findings, metric="seat_effect_size")
    assert paired["significant"] and paired["ci_high"] < 0
    assert seat["p_value"] > 0.05 and not seat["significant"]
    assert seat["ci_low"] < 0 < seat["ci_high"]
