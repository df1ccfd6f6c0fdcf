"""Runs page: every run in the runs folder; choose the run the other pages show, or two to compare."""

from __future__ import annotations

import streamlit as st

from dashboard import session
from dashboard.data import read_table, runs_frame
from dashboard.frames import compare_findings, flags

st.title("Runs")
runs = session.available_runs()
folder = session.runs_dir()
if not folder.is_dir():
    st.warning(
        f"The runs folder `{folder}` does not exist. Create runs with `audit run ...`, then start the "
        "dashboard with `audit dashboard --runs DIR`."
    )
    st.stop()
if not runs:
    st.info(
        f"No runs in `{folder}` yet (a run is a folder with a manifest.json). Create one with `audit run ...`."
    )
    st.stop()

listing = runs_frame(runs)
if not listing["problem"].astype(bool).any():
    listing = listing.drop(columns=["problem"])
st.dataframe(listing, hide_index=True, key="runs_table")

run_ids = [run.run_id for run in runs]
labels = {run.run_id: run.label for run in runs}
current = session.current_run(runs)
if "runs_page_run" not in st.session_state or st.session_state["runs_page_run"] not in run_ids:
    st.session_state["runs_page_run"] = current.run_id if current else run_ids[0]
st.selectbox(
    "Run to explore",
    run_ids,
    format_func=labels.__getitem__,
    key="runs_page_run",
    on_change=lambda: session.choose_run(st.session_state["runs_page_run"]),
    help="The Findings, Instances and Attention pages show this run.",
)
run = session.current_run(runs)
if run is None:
    st.stop()
if run.problem:
    st.error(f"Run {run.run_id} cannot be shown: {run.problem}")
    st.stop()

counts = st.columns(4)
for column, (title, name) in zip(
    counts,
    (("Examples", "n_examples"), ("Findings", "n_findings"), ("Significant", "n_significant")),
    strict=False,
):
    value = run.summary_count(name)
    column.metric(title, "?" if value is None else value)
counts[3].metric("Status", run.status)
with st.expander("Manifest (model, probe sets, config, timings, versions)"):
    st.json(run.manifest, expanded=1)

st.subheader("Compare with another run")
others = [run_id for run_id in run_ids if run_id != run.run_id]
if not others:
    st.caption("There is only one run in the folder.")
    st.stop()
previous = st.session_state.get(session.COMPARE_KEY)
if st.session_state.get("runs_page_compare") not in others:
    st.session_state["runs_page_compare"] = previous if previous in others else None
st.selectbox(
    "Second run",
    others,
    index=None,
    placeholder="none: pick a run to compare its findings with this one",
    format_func=labels.__getitem__,
    key="runs_page_compare",
    on_change=lambda: session.choose_compare_run(st.session_state["runs_page_compare"]),
)
other = session.compare_run(runs)
if other is None:
    st.stop()
if other.problem:
    st.error(f"Run {other.run_id} cannot be shown: {other.problem}")
    st.stop()
try:
    compared = compare_findings(read_table(run.path, "findings"), read_table(other.path, "findings"))
except ValueError as error:
    st.error(f"The findings of these runs cannot be compared: {error}")
    st.stop()
if compared.empty:
    st.info("The two runs share no test (same probe set, attribute, pair, metric and output).")
    st.stop()
in_a, in_b = flags(compared["significant_a"]), flags(compared["significant_b"])
st.caption(
    f"{len(compared)} shared tests: significant in both {int((in_a & in_b).sum())}, "
    f"only in {run.run_id} {int((in_a & ~in_b).sum())}, only in {other.run_id} {int((~in_a & in_b).sum())}. "
    "Suffix _a is the run to explore, _b the second run; change = effect_b - effect_a."
)
st.dataframe(compared, hide_index=True, key="runs_compare_table")
