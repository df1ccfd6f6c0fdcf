"""The probelens dashboard: ``streamlit run dashboard/app.py -- --runs DIR`` (or $PROBELENS_RUNS_DIR).

Seven pages read one run folder's tables: Runs, Findings, Instances, Attention, Patching, Long documents
and Languages.
The chosen run is kept in session state and in the URL (``?run=<run_id>``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the folder holding the packages.
_PACKAGES_ROOT = str(Path(__file__).resolve().parent.parent)
if _PACKAGES_ROOT not in sys.path:
    sys.path.insert(0, _PACKAGES_ROOT)

import streamlit as st  # noqa: E402

from dashboard import session  # noqa: E402

st.set_page_config(page_title="probelens", layout="wide")

navigation = st.navigation(
    [
        st.Page("app_pages/runs.py", title="Runs", default=True),
        st.Page("app_pages/findings.py", title="Findings", url_path="findings"),
        st.Page("app_pages/instances.py", title="Instances", url_path="instances"),
        st.Page("app_pages/attention.py", title="Attention", url_path="attention"),
        st.Page("app_pages/patching.py", title="Patching", url_path="patching"),
        st.Page("app_pages/long_context.py", title="Long documents", url_path="long-documents"),
        st.Page("app_pages/languages.py", title="Languages", url_path="languages"),
    ]
)

runs = session.available_runs()
run = session.current_run(runs)
with st.sidebar:
    st.caption(f"Runs folder: `{session.runs_dir()}`")
    if run is not None:
        st.caption(f"Run: `{run.run_id}`")
        st.caption(f"Model: `{run.model_name}` ({run.task})")
if run is not None:
    st.query_params[session.RUN_QUERY_PARAM] = run.run_id

navigation.run()
