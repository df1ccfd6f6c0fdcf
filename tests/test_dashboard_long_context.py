"""The "Long documents" page through Streamlit's AppTest, and its data shaping without Streamlit.

Runs are written by tests/support/long_run_factory.py (a planted model: the key sentence works at the ends,
less in the middle of 512-token documents, and is truncated away past the model's 512-token limit;
an identity swap that matters only in the middle of 512-token documents). Every assertion compares
what the page shows with the run's own parquet tables.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.data import read_table
from dashboard.long_context import (
    RunEffectiveContext,
    attention_by_layer,
    effective_context_by_run,
    key_effect_cells,
    long_findings,
    model_max_length,
    segment_rows,
    truncation_mark,
)
from tests.support.long_run_factory import (
    MARKUP_KEY,
    MARKUP_TEXT,
    PROBE_SET,
    downgrade_to_schema_1,
    write_long_run,
)
from tests.support.run_factory import write_run
from tests.test_dashboard import APP, chart_data, charts, open_app

PAGE = "app_pages/long_context.py"
OTHER_PAGES = (
    "app_pages/runs.py",
    "app_pages/findings.py",
    "app_pages/instances.py",
    "app_pages/attention.py",
)
SECTIONS = [
    "Key sentence: effect by position and document length",
    "Effect by position, per document length",
    "Effective context of the model",
    "Attention on the key sentence by layer",
    "Identity swaps by position",
    "Middle dip",
    "Segment attributions of one document",
]
LONG_RUN = "20261201-101500-minilm-sentiment-long"
WIDE_RUN = "20261202-101500-modernbert-sentiment-long"


@pytest.fixture
def long_runs_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "long_runs"
    write_long_run(folder, LONG_RUN, markup=True)
    return folder


def open_page(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    at = open_app(runs_dir, monkeypatch)
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Long documents"]
    return at


def chart_titled(at: AppTest, start: str) -> tuple[object, list[pd.DataFrame]]:
    """The chart whose title starts with ``start`` and the datasets it sent to the browser."""
    for chart in charts(at):
        title = json.loads(chart.proto.spec).get("title", "")  # type: ignore[attr-defined]
        text = title.get("text", "") if isinstance(title, dict) else str(title)
        if text.startswith(start):
            return chart, list(chart_data(chart).values())
    raise AssertionError(f"no chart titled {start!r}")


def findings_of(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "findings.parquet")


def metric_value(at: AppTest, label: str) -> str:
    (metric,) = [m for m in at.metric if m.label == label]
    return str(metric.value)


# ---------------------------------------------------------------- the page on a long-document run


def test_every_element_shows_the_run_s_numbers(long_runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = long_runs_dir / LONG_RUN
    findings = findings_of(run_dir)
    at = open_page(long_runs_dir, monkeypatch)
    assert [s.value for s in at.subheader] == SECTIONS
    assert not at.info, [i.value for i in at.info]
    assert len(charts(at)) == 6

    # 1. heat map: one cell per length x position with the findings' effect; truncated cells say "cut"
    key_rows = findings[findings["metric"] == "key_effect"]
    _, datasets = chart_titled(at, "key effect")
    cells = max(datasets, key=len)
    assert len(cells) == len(key_rows) == 33
    got = cells.set_index(["doc_length", "position"]).sort_index()
    expected = key_rows.assign(doc_length=key_rows["doc_length"].astype(int)).set_index(
        ["doc_length", "position"]
    )
    expected = expected.sort_index()
    assert got["effect"].round(9).tolist() == expected["effect"].round(9).tolist()
    assert got["ci_high"].round(9).tolist() == expected["ci_high"].round(9).tolist()
    cut = got[got["mark"] == "cut"]
    truncated = expected[expected["note"].fillna("").str.contains("truncated away")]
    assert list(cut.index) == list(truncated.index)
    assert {length for length, _ in cut.index} == {2048} and min(p for _, p in cut.index) == pytest.approx(
        0.3
    )
    assert (cut["effect"] == 0).all(), "a key that never reached the model has no effect"
    marked = next(frame for frame in datasets if len(frame) == len(cut))
    assert set(marked["mark"]) == {"cut"}

    # 2. curves: confidence band per length, and the effective context of each length marked
    _, datasets = chart_titled(at, "key effect by position")
    band = max(datasets, key=len)
    assert sorted(band["ci_low"].round(9)) == sorted(key_rows["ci_low"].round(9))
    marks = next(frame for frame in datasets if "tokens" in frame.columns)
    per_length = findings[(findings["metric"] == "effective_context") & findings["doc_length"].notna()]
    assert marks.set_index("doc_length")["tokens"].sort_index().tolist() == pytest.approx(
        per_length.set_index("doc_length")["effect"].sort_index().tolist()
    )
    assert at.dataframe[0].value["tokens"].tolist() == pytest.approx(per_length["effect"].tolist())

    # 3. the model-level effective context, next to the model's maximum length
    (model_level,) = findings.loc[
        (findings["metric"] == "effective_context") & findings["doc_length"].isna(), "effect"
    ]
    assert metric_value(at, "Effective context") == f"{model_level:,.0f} tokens" == "512 tokens"
    assert metric_value(at, "Model maximum length") == "512 tokens"
    _, datasets = chart_titled(at, "effective context")
    bars = next(frame for frame in datasets if "tokens" in frame.columns)
    assert bars["tokens"].tolist() == pytest.approx([model_level])
    assert bars["max_length"].tolist() == [512.0]

    # 5. identity swaps: the planted middle of 512-token documents is what is significant
    assert at.selectbox(key="lc_swap_pair").value == ("gender", "female", "male", "prob:positive")
    _, datasets = chart_titled(at, "swap effect")
    swaps = max(datasets, key=len)
    swap_rows = findings[(findings["metric"] == "swap_effect") & findings["position"].notna()]
    assert sorted(swaps["effect"].round(9)) == sorted(swap_rows["effect"].round(9))
    flagged = swaps[swaps["significant"]]
    assert set(zip(flagged["doc_length"], flagged["position"].round(1), strict=True)) == {
        (512, p) for p in (0.3, 0.4, 0.5, 0.6, 0.7)
    }
    assert any("512 tokens at 50%" in c.value for c in at.caption)
    truncated = swaps[swaps["sentence"] == "truncated away"]
    assert set(zip(truncated["doc_length"], truncated["position"].round(1), strict=True)) == {
        (2048, p) for p in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    }
    overall = at.dataframe[1].value
    pooled = findings[(findings["metric"] == "swap_effect") & findings["position"].isna()]
    assert overall["effect"].tolist() == pytest.approx(pooled["effect"].tolist())
    dips = at.dataframe[2].value
    dip_rows = findings[findings["metric"] == "middle_dip"].sort_values("doc_length")
    assert dips["doc_length"].tolist() == [128, 512, 2048]
    assert dips["effect"].tolist() == pytest.approx(dip_rows["effect"].tolist())
    assert dips["note"].fillna("").str.contains("measures truncation").tolist() == [False, False, True]


def test_attention_on_the_key_sentence_by_layer(long_runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = long_runs_dir / LONG_RUN
    attention = pd.read_parquet(run_dir / "attention.parquet")
    examples = pd.read_parquet(run_dir / "examples.parquet")
    at = open_page(long_runs_dir, monkeypatch)
    assert at.selectbox(key="lc_attention_length").value == 512, "the longest length within the model's limit"
    assert at.selectbox(key="lc_attention_stat").value == "focus_mass"

    keys = examples[
        (examples["doc_length"] == 512) & examples["position"].notna() & examples["swap_group"].isna()
    ]
    rows = attention[(attention["stat"] == "focus_mass") & attention["example_id"].isin(keys["example_id"])]
    per_example = rows.groupby(["example_id", "layer"], as_index=False)["value"].mean()
    per_example = per_example.merge(keys[["example_id", "position"]], on="example_id")
    expected = per_example.groupby(["layer", "position"])["value"].mean()
    _, (lines,) = chart_titled(at, "mean focus_mass by layer")
    got = lines.set_index(["layer", "position"])["value"].sort_index()
    assert got.index.tolist() == expected.sort_index().index.tolist()
    assert got.round(9).tolist() == expected.sort_index().round(9).tolist()
    layer_0 = got.xs(0, level="layer")
    assert layer_0[0.0] > layer_0[0.5] < layer_0[1.0], "planted: the key gets less attention in the middle"
    assert (lines["n_examples"] == keys["instance_id"].nunique()).all()

    # 2048-token documents: keys past 30% never reached the model, so those positions have no line
    at.selectbox(key="lc_attention_length").set_value(2048).run()
    assert not at.exception
    _, (lines,) = chart_titled(at, "mean focus_mass by layer, 2,048")
    assert sorted(set(lines["position"])) == [0.0, 0.1, 0.2]
    assert any("key truncated away): 30%" in c.value for c in at.caption)

    at.selectbox(key="lc_attention_stat").set_value("sink_mass").run()
    _, (lines,) = chart_titled(at, "mean sink_mass by layer")
    assert len(lines) == 4 * 11


def test_segment_attributions_of_a_chosen_document(
    long_runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = long_runs_dir / LONG_RUN
    segments = pd.read_parquet(run_dir / "segment_attributions.parquet")
    at = open_page(long_runs_dir, monkeypatch)
    example_id = f"{PROBE_SET}/key-pos-1-2048/p050"
    at.selectbox(key="lc_segment_example").set_value(example_id).run()
    at.selectbox(key="lc_segment_method").set_value("segment_ablation").run()
    assert not at.exception
    expected = segments[(segments["example_id"] == example_id) & (segments["method"] == "segment_ablation")]
    _, datasets = chart_titled(at, "segment_ablation")
    bars = max(datasets, key=len)
    assert bars.sort_values("segment_index")["attribution"].tolist() == pytest.approx(
        expected.sort_values("segment_index")["attribution"].tolist()
    )
    assert (bars["kind"] == "key sentence").tolist() == bars["is_key"].tolist()
    assert bars["is_key"].sum() == 1
    cut = next(frame for frame in datasets if "reached" in frame.columns and len(frame) < len(bars))
    assert len(cut) == int((expected["n_tokens"] == 0).sum()) > 0, "segments past the limit are drawn as cut"
    assert any("truncated away and never reached the model" in c.value for c in at.caption)

    at.selectbox(key="lc_segment_example").set_value(f"{PROBE_SET}/key-pos-1-512/p050").run()
    key_row = segments[
        (segments["example_id"] == f"{PROBE_SET}/key-pos-1-512/p050")
        & (segments["method"] == "segment_ablation")
        & segments["is_key"]
    ].iloc[0]
    assert any(f"attribution {key_row['attribution']:+.4f}" in c.value for c in at.caption)


def test_segment_text_is_escaped(long_runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(long_runs_dir, monkeypatch)
    at.selectbox(key="lc_segment_example").set_value(f"{PROBE_SET}/{MARKUP_KEY}-512/p050").run()
    assert not at.exception
    (shown,) = [h.value for h in at.html if "probelens-text" in h.value]
    assert "<script>" not in shown and "<b>" not in shown
    escaped = (
        MARKUP_TEXT.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#x27;")
    )
    assert escaped in shown
    assert "border-bottom:2px solid #111" in shown, "the key segment is underlined"
    table = at.dataframe[-1].value
    assert MARKUP_TEXT in table.loc[table["is_key"], "text"].tolist()


def test_effective_context_of_several_runs(long_runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_long_run(
        long_runs_dir,
        WIDE_RUN,
        model_name="modernbert-sentiment",
        created_at="2026-12-02T10:15:00Z",
        max_length=1024,
        seed=1,
    )
    at = open_app(long_runs_dir, monkeypatch)
    at.selectbox(key="runs_page_compare").set_value(LONG_RUN).run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.multiselect(key="lc_compare_runs").value == [WIDE_RUN, LONG_RUN]
    _, datasets = chart_titled(at, "effective context")
    bars = next(frame for frame in datasets if "tokens" in frame.columns).set_index("run")
    for run_id, limit in ((WIDE_RUN, 1024.0), (LONG_RUN, 512.0)):
        findings = findings_of(long_runs_dir / run_id)
        (model_level,) = findings.loc[
            (findings["metric"] == "effective_context") & findings["doc_length"].isna(), "effect"
        ]
        assert bars.loc[run_id, "tokens"] == pytest.approx(model_level)
        assert bars.loc[run_id, "max_length"] == limit
    reach = bars["tokens"].astype(float)
    assert reach[WIDE_RUN] > reach[LONG_RUN], "the model with the longer limit reads further"
    assert metric_value(at, "Model maximum length") == "1,024 tokens"
    # with a 1,024-token limit the key in the middle of 2,048-token documents is cut in some documents only
    _, datasets = chart_titled(at, "key effect")
    cells = max(datasets, key=len)
    partly = cells[cells["mark"].str.fullmatch(r"\d+/8 cut")]
    findings = findings_of(long_runs_dir / WIDE_RUN)
    keys = findings[findings["metric"] == "key_effect"]
    noted = keys[keys["note"].fillna("").str.contains(r"truncated away in \d+ of 8", regex=True)]
    assert len(partly) == len(noted) >= 1
    assert set(partly["doc_length"]) == {2048}

    at.multiselect(key="lc_compare_runs").set_value([LONG_RUN]).run()
    _, datasets = chart_titled(at, "effective context")
    assert next(frame for frame in datasets if "tokens" in frame.columns)["run"].tolist() == [LONG_RUN]


def test_sections_without_their_tables_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "bare"
    write_long_run(folder, with_attention=False, with_segments=False)
    at = open_page(folder, monkeypatch)
    infos = [i.value for i in at.info]
    assert any("No attention statistics" in info for info in infos)
    assert any("No segment attributions" in info for info in infos)
    assert len(charts(at)) == 4  # heat map, curves, effective context, swaps


# ---------------------------------------------------------------- runs without long documents


def test_counterfactual_run_has_no_long_documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "counterfactual"
    write_run(folder)
    at = open_page(folder, monkeypatch)
    assert any("no long-document findings" in info.value for info in at.info)
    assert not charts(at) and not at.subheader


def test_schema_1_run_opens_on_every_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "old"
    run_dir = downgrade_to_schema_1(write_run(folder))
    assert "doc_length" not in pd.read_parquet(run_dir / "examples.parquet").columns
    assert "note" not in pd.read_parquet(run_dir / "findings.parquet").columns
    examples = read_table(run_dir, "examples")
    assert examples["doc_length"].isna().all() and examples["n_windows"].isna().all()
    assert read_table(run_dir, "segment_attributions").empty

    at = open_app(folder, monkeypatch)
    for page in OTHER_PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert at.title, page
    assert charts(at), "the attention page still draws the old run"
    at = open_page(folder, monkeypatch)
    assert any("no long-document findings" in info.value for info in at.info)


def test_other_pages_open_on_a_long_run(long_runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(long_runs_dir, monkeypatch)
    for page in OTHER_PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
    assert charts(at), "the attention page draws the long run's statistics"


# ---------------------------------------------------------------- helpers without Streamlit


def test_truncation_marks_from_notes() -> None:
    assert truncation_mark(None) == "" and truncation_mark(float("nan")) == "" and truncation_mark("") == ""
    assert (
        truncation_mark(
            "key sentence beyond the model's 512-token limit: truncated away, so its effect is 0 by construction"
        )
        == "cut"
    )
    assert truncation_mark("key sentence truncated away in 3 of 8 instances") == "3/8 cut"
    assert truncation_mark("tokens; furthest position where the key still moves the output") == ""


def test_key_effect_cells_and_schema_1_findings() -> None:
    findings = pd.DataFrame(
        {
            "probe_set": ["s", "s", "s", "other"],
            "attribute": ["position"] * 4,
            "group_a": ["p000", "p100", None, "x"],
            "group_b": ["none", "none", None, "y"],
            "metric": ["key_effect", "key_effect", "effective_context", "mean_delta"],
            "output": ["key"] * 3 + ["prob:positive"],
            "effect": [0.4, 0.0, 128.0, 0.1],
            "ci_low": [0.3, 0.0, 100.0, 0.0],
            "ci_high": [0.5, 0.0, 128.0, 0.2],
            "n": [8, 8, 8, 8],
            "q_value": [0.01, 1.0, None, 0.2],
            "significant": pd.array([True, False, False, False], dtype="boolean"),
            "doc_length": pd.array([2048, 2048, None, None], dtype="Int64"),
            "position": [0.0, 1.0, None, None],
            "note": [None, "key sentence truncated away in 8 of 8 instances", None, None],
        }
    )
    long = long_findings(findings)
    assert len(long) == 3 and set(long["probe_set"]) == {"s"}
    cells = key_effect_cells(long, "s")
    assert cells[["doc_length", "position", "mark"]].values.tolist() == [
        [2048, 0.0, ""],
        [2048, 1.0, "8/8 cut"],
    ]
    old = findings.drop(columns=["doc_length", "position", "note"])
    assert long_findings(old[old["metric"] == "mean_delta"]).empty


def test_attention_by_layer_averages_heads_then_instances() -> None:
    examples = pd.DataFrame(
        {
            "example_id": ["a", "b", "c", "d", "e"],
            "probe_set": ["s"] * 5,
            "doc_length": [512, 512, 512, 512, 128],
            "position": [0.0, 0.0, 0.5, 0.0, 0.0],
            "swap_group": [None, None, None, "female", None],
        }
    )
    attention = pd.DataFrame(
        {
            "example_id": ["a", "a", "b", "c", "c", "d", "e"],
            "layer": [0] * 7,
            "head": [0, 1, 0, 0, 1, 0, 0],
            "stat": ["focus_mass"] * 7,
            "value": [0.2, 0.4, 0.6, float("nan"), float("nan"), 9.0, 9.0],
        }
    )
    values = attention_by_layer(attention, examples, probe_set="s", doc_length=512)
    # a: mean of its heads 0.3, b: 0.6 -> 0.45; c has no value; d is a swap variant; e another length
    assert values[["layer", "position", "value", "n_examples"]].values.tolist() == [[0, 0.0, 0.45, 2]]


def test_effective_context_by_run_and_max_length() -> None:
    with_row = pd.DataFrame(
        {
            "probe_set": ["s"],
            "metric": ["effective_context"],
            "effect": [300.0],
            "ci_low": [250.0],
            "ci_high": [320.0],
            "doc_length": [None],
            "position": [None],
            "note": ["model level"],
        }
    )
    without = with_row.assign(doc_length=[512.0])
    rows = effective_context_by_run(
        [RunEffectiveContext("r1", "m1", 512, with_row), RunEffectiveContext("r2", "m2", None, without)]
    )
    assert rows[["run", "run_label", "tokens", "max_length"]].values.tolist() == [
        ["r1", "m1 (r1)", 300.0, 512.0]
    ]
    assert model_max_length({"max_length": 512}) == 512
    bad_models: list[dict[str, object]] = [
        {},
        {"max_length": None},
        {"max_length": True},
        {"max_length": 0},
        {"max_length": "512"},
    ]
    for bad in bad_models:
        assert model_max_length(bad) is None


def test_segment_rows_cut_text_from_the_document() -> None:
    text = "Alpha one. Key two. Gamma three."
    segments = pd.DataFrame(
        {
            "example_id": ["x"] * 3 + ["y"],
            "method": ["segment_ablation"] * 4,
            "output": ["prob:positive"] * 4,
            "segment_index": [2, 0, 1, 0],
            "char_start": [20, 0, 11, 0],
            "char_end": [32, 10, 19, 5],
            "n_tokens": [0, 3, 3, 1],
            "attribution": [0.0, 0.01, 0.3, 9.0],
            "is_key": [False, False, True, False],
        }
    )
    rows = segment_rows(segments, "x", "segment_ablation", text)
    assert rows["text"].tolist() == ["Alpha one.", "Key two.", "Gamma three."]
    assert rows["reached"].tolist() == [True, True, False]
    assert rows["end"].iloc[-1] == pytest.approx(1.0)


def test_long_context_module_does_not_import_torch() -> None:
    code = "import sys, dashboard.long_context; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(APP).parent.parent,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.stdout.split() == ["False"]
