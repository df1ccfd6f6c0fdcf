"""The metric catalogue (audit/metrics/catalogue.py) and the one family test (audit/metrics/family.py)."""

from __future__ import annotations

import ast
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import pytest

from audit.kinds.names import COUNTERFACTUAL, LONG_DOCUMENT, PARALLEL, PROBE_KINDS, ProbeKind
from audit.metrics import catalogue, stats
from audit.metrics.family import SEVERITY_CUTOFFS, apply_family_test, severity
from audit.metrics.options import TestOptions
from audit.tables import finding_row, findings_frame
from dashboard.frames import metric_description, metric_outputs

ROOT = Path(__file__).resolve().parent.parent
METRICS_DIR = ROOT / "audit" / "metrics"
ROW_HELPERS = {"_described", "_share", "_ratio_row", "_empty_row", "_row"}
"""Helpers of the findings builders whose third positional argument is the metric name."""


def _metric_literals(path: Path) -> set[str]:
    """Metric names a builder writes: ``metric="..."`` keywords, the metric argument of its row
    helpers, ``"metric": "..."`` entries and the values of ``.replace({...})`` on metric names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "metric" and isinstance(keyword.value, ast.Constant):
                    names.add(str(keyword.value.value))
            called = node.func.id if isinstance(node.func, ast.Name) else None
            if called in ROW_HELPERS and len(node.args) >= 3 and isinstance(node.args[2], ast.Constant):
                names.add(str(node.args[2].value))
            replaced = node.args[0] if node.args else None
            if (
                isinstance(node.func, ast.Attribute)
                and node.func.attr == "replace"
                and isinstance(replaced, ast.Dict)
            ):
                names |= {str(v.value) for v in replaced.values if isinstance(v, ast.Constant)}
    return names


def test_every_metric_a_builder_writes_is_in_the_catalogue() -> None:
    written = set()
    for path in sorted(METRICS_DIR.glob("*.py")):
        written |= _metric_literals(path)
    assert written, "the scan should find the builders' metric names"
    assert written <= set(catalogue.METRIC_ORDER), sorted(written - set(catalogue.METRIC_ORDER))


def test_every_catalogue_entry_names_the_module_that_computes_it() -> None:
    for entry in catalogue.METRICS:
        source = (METRICS_DIR / f"{entry.module}.py").read_text()
        assert f'"{entry.name}"' in source, f"{entry.name} is not written by audit/metrics/{entry.module}.py"


def test_entries_are_consistent() -> None:
    assert len(set(catalogue.METRIC_ORDER)) == len(catalogue.METRICS), "metric names must be unique"
    assert get_args(ProbeKind) == PROBE_KINDS
    for entry in catalogue.METRICS:
        assert entry.kind in PROBE_KINDS
        assert entry.family is None or entry.family in catalogue.FAMILIES
        assert entry.tested or not entry.problem, f"descriptive {entry.name} cannot report a problem"
        assert entry.description and entry.label
    assert catalogue.family_members(PARALLEL) == ("parity", "parity_by_label")
    assert catalogue.metrics_of(LONG_DOCUMENT) == (
        "key_effect",
        "effective_context",
        "middle_dip",
        "swap_effect",
    )
    assert catalogue.metric("stereotype_preference").centre == 0.5
    assert catalogue.family_members(catalogue.BENCHMARK_OVERALL) == ("stereotype_preference_overall",)
    assert not catalogue.metric("key_effect").problem
    assert not catalogue.p_floor_from_n("seat_effect_size") and catalogue.p_floor_from_n("mean_delta")
    assert catalogue.rank("not_a_metric") == len(catalogue.METRICS)
    with pytest.raises(ValueError, match="unknown metric 'nope'; known metrics: mean_delta"):
        catalogue.metric("nope")


def test_catalogue_and_test_options_import_nothing_heavy() -> None:
    code = (
        "import sys, audit.metrics.catalogue, audit.metrics.options; "
        "print([m for m in ('numpy', 'pandas', 'scipy', 'torch', 'transformers') if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ}
    )
    assert result.stdout.strip() == "[]"


def _rows(
    metric: str, effects: list[float], p_values: list[float], threshold: float
) -> list[dict[str, object]]:
    return [
        finding_row(
            probe_set="set",
            attribute="gender",
            group_a=f"a{i}",
            group_b="b",
            metric=metric,
            output="prob:x",
            effect=effect,
            ci_low=effect,
            ci_high=effect,
            n=10,
            p_value=p,
            threshold=threshold,
        )
        for i, (effect, p) in enumerate(zip(effects, p_values, strict=True))
    ]


def test_family_test_gives_q_values_significance_and_severity() -> None:
    frame = findings_frame(
        _rows("mean_delta", [0.05, -0.2, 0.01, 0.3], [0.001, 0.002, 0.001, math.nan], 0.02)
        + _rows("flip_rate", [0.5], [math.nan], math.nan)
    )
    tested = apply_family_test(frame, 0.05, COUNTERFACTUAL)
    expected_q = stats.benjamini_hochberg(np.array([0.001, 0.002, 0.001, math.nan, math.nan]))
    np.testing.assert_allclose(tested["q_value"], expected_q, equal_nan=True)
    assert tested["significant"].tolist() == [True, True, False, False, False]
    assert tested["severity"].tolist() == ["medium", "high", "none", "none", "none"]
    assert frame["q_value"].isna().all(), "the input frame is left as it was"


def test_family_test_leaves_rows_out_and_other_families_alone() -> None:
    frame = findings_frame(
        _rows("parity", [0.5, 0.5], [0.001, 0.001], 0.02) + _rows("mean_delta", [0.5], [0.001], 0.02)
    )
    left_out = pd.Series([True, False, False], index=frame.index)
    tested = apply_family_test(frame, 0.05, PARALLEL, left_out=left_out)
    assert tested["p_value"].tolist() == [0.001, 0.001, 0.001], "left-out rows keep their p-value"
    assert math.isnan(tested["q_value"].iloc[0]) and tested["q_value"].iloc[1] == pytest.approx(0.001)
    assert tested["significant"].tolist() == [False, True, False], "mean_delta is not a parallel metric"
    assert math.isnan(tested["q_value"].iloc[2])


def test_family_test_measures_from_each_metric_centre_and_spares_key_effects() -> None:
    frame = findings_frame(
        _rows("stereotype_preference", [0.53, 0.75], [0.001, 0.001], 0.05)
        + _rows("key_effect", [0.9], [0.001], 0.02)
    )
    tested = apply_family_test(frame, 0.05, COUNTERFACTUAL)
    assert tested["significant"].tolist() == [False, True, False], "key_effect is another family"
    assert tested["severity"].tolist() == ["none", "high", "none"]
    long_rows = apply_family_test(frame, 0.05, LONG_DOCUMENT)
    assert long_rows["significant"].iloc[2] and long_rows["severity"].iloc[2] == "none"


def test_severity_cutoffs() -> None:
    assert SEVERITY_CUTOFFS == (2.0, 4.0)
    assert severity(False, 1.0, 0.1) == "none"
    assert [severity(True, e, 0.1) for e in (0.15, -0.3, 0.45)] == ["low", "medium", "high"]
    assert severity(True, 0.01, 0.0) == "high"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"alpha": 1.0}, "alpha must lie strictly between 0 and 1, got 1.0"),
        ({"min_effect": -0.1}, "min_effect must be a finite number >= 0, got -0.1"),
        ({"confidence": 0.0}, "confidence must lie strictly between 0 and 1, got 0.0"),
        ({"n_resamples": 0}, "n_resamples and n_permutations must be at least 1"),
    ],
)
def test_test_options_are_checked_once(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TestOptions(**options)  # type: ignore[arg-type]


def test_dashboard_orders_and_describes_metrics_by_the_catalogue() -> None:
    findings = pd.DataFrame(
        {
            "metric": ["flip_rate", "seat_effect_size", "mean_delta", "custom", "mean_delta"],
            "output": [None, "assoc:x", "prob:b", "o", "prob:a"],
        }
    )
    assert metric_outputs(findings) == [
        ("mean_delta", "prob:a"),
        ("mean_delta", "prob:b"),
        ("seat_effect_size", "assoc:x"),
        ("flip_rate", ""),
        ("custom", "o"),
    ]
    described = metric_description("flip_rate")
    assert described is not None and "descriptive" in described
    assert metric_description("custom") is None
