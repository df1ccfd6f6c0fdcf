"""Shared fixtures: tiny locally trained models (with and without a planted bias), probe files,
and the real CLI run in-process. Nothing heavy is imported here: each fixture imports its builder
(tests/support/) when it runs, so collecting a test that needs no model does not import torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.cli import CliResult, invoke_main

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Call the real `audit` entry point in-process; returns exit code and captured output."""

    def invoke(*args: object) -> CliResult:
        code = invoke_main(*args)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def biased_classifier(tiny_dir: Path) -> Path:
    from tests.support import tiny_models

    return tiny_models.train_tiny_classifier(tiny_dir / "clf-biased", planted_bias=True)


@pytest.fixture(scope="session")
def fair_classifier(tiny_dir: Path) -> Path:
    from tests.support import tiny_models

    return tiny_models.train_tiny_classifier(tiny_dir / "clf-fair", planted_bias=False)


@pytest.fixture(scope="session")
def biased_embedder(tiny_dir: Path) -> Path:
    from tests.support import tiny_models

    return tiny_models.train_tiny_embedder(tiny_dir / "emb-biased", planted_association=True)


@pytest.fixture(scope="session")
def fair_embedder(tiny_dir: Path) -> Path:
    from tests.support import tiny_models

    return tiny_models.train_tiny_embedder(tiny_dir / "emb-fair", planted_association=False)


@pytest.fixture(scope="session")
def classifier_probes(tiny_dir: Path) -> Path:
    from tests.support import tiny_models

    return tiny_models.write_pairs_csv(tiny_dir / "probes" / "gender-pairs.csv")


@pytest.fixture(scope="session")
def embedder_probes(tiny_dir: Path) -> Path:
    from tests.support import tiny_models

    return tiny_models.write_gender_probe_yaml(tiny_dir / "probes" / "tiny-gender.yaml")


@pytest.fixture(scope="session")
def cli_run_dir(
    tmp_path_factory: pytest.TempPathFactory, biased_classifier: Path, classifier_probes: Path
) -> Path:
    """A runs folder holding one complete run made by the real CLI (attributions and attention on)."""
    runs = tmp_path_factory.mktemp("cli-runs")
    code = invoke_main(
        "run", "--model", biased_classifier, "--probes", classifier_probes,
        "--out", runs, "--name", "tiny-biased", "--attribute-top", "5", "--ig-steps", "16",
    )  # fmt: skip
    assert code == 0, f"the CLI run for the dashboard fixture failed with exit code {code}"
    return runs
