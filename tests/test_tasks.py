"""Which task a model is audited for, and probe sets meant for another task refused before the
model is loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

from audit.models import task_before_loading

PROBE_FOR_CAUSAL_LMS = """\
name: lm-only
attribute: gender
tasks: [causal-lm]
groups:
  female: {pronoun: she}
  male: {pronoun: he}
templates:
  - id: t1
    text: "{pronoun} is a nurse."
  - id: t2
    text: "{pronoun} is a doctor."
"""


def test_task_is_read_from_the_folder_config_without_loading_weights(fair_classifier: Path) -> None:
    assert task_before_loading(str(fair_classifier)) == "text-classification"
    assert task_before_loading(str(fair_classifier), "embedding") == "embedding"
    assert task_before_loading("minilm") == "embedding"
    assert task_before_loading("org/not-fetched") is None  # the hub is asked only when loading


def test_probe_set_for_another_task_is_refused_before_the_weights_load(
    run_cli, fair_classifier: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "model"
    shutil.copytree(fair_classifier, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")  # loading it would fail differently
    probes = tmp_path / "lm-only.yaml"
    probes.write_text(PROBE_FOR_CAUSAL_LMS)
    runs = tmp_path / "runs"
    result = run_cli("run", "--model", broken, "--probes", probes, "--out", runs)
    assert result.exit_code == 2
    assert "'lm-only' is meant for causal-lm, not text-classification" in result.stderr
    assert "weights" not in result.stderr
    assert not runs.exists() or not any(runs.iterdir())


def test_every_task_row_names_its_adapter_and_auto_class() -> None:
    """One table of tasks (audit/tasks.py): each row's adapter is a Target of that task, its auto
    class exists, and the config (so the CLI) offers exactly its names."""
    import subprocess
    import sys

    import transformers

    from audit.config import TASK_CHOICES
    from audit.targets import adapter_class
    from audit.tasks import ARCHITECTURE_SUFFIXES, TASKS, probe_set_tasks

    for name, info in TASKS.items():
        assert adapter_class(name).task == name
        assert info.model_class is None or hasattr(transformers, info.model_class)
    assert TASK_CHOICES[0] == "auto" and TASK_CHOICES[1:] == tuple(TASKS)
    assert [task for _, task in ARCHITECTURE_SUFFIXES] == [
        "text-classification", "token-classification", "question-answering",
        "masked-lm", "causal-lm", "causal-lm", "seq2seq",
    ]  # fmt: skip
    assert probe_set_tasks("module") == ("module", "text-classification")
    assert probe_set_tasks("causal-lm") == ("causal-lm",)
    # the CLI reads the table without importing torch
    code = "import sys, audit.cli; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    )
