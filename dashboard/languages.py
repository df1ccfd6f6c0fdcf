"""Data shaping, charts and HTML of the "Languages" page: parallel (multilingual) probe sets.

Reads the rows a parallel audit writes (audit/tables.py, schema 3; the issue-4 contract): findings with
attribute ``language``, ``group_a`` the language and ``group_b`` the reference language for the
comparisons (``parity``, ``label_agreement``, ``translation_similarity``) or null for per-language
descriptions (``label_accuracy``, ``fertility_per_word``, ``fertility_per_char``, ``unknown_rate``,
``byte_fallback_rate``, ``truncation_rate``, ``content_attribution_share``); effects with
``group_a`` the language and ``group_b`` the reference; examples ``"<set>/<instance>/<lang>"``.

A language whose texts are mostly unknown tokens is "unreadable" for the model: its unknown_rate row
says so in its note (or reaches the run's ``unknown_rate_limit``, 0.5 by default), and the manifest's
``summary.unreadable_languages`` lists it. Its parity rows are greyed and labelled
:data:`UNREADABLE_LABEL`, never shown as a bias finding.

Every function is pure pandas/altair (no Streamlit, no torch), so the tests call it directly. A run
without a parallel set, or a version-1/2 run, has none of these rows: the functions return empty
frames, never raise. Chart text is drawn by Vega as text; the side-by-side HTML escapes every value.
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import altair as alt
import pandas as pd

from audit.kinds.names import PARALLEL
from audit.metrics import catalogue
from dashboard.charts import FIT_WIDTH, NOT_SIGNIFICANT_COLOR, SIGNIFICANT_COLOR
from dashboard.frames import flags
from dashboard.render import RIGHT_TO_LEFT, TokenAttribution, text_html
from probes.languages import expected_scripts, scripts_in

ATTRIBUTE = "language"


def _in_catalogue_order(*names: str) -> tuple[str, ...]:
    """These parallel metrics in the catalogue's display order (audit/metrics/catalogue.py)."""
    return tuple(m for m in catalogue.metrics_of(PARALLEL) if m in names)


COMPARISON_METRICS = _in_catalogue_order("parity", "translation_similarity", "label_agreement")
TOKENIZATION_METRICS = _in_catalogue_order(
    "fertility_per_word", "fertility_per_char", "unknown_rate", "byte_fallback_rate", "truncation_rate"
)
TABLE_METRICS = _in_catalogue_order("label_agreement", "label_accuracy", "content_attribution_share")
PARALLEL_METRICS = _in_catalogue_order(*COMPARISON_METRICS, *TOKENIZATION_METRICS, *TABLE_METRICS)
"""The metrics the Languages page shows (not parity_by_label, token_ratio, unknown_char_rate)."""
NUMBER_COLUMNS = ("effect", "ci_low", "ci_high", "p_value", "q_value", "effect_size", "n", "threshold")
DEFAULT_UNKNOWN_RATE_LIMIT = 0.5
SIMILARITY_OUTPUT = "sim:reference"
"""Embedding models on parallel sets: cosine similarity of each text to its reference text."""
UNREADABLE_LABEL = "unreadable, not a bias finding"
SIGNIFICANT, NOT_SIGNIFICANT = "significant", "not significant"
UNREADABLE_COLOR = "#c7c7c7"
READABLE_BAR_COLOR = "#4c78a8"
NOT_AVAILABLE = "n/a"
RTL_LANGUAGES = RIGHT_TO_LEFT
"""Languages written right to left (dashboard/render.py gives their texts dir="rtl")."""


def _numeric(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    frame = frame.copy()
    for column in columns:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _number(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return number


def parallel_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """The findings rows of parallel sets (attribute "language", a parallel metric), numbers as floats.

    Empty for a run without a parallel set; an old table without the note column gets it as null.
    """
    frame = findings.copy()
    if "note" not in frame.columns:
        frame["note"] = None
    keep = (frame["attribute"].astype("string") == ATTRIBUTE) & frame["metric"].astype("string").isin(
        PARALLEL_METRICS
    )
    frame = frame[keep.fillna(False).astype(bool)]
    return _numeric(frame, NUMBER_COLUMNS).reset_index(drop=True)


def _entries(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    entries = manifest.get("probe_sets")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def parallel_probe_sets(manifest: Mapping[str, Any], findings: pd.DataFrame) -> list[str]:
    """Parallel probe sets of a run: those the manifest lists with kind "parallel" (in its order), then
    any other set with parallel findings (``findings`` as from :func:`parallel_findings`), by name."""
    named = [str(e["name"]) for e in _entries(manifest) if e.get("kind") == "parallel" and e.get("name")]
    found = sorted({str(name) for name in findings["probe_set"].dropna()} - set(named))
    return list(dict.fromkeys(named)) + found


def reference_language(manifest: Mapping[str, Any], findings: pd.DataFrame, probe_set: str) -> str | None:
    """The set's reference language: the manifest entry's ``reference_lang`` (or ``reference``), else
    the group_b of its comparison rows, else None."""
    for entry in _entries(manifest):
        if entry.get("name") == probe_set:
            for key in ("reference_lang", "reference"):
                if isinstance(entry.get(key), str) and entry[key]:
                    return str(entry[key])
    rows = findings[(findings["probe_set"] == probe_set) & findings["metric"].isin(COMPARISON_METRICS)][
        "group_b"
    ].dropna()
    return str(Counter(rows.astype(str)).most_common(1)[0][0]) if len(rows) else None


def unknown_rate_limit(config: Mapping[str, Any]) -> float:
    """The run's ``unknown_rate_limit`` (config), or 0.5 when it is absent or not a share in (0, 1]."""
    value = config.get("unknown_rate_limit")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        return DEFAULT_UNKNOWN_RATE_LIMIT
    return float(value)


def unreadable_languages(
    findings: pd.DataFrame, probe_set: str, limit: float, summary: Mapping[str, Any] | None = None
) -> dict[str, float]:
    """Languages the model cannot read, with their unknown-token rate (NaN when only named).

    A language is unreadable when its unknown_rate row says so in its note ("cannot read", or
    "unreadable"), when the rate is at or above ``limit``, or when the manifest's
    ``summary.unreadable_languages`` names it.
    """
    found: dict[str, float] = {}
    rows = findings[(findings["probe_set"] == probe_set) & (findings["metric"] == "unknown_rate")]
    for lang, effect, note in zip(rows["group_a"], rows["effect"], rows["note"], strict=True):
        rate = _number(effect)
        said = any(words in _text(note).lower() for words in ("unreadable", "cannot read"))
        if said or (not math.isnan(rate) and rate >= limit):
            found[str(lang)] = rate
    listed = (summary or {}).get("unreadable_languages")
    named = listed.get(probe_set) if isinstance(listed, dict) else None
    if isinstance(named, dict):
        for lang, rate in named.items():
            if math.isnan(found.get(str(lang), math.nan)):
                found[str(lang)] = _number(rate)
    elif isinstance(named, list):
        for lang in named:
            found.setdefault(str(lang), math.nan)
    return found


def language_order(
    findings: pd.DataFrame, examples: pd.DataFrame, probe_set: str, reference: str | None
) -> list[str]:
    """The set's languages: the reference first, then as its examples list them (the set's order),
    then any language only the findings name, by code."""
    in_examples = examples.loc[examples["probe_set"] == probe_set, "lang"].dropna().astype(str)
    in_findings = findings.loc[findings["probe_set"] == probe_set, "group_a"].dropna().astype(str)
    order = list(dict.fromkeys(in_examples))
    order += sorted(set(in_findings) - set(order))
    if reference is not None:
        order = [reference] + [lang for lang in order if lang != reference]
    return order


def language_scripts(examples: pd.DataFrame, probe_set: str) -> dict[str, str]:
    """Each language's script: the scripts of at least a fifth of its letters in the set's texts,
    commonest first ("Latin", "Arabic", "Han/Hiragana" for Japanese), else the script(s) its code is
    usually written in, else "?"."""
    rows = examples[examples["probe_set"] == probe_set]
    scripts: dict[str, str] = {}
    for lang, texts in rows.groupby(rows["lang"].astype(str))["text"]:
        counts: Counter[str] = Counter()
        for text in texts.dropna():
            counts.update(scripts_in(str(text)))
        total = sum(counts.values())
        common = [script for script, count in counts.most_common() if count >= 0.2 * total]
        if common:
            scripts[str(lang)] = "/".join(common)
    for lang in set(rows["lang"].dropna().astype(str)) - set(scripts):
        expected = expected_scripts(lang)
        scripts[lang] = "/".join(sorted(expected)) if expected else "?"
    return scripts


def script_of_language(scripts: Mapping[str, str], lang: str) -> str:
    if lang in scripts:
        return scripts[lang]
    expected = expected_scripts(lang)
    return "/".join(sorted(expected)) if expected else "?"


# ---------------------------------------------------------------- 1. parity


def comparison_metric(findings: pd.DataFrame, probe_set: str) -> str | None:
    """The metric the parity chart draws: "parity" when the set has such rows, else
    "translation_similarity" (embedding models without associations), else None."""
    metrics = set(findings.loc[findings["probe_set"] == probe_set, "metric"].dropna().astype(str))
    for metric in ("parity", "translation_similarity"):
        if metric in metrics:
            return metric
    return None


def comparison_outputs(findings: pd.DataFrame, probe_set: str, metric: str) -> list[str]:
    """The outputs of a set's parity (or similarity) rows, sorted."""
    rows = findings[(findings["probe_set"] == probe_set) & (findings["metric"] == metric)]
    return sorted({str(output) for output in rows["output"].dropna()})


def parity_rows(
    findings: pd.DataFrame,
    probe_set: str,
    *,
    metric: str = "parity",
    output: str | None = None,
    unreadable: Mapping[str, float] | None = None,
    order: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per language of the parity (or translation_similarity) chart, in ``order``.

    Columns: lang, effect, ci_low, ci_high, p_value, q_value, n, threshold, significant, severity,
    note, output, unreadable, status (:data:`SIGNIFICANT`, :data:`NOT_SIGNIFICANT` or
    :data:`UNREADABLE_LABEL`; an unreadable language is never shown as significant), label (the text
    next to an unreadable language's point, else ""). ``output`` None keeps every output.
    """
    unreadable = unreadable or {}
    rows = findings[(findings["probe_set"] == probe_set) & (findings["metric"] == metric)]
    if output is not None:
        rows = rows[rows["output"].astype(str) == output]
    langs = rows["group_a"].astype(str)
    is_unreadable = langs.isin(list(unreadable)) | rows["note"].map(
        lambda note: "not a bias finding" in _text(note)
    ).astype(bool)
    significant = flags(rows["significant"]) & ~is_unreadable
    frame = pd.DataFrame(
        {
            "lang": langs,
            "effect": rows["effect"],
            "ci_low": rows["ci_low"],
            "ci_high": rows["ci_high"],
            "p_value": rows["p_value"],
            "q_value": rows["q_value"],
            "n": rows["n"],
            "threshold": rows["threshold"],
            "significant": significant,
            "severity": rows["severity"].astype(str),
            "note": [_text(note) for note in rows["note"]],
            "output": rows["output"].astype(str),
            "unreadable": is_unreadable.astype(bool),
            "status": [
                UNREADABLE_LABEL if u else SIGNIFICANT if s else NOT_SIGNIFICANT
                for u, s in zip(is_unreadable, significant, strict=True)
            ],
            "label": [UNREADABLE_LABEL if u else "" for u in is_unreadable],
        }
    )
    return _in_order(frame, order)


PARITY_COLUMNS = [
    "lang",
    "effect",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
    "n",
    "threshold",
    "significant",
    "severity",
    "note",
    "output",
    "unreadable",
    "status",
    "label",
]


def _in_order(frame: pd.DataFrame, order: Sequence[str], column: str = "lang") -> pd.DataFrame:
    rank = {lang: index for index, lang in enumerate(order)}
    position = frame[column].map(lambda lang: rank.get(lang, len(rank)))
    return (
        frame.assign(_rank=position)
        .sort_values(["_rank", column], kind="stable")
        .drop(columns="_rank")
        .reset_index(drop=True)
    )


@dataclass(frozen=True)
class RunParity:
    """What the parity comparison needs of one run."""

    run_id: str
    model: str
    findings: pd.DataFrame
    """The run's findings as from :func:`parallel_findings`."""
    unreadable: Mapping[str, float]


def parity_by_run(
    runs: Sequence[RunParity], probe_set: str, metric: str, output: str | None, order: Sequence[str] = ()
) -> pd.DataFrame:
    """:func:`parity_rows` of several runs stacked, with columns run and run_label ("model (run id)").

    Rows are in language order, then in the order the runs are given. Runs without rows are left out.
    """
    frames = []
    for index, run in enumerate(runs):
        rows = parity_rows(
            run.findings, probe_set, metric=metric, output=output, unreadable=run.unreadable, order=order
        )
        if not rows.empty:
            frames.append(rows.assign(run=run.run_id, run_label=f"{run.model} ({run.run_id})", _run=index))
    if not frames:
        return pd.DataFrame(columns=[*PARITY_COLUMNS, "run", "run_label"])
    stacked = pd.concat(frames, ignore_index=True)
    rank = {lang: index for index, lang in enumerate(order)}
    stacked = stacked.assign(_rank=stacked["lang"].map(lambda lang: rank.get(lang, len(rank))))
    stacked = stacked.sort_values(["_rank", "lang", "_run"], kind="stable")
    return stacked.drop(columns=["_rank", "_run"]).reset_index(drop=True)


def reference_value(metric: str) -> float:
    """Where the reference language sits on the parity chart: 0 (its own score minus itself) for
    parity, 1 (its text's similarity to itself) for translation_similarity."""
    return 1.0 if metric == "translation_similarity" else 0.0


def parity_chart(
    rows: pd.DataFrame, *, reference: str | None, metric: str = "parity", title: str = ""
) -> alt.LayerChart:
    """Effect with its confidence interval per language; the reference language is the black line.

    ``rows`` as from :func:`parity_rows` (or :func:`parity_by_run`: with several runs each run gets its
    own offset and shape). Colour: significant (red), not significant (dark grey), unreadable (light
    grey, labelled :data:`UNREADABLE_LABEL`). Dashed orange rules: the practical threshold (parity).
    """
    several = "run_label" in rows.columns and rows["run_label"].nunique() > 1
    order = list(dict.fromkeys(rows["lang"]))
    frame = rows
    color = alt.Color(
        "status:N",
        scale=alt.Scale(
            domain=[SIGNIFICANT, NOT_SIGNIFICANT, UNREADABLE_LABEL],
            range=[SIGNIFICANT_COLOR, NOT_SIGNIFICANT_COLOR, UNREADABLE_COLOR],
        ),
        legend=alt.Legend(title=None, orient="top", labelLimit=400),
    )
    y = alt.Y("lang:N", sort=order, title="language", axis=alt.Axis(labelFontSize=13))
    encodings: dict[str, Any] = {"y": y, "color": color}
    if several:
        encodings["yOffset"] = alt.YOffset("run_label:N")
    x_title = (
        f"score(language) - score({reference})"
        if metric == "parity"
        else f"similarity to the {reference} text"
    )
    tooltip = [
        alt.Tooltip("lang:N", title="language"),
        alt.Tooltip("effect:Q", format="+.4f"),
        alt.Tooltip("ci_low:Q", format="+.4f"),
        alt.Tooltip("ci_high:Q", format="+.4f"),
        alt.Tooltip("q_value:Q", format=".3g"),
        alt.Tooltip("n:Q"),
        alt.Tooltip("status:N"),
        alt.Tooltip("note:N"),
    ]
    if several:
        tooltip.insert(1, alt.Tooltip("run_label:N", title="run"))
    base = alt.Chart(frame).encode(**encodings)
    intervals = base.mark_rule(strokeWidth=2).encode(x=alt.X("ci_low:Q", title=x_title), x2="ci_high:Q")
    point_encodings: dict[str, Any] = {"x": "effect:Q", "tooltip": tooltip}
    if several:
        point_encodings["shape"] = alt.Shape("run_label:N", legend=alt.Legend(title="run", orient="top"))
    points = base.mark_point(filled=True, size=80).encode(**point_encodings)
    line = reference_value(metric)
    zero = (
        alt.Chart(pd.DataFrame({"x": [line], "reference": [f"{reference} (reference)"]}))
        .mark_rule(color="black", strokeWidth=1.5)
        .encode(x="x:Q", tooltip=[alt.Tooltip("reference:N", title="reference language")])
    )
    zero_label = (
        alt.Chart(pd.DataFrame({"x": [line], "text": [f"{reference} (reference)"]}))
        .mark_text(align="left", dx=4, dy=-8, fontSize=11, color="black")
        .encode(x="x:Q", y=alt.value(0), text="text:N")
    )
    layers: list[alt.Chart] = [intervals, points, zero, zero_label]
    labelled = frame[frame["label"] != ""]
    if not labelled.empty:
        layers.append(
            alt.Chart(labelled)
            .mark_text(align="left", dx=8, fontSize=11, fontStyle="italic", color="#777777")
            .encode(
                y=y,
                x="ci_high:Q",
                text="label:N",
                **({"yOffset": alt.YOffset("run_label:N")} if several else {}),
            )
        )
    thresholds = (
        sorted({float(t) for t in rows["threshold"].dropna() if float(t) > 0}) if metric == "parity" else []
    )
    if thresholds:
        rules = pd.DataFrame({"x": [sign * t for t in thresholds for sign in (-1.0, 1.0)]})
        layers.append(
            alt.Chart(rules)
            .mark_rule(color="#ff7f0e", strokeDash=[5, 4])
            .encode(x="x:Q", tooltip=[alt.Tooltip("x:Q", title="practical threshold")])
        )
    per_language = rows.groupby("lang").size().max() if not rows.empty else 1
    height = max(34 * len(order) * max(int(per_language), 1), 100)
    return alt.LayerChart(layer=layers, title=title, height=height, autosize=FIT_WIDTH)


# ---------------------------------------------------------------- 2. tokenization


def tokenization_rows(
    findings: pd.DataFrame,
    probe_set: str,
    metric: str,
    *,
    order: Sequence[str] = (),
    unreadable: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """One row per language of a tokenization metric (``TOKENIZATION_METRICS``), in ``order``.

    Columns: lang, effect, ci_low, ci_high, n, note, value_text (the value as the chart writes it,
    :data:`NOT_AVAILABLE` when it is NaN: per word for scripts without spaces), available, reading
    ("readable" or "unreadable").
    """
    unreadable = unreadable or {}
    rows = findings[(findings["probe_set"] == probe_set) & (findings["metric"] == metric)]
    effect = rows["effect"].astype(float)
    percent = metric.endswith("_rate")
    frame = pd.DataFrame(
        {
            "lang": rows["group_a"].astype(str),
            "effect": effect,
            "ci_low": rows["ci_low"].astype(float),
            "ci_high": rows["ci_high"].astype(float),
            "n": rows["n"],
            "note": [_text(note) for note in rows["note"]],
            "value_text": [
                NOT_AVAILABLE if math.isnan(value) else (f"{value:.0%}" if percent else f"{value:.2f}")
                for value in effect
            ],
            "available": effect.notna(),
            "reading": ["unreadable" if str(lang) in unreadable else "readable" for lang in rows["group_a"]],
        }
    )
    return _in_order(frame, order)


def tokenization_chart(rows: pd.DataFrame, metric: str, *, limit: float | None = None) -> alt.LayerChart:
    """Bars of one tokenization metric per language with their intervals; NaN values read "n/a".

    Bars of unreadable languages are grey. ``limit`` (unknown_rate) draws the unreadable limit as a
    dashed red rule.
    """
    order = list(rows["lang"])
    title = catalogue.label(metric)
    percent = metric.endswith("_rate")
    axis = alt.Axis(format="%" if percent else ".2f", title=title)
    y = alt.Y("lang:N", sort=order, title=None, axis=alt.Axis(labelFontSize=13))
    frame = rows.assign(zero=0.0, bar=rows["effect"].fillna(0.0))
    tooltip = [
        alt.Tooltip("lang:N", title="language"),
        alt.Tooltip("value_text:N", title=title),
        alt.Tooltip("ci_low:Q", format=".3f"),
        alt.Tooltip("ci_high:Q", format=".3f"),
        alt.Tooltip("n:Q"),
        alt.Tooltip("note:N"),
    ]
    colour = alt.Color(
        "reading:N",
        scale=alt.Scale(domain=["readable", "unreadable"], range=[READABLE_BAR_COLOR, UNREADABLE_COLOR]),
        legend=alt.Legend(title=None, orient="top") if (rows["reading"] == "unreadable").any() else None,
    )
    base = alt.Chart(frame).encode(y=y, tooltip=tooltip)
    bars = (
        base.transform_filter("datum.available")
        .mark_bar(opacity=0.85)
        .encode(x=alt.X("zero:Q", axis=axis), x2="bar:Q", color=colour)
    )
    intervals = (
        base.transform_filter("datum.available")
        .mark_rule(color="black", strokeWidth=1.5)
        .encode(x="ci_low:Q", x2="ci_high:Q")
    )
    labels = (
        base.transform_calculate(label_at="isValid(datum.ci_high) ? datum.ci_high : 0")
        .mark_text(align="left", dx=4, fontSize=11, color="#333333")
        .encode(x=alt.X("label_at:Q"), text="value_text:N")
    )
    layers: list[alt.Chart] = [bars, intervals, labels]
    if limit is not None:
        layers.append(
            alt.Chart(pd.DataFrame({"x": [limit], "what": [f"unreadable at {limit:.0%} or more"]}))
            .mark_rule(color=SIGNIFICANT_COLOR, strokeDash=[5, 4], strokeWidth=1.5)
            .encode(x="x:Q", tooltip=[alt.Tooltip("what:N", title="limit")])
        )
    height = max(28 * len(order), 80)
    return alt.LayerChart(layer=layers, title=title, height=height, autosize=FIT_WIDTH)


# ---------------------------------------------------------------- 3. labels and attribution


def agreement_table(
    findings: pd.DataFrame,
    probe_set: str,
    *,
    order: Sequence[str] = (),
    scripts: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """One row per language: label_agreement, label_accuracy and content_attribution_share with their
    intervals (``<metric>``, ``<metric>_low``, ``<metric>_high``; null where the run has no such row,
    as for the reference's agreement with itself) and the rows' notes.

    Columns: lang, script, then the three metrics' columns, then notes.
    """
    scripts = scripts or {}
    rows = findings[(findings["probe_set"] == probe_set) & findings["metric"].isin(TABLE_METRICS)]
    langs = list(dict.fromkeys([*order, *sorted(set(rows["group_a"].dropna().astype(str)) - set(order))]))
    records: list[dict[str, object]] = []
    for lang in langs:
        own = rows[rows["group_a"].astype(str) == lang]
        if own.empty and lang not in order:
            continue
        record: dict[str, object] = {"lang": lang, "script": script_of_language(scripts, lang)}
        notes: list[str] = []
        for metric in TABLE_METRICS:
            found = own[own["metric"] == metric]
            first = found.iloc[0] if len(found) else None
            record[metric] = float(first["effect"]) if first is not None else math.nan
            record[f"{metric}_low"] = float(first["ci_low"]) if first is not None else math.nan
            record[f"{metric}_high"] = float(first["ci_high"]) if first is not None else math.nan
            if first is not None and _text(first["note"]):
                notes.append(f"{catalogue.label(metric)}: {first['note']}")
        record["notes"] = "; ".join(notes)
        records.append(record)
    columns = ["lang", "script"]
    for metric in TABLE_METRICS:
        columns += [metric, f"{metric}_low", f"{metric}_high"]
    return pd.DataFrame(records, columns=[*columns, "notes"])


# ---------------------------------------------------------------- 4. side by side


def rank_parallel_instances(
    effects: pd.DataFrame,
    examples: pd.DataFrame,
    probe_set: str,
    *,
    reference: str | None,
    unreadable: Iterable[str] = (),
    output: str | None = None,
    attributed: Iterable[str] = (),
) -> pd.DataFrame:
    """Instances of a parallel set, largest |parity delta| first.

    The delta is each language's score minus the reference's (effects with group_b the reference, of
    ``output`` when given and present). Unreadable languages do not rank an instance (their deltas
    measure unknown tokens) unless no other language has effects. Instances without effects come last.
    Columns: instance_id, max_abs_delta, language (where the largest delta is), attributed (whether
    any of its examples has token attributions; ``attributed`` lists the attributed example ids).
    """
    in_set = examples[examples["probe_set"] == probe_set]
    instances = pd.DataFrame({"instance_id": list(dict.fromkeys(in_set["instance_id"].astype(str)))})
    rows = effects[effects["probe_set"] == probe_set]
    if reference is not None:
        rows = rows[rows["group_b"].astype(str) == reference]
    if output is not None and (rows["output"].astype(str) == output).any():
        rows = rows[rows["output"].astype(str) == output]
    readable = rows[~rows["group_a"].astype(str).isin(set(unreadable))]
    rows = readable if not readable.empty else rows
    rows = rows.assign(_abs=pd.to_numeric(rows["delta"], errors="coerce").abs()).dropna(subset=["_abs"])
    largest = rows.sort_values("_abs", ascending=False, kind="stable").drop_duplicates("instance_id")
    ranked = instances.merge(
        pd.DataFrame(
            {
                "instance_id": largest["instance_id"].astype(str),
                "max_abs_delta": largest["_abs"].astype(float),
                "language": largest["group_a"].astype(str),
            }
        ),
        how="left",
        on="instance_id",
    )
    attributed_ids = set(in_set.loc[in_set["example_id"].isin(set(attributed)), "instance_id"].astype(str))
    ranked["attributed"] = ranked["instance_id"].isin(attributed_ids)
    return ranked.sort_values(
        "max_abs_delta", ascending=False, na_position="last", kind="stable"
    ).reset_index(drop=True)


def _score_of(
    predictions: pd.DataFrame, example_id: str, instance_id: str, output: str | None
) -> tuple[float, str | None]:
    rows = predictions[predictions["example_id"] == example_id]
    labels = rows["label"].dropna()
    label = str(labels.iloc[0]) if len(labels) else None
    if output is None:
        return math.nan, label
    chosen = rows[rows["output"].astype(str) == output]
    if chosen.empty and output == SIMILARITY_OUTPUT:
        chosen = rows[rows["output"].astype(str) == f"sim:{instance_id}"]
    score = _number(chosen["score"].iloc[0]) if len(chosen) else math.nan
    return score, label


def side_by_side_rows(
    examples: pd.DataFrame,
    predictions: pd.DataFrame,
    effects: pd.DataFrame,
    probe_set: str,
    instance_id: str,
    *,
    order: Sequence[str] = (),
    scripts: Mapping[str, str] | None = None,
    output: str | None = None,
    reference: str | None = None,
    unreadable: Iterable[str] = (),
) -> pd.DataFrame:
    """One row per language of an instance, in ``order``: what the side-by-side view shows.

    Columns: lang, script, example_id, text, expected (label), predicted, score (of ``output``), delta
    (score minus the reference's, from the effects; NaN for the reference), unreadable, truncated.
    """
    scripts = scripts or {}
    gone = set(unreadable)
    variants = examples[
        (examples["probe_set"] == probe_set) & (examples["instance_id"].astype(str) == instance_id)
    ]
    own_effects = effects[
        (effects["probe_set"] == probe_set) & (effects["instance_id"].astype(str) == instance_id)
    ]
    if output is not None:
        own_effects = own_effects[own_effects["output"].astype(str) == output]
    if reference is not None:
        own_effects = own_effects[own_effects["group_b"].astype(str) == reference]
    deltas = {
        str(lang): _number(delta)
        for lang, delta in zip(own_effects["group_a"], own_effects["delta"], strict=True)
    }
    records: list[dict[str, object]] = []
    for record in variants.to_dict("records"):
        lang = str(record["lang"] if isinstance(record.get("lang"), str) else record["variant"])
        score, predicted = _score_of(predictions, str(record["example_id"]), instance_id, output)
        expected = record.get("label")
        records.append(
            {
                "lang": lang,
                "script": script_of_language(scripts, lang),
                "example_id": str(record["example_id"]),
                "text": str(record["text"]),
                "expected": str(expected) if isinstance(expected, str) else None,
                "predicted": predicted,
                "score": score,
                "delta": deltas.get(lang, math.nan),
                "unreadable": lang in gone,
                "truncated": record.get("truncated") is True,
            }
        )
    columns = [
        "lang",
        "script",
        "example_id",
        "text",
        "expected",
        "predicted",
        "score",
        "delta",
        "unreadable",
        "truncated",
    ]
    return _in_order(pd.DataFrame(records, columns=columns), order)


def _cell(value: float, fmt: str) -> str:
    return NOT_AVAILABLE if math.isnan(value) else format(value, fmt)


def side_by_side_html(
    rows: pd.DataFrame,
    tokens: Mapping[str, Sequence[TokenAttribution]],
    *,
    scale: float,
    output: str | None,
    reference: str | None,
) -> str:
    """The instance in every language as one HTML table: language, script, score, predicted (and
    expected) label, the difference from the reference, and the text coloured by its token attributions.

    Every value from the run is escaped; each text is a ``.probelens-text`` element with ``dir="auto"``
    and its ``lang`` (Arabic runs right to left), and its row carries ``data-lang``. For similarity to
    the reference text (embeddings) the predicted label is the instance whose reference text is nearest.
    """
    head = "".join(
        f'<th style="text-align:left;padding:4px 8px;border-bottom:1px solid #ccc">{html.escape(name)}</th>'
        for name in (
            "language",
            "script",
            f"score ({output})" if output else "score",
            "nearest reference text" if output == SIMILARITY_OUTPUT else "predicted",
            "expected",
            f"minus {reference}" if reference else "difference",
            "text",
        )
    )
    body: list[str] = []
    cell = 'style="padding:4px 8px;vertical-align:top;border-bottom:1px solid #eee;white-space:nowrap"'
    for row in rows.to_dict("records"):
        lang = str(row["lang"])
        example_id = str(row["example_id"])
        marks = []
        if lang == reference:
            marks.append("reference")
        if row["unreadable"]:
            marks.append(UNREADABLE_LABEL)
        if row["truncated"]:
            marks.append("truncated")
        mark = (
            f'<div style="font-size:0.8em;color:#777">{html.escape(", ".join(marks))}</div>' if marks else ""
        )
        text = text_html(str(row["text"]), tokens.get(example_id, ()), (), scale, lang=lang)
        body.append(
            f'<tr class="probelens-language-row" data-lang="{html.escape(lang, quote=True)}">'
            f"<td {cell}><b>{html.escape(lang)}</b>{mark}</td>"
            f"<td {cell}>{html.escape(str(row['script']))}</td>"
            f"<td {cell}>{_cell(float(row['score']), '.3f')}</td>"
            f"<td {cell}>{html.escape(str(row['predicted'] or NOT_AVAILABLE))}</td>"
            f"<td {cell}>{html.escape(str(row['expected'] or '-'))}</td>"
            f"<td {cell}>{_cell(float(row['delta']), '+.3f')}</td>"
            f'<td style="padding:4px 8px;vertical-align:top;border-bottom:1px solid #eee;width:60%">{text}</td>'
            "</tr>"
        )
    return (
        '<table class="probelens-languages" style="border-collapse:collapse;width:100%">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )
