"""build_long_effects and build_long_findings on synthetic long-document tables with planted answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from audit.metrics.long_context import build_long_effects, build_long_findings
from audit.metrics.options import TestOptions
from audit.tables import TABLES, check_columns

POSITIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
OUTPUT = "prob:positive"
FAST = TestOptions(n_resamples=500, n_permutations=2000, seed=0)

Planted = Callable[[int, int, float], float]
"""(instance index, doc_length, position) -> planted delta."""


def variant_name(position: float) -> str:
    return f"p{round(100 * position):03d}"


def _predicted(score: float) -> str:
    return "positive" if score > 0.5 else "negative"


class Tables:
    """examples / predictions / instance_outputs rows, built per the long-document naming contract."""

    def __init__(self, probe_set: str = "long") -> None:
        self.probe_set = probe_set
        self.examples: list[dict[str, object]] = []
        self.predictions: list[dict[str, object]] = []
        self.outputs: list[dict[str, object]] = []

    def add_example(
        self,
        instance_id: str,
        variant: str,
        score: float | None,
        *,
        attribute: str,
        doc_length: int,
        position: float | None,
        output: str,
        swap_group: str | None = None,
        lost: bool = False,
    ) -> None:
        example_id = f"{self.probe_set}/{instance_id}/{variant}"
        self.examples.append(
            {
                "example_id": example_id,
                "probe_set": self.probe_set,
                "instance_id": instance_id,
                "variant": variant,
                "attribute": attribute,
                "doc_length": doc_length,
                "position": position,
                "swap_group": swap_group,
                "focus_truncated": lost,
            }
        )
        if score is not None:
            self.predictions.append(
                {"example_id": example_id, "output": output, "score": score, "label": _predicted(score)}
            )

    def add_keys(
        self,
        planted: Planted,
        *,
        lengths: tuple[int, ...] = (512,),
        n_instances: int = 12,
        lost: Callable[[int, int, float], bool] = lambda i, length, p: False,
        output: Callable[[int], str] = lambda i: OUTPUT,
        seed: int = 0,
    ) -> Tables:
        """Key-sentence instances: "none" scores around 0.3; "pNNN" = none + planted + small noise,
        exactly none where the key is `lost` (truncated away: the model saw the same input)."""
        rng = np.random.default_rng(seed)
        for length in lengths:
            for i in range(n_instances):
                instance_id = f"k{i}-{length}"
                base = 0.3 + 0.05 * rng.standard_normal()
                self.outputs.append(
                    {"probe_set": self.probe_set, "instance_id": instance_id, "output": output(i)}
                )
                common = {"attribute": "position", "doc_length": length, "output": output(i)}
                self.add_example(instance_id, "none", base, position=None, **common)  # type: ignore[arg-type]
                for p in POSITIONS:
                    gone = lost(i, length, p)
                    score = base if gone else base + planted(i, length, p) + 0.01 * rng.standard_normal()
                    self.add_example(instance_id, variant_name(p), score, position=p, lost=gone, **common)  # type: ignore[arg-type]
        return self

    def add_swaps(
        self,
        planted: Callable[[str, int, float], float],
        *,
        groups: tuple[str, ...] = ("female", "male"),
        lengths: tuple[int, ...] = (512,),
        n_instances: int = 12,
        seed: int = 1,
    ) -> Tables:
        """Identity-swap instances: each group's score = instance base + planted(group, L, p) + noise."""
        rng = np.random.default_rng(seed)
        for length in lengths:
            for i in range(n_instances):
                instance_id = f"s{i}-{length}"
                base = 0.4 + 0.05 * rng.standard_normal()
                self.outputs.append(
                    {"probe_set": self.probe_set, "instance_id": instance_id, "output": OUTPUT}
                )
                for group in groups:
                    for p in POSITIONS:
                        score = base + planted(group, length, p) + 0.01 * rng.standard_normal()
                        self.add_example(
                            instance_id,
                            f"{group}-{variant_name(p)}",
                            score,
                            attribute="gender",
                            doc_length=length,
                            position=p,
                            output=OUTPUT,
                            swap_group=group,
                        )
        return self

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        return pd.DataFrame(self.examples), pd.DataFrame(self.predictions), pd.DataFrame(self.outputs)

    def effects(self) -> pd.DataFrame:
        return build_long_effects(*self.frames())

    def findings(
        self, *, model_max_length: int = 8192, strategy: str = "truncate", **options: Any
    ) -> pd.DataFrame:
        examples, _, _ = self.frames()
        return build_long_findings(
            self.effects(),
            examples,
            replace(FAST, **options),
            model_max_length=model_max_length,
            strategy=strategy,
        )


def rows(findings: pd.DataFrame, metric: str, **where: object) -> pd.DataFrame:
    selected = findings[findings["metric"] == metric]
    for column, value in where.items():
        matches = selected[column].isna() if value is None else selected[column] == value
        selected = selected[matches]
    return selected


def one(findings: pd.DataFrame, metric: str, **where: object) -> pd.Series:
    selected = rows(findings, metric, **where)
    assert len(selected) == 1, f"expected one {metric} row for {where}, found {len(selected)}"
    return selected.iloc[0]


def early_key(i: int, length: int, p: float) -> float:
    """The key moves the output by 0.4 up to 30% into the document, not at all after."""
    return 0.4 if p <= 0.3 else 0.0


# ---------------------------------------------------------------------------------------------
# effects


def test_key_effects_compare_each_position_with_the_document_without_the_key() -> None:
    tables = Tables().add_keys(early_key, n_instances=3)
    examples, predictions, _ = tables.frames()
    effects = tables.effects()

    assert list(effects.columns) == TABLES["effects"]
    assert len(effects) == 3 * len(POSITIONS)
    assert set(effects["group_b"]) == {"none"}
    assert set(effects["group_a"]) == {variant_name(p) for p in POSITIONS}
    score = predictions.set_index("example_id")["score"]
    row = effects[(effects["instance_id"] == "k1-512") & (effects["group_a"] == "p030")].iloc[0]
    assert row["score_a"] == score["long/k1-512/p030"] and row["score_b"] == score["long/k1-512/none"]
    assert row["delta"] == pytest.approx(row["score_a"] - row["score_b"])
    assert row["delta"] == pytest.approx(0.4, abs=0.05)
    assert row["position"] == 0.3 and row["doc_length"] == 512 and row["attribute"] == "position"
    assert row["flipped"] == (row["label_a"] != row["label_b"])
    assert effects["flipped"].dtype == "boolean" and effects["doc_length"].dtype == "Int64"
    assert effects["position"].dtype == "float64" and effects["delta"].dtype == "float64"


def test_swap_effects_pair_groups_by_name_at_the_same_position() -> None:
    def planted(group: str, length: int, p: float) -> float:
        return {"female": 0.2, "male": 0.0, "nonbinary": 0.1}[group]

    effects = Tables().add_swaps(planted, groups=("male", "nonbinary", "female"), n_instances=2).effects()

    assert len(effects) == 2 * 3 * len(POSITIONS)  # instances x pairs x positions
    pairs = set(zip(effects["group_a"], effects["group_b"], strict=True))
    assert pairs == {("female", "male"), ("female", "nonbinary"), ("male", "nonbinary")}
    female_male = effects[(effects["group_a"] == "female") & (effects["group_b"] == "male")]
    assert female_male["delta"].to_numpy() == pytest.approx(np.full(len(female_male), 0.2), abs=0.05)
    assert (effects["attribute"] == "gender").all()
    assert sorted(female_male["position"].unique()) == list(POSITIONS)


def test_effects_of_no_examples_is_an_empty_table_with_the_columns() -> None:
    empty = pd.DataFrame(columns=[*TABLES["examples"], "focus_truncated"])
    effects = build_long_effects(
        empty,
        pd.DataFrame(columns=TABLES["predictions"]),
        pd.DataFrame(columns=["probe_set", "instance_id", "output"]),
    )
    assert effects.empty and list(effects.columns) == TABLES["effects"]


def test_effects_refuse_tables_that_break_the_naming_contract() -> None:
    examples, predictions, outputs = Tables().add_keys(early_key, n_instances=2).frames()
    without_baseline = examples[examples["variant"] != "none"]
    with pytest.raises(ValueError, match="exactly one 'none' variant"):
        build_long_effects(without_baseline, predictions, outputs)
    two_outputs = pd.concat([outputs, outputs.assign(output="prob:negative")])
    with pytest.raises(ValueError, match="several outputs"):
        build_long_effects(examples, predictions, two_outputs)
    with pytest.raises(ValueError, match="names no output"):
        build_long_effects(examples, predictions, outputs.iloc[1:])


# ---------------------------------------------------------------------------------------------
# findings


def test_findings_follow_the_column_contract() -> None:
    findings = Tables().add_keys(early_key).add_swaps(lambda g, length, p: 0.0).findings()

    check_columns("findings", findings)
    assert list(findings.columns) == TABLES["findings"]
    assert findings["n"].dtype == "int64" and findings["significant"].dtype == bool
    assert findings["doc_length"].dtype == "Int64" and findings["position"].dtype == "float64"
    assert list(dict.fromkeys(findings["metric"])) == [
        "key_effect",
        "effective_context",
        "middle_dip",
        "swap_effect",
    ]


def test_planted_early_key_gives_an_effective_context_of_30_percent_of_the_document() -> None:
    findings = Tables().add_keys(early_key).findings()

    context = one(findings, "effective_context", doc_length=512)
    assert context["effect"] == pytest.approx(0.3 * 512)
    assert context["ci_low"] <= context["effect"] <= context["ci_high"]
    assert np.isnan(context["p_value"]) and not context["significant"] and context["severity"] == "none"
    assert context["n"] == 12 and context["note"].startswith("tokens;")
    start = one(findings, "key_effect", doc_length=512, position=0.0)
    assert start["group_a"] == "p000" and start["group_b"] == "none" and start["output"] == OUTPUT
    assert start["effect"] == pytest.approx(0.4, abs=0.02) and start["significant"]
    assert start["severity"] == "none"  # a key sentence that works is not a problem
    late = one(findings, "key_effect", doc_length=512, position=0.8)
    assert abs(late["effect"]) < 0.02 and not late["significant"]


def test_model_level_effective_context_is_the_largest_over_lengths() -> None:
    def planted(i: int, length: int, p: float) -> float:
        return 0.4 if p <= (0.3 if length == 512 else 0.1) else 0.0

    findings = Tables().add_keys(planted, lengths=(512, 2048)).findings()

    assert one(findings, "effective_context", doc_length=512)["effect"] == pytest.approx(153.6)
    assert one(findings, "effective_context", doc_length=2048)["effect"] == pytest.approx(204.8)
    model = one(findings, "effective_context", doc_length=None)
    assert model["effect"] == pytest.approx(204.8) and "2048" in model["note"]


def test_key_that_does_not_move_the_output_has_no_effective_context() -> None:
    findings = Tables().add_keys(lambda i, length, p: 0.0).findings()

    for doc_length in (512, None):
        row = one(findings, "effective_context", doc_length=doc_length)
        assert np.isnan(row["effect"])
        assert "does not move the output even at the start" in row["note"]


def test_planted_middle_dip_is_significant_and_a_flat_curve_is_not() -> None:
    def dipped(i: int, length: int, p: float) -> float:
        return 0.15 if 0.25 <= p <= 0.75 else 0.4

    dip = one(Tables().add_keys(dipped).findings(), "middle_dip", doc_length=512)
    assert dip["effect"] == pytest.approx(0.25, abs=0.02)
    assert dip["significant"] and dip["severity"] != "none"
    assert dip["group_a"] == "ends" and dip["group_b"] == "middle" and dip["position"] != dip["position"]
    assert dip["ci_low"] <= dip["effect"] <= dip["ci_high"] and dip["n"] == 12

    flat = one(Tables().add_keys(lambda i, length, p: 0.4).findings(), "middle_dip", doc_length=512)
    assert abs(flat["effect"]) < 0.02 and not flat["significant"] and flat["severity"] == "none"


def test_middle_dip_beyond_the_model_limit_says_it_measures_truncation() -> None:
    tables = Tables().add_keys(lambda i, length, p: 0.4, lengths=(512, 2048))

    truncated = tables.findings(model_max_length=512, strategy="truncate")
    assert one(truncated, "middle_dip", doc_length=512)["note"] is None
    assert "measures truncation, not position" in one(truncated, "middle_dip", doc_length=2048)["note"]
    assert pd.notna(one(truncated, "middle_dip", doc_length=512)["p_value"])


def test_a_dip_made_by_truncation_is_described_not_tested() -> None:
    """Past the limit the key at the end is cut away: the 'dip' is truncation, already reported."""
    cut = Tables().add_keys(lambda i, length, p: 0.4 if p < 0.3 else 0.0, lengths=(2048,))
    dip = one(cut.findings(model_max_length=512, strategy="truncate"), "middle_dip", doc_length=2048)
    assert dip["effect"] > 0 and pd.isna(dip["p_value"]) and not dip["significant"]
    assert dip["severity"] == "none"
    windowed = one(cut.findings(model_max_length=512, strategy="window"), "middle_dip", doc_length=2048)
    assert windowed["p_value"] < 0.05


def test_windowed_middle_dip_has_no_truncation_note() -> None:
    tables = Tables().add_keys(lambda i, length, p: 0.4, lengths=(512, 2048))
    windowed = tables.findings(model_max_length=512, strategy="window")
    assert one(windowed, "middle_dip", doc_length=2048)["note"] is None


def test_key_truncated_away_reads_as_zero_effect_with_a_note() -> None:
    def lost(i: int, length: int, p: float) -> bool:
        return length == 2048 and (p >= 0.3 or (p == 0.2 and i < 3))

    tables = Tables().add_keys(lambda i, length, p: 0.4, lengths=(512, 2048), lost=lost)
    findings = tables.findings(model_max_length=512, strategy="truncate")

    gone = one(findings, "key_effect", doc_length=2048, position=0.5)
    assert (
        gone["effect"] == 0.0 and pd.isna(gone["p_value"]) and not gone["significant"]
    )  # described, not tested
    assert gone["note"] == (
        "key sentence beyond the model's 512-token limit: truncated away, so its effect is 0 by construction"
    )
    assert one(findings, "key_effect", doc_length=2048, position=0.2)["note"] == (
        "key sentence truncated away in 3 of 12 instances"
    )
    assert one(findings, "key_effect", doc_length=2048, position=0.1)["note"] is None
    assert one(findings, "effective_context", doc_length=2048)["effect"] == pytest.approx(0.2 * 2048)
    windowed = tables.findings(model_max_length=512, strategy="window")
    assert rows(windowed, "key_effect")["note"].isna().all()


def test_swap_effect_planted_at_one_position_is_significant_there_only() -> None:
    def planted(group: str, length: int, p: float) -> float:
        return 0.1 if group == "female" and p == 0.5 else 0.0

    findings = Tables().add_swaps(planted).findings()

    swaps = rows(findings, "swap_effect", doc_length=512)
    assert len(swaps) == len(POSITIONS) and set(swaps["group_a"]) == {"female"}
    at_middle = one(findings, "swap_effect", doc_length=512, position=0.5)
    assert at_middle["effect"] == pytest.approx(0.1, abs=0.02)
    assert at_middle["significant"] and at_middle["severity"] != "none" and at_middle["n"] == 12
    elsewhere = swaps[swaps["position"] != 0.5]
    assert not elsewhere["significant"].any() and (elsewhere["severity"] == "none").all()
    pooled = one(findings, "swap_effect", doc_length=None, position=None)
    assert pooled["effect"] == pytest.approx(0.1 / len(POSITIONS), abs=0.005) and pooled["n"] == 12
    assert "positions and document lengths 512" in pooled["note"]


def test_q_values_are_benjamini_hochberg_over_the_long_document_family() -> None:
    def planted(group: str, length: int, p: float) -> float:
        return 0.03 * p if group == "female" else 0.0

    findings = Tables().add_keys(early_key).add_swaps(planted, lengths=(512, 1024)).findings()

    tested = findings[findings["p_value"].notna()]
    assert set(tested["metric"]) == {"key_effect", "middle_dip", "swap_effect"}
    expected = scipy_stats.false_discovery_control(tested["p_value"].to_numpy(), method="bh")
    assert tested["q_value"].to_numpy() == pytest.approx(expected)
    assert findings.loc[findings["p_value"].isna(), "q_value"].isna().all()


def test_findings_are_deterministic_for_a_seed() -> None:
    tables = Tables().add_keys(lambda i, length, p: 0.2 - 0.1 * p, n_instances=20)  # n > 16: sampled p
    first = tables.findings(seed=7)
    pd.testing.assert_frame_equal(first, tables.findings(seed=7))
    other = tables.findings(seed=8)
    assert not np.allclose(first["ci_low"].to_numpy(), other["ci_low"].to_numpy(), equal_nan=True)


def test_nan_deltas_are_left_out_and_n_counts_the_used_instances() -> None:
    tables = Tables().add_keys(early_key)
    tables.predictions = [row for row in tables.predictions if row["example_id"] != "long/k0-512/p050"]
    findings = tables.findings()

    assert one(findings, "key_effect", doc_length=512, position=0.5)["n"] == 11
    assert one(findings, "key_effect", doc_length=512, position=0.4)["n"] == 12
    assert one(findings, "middle_dip", doc_length=512)["n"] == 12  # k0 still has other middle positions


def test_instances_with_their_own_outputs_are_summarised_as_key() -> None:
    findings = Tables().add_keys(early_key, output=lambda i: f"sim:k{i}").findings()

    assert set(rows(findings, "key_effect")["output"]) == {"key"}
    assert set(rows(findings, "effective_context")["output"]) == {"key"}


def test_empty_effects_give_an_empty_findings_table() -> None:
    examples, _, _ = Tables().frames()
    findings = build_long_findings(
        pd.DataFrame(columns=TABLES["effects"]),
        pd.DataFrame(columns=[*TABLES["examples"], "focus_truncated"]) if examples.empty else examples,
        TestOptions(),
        model_max_length=512,
        strategy="truncate",
    )
    assert findings.empty and list(findings.columns) == TABLES["findings"]


def test_findings_refuse_an_unknown_strategy() -> None:
    tables = Tables().add_keys(early_key, n_instances=2)
    with pytest.raises(ValueError, match="strategy must be one of"):
        tables.findings(strategy="slide")


def test_probe_sets_sharing_instance_ids_are_summarised_apart() -> None:
    first = Tables("first").add_keys(early_key, output=lambda i: "prob:positive")
    second = Tables("second").add_keys(lambda i, length, p: 0.4, output=lambda i: "prob:negative")
    examples = pd.DataFrame(first.examples + second.examples)
    predictions = pd.DataFrame(first.predictions + second.predictions)
    outputs = pd.DataFrame(first.outputs + second.outputs)
    effects = build_long_effects(examples, predictions, outputs)
    findings = build_long_findings(effects, examples, FAST, model_max_length=8192, strategy="truncate")

    contexts = rows(findings, "effective_context", doc_length=512).set_index("probe_set")
    assert contexts.loc["first", "effect"] == pytest.approx(0.3 * 512)
    assert contexts.loc["second", "effect"] == pytest.approx(512)
    assert contexts.loc["first", "output"] == "prob:positive"
    assert contexts.loc["second", "output"] == "prob:negative"


def test_pooled_swap_effect_counts_each_swap_sentence_once_over_its_lengths() -> None:
    """A swap sentence built at three lengths is one sentence in three fillers, not three units."""
    findings = (
        Tables().add_swaps(lambda group, length, p: 0.05 if group == "female" else 0.0, lengths=(128, 512, 2048),
                           n_instances=6).findings()
    )  # fmt: skip
    pooled = one(findings, "swap_effect", doc_length=None, position=None)
    assert pooled["n"] == 6
    assert pooled["effect"] == pytest.approx(0.05, abs=0.01)
    per_cell = one(findings, "swap_effect", doc_length=512, position=0.5)
    assert per_cell["n"] == 6


def test_positions_that_give_the_same_documents_are_tested_once() -> None:
    """In a short document two positions can fall on one sentence boundary: the later cell says so
    and leaves the tests (its documents, and so its deltas, are the earlier cell's)."""
    tables = Tables().add_keys(lambda i, length, p: 0.4, lengths=(128,))
    examples, predictions, outputs = tables.frames()
    text = {p: f"document with the key at {p}" for p in POSITIONS}
    text[POSITIONS[1]] = text[POSITIONS[0]]  # the second position lands where the first did
    examples["text"] = ["filler only" if pd.isna(p) else text[p] for p in examples["position"]]
    findings = build_long_findings(
        build_long_effects(examples, predictions, outputs),
        examples,
        FAST,
        model_max_length=8192,
        strategy="truncate",
    )
    repeated = one(findings, "key_effect", doc_length=128, position=POSITIONS[1])
    assert pd.isna(repeated["p_value"]) and not repeated["significant"]
    assert f"same documents as position {POSITIONS[0]:g}" in repeated["note"]
    first = one(findings, "key_effect", doc_length=128, position=POSITIONS[0])
    assert first["significant"] and pd.isna(first["note"])
