"""What the pages share through Streamlit: the runs folder, the chosen run(s) and guarded table reads.

The chosen run lives in session state (it survives page switches) and is mirrored in the URL as
``?run=<run_id>`` so a link opens the same run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard.data import RunDataError, RunInfo, list_runs, read_table, runs_dir_from

RUN_KEY = "probelens_run"
COMPARE_KEY = "probelens_compare_run"
RUN_QUERY_PARAM = "run"


def runs_dir() -> Path:
    """The runs folder given by ``-- --runs DIR`` or $PROBELENS_RUNS_DIR (./runs by default)."""
    return runs_dir_from(sys.argv[1:], os.environ)


def available_runs() -> list[RunInfo]:
    return list_runs(runs_dir())


def current_run(runs: list[RunInfo]) -> RunInfo | None:
    """The chosen run: from session state, else the URL's ?run=, else the newest readable run."""
    by_id = {run.run_id: run for run in runs}
    chosen = st.session_state.get(RUN_KEY)
    if chosen not in by_id:
        requested = st.query_params.get(RUN_QUERY_PARAM)
        readable = [run.run_id for run in runs if run.problem is None]
        chosen = requested if requested in by_id else (readable[0] if readable else None)
        st.session_state[RUN_KEY] = chosen
    return by_id.get(chosen) if chosen is not None else None


def choose_run(run_id: str | None) -> None:
    st.session_state[RUN_KEY] = run_id


def compare_run(runs: list[RunInfo]) -> RunInfo | None:
    """The second run picked for comparison, if any (never the chosen run itself)."""
    by_id = {run.run_id: run for run in runs}
    chosen = st.session_state.get(COMPARE_KEY)
    if chosen == st.session_state.get(RUN_KEY):
        return None
    return by_id.get(chosen) if isinstance(chosen, str) else None


def choose_compare_run(run_id: str | None) -> None:
    st.session_state[COMPARE_KEY] = run_id


def pick_runs_to_compare(run: RunInfo, *, key: str, help: str) -> list[RunInfo]:
    """A multiselect of the readable runs (default: this run and the Runs page's comparison run);
    the chosen runs, in the order picked."""
    readable = [other for other in available_runs() if other.problem is None]
    labels = {other.run_id: other.label for other in readable}
    default = [run.run_id]
    compared = compare_run(readable)
    if compared is not None:
        default.append(compared.run_id)
    chosen = st.multiselect(
        "Runs (models) to compare",
        list(labels),
        default=[run_id for run_id in default if run_id in labels],
        format_func=labels.__getitem__,
        key=key,
        help=help,
    )
    by_id = {other.run_id: other for other in readable}
    return [by_id[run_id] for run_id in chosen]


def require_run() -> RunInfo:
    """The chosen run, or a message and the end of the page when there is none or it is unreadable."""
    runs = available_runs()
    run = current_run(runs)
    if run is None:
        st.info(f"No run to show. Runs are read from `{runs_dir()}`; pick one on the Runs page.")
        st.stop()
    if run.problem:
        st.error(f"Run {run.run_id} cannot be shown: {run.problem}")
        st.stop()
    return run


def table(run: RunInfo, name: str, *, purpose: str) -> pd.DataFrame | None:
    """A table of the run, or None after a message saying why it cannot be shown.

    ``purpose`` completes "This run has no <name> table, so there is nothing to show for ...".
    """
    try:
        frame = read_table(run.path, name)
    except RunDataError as error:
        st.error(f"The {name} table of run {run.run_id} cannot be read: {error}")
        return None
    if frame.empty:
        st.info(f"This run has no {name} table (or it is empty), so there is nothing to show for {purpose}.")
        return None
    return frame
