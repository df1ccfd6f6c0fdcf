"""The instance view's focus attribution per pair carries the convergence of both variants'
integrated gradients (attribution_pairs.converged), on a run made by the real CLI (``cli_run_dir``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.data import RUNS_DIR_ENV

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def focus_table_and_warnings(runs: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[pd.DataFrame, list[str]]:
    monkeypatch.setenv(RUNS_DIR_ENV, str(runs))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("app_pages/instances.py").run()
    assert not at.exception, [e.value for e in at.exception]
    (table,) = [frame.value for frame in at.dataframe if "focus_attribution_a" in frame.value.columns]
    return table, [w.value for w in at.warning]


def test_focus_attribution_pairs_show_whether_ig_converged(
    tmp_path: Path, cli_run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(cli_run_dir, runs)
    table, warnings = focus_table_and_warnings(runs, monkeypatch)
    assert "converged" in table.columns
    ig, gradient = (
        table.loc[table["method"] == m, "converged"] for m in ("integrated_gradients", "gradient_x_input")
    )
    assert len(ig) and ig.astype(bool).all()  # the planted classifier's IG converges
    assert len(gradient) and gradient.isna().all()
    assert not any(w.startswith("Focus attribution per pair") for w in warnings)
    # a pair whose IG missed (as on smollm2 before the fix) is flagged next to the table
    path = runs / "tiny-biased" / "attribution_pairs.parquet"
    pairs = pd.read_parquet(path)
    pairs.loc[pairs["method"] == "integrated_gradients", "converged"] = False
    pairs.to_parquet(path, index=False)
    _, warnings = focus_table_and_warnings(runs, monkeypatch)
    assert any(w.startswith("Focus attribution per pair") and "not converged" in w for w in warnings), (
        warnings
    )
