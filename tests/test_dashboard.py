"""The dashboard on real run folders, through Streamlit's AppTest (no browser) and its pure helpers.

``runs_dir`` is the one fixture to switch to a run made by the real CLI (``cli_run_dir``); tests
that need a particular shape of run (two runs, no attention table, markup in a probe text) build
it with tests/support/run_factory.py.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.charts import forest_plot, threshold_rules
from dashboard.data import (
    RUNS_DIR_ENV,
    RunDataError,
    list_runs,
    parse_focus,
    read_table,
    runs_dir_from,
)
from dashboard.frames import (
    FindingsFilter,
    attention_difference,
    attention_means,
    rank_instances,
)
from dashboard.launch import APP_PATH, streamlit_command
from dashboard.render import TokenAttribution, text_html, token_color
from tests.support.run_factory import MARKUP_INSTANCE, write_run

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PAGES = {
    "findings": "app_pages/findings.py",
    "instances": "app_pages/instances.py",
    "attention": "app_pages/attention.py",
    "runs": "app_pages/runs.py",
}
OWN_TAG = re.compile(r'</?(?:span|div)(?:\s+[a-z-]+="[^"<>]*")*\s*>')
"""The tags the dashboard itself writes around probe text; attribute values hold no < or >."""
TIMEOUT = 60  # seconds per script run; the test machine's CPUs are shared


@pytest.fixture(params=["factory", "cli"])
def runs_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A private copy (tests may change it) of a runs folder with one complete run.

    Once written by tests/support/run_factory.py (two probe sets, three groups in one), once made by the real
    CLI on a tiny biased classifier (the ``cli_run_dir`` fixture of tests/conftest.py).
    """
    if request.param == "cli":
        source = Path(request.getfixturevalue("cli_run_dir"))
    else:
        source = tmp_path / "written"
        write_run(source)
    copy = tmp_path / "runs"
    shutil.copytree(source, copy)
    return copy


@pytest.fixture
def two_runs_dir(tmp_path: Path) -> Path:
    """An older biased run (with markup in one probe) and a newer run without bias or attention."""
    folder = tmp_path / "two_runs"
    write_run(folder, "20261124-231500-biased", created_at="2026-11-24T23:15:00Z", markup_probe=True)
    write_run(
        folder,
        "20261125-101500-unbiased",
        model_name="minilm-unbiased",
        created_at="2026-11-25T10:15:00Z",
        seed=1,
        bias_scale=0.0,
        with_attention=False,
    )
    return folder


def open_app(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv(RUNS_DIR_ENV, str(runs_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def go(at: AppTest, page: str) -> AppTest:
    at.switch_page(PAGES[page]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == [page.capitalize()]
    return at


def only_run(runs_dir: Path) -> Path:
    runs = list_runs(runs_dir)
    return runs[0].path


def chart_data(chart: object) -> dict[str, pd.DataFrame]:
    """The datasets an altair chart sent to the browser, by name."""
    proto = chart.proto  # type: ignore[attr-defined]
    return {ds.name: pa.ipc.open_stream(ds.data.data).read_pandas() for ds in proto.datasets}


def charts(at: AppTest) -> list[object]:
    return list(at.get("vega_lite_chart"))


# ---------------------------------------------------------------- every page on one run


def test_every_page_renders_with_its_widgets(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = only_run(runs_dir)
    findings = pd.read_parquet(run_dir / "findings.parquet")
    at = open_app(runs_dir, monkeypatch)

    assert [t.value for t in at.title] == ["Runs"]
    runs_table = at.dataframe[0].value
    assert list(runs_table["run_id"]) == [run.run_id for run in list_runs(runs_dir)]
    assert at.selectbox(key="runs_page_run").value == list_runs(runs_dir)[0].run_id

    go(at, "findings")
    shown = at.dataframe[0].value
    assert len(shown) == len(findings)
    assert {m.label for m in at.multiselect} == {"Probe set", "Attribute", "Metric", "Output", "Severity"}
    assert at.checkbox(key="f_significant").label == "Significant only"
    assert len(charts(at)) == 1

    go(at, "instances")
    assert [s.label for s in at.selectbox][:2] == ["Probe set", "Instance (largest |delta| first)"]
    examples = pd.read_parquet(run_dir / "examples.parquet")
    probe_set = at.selectbox(key="i_probe_set").value
    instance = at.selectbox(key="i_instance").value
    variants = examples[(examples["probe_set"] == probe_set) & (examples["instance_id"] == instance)]
    texts = [h.value for h in at.html if "probelens-text" in h.value]
    assert len(texts) == len(variants) >= 2
    assert [s.value for s in at.subheader][: len(variants)] == list(variants["variant"])

    go(at, "attention")
    assert at.selectbox(key="a_stat").value in {"entropy", "focus_mass", "special_mass", "mean_distance"}
    assert at.radio(key="a_scope").value == "All examples"
    assert len(charts(at)) == 2  # the mean map and the difference between two groups


def test_findings_filters_change_the_rows(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    findings = pd.read_parquet(only_run(runs_dir) / "findings.parquet")
    at = go(open_app(runs_dir, monkeypatch), "findings")
    assert len(at.dataframe[0].value) == len(findings)

    narrowed = 0
    for key, column in (
        ("f_probe_set", "probe_set"),
        ("f_attribute", "attribute"),
        ("f_metric", "metric"),
        ("f_output", "output"),
    ):
        values = sorted(findings[column].dropna().unique())
        if len(values) < 2:
            continue
        at.multiselect(key=key).set_value([values[-1]]).run()
        shown = at.dataframe[0].value
        assert set(shown[column]) == {values[-1]}
        assert len(shown) == (findings[column] == values[-1]).sum() < len(findings)
        at.multiselect(key=key).set_value([]).run()
        narrowed += 1
    assert narrowed, "the run should have findings that differ in at least one filtered column"

    at.checkbox(key="f_significant").check().run()
    significant = findings[findings["significant"].astype("boolean").fillna(False)]
    assert 0 < len(significant) < len(findings), "the run should have both kinds of finding"
    shown = at.dataframe[0].value
    assert shown["significant"].all() and len(shown) == len(significant)

    at.multiselect(key="f_severity").set_value(["none"]).run()
    assert not at.dataframe and any("No finding matches" in info.value for info in at.info)


def test_forest_plot_shows_intervals_zero_and_threshold(
    runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    findings = pd.read_parquet(only_run(runs_dir) / "findings.parquet")
    at = go(open_app(runs_dir, monkeypatch), "findings")
    plot_keys = list(
        findings[["metric", "output"]].fillna("").drop_duplicates().itertuples(index=False, name=None)
    )
    assert len(at.selectbox(key="f_plot").options) == len(plot_keys)
    for metric, output in plot_keys:
        at.selectbox(key="f_plot").set_value((metric, output)).run()
        assert not at.exception
        expected = findings[(findings["metric"] == metric) & (findings["output"].fillna("") == output)]
        thresholds = {float(t) for t in expected["threshold"].dropna() if t > 0}
        (chart,) = charts(at)
        spec = json.loads(chart.proto.spec)  # type: ignore[attr-defined]
        marks = [layer["mark"]["type"] for layer in spec["layer"]]
        assert marks == ["rule", "point", "rule"] + (["rule"] if thresholds else [])
        data = chart_data(chart).values()
        plotted = next(frame for frame in data if "effect" in frame.columns)
        assert sorted(plotted["effect"].round(9)) == sorted(expected["effect"].round(9))
        assert set(plotted["status"]) == {
            "significant" if flag else "not significant" for flag in expected["significant"].fillna(False)
        }
        positions = {float(x) for frame in data if list(frame.columns) == ["x"] for x in frame["x"]}
        signed = thresholds if metric == "flip_rate" else thresholds | {-t for t in thresholds}
        assert positions == signed | {0.0}


def test_instances_are_ranked_by_largest_delta(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = only_run(runs_dir)
    effects = pd.read_parquet(run_dir / "effects.parquet")
    at = go(open_app(runs_dir, monkeypatch), "instances")
    probe_set = at.selectbox(key="i_probe_set").value
    in_set = effects[effects["probe_set"] == probe_set]
    largest = in_set.assign(size=in_set["delta"].abs()).groupby("instance_id")["size"].max()
    options = at.selectbox(key="i_instance").options
    assert options[0].startswith(str(largest.idxmax()))
    sizes = [float(option.rsplit(" ", 1)[1].rstrip(")")) for option in options]
    assert sizes == sorted(sizes, reverse=True)


def test_attention_scope_and_statistic_change_the_map(
    runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = only_run(runs_dir)
    attention = pd.read_parquet(run_dir / "attention.parquet")
    examples = pd.read_parquet(run_dir / "examples.parquet")
    at = go(open_app(runs_dir, monkeypatch), "attention")
    at.selectbox(key="a_stat").set_value("focus_mass").run()
    at.radio(key="a_scope").set_value("A group").run()
    probe_set, group = at.selectbox(key="a_probe_set").value, at.selectbox(key="a_group").value
    assert not at.exception
    chart = charts(at)[0]
    assert f"group {group} of {probe_set}" in json.loads(chart.proto.spec)["title"]  # type: ignore[attr-defined]
    (cells,) = chart_data(chart).values()
    ids = examples.loc[(examples["probe_set"] == probe_set) & (examples["variant"] == group), "example_id"]
    rows = attention[(attention["stat"] == "focus_mass") & attention["example_id"].isin(ids)]
    expected = rows.groupby(["layer", "head"])["value"].mean()
    got = cells.set_index(["layer", "head"])["value"]
    assert got.sort_index().round(9).tolist() == expected.sort_index().round(9).tolist()

    focus_mass = attention[attention["stat"] == "focus_mass"]
    at.radio(key="a_scope").set_value("One example").run()
    example_id = at.selectbox(key="a_example").value
    (cells,) = chart_data(charts(at)[0]).values()
    one = focus_mass[focus_mass["example_id"] == example_id].set_index(["layer", "head"])["value"]
    assert (
        cells.set_index(["layer", "head"])["value"].sort_index().round(9).tolist()
        == one.sort_index().round(9).tolist()
    )

    diff_set = at.selectbox(key="a_diff_probe_set").value
    group_a, group_b = at.selectbox(key="a_diff_group_a").value, at.selectbox(key="a_diff_group_b").value
    (cells,) = chart_data(charts(at)[1]).values()
    in_set = examples[examples["probe_set"] == diff_set]

    def mean_of(group: str) -> pd.Series:
        ids = in_set.loc[in_set["variant"] == group, "example_id"]
        return focus_mass[focus_mass["example_id"].isin(ids)].groupby(["layer", "head"])["value"].mean()

    expected = (mean_of(str(group_a)) - mean_of(str(group_b))).sort_index()
    got = cells.set_index(["layer", "head"])["value"].sort_index()
    assert group_a != group_b and got.round(9).tolist() == expected.round(9).tolist()


# ---------------------------------------------------------------- two runs, missing tables, escaping


def test_chosen_run_flows_between_pages(two_runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(two_runs_dir, monkeypatch)
    newest, older = (run.run_id for run in list_runs(two_runs_dir))
    assert at.session_state["probelens_run"] == newest and at.query_params["run"] == newest

    at.selectbox(key="runs_page_run").set_value(older).run()
    assert at.query_params["run"] == older
    assert any(older in c.value for c in at.sidebar.caption)
    go(at, "findings")
    assert any(older in c.value for c in at.caption)
    older_findings = pd.read_parquet(two_runs_dir / older / "findings.parquet")
    shown = at.dataframe[0].value
    assert sorted(shown["effect"].round(9)) == sorted(older_findings["effect"].round(9))
    go(at, "attention")
    assert charts(at), "the older run has attention statistics"
    go(at, "runs")
    assert at.selectbox(key="runs_page_run").value == older


def test_run_named_in_the_url_is_opened(two_runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUNS_DIR_ENV, str(two_runs_dir))
    older = list_runs(two_runs_dir)[1].run_id
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = older
    at.run()
    assert not at.exception
    assert at.session_state["probelens_run"] == older


def test_two_runs_are_compared_side_by_side(two_runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(two_runs_dir, monkeypatch)
    newest, older = (run.run_id for run in list_runs(two_runs_dir))
    at.selectbox(key="runs_page_compare").set_value(older).run()
    assert not at.exception
    compared = at.dataframe[-1].value
    newest_findings = pd.read_parquet(two_runs_dir / newest / "findings.parquet")
    older_findings = pd.read_parquet(two_runs_dir / older / "findings.parquet")
    assert len(compared) == len(newest_findings) == len(older_findings)
    key = ["probe_set", "group_a", "group_b", "metric"]
    merged = newest_findings.merge(older_findings, on=key, suffixes=("_a", "_b"))
    assert sorted((merged["effect_b"] - merged["effect_a"]).round(9)) == sorted(compared["change"].round(9))


def test_missing_attention_table_gives_a_message(two_runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = go(open_app(two_runs_dir, monkeypatch), "attention")  # the newest run was made without attention
    assert not charts(at)
    assert any("no attention table" in info.value for info in at.info)


def test_missing_attributions_leave_text_and_a_message(
    two_runs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    newest = list_runs(two_runs_dir)[0]
    (newest.path / "attributions.parquet").unlink()
    at = go(open_app(two_runs_dir, monkeypatch), "instances")
    assert any("No token attributions" in info.value for info in at.info)
    assert [h.value for h in at.html if "probelens-text" in h.value]


def test_damaged_table_is_reported_not_raised(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (only_run(runs_dir) / "findings.parquet").write_bytes(b"not parquet at all")
    at = go(open_app(runs_dir, monkeypatch), "findings")
    assert any("cannot be read" in error.value for error in at.error)


def test_probe_text_markup_is_escaped(two_runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(two_runs_dir, monkeypatch)
    older = list_runs(two_runs_dir)[1].run_id
    at.selectbox(key="runs_page_run").set_value(older).run()
    go(at, "instances")
    at.selectbox(key="i_probe_set").set_value("gender").run()
    at.selectbox(key="i_instance").set_value(MARKUP_INSTANCE).run()
    assert not at.exception
    assert at.selectbox(key="i_method").value is not None, "the markup instance carries attributions"
    examples = pd.read_parquet(two_runs_dir / older / "examples.parquet")
    originals = list(examples.loc[examples["instance_id"] == MARKUP_INSTANCE, "text"])
    texts = [h.value for h in at.html if "probelens-text" in h.value]
    assert len(texts) == len(originals) == 3
    for shown, original in zip(texts, originals, strict=True):
        assert "<script>" in original and "<b>" in original
        assert "background:rgba(" in shown, "coloured by attribution"
        text_only = OWN_TAG.sub("", shown.split("special tokens:")[0])
        assert "<" not in text_only and ">" not in text_only, "every < and > of the probe text is escaped"
        assert html.unescape(text_only) == original


# ---------------------------------------------------------------- runs folder states


def test_missing_runs_folder_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(tmp_path / "nowhere", monkeypatch)
    assert any("does not exist" in w.value for w in at.warning)
    for page in ("findings", "instances", "attention"):
        go(at, page)
        assert any("No run to show" in info.value for info in at.info)


def test_unreadable_manifest_is_listed_not_raised(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = runs_dir / "zz-broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{ not json", encoding="utf-8")
    at = open_app(runs_dir, monkeypatch)
    table = at.dataframe[0].value.set_index("run_id")
    assert table.loc["zz-broken", "status"] == "unreadable"
    assert at.session_state["probelens_run"] != "zz-broken"


# ---------------------------------------------------------------- helpers without Streamlit


def test_runs_dir_comes_from_argument_then_environment(tmp_path: Path) -> None:
    assert runs_dir_from(["--runs", str(tmp_path)], {RUNS_DIR_ENV: "/elsewhere"}) == tmp_path
    assert runs_dir_from([f"--runs={tmp_path}"], {}) == tmp_path
    assert runs_dir_from(["-q"], {RUNS_DIR_ENV: str(tmp_path)}) == tmp_path
    assert runs_dir_from([], {}) == Path("runs")


def test_streamlit_command_binds_to_localhost(tmp_path: Path) -> None:
    command = streamlit_command(tmp_path, 8765)
    assert command[:5] == [sys.executable, "-m", "streamlit", "run", str(APP_PATH)]
    options = dict(zip(command[5:-3:2], command[6:-3:2], strict=True))
    assert options == {
        "--server.address": "127.0.0.1",
        "--server.port": "8765",
        "--server.headless": "true",
        "--browser.gatherUsageStats": "false",
    }
    assert command[-3:] == ["--", "--runs", str(tmp_path.resolve())]
    for bad in (0, 70000, "80", True):
        with pytest.raises(ValueError, match="port"):
            streamlit_command(tmp_path, bad)  # type: ignore[arg-type]


def test_missing_table_reads_empty_with_contract_columns(runs_dir: Path) -> None:
    run_dir = only_run(runs_dir)
    (run_dir / "attention.parquet").unlink()
    frame = read_table(run_dir, "attention")
    assert frame.empty and list(frame.columns) == ["example_id", "layer", "head", "stat", "value"]
    pd.DataFrame({"example_id": ["x"]}).to_parquet(run_dir / "attention.parquet")
    with pytest.raises(RunDataError, match="missing column"):
        read_table(run_dir, "attention")
    with pytest.raises(RunDataError, match="unknown table"):
        read_table(run_dir, "nonsense")


def test_findings_filter_and_instance_ranking_on_a_small_frame() -> None:
    findings = pd.DataFrame(
        {
            "probe_set": ["a", "a", "b"],
            "attribute": ["gender"] * 3,
            "metric": ["mean_delta", "flip_rate", "mean_delta"],
            "output": ["prob:positive", "label", "prob:positive"],
            "severity": ["high", "none", "low"],
            "significant": pd.array([True, None, True], dtype="boolean"),
        }
    )
    assert len(FindingsFilter().apply(findings)) == 3
    assert list(FindingsFilter(significant_only=True).apply(findings).index) == [0, 2]
    assert list(FindingsFilter(probe_sets=("a",), metrics=("flip_rate",)).apply(findings).index) == [1]
    assert list(FindingsFilter(severities=("low", "high")).apply(findings).index) == [0, 2]

    examples = pd.DataFrame(
        {"probe_set": ["s"] * 6, "instance_id": ["i1", "i1", "i2", "i2", "i3", "i3"], "attribute": ["g"] * 6}
    )
    effects = pd.DataFrame(
        {"probe_set": ["s"] * 3, "instance_id": ["i1", "i2", "i2"], "delta": [0.1, -0.3, 0.05]}
    )
    ranked = rank_instances(effects, examples, "s")
    assert list(ranked["instance_id"]) == ["i2", "i1", "i3"]
    assert ranked["max_abs_delta"].iloc[0] == pytest.approx(0.3) and pd.isna(ranked["max_abs_delta"].iloc[2])


def test_attention_means_and_difference() -> None:
    attention = pd.DataFrame(
        {
            "example_id": ["a", "a", "b", "b", "a"],
            "layer": [0, 0, 0, 0, 1],
            "head": [0, 1, 0, 1, 0],
            "stat": ["entropy"] * 4 + ["focus_mass"],
            "value": [1.0, 2.0, 3.0, 6.0, 9.0],
        }
    )
    means = attention_means(attention, "entropy")
    assert means[["layer", "head", "value", "n_examples"]].values.tolist() == [[0, 0, 2.0, 2], [0, 1, 4.0, 2]]
    difference = attention_difference(attention, "entropy", ["a"], ["b"])
    assert difference["value"].tolist() == [-2.0, -4.0]


def test_text_html_escapes_colours_and_marks_focus() -> None:
    text = "<b>Ann</b> & co"
    tokens = [
        TokenAttribution("[CLS]", 0, 0, 0.01),
        TokenAttribution("<b>", 0, 3, -0.5),
        TokenAttribution("Ann", 3, 6, 1.0, is_focus=True),
        TokenAttribution("&", 11, 12, 0.0),
    ]
    shown = text_html(text, tokens, focus=[(3, 6)])
    assert "<b>" not in shown and "&lt;b&gt;" in shown and "&amp;" in shown
    assert f"background:{token_color(1.0, 1.0)};border-bottom:2px solid #111" in shown
    assert token_color(-0.5, 1.0) in shown and token_color(-0.5, 1.0).startswith("rgba(31, 119, 180")
    assert 'title="&lt;b&gt;: -0.5000"' in shown
    assert "special tokens" in shown and "[CLS]" in shown
    assert token_color(0.2, 1.0) == "rgba(214, 39, 40, 0.170)"


def test_text_html_lets_right_to_left_text_run_right_to_left() -> None:
    text = "هذا الفيلم رائع"
    shown = text_html(text, [TokenAttribution("رائع", 11, 15, 0.5, is_focus=True)], focus=[(11, 15)])
    assert 'dir="auto"' in shown and "unicode-bidi:plaintext" in shown  # no language: the text decides
    # a known right-to-left language runs right to left even when it starts with a Latin word
    assert 'dir="rtl"' in text_html("iPhone " + text, lang="ar") and 'dir="rtl"' in text_html(
        text, lang="he-IL"
    )
    assert 'dir="auto"' in text_html("Der Film", lang="de")
    assert "رائع" in shown and shown.index("هذا") < shown.index(
        "رائع"
    )  # logical order kept; the browser lays it out


def test_parse_focus_accepts_json_and_rejects_junk() -> None:
    assert parse_focus("[[0, 4], [10, 12]]") == [(0, 4), (10, 12)]
    assert parse_focus([[1, 2]]) == [(1, 2)]
    assert parse_focus(None) == [] and parse_focus(float("nan")) == [] and parse_focus("oops") == []
    assert parse_focus("[[5, 2], [1, 3]]") == [(1, 3)]


def test_threshold_rules_are_one_sided_for_flip_rates() -> None:
    findings = pd.DataFrame({"metric": ["mean_delta", "flip_rate"], "threshold": [0.02, 0.05]})
    assert threshold_rules(findings)["x"].tolist() == [-0.02, 0.02, 0.05]
    plotted = forest_plot(
        pd.DataFrame(
            {
                "probe_set": ["p"],
                "attribute": ["gender"],
                "group_a": ["x"],
                "group_b": ["y"],
                "metric": ["mean_delta"],
                "output": ["prob:positive"],
                "effect": [0.1],
                "ci_low": [0.05],
                "ci_high": [0.15],
                "q_value": [0.01],
                "n": [10],
                "threshold": [0.02],
                "significant": [True],
                "severity": ["high"],
            }
        )
    ).to_dict()
    assert len(plotted["layer"]) == 4


def test_dashboard_does_not_import_torch() -> None:
    code = (
        "import sys, runpy; "
        "import dashboard.data, dashboard.frames, dashboard.charts, dashboard.render, dashboard.session, "
        "dashboard.launch; "
        "print('torch' in sys.modules, 'audit.runner' in sys.modules)"
    )
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.stdout.split() == ["False", "False"]


def test_an_unbounded_interval_reads_unbounded_in_the_table_and_the_forest_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row whose test cannot bound its interval (-inf, inf: n = 4 at 95%) shows the words in the
    findings table's interval column, and in the forest plot a dot marked "unbounded" (vega drops the
    bar: JSON has no infinity) whose tooltip says why; bounded rows read as [low, high]."""
    run_dir = write_run(tmp_path)
    findings = pd.read_parquet(run_dir / "findings.parquet")
    target = findings.index[findings["metric"] == "mean_delta"][0]
    findings.loc[target, ["ci_low", "ci_high"]] = [float("-inf"), float("inf")]
    findings.loc[target, "n"] = 4
    findings.to_parquet(run_dir / "findings.parquet")
    metric, output = findings.loc[target, "metric"], findings.loc[target, "output"]
    text = "unbounded (n = 4: too few instances to exclude any value at 95%)"

    at = go(open_app(tmp_path, monkeypatch), "findings")
    shown = at.dataframe[0].value
    assert "interval" in shown.columns
    assert (shown["interval"] == text).sum() == 1
    bounded = shown[shown["interval"] != text].iloc[0]
    assert bounded["interval"] == f"[{bounded['ci_low']:+.3f}, {bounded['ci_high']:+.3f}]"

    at.selectbox(key="f_plot").set_value((metric, output)).run()
    assert not at.exception
    (chart,) = charts(at)
    spec = json.loads(chart.proto.spec)  # type: ignore[attr-defined]
    texts = [layer for layer in spec["layer"] if layer["mark"]["type"] == "text"]
    assert len(texts) == 1 and texts[0]["encoding"]["text"] == {"value": "unbounded"}
    plotted = next(frame for frame in chart_data(chart).values() if "effect" in frame.columns)
    assert plotted.loc[plotted["unbounded"], "interval"].tolist() == [text]
    assert plotted["ci_low"].isna().sum() == plotted["ci_high"].isna().sum() == 1  # no bar to draw
    assert any("unbounded" in caption.value for caption in at.caption)


def test_run_written_before_schema_5_opens_on_every_page(
    cli_run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run made before version 5 (no ci_method, no completeness columns, no pair_attributions or
    patching files) reads with those columns null and every page opens."""
    runs = tmp_path / "runs"
    old = runs / "tiny-biased"
    shutil.copytree(cli_run_dir / "tiny-biased", old)
    dropped = {
        "findings": ["ci_method"],
        "attributions": ["n_steps", "completeness_error", "converged"],
        "attribution_pairs": ["converged"],
    }
    for name, columns in dropped.items():
        frame = pd.read_parquet(old / f"{name}.parquet")
        frame.drop(columns=columns).to_parquet(old / f"{name}.parquet")
    for name in ("pair_attributions", "patching", "patching_effects"):
        (old / f"{name}.parquet").unlink()
    for name, columns in dropped.items():
        frame = read_table(old, name)
        assert frame[columns].isna().all().all(), name
    at = open_app(runs, monkeypatch)
    for page in ("findings", "instances", "attention", "runs"):
        go(at, page)
