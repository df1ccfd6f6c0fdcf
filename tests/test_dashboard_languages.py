"""The "Languages" page through Streamlit's AppTest, and its data shaping without Streamlit.

Runs are written by tests/parallel_run_factory.py: the built-in multilingual texts in en (the
reference), de, ar and zh; German planted less positive (a parity finding), Arabic only noisy,
Chinese mostly unknown tokens (unreadable: its parity rows reach q < alpha but are no bias finding).
Every assertion compares what the page shows with the run's own parquet tables.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.data import read_table
from dashboard.languages import (
    NOT_AVAILABLE,
    NOT_SIGNIFICANT,
    SIGNIFICANT,
    UNREADABLE_LABEL,
    RunParity,
    agreement_table,
    comparison_metric,
    language_order,
    language_scripts,
    parallel_findings,
    parallel_probe_sets,
    parity_by_run,
    parity_chart,
    parity_rows,
    rank_parallel_instances,
    reference_language,
    side_by_side_html,
    side_by_side_rows,
    tokenization_chart,
    tokenization_rows,
    unknown_rate_limit,
    unreadable_languages,
)
from dashboard.render import TokenAttribution
from tests.support.parallel_run_factory import (
    ALPHA,
    LANGUAGES,
    MARKUP_INSTANCE,
    MARKUP_TAIL,
    PROBE_SET,
    REFERENCE,
    RTL_LANGUAGE,
    SHIFTED,
    UNREADABLE,
    downgrade_to_schema_2,
    write_parallel_run,
)
from tests.support.run_factory import write_run
from tests.test_dashboard import APP, chart_data, charts, open_app

PAGE = "app_pages/languages.py"
OTHER_PAGES = (
    "app_pages/runs.py",
    "app_pages/findings.py",
    "app_pages/instances.py",
    "app_pages/attention.py",
)
SECTIONS = [
    "Parity with the reference language",
    "Tokenization per language",
    "Labels and attribution per language",
    "One instance in every language",
]
RUN = "20261210-101500-minilm-sentiment-multilingual"
FAIR_RUN = "20261211-101500-xlmr-sentiment-multilingual"
LIMIT = 0.5
TAG = re.compile(r"<[^<>]*>")
"""Any tag: probe text inside the side-by-side HTML is escaped, so a literal < never starts one."""


@pytest.fixture(scope="module")
def parallel_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One parallel run (with markup in one English text), written once: tests only read it."""
    folder = tmp_path_factory.mktemp("parallel_runs")
    write_parallel_run(folder, RUN, markup=True)
    return folder


@pytest.fixture(scope="module")
def tables(parallel_run: Path) -> dict[str, pd.DataFrame]:
    run_dir = parallel_run / RUN
    names = ("examples", "predictions", "effects", "findings", "attributions")
    return {name: pd.read_parquet(run_dir / f"{name}.parquet") for name in names}


def manifest_of(run_dir: Path) -> dict[str, object]:
    return dict(json.loads((run_dir / "manifest.json").read_text(encoding="utf-8")))


def open_page(runs_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    at = open_app(runs_dir, monkeypatch)
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Languages"]
    return at


def chart_titled(at: AppTest, start: str) -> list[pd.DataFrame]:
    """The datasets the chart whose title starts with ``start`` sent to the browser."""
    for chart in charts(at):
        title = json.loads(chart.proto.spec).get("title", "")  # type: ignore[attr-defined]
        text = title.get("text", "") if isinstance(title, dict) else str(title)
        if text.startswith(start):
            return list(chart_data(chart).values())
    raise AssertionError(f"no chart titled {start!r}")


def parity_data(at: AppTest) -> pd.DataFrame:
    return next(frame for frame in chart_titled(at, "parity per language") if "status" in frame.columns)


def expected_top_instance(effects: pd.DataFrame, output: str) -> str:
    """Independently of the dashboard: the instance with the largest |delta| among readable languages."""
    rows = effects[(effects["output"] == output) & (effects["group_a"] != UNREADABLE)]
    return str(rows.loc[rows["delta"].abs().idxmax(), "instance_id"])


def side_by_side(at: AppTest) -> str:
    (shown,) = [h.value for h in at.html if "probelens-languages" in h.value]
    return shown


# ---------------------------------------------------------------- the page on a parallel run


def test_page_shows_parity_tokenization_table_and_side_by_side(
    parallel_run: Path, tables: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    findings, examples = tables["findings"], tables["examples"]
    at = open_page(parallel_run, monkeypatch)
    assert [s.value for s in at.subheader] == SECTIONS
    assert not at.info, [i.value for i in at.info]
    assert len(charts(at)) == 6  # parity + five tokenization metrics
    (warning,) = [w.value for w in at.warning]
    assert f"{UNREADABLE} (77% unknown tokens)" in warning and UNREADABLE_LABEL in warning

    # 1. parity: one point per compared language, the findings' numbers; zh greyed, never significant
    assert at.selectbox(key="lang_output").value == "prob:positive"
    shown = parity_data(at).set_index("lang")
    parity = findings[(findings["metric"] == "parity") & (findings["output"] == "prob:positive")]
    parity = parity.set_index("group_a")
    assert list(shown.index) == ["de", "ar", "zh"], "the set's language order, the reference is the line"
    for column in ("effect", "ci_low", "ci_high", "q_value"):
        assert shown[column].tolist() == pytest.approx(parity.loc[shown.index, column].tolist())
    assert shown.loc[SHIFTED, "status"] == SIGNIFICANT
    assert shown.loc["ar", "status"] == NOT_SIGNIFICANT
    assert shown.loc[UNREADABLE, "status"] == UNREADABLE_LABEL
    assert parity.loc[UNREADABLE, "q_value"] < ALPHA, "planted: zh would pass the test were it readable"
    labels = [frame for frame in chart_titled(at, "parity per language") if "label" in frame.columns]
    assert any(frame["label"].tolist() == [UNREADABLE_LABEL] for frame in labels)
    reference_line = next(frame for frame in chart_titled(at, "parity") if "reference" in frame.columns)
    assert reference_line["x"].tolist() == [0.0] and reference_line["reference"].tolist() == [
        "en (reference)"
    ]
    assert any(f"Grey: {UNREADABLE}: {UNREADABLE_LABEL}" in c.value for c in at.caption)
    assert any("Significant: de (" in c.value for c in at.caption)
    table = at.dataframe[0].value
    assert table["lang"].tolist() == ["de", "ar", "zh"] and table["significant"].tolist() == [
        True,
        False,
        False,
    ]

    # 2. tokenization: the findings' values per language; zh has no tokens per word ("n/a")
    per_word = next(frame for frame in chart_titled(at, "tokens per word") if "value_text" in frame.columns)
    assert per_word["lang"].tolist() == list(LANGUAGES)
    rows = findings[findings["metric"] == "fertility_per_word"].set_index("group_a")
    zh = per_word.set_index("lang").loc[UNREADABLE]
    assert zh["value_text"] == NOT_AVAILABLE and not zh["available"]
    readable = per_word[per_word["available"]].set_index("lang")
    assert readable["effect"].tolist() == pytest.approx(rows.loc[readable.index, "effect"].tolist())
    unknown = next(frame for frame in chart_titled(at, "unknown-token rate") if "reading" in frame.columns)
    assert unknown.set_index("lang")["reading"].to_dict() == {
        "en": "readable",
        "de": "readable",
        "ar": "readable",
        "zh": "unreadable",
    }
    limit_rule = next(frame for frame in chart_titled(at, "unknown-token rate") if "what" in frame.columns)
    assert limit_rule["x"].tolist() == [LIMIT]
    assert any(f"{UNREADABLE}: tokens per word {NOT_AVAILABLE}" in c.value for c in at.caption)

    # 3. label agreement, accuracy and content share per language
    agreement = at.dataframe[1].value.set_index("lang")
    assert list(agreement.index) == list(LANGUAGES)
    assert math.isnan(agreement.loc[REFERENCE, "label_agreement"]), (
        "the reference is not compared with itself"
    )
    for metric in ("label_agreement", "label_accuracy", "content_attribution_share"):
        expected = findings[findings["metric"] == metric].set_index("group_a")["effect"]
        got = agreement.loc[expected.index, metric]
        assert got.fillna(-1).tolist() == pytest.approx(expected.fillna(-1).tolist()), metric
    assert agreement.loc["ar", "script"] == "Arabic" and agreement.loc["zh", "script"] == "Han"
    assert "no function-word list for zh" in agreement.loc["zh", "notes"]

    # 4. side by side: the instance with the largest readable |parity delta|, in every language
    top = expected_top_instance(tables["effects"], "prob:positive")
    assert at.selectbox(key="lang_instance").value == top
    shown_html = side_by_side(at)
    shown_text = html.unescape(TAG.sub("", shown_html))
    assert shown_html.count('class="probelens-language-row"') == len(LANGUAGES)
    predictions = tables["predictions"]
    for lang in LANGUAGES:
        example_id = f"{PROBE_SET}/{top}/{lang}"
        (text,) = examples.loc[examples["example_id"] == example_id, "text"]
        assert text in shown_text, "coloured token by token, the text reads as written"
        score = predictions[
            (predictions["example_id"] == example_id) & (predictions["output"] == "prob:positive")
        ]
        assert f">{float(score['score'].iloc[0]):.3f}<" in shown_html
        assert f'lang="{lang}"' in shown_html
    assert shown_html.count('dir="auto"') == len(LANGUAGES) - 1 and shown_html.count('dir="rtl"') == 1
    attributed = set(tables["attributions"]["example_id"])
    assert f"{PROBE_SET}/{top}/{RTL_LANGUAGE}" in attributed, "the default instance has token attributions"
    assert "background:rgba(" in shown_html and "[CLS]" in shown_html
    assert at.selectbox(key="lang_method").value == "integrated_gradients"
    assert any(f"{RTL_LANGUAGE}: written right to left" in c.value for c in at.caption)


def test_output_and_instance_pickers(
    parallel_run: Path, tables: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(parallel_run, monkeypatch)
    before = parity_data(at).set_index("lang")["effect"]
    at.selectbox(key="lang_output").set_value("prob:negative").run()
    assert not at.exception
    after = parity_data(at).set_index("lang")["effect"]
    assert after.tolist() == pytest.approx((-before).tolist()), (
        "two labels: the negative mirrors the positive"
    )
    assert at.selectbox(key="lang_instance").value == expected_top_instance(
        tables["effects"], "prob:negative"
    )

    # an instance without attributions: plain texts and a message; markup in its English text is escaped
    at.selectbox(key="lang_instance").set_value(MARKUP_INSTANCE).run()
    assert not at.exception
    assert any("No token attributions for this instance" in i.value for i in at.info)
    shown = side_by_side(at)
    assert "<script>" not in shown and "<b>Really" not in shown
    assert html.escape(MARKUP_TAIL) in shown
    assert "background:rgba(" not in shown


def test_two_runs_compared_in_the_parity_chart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "two"
    write_parallel_run(folder, RUN)
    write_parallel_run(
        folder, FAIR_RUN, model_name="xlmr-sentiment", created_at="2026-12-11T10:15:00Z", seed=1, de_shift=0.0
    )
    at = open_app(folder, monkeypatch)
    at.selectbox(key="runs_page_compare").set_value(RUN).run()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.multiselect(key="lang_compare_runs").value == [FAIR_RUN, RUN]
    shown = parity_data(at)
    assert set(shown["run"]) == {FAIR_RUN, RUN} and len(shown) == 6
    for run_id in (FAIR_RUN, RUN):
        findings = pd.read_parquet(folder / run_id / "findings.parquet")
        expected = findings[(findings["metric"] == "parity") & (findings["output"] == "prob:positive")]
        got = shown[shown["run"] == run_id].set_index("lang")
        assert got["effect"].tolist() == pytest.approx(
            expected.set_index("group_a").loc[got.index, "effect"].tolist()
        )
    status = shown.set_index(["run", "lang"])["status"]
    assert status[(RUN, SHIFTED)] == SIGNIFICANT and status[(FAIR_RUN, SHIFTED)] == NOT_SIGNIFICANT
    assert status[(FAIR_RUN, UNREADABLE)] == UNREADABLE_LABEL
    spec = json.loads(charts(at)[0].proto.spec)  # type: ignore[attr-defined]
    assert any("yOffset" in layer.get("encoding", {}) for layer in spec["layer"]), "runs side by side"

    at.multiselect(key="lang_compare_runs").set_value([FAIR_RUN]).run()
    assert set(parity_data(at)["run"]) == {FAIR_RUN}


def test_embedding_run_draws_similarity_to_the_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "embedding"
    run_dir = write_parallel_run(folder, embedding=True)
    findings = pd.read_parquet(run_dir / "findings.parquet")
    at = open_page(folder, monkeypatch)
    assert not at.exception
    data = next(
        frame for frame in chart_titled(at, "similarity to the reference text") if "status" in frame.columns
    )
    expected = findings[findings["metric"] == "translation_similarity"].set_index("group_a")["effect"]
    assert data.set_index("lang")["effect"].tolist() == pytest.approx(
        expected.loc[["de", "ar", "zh"]].tolist()
    )
    assert data.set_index("lang").loc[UNREADABLE, "status"] == UNREADABLE_LABEL
    line = next(frame for frame in chart_titled(at, "similarity") if "reference" in frame.columns)
    assert line["x"].tolist() == [1.0], "the reference text is similarity 1 to itself"
    agreement = at.dataframe[1].value.set_index("lang")
    assert agreement["label_accuracy"].isna().all(), "an embedding model has no labels"
    shown = side_by_side(at)
    assert "score (sim:reference)" in shown and ">1.000<" in shown and "nearest reference text" in shown


def test_run_without_attributions_still_shows_the_texts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "plain"
    write_parallel_run(folder, with_attributions=False)
    at = open_page(folder, monkeypatch)
    assert any("No token attributions for this instance" in i.value for i in at.info)
    assert side_by_side(at).count("probelens-text") == len(LANGUAGES)
    assert len(charts(at)) == 6


# ---------------------------------------------------------------- runs without parallel sets, old runs


def test_run_without_a_parallel_set_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "counterfactual"
    write_run(folder)
    at = open_page(folder, monkeypatch)
    assert any("has no parallel (multilingual) probe set" in info.value for info in at.info)
    assert not charts(at) and not at.subheader and not at.exception


def test_schema_2_runs_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a counterfactual run of version 2: every page opens, Languages says there is no parallel set
    folder = tmp_path / "old"
    run_dir = downgrade_to_schema_2(write_run(folder))
    assert "n_text_tokens" not in pd.read_parquet(run_dir / "examples.parquet").columns
    examples = read_table(run_dir, "examples")
    assert (
        examples[["n_text_tokens", "n_words", "n_chars", "n_unknown", "n_byte_fallback"]].isna().all().all()
    )
    at = open_app(folder, monkeypatch)
    for page in OTHER_PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
    at = open_page(folder, monkeypatch)
    assert any("has no parallel (multilingual) probe set" in info.value for info in at.info)

    # a parallel run stripped of the tokenization columns still draws everything from its findings
    folder = tmp_path / "old_parallel"
    downgrade_to_schema_2(write_parallel_run(folder))
    at = open_page(folder, monkeypatch)
    assert [s.value for s in at.subheader] == SECTIONS and len(charts(at)) == 6


def test_other_pages_open_on_a_parallel_run(parallel_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(parallel_run, monkeypatch)
    for page in OTHER_PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])


# ---------------------------------------------------------------- helpers without Streamlit


def test_parallel_rows_sets_reference_and_limit(tables: dict[str, pd.DataFrame], parallel_run: Path) -> None:
    manifest = manifest_of(parallel_run / RUN)
    other = pd.DataFrame(
        {
            "probe_set": ["gender", "gender"],
            "attribute": ["gender", "language"],
            "group_a": ["female", "de"],
            "group_b": ["male", "en"],
            "metric": ["mean_delta", "mean_delta"],
            "output": ["prob:positive"] * 2,
            "effect": [0.1, 0.2],
        }
    )
    mixed = pd.concat([tables["findings"], other], ignore_index=True)
    found = parallel_findings(mixed)
    assert len(found) == len(tables["findings"]) and set(found["probe_set"]) == {PROBE_SET}
    assert parallel_findings(other.drop(columns=[])).empty, "a schema-1 table without note: empty, no error"
    assert parallel_probe_sets(manifest, found) == [PROBE_SET]
    assert parallel_probe_sets({}, found) == [PROBE_SET], "found from the findings alone"
    assert (
        parallel_probe_sets({"probe_sets": [{"name": "gender", "kind": "counterfactual"}]}, other.iloc[:0])
        == []
    )

    assert reference_language(manifest, found, PROBE_SET) == REFERENCE
    assert reference_language({}, found, PROBE_SET) == REFERENCE, "from the comparisons' group_b"
    assert (
        reference_language({"probe_sets": [{"name": PROBE_SET, "reference": "de"}]}, found, PROBE_SET) == "de"
    )
    assert reference_language({}, found.iloc[:0], PROBE_SET) is None

    assert unknown_rate_limit({"unknown_rate_limit": 0.3}) == 0.3
    for bad in ({}, {"unknown_rate_limit": None}, {"unknown_rate_limit": True}, {"unknown_rate_limit": 2}):
        assert unknown_rate_limit(bad) == 0.5


def test_unreadable_from_note_limit_or_summary() -> None:
    findings = parallel_findings(
        pd.DataFrame(
            {
                "probe_set": ["s"] * 4,
                "attribute": ["language"] * 4,
                "group_a": ["en", "zh", "ja", "th"],
                "group_b": [None] * 4,
                "metric": ["unknown_rate"] * 4,
                "output": [None] * 4,
                "effect": [0.0, 0.3, 0.6, 0.1],
                "note": [
                    None,
                    "30% of the zh tokens are the unknown token: the model cannot read zh",
                    None,
                    None,
                ],
            }
        )
    )
    assert unreadable_languages(findings, "s", 0.5) == {"zh": 0.3, "ja": 0.6}
    assert unreadable_languages(findings, "s", 0.7) == {"zh": 0.3}
    summary = {"unreadable_languages": {"s": {"th": 0.55}, "other": {"en": 0.9}}}
    assert unreadable_languages(findings, "s", 0.7, summary) == {"zh": 0.3, "th": 0.55}
    assert unreadable_languages(findings, "other", 0.5, summary) == {"en": 0.9}


def test_parity_rows_order_and_marking(tables: dict[str, pd.DataFrame]) -> None:
    findings = parallel_findings(tables["findings"])
    order = language_order(findings, tables["examples"], PROBE_SET, REFERENCE)
    assert order == list(LANGUAGES)
    assert language_order(findings, tables["examples"], PROBE_SET, "ar")[0] == "ar"
    assert comparison_metric(findings, PROBE_SET) == "parity"
    rows = parity_rows(
        findings, PROBE_SET, output="prob:positive", unreadable={UNREADABLE: 0.77}, order=order
    )
    assert rows["lang"].tolist() == ["de", "ar", "zh"]
    assert rows["status"].tolist() == [SIGNIFICANT, NOT_SIGNIFICANT, UNREADABLE_LABEL]
    assert rows["label"].tolist() == ["", "", UNREADABLE_LABEL]
    # the note alone marks a row unreadable, and a significant flag never survives it
    forced = findings.assign(significant=True)
    rows = parity_rows(forced, PROBE_SET, output="prob:positive", order=order)
    assert rows.set_index("lang").loc[UNREADABLE, "status"] == UNREADABLE_LABEL
    assert not rows.set_index("lang").loc[UNREADABLE, "significant"]
    assert len(parity_rows(findings, PROBE_SET, order=order)) == 6, "no output: both outputs"

    stacked = parity_by_run(
        [RunParity("a", "m", findings, {}), RunParity("b", "m", findings.iloc[:0], {})],
        PROBE_SET,
        "parity",
        "prob:positive",
        order,
    )
    assert stacked["run"].tolist() == ["a"] * 3 and stacked["run_label"].iloc[0] == "m (a)"
    assert parity_by_run([], PROBE_SET, "parity", None).empty


def test_parity_chart_draws_reference_threshold_and_label(tables: dict[str, pd.DataFrame]) -> None:
    findings = parallel_findings(tables["findings"])
    rows = parity_rows(findings, PROBE_SET, output="prob:positive", unreadable={UNREADABLE: 0.77})
    spec = parity_chart(rows, reference=REFERENCE, title="t").to_dict()
    layers = spec["layer"]
    datasets = spec["datasets"]
    texts = [layer for layer in layers if layer["mark"]["type"] == "text"]
    labelled = [
        datasets[layer["data"]["name"]] for layer in texts if "label" in layer["encoding"]["text"]["field"]
    ]
    assert [row["label"] for row in labelled[0]] == [UNREADABLE_LABEL]
    thresholds = [
        datasets[layer["data"]["name"]]
        for layer in layers
        if layer["mark"].get("strokeDash") and layer["mark"]["type"] == "rule"
    ]
    assert sorted(row["x"] for row in thresholds[0]) == [-0.05, 0.05]
    assert spec["layer"][0]["encoding"]["x"]["title"] == "score(language) - score(en)"
    colours = spec["layer"][0]["encoding"]["color"]["scale"]
    assert colours["domain"] == [SIGNIFICANT, NOT_SIGNIFICANT, UNREADABLE_LABEL]
    assert colours["range"][2] == "#c7c7c7", "unreadable languages are greyed"


def test_tokenization_rows_mark_per_word_not_available() -> None:
    findings = parallel_findings(
        pd.DataFrame(
            {
                "probe_set": ["s"] * 3,
                "attribute": ["language"] * 3,
                "group_a": ["zh", "en", "ja"],
                "group_b": [None] * 3,
                "metric": ["fertility_per_word"] * 3,
                "output": [None] * 3,
                "effect": [math.nan, 1.25, math.nan],
                "ci_low": [math.nan, 1.2, math.nan],
                "ci_high": [math.nan, 1.3, math.nan],
                "n": [5, 5, 5],
                "note": ["zh is written without spaces", None, "ja is written without spaces"],
            }
        )
    )
    rows = tokenization_rows(
        findings, "s", "fertility_per_word", order=["en", "ja", "zh"], unreadable={"zh": 0.8}
    )
    assert rows["lang"].tolist() == ["en", "ja", "zh"]
    assert rows["value_text"].tolist() == ["1.25", NOT_AVAILABLE, NOT_AVAILABLE]
    assert rows["available"].tolist() == [True, False, False]
    assert rows["reading"].tolist() == ["readable", "readable", "unreadable"]
    spec = tokenization_chart(rows, "fertility_per_word").to_dict()
    assert spec["title"] == "tokens per word"
    rates = tokenization_rows(
        findings.assign(metric="unknown_rate", effect=[0.8, 0.0, 0.1]), "s", "unknown_rate"
    )
    assert rates["lang"].tolist() == ["en", "ja", "zh"], "no order given: by code"
    assert rates["value_text"].tolist() == ["0%", "10%", "80%"]


def test_agreement_table_and_scripts(tables: dict[str, pd.DataFrame]) -> None:
    findings = parallel_findings(tables["findings"])
    scripts = language_scripts(tables["examples"], PROBE_SET)
    assert scripts == {"en": "Latin", "de": "Latin", "ar": "Arabic", "zh": "Han"}
    japanese = pd.DataFrame(
        {
            "probe_set": ["s", "s"],
            "lang": ["ja", "ko"],
            "text": ["このレストランの料理は本当においしかった。", None],
        }
    )
    assert language_scripts(japanese, "s") == {"ja": "Hiragana/Katakana/Han", "ko": "Han/Hangul"}
    table = agreement_table(findings, PROBE_SET, order=list(LANGUAGES), scripts=scripts).set_index("lang")
    row = findings[(findings["metric"] == "label_accuracy") & (findings["group_a"] == "de")].iloc[0]
    assert table.loc["de", "label_accuracy"] == pytest.approx(row["effect"])
    assert table.loc["de", "label_accuracy_low"] == pytest.approx(row["ci_low"])
    assert table.loc["de", "label_accuracy_high"] == pytest.approx(row["ci_high"])
    assert math.isnan(table.loc["en", "label_agreement"])
    assert "not a bias finding" in table.loc["zh", "notes"]


def test_rank_and_side_by_side(tables: dict[str, pd.DataFrame]) -> None:
    effects, examples = tables["effects"], tables["examples"]
    attributed = set(tables["attributions"]["example_id"])
    ranked = rank_parallel_instances(
        effects,
        examples,
        PROBE_SET,
        reference=REFERENCE,
        unreadable=[UNREADABLE],
        output="prob:positive",
        attributed=attributed,
    )
    assert ranked["instance_id"].iloc[0] == expected_top_instance(effects, "prob:positive")
    assert ranked["language"].iloc[0] in ("de", "ar")
    assert ranked["max_abs_delta"].is_monotonic_decreasing
    attributed_instances = {example_id.split("/")[1] for example_id in attributed}
    assert set(ranked.loc[ranked["attributed"], "instance_id"]) == attributed_instances
    # counting the unreadable language changes the ranking: its deltas are the largest
    with_zh = rank_parallel_instances(
        effects, examples, PROBE_SET, reference=REFERENCE, output="prob:positive"
    )
    assert with_zh["language"].iloc[0] == UNREADABLE
    assert with_zh["instance_id"].iloc[0] != ranked["instance_id"].iloc[0]

    top = str(ranked["instance_id"].iloc[0])
    rows = side_by_side_rows(
        examples,
        tables["predictions"],
        effects,
        PROBE_SET,
        top,
        order=list(LANGUAGES),
        scripts={"ar": "Arabic"},
        output="prob:positive",
        reference=REFERENCE,
        unreadable=[UNREADABLE],
    )
    assert rows["lang"].tolist() == list(LANGUAGES)
    assert math.isnan(rows["delta"].iloc[0])
    own = effects[(effects["instance_id"] == top) & (effects["output"] == "prob:positive")].set_index(
        "group_a"
    )
    assert rows.set_index("lang").loc[["de", "ar", "zh"], "delta"].tolist() == pytest.approx(
        own.loc[["de", "ar", "zh"], "delta"].tolist()
    )
    assert rows["unreadable"].tolist() == [False, False, False, True]
    assert rows.set_index("lang").loc["ar", "script"] == "Arabic"
    assert rows.set_index("lang").loc["en", "script"] == "Latin", "from the language code when not given"

    marked = rows.assign(text=["<i>x</i> & y", *rows["text"].iloc[1:]], predicted=["<b>", "a", "b", "c"])
    tokens = {str(rows["example_id"].iloc[2]): [TokenAttribution("<tok>", 0, 2, 0.5)]}
    shown = side_by_side_html(marked, tokens, scale=0.5, output="prob:<positive>", reference=REFERENCE)
    assert "<i>" not in shown and "&lt;i&gt;x&lt;/i&gt; &amp; y" in shown
    assert "<b>" not in shown.replace("<b>en</b>", "").replace("<b>de</b>", "").replace(
        "<b>ar</b>", ""
    ).replace("<b>zh</b>", "")
    assert "prob:&lt;positive&gt;" in shown and "&lt;tok&gt;: +0.5000" in shown
    assert f'lang="{RTL_LANGUAGE}"' in shown and 'data-lang="zh"' in shown
    assert UNREADABLE_LABEL in shown and "reference" in shown


def test_languages_module_does_not_import_torch() -> None:
    code = "import sys, dashboard.languages; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(APP).parent.parent,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.stdout.split() == ["False"]
