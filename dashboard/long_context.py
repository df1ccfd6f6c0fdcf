"""Data shaping and altair charts of the "Long documents" page.

Reads the long-document rows of a run's tables (audit/tables.py, schema 2): findings with the metrics
``key_effect``, ``effective_context``, ``middle_dip`` and ``swap_effect`` (see
audit/metrics/long_context.py), the attention statistics of long-document examples, and the
``segment_attributions`` table. A version-1 run, or a run without a long-document probe set, has none
of these rows; every function then returns an empty frame, never raises.

Every function here is pure pandas/altair (no Streamlit, no torch), so the tests can call it directly.
Chart text (titles, tooltips) is drawn by Vega as text, not parsed as HTML; the document and segment
texts go through dashboard.render, which escapes them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import altair as alt
import pandas as pd

from audit.kinds.names import LONG_DOCUMENT
from audit.metrics.catalogue import metrics_of
from dashboard.charts import FIT_WIDTH
from dashboard.frames import flags
from dashboard.render import TokenAttribution

LONG_METRICS = metrics_of(LONG_DOCUMENT)
"""key_effect, effective_context, middle_dip, swap_effect (audit/metrics/catalogue.py)."""
NUMBER_COLUMNS = ("effect", "ci_low", "ci_high", "p_value", "q_value", "effect_size", "n", "threshold")
KEY_COLOR = "#ff7f0e"
OTHER_SEGMENT_COLOR = "#4c78a8"
MAX_LENGTH_COLOR = "#d62728"
CUT_COLOR = "#bbbbbb"
CUT = "cut"
REACHED, TRUNCATED = "reached the model", "truncated away"
_PARTLY_CUT = re.compile(r"truncated away in (\d+) of (\d+)")


def position_label(position: float) -> str:
    """A position (0..1 of the document) as the percentage the page shows: 0.25 -> "25%"."""
    return f"{round(100 * position)}%"


def _numeric(frame: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    frame = frame.copy()
    for column in columns:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def long_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """The findings rows of long-document metrics, with numbers (doc_length, position too) as floats.

    Empty when the run has no long-document probe set; a version-1 table without the doc_length,
    position or note columns gets them as nulls.
    """
    frame = findings.copy()
    for column in ("doc_length", "position", "note"):
        if column not in frame.columns:
            frame[column] = None
    frame = frame[frame["metric"].astype("string").isin(LONG_METRICS).fillna(False).astype(bool)]
    return _numeric(frame, (*NUMBER_COLUMNS, "doc_length", "position")).reset_index(drop=True)


def long_probe_sets(findings: pd.DataFrame) -> list[str]:
    """Probe sets with long-document findings, sorted by name (findings as from :func:`long_findings`)."""
    return sorted({str(name) for name in findings["probe_set"].dropna()})


def truncation_mark(note: object) -> str:
    """The heat map's mark for a cell from its note: "cut" (key truncated away in every instance),
    "k/n cut" (in some), or "" (the key reached the model)."""
    if not isinstance(note, str):
        return ""
    partly = _PARTLY_CUT.search(note)
    if partly:
        return f"{partly.group(1)}/{partly.group(2)} {CUT}"
    return CUT if "truncated away" in note else ""


def _note_text(note: object) -> str:
    return note if isinstance(note, str) else ""


def key_effect_cells(findings: pd.DataFrame, probe_set: str, output: str | None = None) -> pd.DataFrame:
    """One row per document length x position of the key sentence's effect (metric "key_effect").

    Columns: doc_length (int), position, position_label, effect, ci_low, ci_high, n, q_value,
    significant, note, mark (see :func:`truncation_mark`), output. ``output`` None keeps every output.
    """
    rows = findings[(findings["metric"] == "key_effect") & (findings["probe_set"] == probe_set)]
    if output is not None:
        rows = rows[rows["output"].astype(str) == output]
    rows = rows.dropna(subset=["doc_length", "position"])
    cells = pd.DataFrame(
        {
            "doc_length": rows["doc_length"].astype(int),
            "position": rows["position"].astype(float),
            "position_label": [position_label(p) for p in rows["position"]],
            "effect": rows["effect"],
            "ci_low": rows["ci_low"],
            "ci_high": rows["ci_high"],
            "n": rows["n"],
            "q_value": rows["q_value"],
            "significant": flags(rows["significant"]),
            "note": [_note_text(note) for note in rows["note"]],
            "mark": [truncation_mark(note) for note in rows["note"]],
            "output": rows["output"].astype(str),
        }
    )
    return cells.sort_values(["doc_length", "position"]).reset_index(drop=True)


def effective_context_by_length(findings: pd.DataFrame, probe_set: str) -> pd.DataFrame:
    """Effective context per document length (metric "effective_context", doc_length set).

    Columns: doc_length (int), tokens, ci_low, ci_high, position (tokens / doc_length: where the
    curves mark it), n, note. tokens is NaN when the key does not move the output even at the start.
    """
    rows = findings[
        (findings["metric"] == "effective_context")
        & (findings["probe_set"] == probe_set)
        & findings["doc_length"].notna()
    ]
    frame = pd.DataFrame(
        {
            "doc_length": rows["doc_length"].astype(int),
            "tokens": rows["effect"],
            "ci_low": rows["ci_low"],
            "ci_high": rows["ci_high"],
            "position": rows["effect"] / rows["doc_length"],
            "n": rows["n"],
            "note": [_note_text(note) for note in rows["note"]],
        }
    )
    return frame.sort_values("doc_length").reset_index(drop=True)


def model_effective_context(findings: pd.DataFrame, probe_set: str) -> pd.Series | None:
    """The model-level effective context row of a probe set (doc_length null), or None when absent."""
    rows = findings[
        (findings["metric"] == "effective_context")
        & (findings["probe_set"] == probe_set)
        & findings["doc_length"].isna()
    ]
    return None if rows.empty else rows.iloc[0]


def model_max_length(model: dict[str, object]) -> int | None:
    """The model's maximum input length in tokens as the manifest records it (``max_length``), or None."""
    value = model.get("max_length")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        return None
    return int(value)


@dataclass(frozen=True)
class RunEffectiveContext:
    """What the effective-context comparison needs of one run."""

    run_id: str
    model: str
    max_length: int | None
    findings: pd.DataFrame
    """The run's findings as from :func:`long_findings`."""


def effective_context_by_run(runs: Sequence[RunEffectiveContext]) -> pd.DataFrame:
    """One row per run x probe set of the model-level effective context, for the bar chart.

    Columns: run, model, run_label ("model (run id)"), probe_set, tokens, ci_low, ci_high, max_length,
    note. Runs without a model-level row are left out.
    """
    rows: list[dict[str, object]] = []
    for run in runs:
        for probe_set in long_probe_sets(run.findings):
            row = model_effective_context(run.findings, probe_set)
            if row is None:
                continue
            rows.append(
                {
                    "run": run.run_id,
                    "model": run.model,
                    "run_label": f"{run.model} ({run.run_id})",
                    "probe_set": probe_set,
                    "tokens": float(row["effect"]),
                    "ci_low": float(row["ci_low"]),
                    "ci_high": float(row["ci_high"]),
                    "max_length": float(run.max_length) if run.max_length is not None else math.nan,
                    "note": _note_text(row["note"]),
                }
            )
    columns = ["run", "model", "run_label", "probe_set", "tokens", "ci_low", "ci_high", "max_length", "note"]
    return pd.DataFrame(rows, columns=columns)


def long_examples(examples: pd.DataFrame, probe_set: str) -> pd.DataFrame:
    """Examples of a long-document probe set (doc_length set); empty for a version-1 table."""
    if "doc_length" not in examples.columns:
        return examples.iloc[0:0]
    rows = examples[(examples["probe_set"] == probe_set) & examples["doc_length"].notna()]
    return _numeric(rows, ("doc_length", "position"))


def attention_by_layer(
    attention: pd.DataFrame,
    examples: pd.DataFrame,
    *,
    probe_set: str,
    doc_length: int,
    stat: str = "focus_mass",
) -> pd.DataFrame:
    """Mean of one attention statistic per layer and key position, for the key-sentence examples of one length.

    Each example's value is first averaged over heads, then over the instances at that position, so
    every instance counts once. NaN values (an example whose key never reached the model) are left
    out; a position with none left has no row. Identity-swap variants (swap_group set) are not included.
    Columns: layer, position, position_label, value, n_examples.
    """
    chosen = long_examples(examples, probe_set)
    chosen = chosen[(chosen["doc_length"] == doc_length) & chosen["position"].notna()]
    if "swap_group" in chosen.columns:
        chosen = chosen[chosen["swap_group"].isna()]
    rows = attention[(attention["stat"] == stat) & attention["example_id"].isin(set(chosen["example_id"]))]
    rows = rows.assign(value=pd.to_numeric(rows["value"], errors="coerce")).dropna(subset=["value"])
    per_example = rows.groupby(["example_id", "layer"], as_index=False)["value"].mean()
    per_example = per_example.merge(chosen[["example_id", "position"]], on="example_id")
    grouped = per_example.groupby(["layer", "position"], as_index=False).agg(
        value=("value", "mean"), n_examples=("example_id", "nunique")
    )
    grouped["position_label"] = [position_label(p) for p in grouped["position"]]
    columns = ["layer", "position", "position_label", "value", "n_examples"]
    return grouped[columns].sort_values(["position", "layer"]).reset_index(drop=True)


SwapPair = tuple[str, str, str, str]
"""(attribute, group_a, group_b, output) of identity-swap findings."""


def swap_pairs(findings: pd.DataFrame, probe_set: str) -> list[SwapPair]:
    """The (attribute, group_a, group_b, output) combinations of a probe set's swap_effect rows, sorted."""
    rows = findings[(findings["metric"] == "swap_effect") & (findings["probe_set"] == probe_set)]
    keys = rows[["attribute", "group_a", "group_b", "output"]].astype(str).drop_duplicates()
    return sorted(tuple(key) for key in keys.itertuples(index=False, name=None))  # type: ignore[misc]


def swap_pair_label(pair: SwapPair) -> str:
    attribute, group_a, group_b, output = pair
    return f"{attribute}: {group_a} vs {group_b} ({output})"


def _swap_rows(findings: pd.DataFrame, probe_set: str, pair: SwapPair) -> pd.DataFrame:
    attribute, group_a, group_b, output = pair
    return findings[
        (findings["metric"] == "swap_effect")
        & (findings["probe_set"] == probe_set)
        & (findings["attribute"].astype(str) == attribute)
        & (findings["group_a"].astype(str) == group_a)
        & (findings["group_b"].astype(str) == group_b)
        & (findings["output"].astype(str) == output)
    ]


def swap_cells(findings: pd.DataFrame, probe_set: str, pair: SwapPair) -> pd.DataFrame:
    """Swap effect (group_a minus group_b) per document length x position of one pair.

    Columns as :func:`key_effect_cells` plus severity.
    """
    rows = _swap_rows(findings, probe_set, pair).dropna(subset=["doc_length", "position"])
    cells = pd.DataFrame(
        {
            "doc_length": rows["doc_length"].astype(int),
            "position": rows["position"].astype(float),
            "position_label": [position_label(p) for p in rows["position"]],
            "effect": rows["effect"],
            "ci_low": rows["ci_low"],
            "ci_high": rows["ci_high"],
            "n": rows["n"],
            "q_value": rows["q_value"],
            "significant": flags(rows["significant"]),
            "severity": rows["severity"].astype(str),
            "note": [_note_text(note) for note in rows["note"]],
            "mark": [truncation_mark(note) for note in rows["note"]],
        }
    )
    return cells.sort_values(["doc_length", "position"]).reset_index(drop=True)


SUMMARY_COLUMNS = [
    "attribute",
    "group_a",
    "group_b",
    "output",
    "doc_length",
    "effect",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
    "effect_size",
    "n",
    "significant",
    "severity",
    "note",
]


def swap_overall(findings: pd.DataFrame, probe_set: str) -> pd.DataFrame:
    """The swap_effect rows pooled over lengths and positions (doc_length and position null)."""
    rows = findings[
        (findings["metric"] == "swap_effect")
        & (findings["probe_set"] == probe_set)
        & findings["doc_length"].isna()
        & findings["position"].isna()
    ]
    return rows[SUMMARY_COLUMNS].reset_index(drop=True)


def middle_dips(findings: pd.DataFrame, probe_set: str) -> pd.DataFrame:
    """The middle_dip rows of a probe set (effect at the ends minus in the middle), by document length."""
    rows = findings[(findings["metric"] == "middle_dip") & (findings["probe_set"] == probe_set)]
    rows = rows.sort_values("doc_length")[SUMMARY_COLUMNS]
    return rows.assign(doc_length=rows["doc_length"].astype("Int64")).reset_index(drop=True)


def segment_examples(segments: pd.DataFrame, examples: pd.DataFrame) -> pd.DataFrame:
    """Examples that have segment attributions, with what the picker shows: shortest document first.

    Columns: example_id, instance_id, variant, doc_length, position, text, focus.
    """
    columns = ["example_id", "instance_id", "variant", "doc_length", "position", "text", "focus"]
    present = examples[examples["example_id"].isin(set(segments["example_id"]))]
    present = _numeric(present.reindex(columns=columns), ("doc_length", "position"))
    return present.sort_values(["doc_length", "instance_id", "position"], na_position="last").reset_index(
        drop=True
    )


def segment_rows(segments: pd.DataFrame, example_id: str, method: str, text: str) -> pd.DataFrame:
    """One example's segments for one method, in document order, with their text.

    Columns: segment_index, char_start, char_end, start, end (0..1 of the text), n_tokens,
    attribution, is_key, reached (any token reached the model), text, output.
    """
    rows = segments[(segments["example_id"] == example_id) & (segments["method"] == method)]
    rows = _numeric(rows, ("char_start", "char_end", "n_tokens", "attribution", "segment_index"))
    rows = rows.dropna(subset=["char_start", "char_end"]).sort_values("segment_index")
    length = max(len(text), 1)
    starts, ends = rows["char_start"].astype(int), rows["char_end"].astype(int)
    frame = pd.DataFrame(
        {
            "segment_index": rows["segment_index"].astype(int),
            "char_start": starts,
            "char_end": ends,
            "start": starts / length,
            "end": ends / length,
            "n_tokens": rows["n_tokens"].fillna(0).astype(int),
            "attribution": rows["attribution"],
            "is_key": flags(rows["is_key"]),
            "reached": rows["n_tokens"].fillna(0) > 0,
            "text": [text[start:end] for start, end in zip(starts, ends, strict=True)],
            "output": rows["output"].astype(str),
        }
    )
    return frame.reset_index(drop=True)


def segment_tokens(rows: pd.DataFrame) -> list[TokenAttribution]:
    """Segments as pseudo-tokens for dashboard.render.text_html: the document coloured by segment.

    The hover title of each segment reads "segment 3 (12 tokens): +0.0123"; key segments are underlined.
    """
    tokens: list[TokenAttribution] = []
    for row in rows.to_dict("records"):
        attribution = float(row["attribution"])
        tokens.append(
            TokenAttribution(
                token=f"segment {row['segment_index']} ({row['n_tokens']} tokens{'' if row['reached'] else ', cut'})",
                start=int(row["char_start"]),
                end=int(row["char_end"]),
                value=0.0 if math.isnan(attribution) else attribution,
                is_focus=bool(row["is_key"]),
            )
        )
    return tokens


# ---------------------------------------------------------------- charts

_POSITION_AXIS = alt.Axis(format="%", title="position of the sentence in the document")


def key_effect_heatmap(cells: pd.DataFrame, *, title: str) -> alt.LayerChart:
    """Document length x position map of the key effect; cut cells framed with a dashed border and labelled.

    ``cells`` as from :func:`key_effect_cells`. Colour: diverging, centred at 0 (score units).
    """
    order = [position_label(p) for p in sorted(set(cells["position"]))]
    lengths = sorted(set(cells["doc_length"]), reverse=True)
    x = alt.X(
        "position_label:O", sort=order, title="position of the key sentence", axis=alt.Axis(labelAngle=0)
    )
    y = alt.Y("doc_length:O", sort=lengths, title="document length (tokens)")
    tooltip = [
        alt.Tooltip("doc_length:O", title="document length"),
        alt.Tooltip("position_label:N", title="position"),
        alt.Tooltip("effect:Q", format="+.4f"),
        alt.Tooltip("ci_low:Q", format="+.4f"),
        alt.Tooltip("ci_high:Q", format="+.4f"),
        alt.Tooltip("n:Q"),
        alt.Tooltip("q_value:Q", format=".3g"),
        alt.Tooltip("note:N"),
    ]
    base = alt.Chart(cells).encode(x=x, y=y, tooltip=tooltip)
    colour = alt.Color(
        "effect:Q", scale=alt.Scale(scheme="redblue", domainMid=0, reverse=True), title="key effect"
    )
    rects = base.mark_rect().encode(color=colour)
    marked = cells[cells["mark"] != ""]
    layers: list[alt.Chart] = [rects]
    if not marked.empty:
        marked_base = alt.Chart(marked).encode(x=x, y=y, tooltip=tooltip)
        layers.append(marked_base.mark_rect(filled=False, stroke="#333", strokeDash=[3, 2], strokeWidth=1.5))
        layers.append(marked_base.mark_text(color="#333", fontSize=11).encode(text="mark:N"))
    height = max(34 * len(lengths), 120)
    return alt.LayerChart(layer=layers, title=title, height=height, autosize=FIT_WIDTH)


def position_curves(
    cells: pd.DataFrame, *, title: str, y_title: str, marks: pd.DataFrame | None = None
) -> alt.LayerChart:
    """Effect by position with its confidence band, one line per document length.

    ``cells`` as from :func:`key_effect_cells` or :func:`swap_cells`; points of cells whose sentence was
    truncated away (a ``mark``) are drawn as crosses. ``marks`` (columns doc_length, position, tokens)
    draws a dashed rule per length at the effective context. A black rule marks zero.
    """
    frame = cells.assign(
        doc_length_label=cells["doc_length"].astype(str),
        sentence=[TRUNCATED if mark else REACHED for mark in cells["mark"]],
    )
    lengths = [str(length) for length in sorted(set(cells["doc_length"]))]
    colour = alt.Color(
        "doc_length_label:N",
        sort=lengths,
        scale=alt.Scale(domain=lengths, scheme="tableau10"),
        title="document length (tokens)",
    )
    x = alt.X("position:Q", scale=alt.Scale(domain=[0, 1]), axis=_POSITION_AXIS)
    base = alt.Chart(frame).encode(x=x, color=colour)
    tooltip = [
        alt.Tooltip("doc_length:O", title="document length"),
        alt.Tooltip("position_label:N", title="position"),
        alt.Tooltip("effect:Q", format="+.4f"),
        alt.Tooltip("ci_low:Q", format="+.4f"),
        alt.Tooltip("ci_high:Q", format="+.4f"),
        alt.Tooltip("n:Q"),
        alt.Tooltip("q_value:Q", format=".3g"),
        alt.Tooltip("note:N"),
    ]
    band = base.mark_area(opacity=0.18).encode(y=alt.Y("ci_low:Q", title=y_title), y2="ci_high:Q")
    line = base.mark_line().encode(y="effect:Q")
    shape = alt.Shape(
        "sentence:N",
        scale=alt.Scale(domain=[REACHED, TRUNCATED], range=["circle", "cross"]),
        legend=alt.Legend(title="the sentence"),
    )
    points = base.mark_point(filled=True, size=45).encode(y="effect:Q", shape=shape, tooltip=tooltip)
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="black").encode(y="y:Q")
    layers: list[alt.Chart] = [band, line, points, zero]
    if marks is not None:
        shown = marks.dropna(subset=["position"])
        shown = shown.assign(doc_length_label=shown["doc_length"].astype(str))
        if not shown.empty:
            layers.append(
                alt.Chart(shown)
                .mark_rule(strokeDash=[6, 4], strokeWidth=2)
                .encode(
                    x="position:Q",
                    color=colour,
                    tooltip=[
                        alt.Tooltip("doc_length:O", title="document length"),
                        alt.Tooltip("tokens:Q", title="effective context (tokens)", format=",.0f"),
                    ],
                )
            )
    return alt.LayerChart(layer=layers, title=title, height=320, autosize=FIT_WIDTH)


def effective_context_bars(rows: pd.DataFrame, *, title: str) -> alt.LayerChart:
    """One bar per run (model) of the effective context with its interval; a red tick marks each
    model's maximum length. ``rows`` as from :func:`effective_context_by_run`, one probe set."""
    order = list(dict.fromkeys(rows["run_label"]))
    y = alt.Y("run_label:N", sort=order, title=None, axis=alt.Axis(labelLimit=420))
    tooltip = [
        alt.Tooltip("model:N"),
        alt.Tooltip("run:N"),
        alt.Tooltip("tokens:Q", title="effective context (tokens)", format=",.0f"),
        alt.Tooltip("ci_low:Q", format=",.0f"),
        alt.Tooltip("ci_high:Q", format=",.0f"),
        alt.Tooltip("max_length:Q", title="model maximum length", format=",.0f"),
    ]
    base = alt.Chart(rows).encode(y=y, tooltip=tooltip)
    bars = base.mark_bar(color="#4c78a8", opacity=0.8).encode(x=alt.X("tokens:Q", title="tokens"))
    intervals = base.mark_rule(color="black", strokeWidth=2).encode(x="ci_low:Q", x2="ci_high:Q")
    layers: list[alt.Chart] = [bars, intervals]
    limits = rows.dropna(subset=["max_length"])
    if not limits.empty:
        layers.append(
            alt.Chart(limits)
            .mark_tick(color=MAX_LENGTH_COLOR, thickness=3, size=30)
            .encode(
                y=y,
                x="max_length:Q",
                tooltip=[alt.Tooltip("max_length:Q", title="model maximum length", format=",.0f")],
            )
        )
    height = max(44 * len(order), 80)
    return alt.LayerChart(layer=layers, title=title, height=height, autosize=FIT_WIDTH)


def attention_layer_lines(values: pd.DataFrame, *, title: str, stat: str) -> alt.Chart:
    """A statistic by layer, one line per key position (columns layer, position, position_label, value)."""
    order = [position_label(p) for p in sorted(set(values["position"]))]
    return (
        alt.Chart(values)
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:O", title="layer", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("value:Q", title=f"mean {stat}"),
            color=alt.Color(
                "position_label:O", sort=order, scale=alt.Scale(scheme="viridis"), title="key position"
            ),
            tooltip=[
                alt.Tooltip("layer:O"),
                alt.Tooltip("position_label:N", title="key position"),
                alt.Tooltip("value:Q", format=".4f"),
                alt.Tooltip("n_examples:Q", title="examples"),
            ],
        )
        .properties(title=title, height=300, autosize=FIT_WIDTH)
    )


def segment_bars(rows: pd.DataFrame, *, title: str) -> alt.LayerChart:
    """Each segment's attribution as a bar spanning its place in the document; the key segment in orange.

    ``rows`` as from :func:`segment_rows`; segments that never reached the model (truncated away) are a
    grey strip on the zero line.
    """
    frame = rows.assign(
        kind=rows["is_key"].map({True: "key sentence", False: "other text"}),
        zero=0.0,
        preview=[text if len(text) <= 160 else text[:157] + "..." for text in rows["text"]],
    )
    colour = alt.Color(
        "kind:N",
        scale=alt.Scale(domain=["key sentence", "other text"], range=[KEY_COLOR, OTHER_SEGMENT_COLOR]),
        legend=alt.Legend(title=None, orient="top"),
    )
    base = alt.Chart(frame).encode(
        x=alt.X(
            "start:Q",
            scale=alt.Scale(domain=[0, 1]),
            axis=alt.Axis(format="%", title="place in the document"),
        ),
        x2="end:Q",
        y=alt.Y("attribution:Q", title="attribution (score change)"),
        y2="zero:Q",
        color=colour,
        tooltip=[
            alt.Tooltip("segment_index:Q", title="segment"),
            alt.Tooltip("attribution:Q", format="+.4f"),
            alt.Tooltip("n_tokens:Q", title="tokens that reached the model"),
            alt.Tooltip("char_start:Q", title="first character"),
            alt.Tooltip("char_end:Q", title="end character"),
            alt.Tooltip("preview:N", title="text"),
        ],
    )
    bars = base.mark_rect(stroke="white", strokeWidth=0.5)
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(color="black").encode(y="y:Q")
    layers: list[alt.Chart] = [bars, zero]
    cut = frame[~frame["reached"]]
    if not cut.empty:
        layers.append(
            alt.Chart(cut)
            .mark_rule(color=CUT_COLOR, strokeWidth=6)
            .encode(
                x="start:Q",
                x2="end:Q",
                y="zero:Q",
                tooltip=[
                    alt.Tooltip("segment_index:Q", title="segment"),
                    alt.Tooltip("preview:N", title="never reached the model"),
                ],
            )
        )
    return alt.LayerChart(layer=layers, title=title, height=260, autosize=FIT_WIDTH)
