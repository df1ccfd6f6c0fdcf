"""Altair charts of the dashboard: the findings forest plot and the layer x head attention map."""

from __future__ import annotations

import math

import altair as alt
import pandas as pd

from dashboard.frames import flags, pair_label, unbounded, with_interval_text

SIGNIFICANT_COLOR = "#d62728"
NOT_SIGNIFICANT_COLOR = "#7f7f7f"
ROW_HEIGHT = 26
FIT_WIDTH = alt.AutoSizeParams(type="fit-x", contains="padding")
"""Fill the container's width; the height given is the plot's own (Streamlit would fit legend and title in it)."""


def forest_plot(findings: pd.DataFrame, *, title: str = "", confidence: float = 0.95) -> alt.LayerChart:
    """Effect with its confidence interval per group pair, coloured by significance.

    Rows should share one metric and output (their units differ). A solid rule marks zero and dashed
    rules the practical threshold(s) |effect| must reach; flip rates get only the positive one. An
    interval the test cannot bound (an infinite end, which vega cannot draw: a bare dot would look
    precise) gets the word "unbounded" beside its dot and no bar; every tooltip carries the interval
    as text (``interval``).
    """
    frame = with_interval_text(findings, confidence).assign(
        pair=pair_label(findings),
        status=flags(findings["significant"]).map({True: "significant", False: "not significant"}),
        effect=pd.to_numeric(findings["effect"], errors="coerce"),
        # an infinite end draws no bar (vega cannot place it): null, with the word beside the dot instead
        ci_low=pd.to_numeric(findings["ci_low"], errors="coerce").replace(-math.inf, math.nan),
        ci_high=pd.to_numeric(findings["ci_high"], errors="coerce").replace(math.inf, math.nan),
        q_value=pd.to_numeric(findings["q_value"], errors="coerce"),
        unbounded=unbounded(findings),
    )
    frame = frame[
        ["pair", "status", "effect", "ci_low", "ci_high", "interval", "unbounded", "q_value", "n", "severity"]
        + ["metric", "output"]
    ]
    color = alt.Color(
        "status:N",
        scale=alt.Scale(
            domain=["significant", "not significant"], range=[SIGNIFICANT_COLOR, NOT_SIGNIFICANT_COLOR]
        ),
        legend=alt.Legend(title=None, orient="top"),
    )
    y = alt.Y("pair:N", sort=list(dict.fromkeys(frame["pair"])), title=None, axis=alt.Axis(labelLimit=420))
    base = alt.Chart(frame).encode(y=y, color=color)
    intervals = base.mark_rule(strokeWidth=2).encode(x=alt.X("ci_low:Q", title="effect"), x2="ci_high:Q")
    points = base.mark_point(filled=True, size=70).encode(
        x="effect:Q",
        tooltip=[
            alt.Tooltip("pair:N"),
            alt.Tooltip("effect:Q", format="+.4f"),
            alt.Tooltip("ci_low:Q", format="+.4f"),
            alt.Tooltip("ci_high:Q", format="+.4f"),
            alt.Tooltip("interval:N"),
            alt.Tooltip("q_value:Q", format=".3g"),
            alt.Tooltip("n:Q"),
            alt.Tooltip("severity:N"),
        ],
    )
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(color="black").encode(x="x:Q")
    layers: list[alt.Chart] = [intervals, points, zero]
    rules = threshold_rules(findings)
    if not rules.empty:
        layers.append(
            alt.Chart(rules)
            .mark_rule(color="#ff7f0e", strokeDash=[5, 4])
            .encode(x="x:Q", tooltip=[alt.Tooltip("x:Q", title="practical threshold")])
        )
    if frame["unbounded"].any():
        layers.append(
            base.transform_filter("datum.unbounded")
            .mark_text(align="left", dx=8, fontStyle="italic")
            .encode(x="effect:Q", text=alt.value("unbounded"), tooltip=[alt.Tooltip("interval:N")])
        )
    height = max(ROW_HEIGHT * frame["pair"].nunique(), 80)
    return alt.LayerChart(layer=layers, title=title, height=height, autosize=FIT_WIDTH)


def threshold_rules(findings: pd.DataFrame) -> pd.DataFrame:
    """Positions (column x) of the practical-threshold rules: +t and -t, only +t for flip rates."""
    positions: set[float] = set()
    for metric, threshold in zip(
        findings["metric"], pd.to_numeric(findings["threshold"], errors="coerce"), strict=True
    ):
        if pd.isna(threshold) or threshold <= 0:
            continue
        positions.add(float(threshold))
        if metric != "flip_rate":
            positions.add(-float(threshold))
    return pd.DataFrame({"x": sorted(positions)}, dtype=float)


def attention_heatmap(cells: pd.DataFrame, *, title: str, diverging: bool = False) -> alt.Chart:
    """Layer x head map of ``value`` (columns layer, head, value); a diverging scale centred at 0 for differences."""
    scale = (
        alt.Scale(scheme="redblue", domainMid=0, reverse=True) if diverging else alt.Scale(scheme="viridis")
    )
    return (
        alt.Chart(cells)
        .mark_rect()
        .encode(
            x=alt.X("head:O", title="head", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("layer:O", title="layer", sort="ascending"),
            color=alt.Color("value:Q", scale=scale, title=None),
            tooltip=[alt.Tooltip("layer:O"), alt.Tooltip("head:O"), alt.Tooltip("value:Q", format=".4f")],
        )
        .properties(title=title, height=max(28 * cells["layer"].nunique(), 120), autosize=FIT_WIDTH)
    )
