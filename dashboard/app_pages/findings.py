"""Findings page: the run's statistical tests, filtered, with a forest plot of effects and intervals."""

from __future__ import annotations

import streamlit as st

from audit.metrics.catalogue import METRIC_ORDER
from audit.tables import confidence_text
from dashboard import session
from dashboard.charts import forest_plot
from dashboard.frames import (
    SEVERITY_ORDER,
    FindingsFilter,
    metric_description,
    metric_outputs,
    present_values,
    sort_findings,
    with_interval_text,
)

st.title("Findings")
run = session.require_run()
st.caption(f"Run `{run.run_id}` · model `{run.model_name}`")
findings = session.table(run, "findings", purpose="findings (the run may have stopped before its tests)")
if findings is None:
    st.stop()

alpha, min_effect = run.config.get("alpha"), run.config.get("min_effect")
confidence = float(run.config.get("confidence", 0.95))
if alpha is not None:
    st.caption(
        f"A finding is significant when its Benjamini-Hochberg q-value is below alpha = {alpha} and |effect| "
        f"reaches the practical threshold{f' (min_effect = {min_effect})' if min_effect is not None else ''}."
    )

first, second, third = st.columns(3)
chosen = FindingsFilter(
    probe_sets=tuple(
        first.multiselect("Probe set", present_values(findings, "probe_set"), key="f_probe_set")
    ),
    attributes=tuple(
        second.multiselect("Attribute", present_values(findings, "attribute"), key="f_attribute")
    ),
    metrics=tuple(
        third.multiselect("Metric", present_values(findings, "metric", METRIC_ORDER), key="f_metric")
    ),
    outputs=tuple(first.multiselect("Output", present_values(findings, "output"), key="f_output")),
    severities=tuple(
        second.multiselect("Severity", present_values(findings, "severity", SEVERITY_ORDER), key="f_severity")
    ),
    significant_only=third.checkbox("Significant only", key="f_significant"),
)
st.caption("An empty filter keeps every value.")
shown = sort_findings(chosen.apply(findings))
st.caption(f"{len(shown)} of {len(findings)} findings shown.")
if shown.empty:
    st.info("No finding matches these filters.")
    st.stop()
st.dataframe(
    with_interval_text(shown, confidence),
    hide_index=True,
    key="findings_table",
    column_config={
        "effect": st.column_config.NumberColumn(format="%+.4f"),
        "ci_low": st.column_config.NumberColumn(format="%+.4f"),
        "ci_high": st.column_config.NumberColumn(format="%+.4f"),
        "p_value": st.column_config.NumberColumn(format="%.3g"),
        "q_value": st.column_config.NumberColumn(format="%.3g"),
        "effect_size": st.column_config.NumberColumn(format="%+.3f"),
    },
)

st.subheader("Forest plot")
metrics = shown["metric"].fillna("").astype(str)
outputs = shown["output"].fillna("").astype(str)  # flip rates may name no output
plot_key = st.selectbox(
    "Metric and output",
    metric_outputs(shown),
    format_func=lambda key: f"{key[0]} of {key[1]}" if key[1] else key[0],
    key="f_plot",
    help="Effects of different metrics have different units, so the plot shows one metric and output at a time.",
)
if plot_key is None:  # a select box over a non-empty list always has a choice
    st.stop()
metric, output = plot_key
rows = shown[(metrics == metric) & (outputs == output)]
plot_title = f"{metric} of {output}" if output else metric
st.altair_chart(
    forest_plot(rows, title=plot_title, confidence=confidence), width="stretch", key="forest_plot"
)
described = metric_description(metric)
if described:
    st.caption(described)
st.caption(
    "Dots: effect (group_a minus group_b); bars: confidence interval; black rule: zero; dashed orange rules: "
    "the practical threshold. Red marks significant findings. The table's ci_method says how each interval "
    "was made; a tested row's interval excludes its no-difference value exactly when its p-value is at most "
    f'1 - confidence ({confidence_text(confidence)} intervals here). A dot marked "unbounded" has no bar: too few '
    "instances for the test to rule out any value (the table's interval column says so)."
)
