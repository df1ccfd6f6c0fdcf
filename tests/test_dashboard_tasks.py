"""The dashboard on runs of the other model families (issue 5): a masked LM on CrowS-Pairs-layout
pairs, an NER model on name swaps and an extractive QA model on BBQ-style items, each made by the
real CLI, open on every page without an error and show their own findings."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.data import RUNS_DIR_ENV
from tests.support.mlm_models import build_masked_lm, preference_pairs, write_crows_pairs_csv
from tests.support.ner_qa_models import train_tiny_ner, train_tiny_qa

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PAGES = {
    "findings": "app_pages/findings.py",
    "instances": "app_pages/instances.py",
    "attention": "app_pages/attention.py",
    "runs": "app_pages/runs.py",
}


@pytest.fixture(scope="module")
def task_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support.cli import invoke_main

    root = tmp_path_factory.mktemp("task-runs")
    runs = root / "runs"
    crows = write_crows_pairs_csv(root / "crows.csv", preference_pairs()[:12])
    jobs = {
        "mlm": (build_masked_lm(root / "mlm"), ["--probes", crows]),
        "ner": (train_tiny_ner(root / "ner", planted=True, epochs=4), ["--probes", "names-ner"]),
        "qa": (train_tiny_qa(root / "qa", planted_in=None, epochs=4), ["--probes", "bbq-mini"]),
    }
    for name, (model, probes) in jobs.items():
        code = invoke_main(
            "run", "--model", model, *probes, "--out", runs, "--name", name,
            "--max-instances", "12", "--attribute-top", "2", "--ig-steps", "8",
        )  # fmt: skip
        assert code == 0, f"the {name} run failed with exit code {code}"
    return runs


@pytest.mark.parametrize("run_name", ["mlm", "ner", "qa"])
def test_every_page_opens_on_runs_of_other_tasks(
    task_runs: Path, run_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    findings = pd.read_parquet(task_runs / run_name / "findings.parquet")
    assert len(findings) > 0
    monkeypatch.setenv(RUNS_DIR_ENV, str(task_runs))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = AppTest.from_file(APP, default_timeout=90)
    manifest = json.loads((task_runs / run_name / "manifest.json").read_text())
    at.query_params["run"] = manifest["run_id"]  # the dashboard opens the run the URL names
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    for page in PAGES.values():
        at.switch_page(page).run()
        assert not at.exception, (page, [e.value for e in at.exception])
    at.switch_page(PAGES["findings"]).run()
    assert manifest["run_id"] in " ".join(c.value for c in at.caption)
    shown = " ".join(str(df.value.to_string()) for df in at.dataframe)
    metrics = set(findings["metric"])
    assert any(metric in shown for metric in metrics), (run_name, metrics)
