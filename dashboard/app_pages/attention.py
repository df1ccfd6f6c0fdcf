"""Attention page: a layer x head map of one attention statistic, averaged over chosen examples."""

from __future__ import annotations

import streamlit as st

from dashboard import session
from dashboard.charts import attention_heatmap
from dashboard.frames import ATTENTION_STATS, attention_difference, attention_means, present_values

STAT_HELP = {
    "entropy": "entropy of each query's attention distribution (nats), averaged over queries",
    "focus_mass": "attention mass that lands on the focus tokens",
    "special_mass": "attention mass that lands on special tokens ([CLS], [SEP], BOS ...)",
    "sink_mass": "attention mass that lands on the first four tokens (attention sinks)",
    "mean_distance": "mean |query - key| position distance, weighted by attention",
}
SCOPES = ("All examples", "A probe set", "A group", "One example")

st.title("Attention")
run = session.require_run()
st.caption(f"Run `{run.run_id}` · model `{run.model_name}`")
attention = session.table(
    run,
    "attention",
    purpose="attention statistics (the run was made with --no-attention, or its model exposes no attention)",
)
if attention is None:
    st.stop()
examples = session.table(run, "examples", purpose="attention by probe set or group")
if examples is None:
    st.stop()
examples = examples[examples["example_id"].isin(set(attention["example_id"]))]

stat = st.selectbox(
    "Statistic",
    present_values(attention, "stat", ATTENTION_STATS),
    format_func=lambda name: f"{name}: {STAT_HELP[name]}" if name in STAT_HELP else name,
    key="a_stat",
)
scope = st.radio("Average over", SCOPES, horizontal=True, key="a_scope")
chosen_ids: list[str] | None = None
description = "all examples"
if scope == "A probe set":
    probe_set = st.selectbox("Probe set", present_values(examples, "probe_set"), key="a_probe_set")
    chosen_ids = list(examples.loc[examples["probe_set"] == probe_set, "example_id"])
    description = f"probe set {probe_set}"
elif scope == "A group":
    probe_set = st.selectbox("Probe set", present_values(examples, "probe_set"), key="a_probe_set")
    in_set = examples[examples["probe_set"] == probe_set]
    group = st.selectbox("Group", present_values(in_set, "variant"), key="a_group")
    chosen_ids = list(in_set.loc[in_set["variant"] == group, "example_id"])
    description = f"group {group} of {probe_set}"
elif scope == "One example":
    example_id = st.selectbox("Example", sorted(examples["example_id"].astype(str)), key="a_example")
    chosen_ids = [str(example_id)]
    description = f"example {example_id}"

cells = attention_means(attention, str(stat), chosen_ids)
if cells.empty:
    st.info("No attention statistics for this choice.")
else:
    n_examples = int(cells["n_examples"].max())
    st.altair_chart(
        attention_heatmap(cells, title=f"mean {stat} over {description} ({n_examples} examples)"),
        width="stretch",
        key="attention_heatmap",
    )

st.subheader("Difference between two groups")
probe_sets = present_values(examples, "probe_set")
diff_set = st.selectbox("Probe set", probe_sets, key="a_diff_probe_set")
diff_examples = examples[examples["probe_set"] == diff_set]
groups = present_values(diff_examples, "variant")
if len(groups) < 2:
    st.info("This probe set has fewer than two groups with attention statistics.")
    st.stop()
left, right = st.columns(2)
group_a = left.selectbox("Group a", groups, index=0, key="a_diff_group_a")
group_b = right.selectbox("Group b", groups, index=1, key="a_diff_group_b")
if group_a == group_b:
    st.info("Pick two different groups.")
    st.stop()
difference = attention_difference(
    attention,
    str(stat),
    list(diff_examples.loc[diff_examples["variant"] == group_a, "example_id"]),
    list(diff_examples.loc[diff_examples["variant"] == group_b, "example_id"]),
)
st.altair_chart(
    attention_heatmap(difference, title=f"{stat}: {group_a} minus {group_b} ({diff_set})", diverging=True),
    width="stretch",
    key="attention_difference",
)
