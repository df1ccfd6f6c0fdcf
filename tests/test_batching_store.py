"""Batching under a token budget, and the run store's atomic, non-destructive writes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from audit.batching import token_budget_batches
from audit.errors import UserError
from audit.store import RunStore, find_run, iter_runs
from audit.tables import TABLES


def test_batches_cover_every_index_once_and_respect_the_budget() -> None:
    lengths = [5, 40, 12, 40, 7, 3, 33, 18, 9, 40, 2]
    batches = token_budget_batches(lengths, max_tokens=80)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 80
    # longest first: the first batch holds the longest inputs
    assert max(lengths[i] for i in batches[0]) == 40


def test_an_input_longer_than_the_budget_gets_a_batch_of_its_own() -> None:
    batches = token_budget_batches([500, 3, 3], max_tokens=100)
    assert batches[0] == [0]
    assert sorted(i for b in batches for i in b) == [0, 1, 2]


def test_max_batch_size_caps_batches() -> None:
    batches = token_budget_batches([1] * 10, max_tokens=1000, max_batch_size=4)
    assert [len(b) for b in batches] == [4, 4, 2]


def test_store_writes_tables_and_manifest_and_refuses_to_overwrite(tmp_path) -> None:
    store = RunStore.create(tmp_path / "runs" / "r1")
    frame = pd.DataFrame({c: [1] for c in TABLES["attention"]})
    store.write_table("attention", frame)
    store.write_manifest({"run_id": "r1", "status": "complete"})
    assert store.read_table("attention").shape == (1, len(TABLES["attention"]))
    assert json.loads((store.path / "manifest.json").read_text())["status"] == "complete"
    assert not [p for p in store.path.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(UserError, match="already holds a run"):
        RunStore.create(tmp_path / "runs" / "r1")
    # the existing run is untouched
    assert store.read_table("attention").shape[0] == 1
    assert [s.id for s in iter_runs(tmp_path / "runs")] == ["r1"]
    assert find_run("r1", tmp_path / "runs").path == store.path


def test_store_rejects_a_table_missing_contract_columns(tmp_path) -> None:
    store = RunStore.create(tmp_path / "r")
    with pytest.raises(ValueError, match="missing column"):
        store.write_table("findings", pd.DataFrame({"probe_set": ["x"]}))
    assert not (store.path / "findings.parquet").exists()


def test_find_run_names_the_known_runs(tmp_path) -> None:
    RunStore.create(tmp_path / "a").write_manifest({"run_id": "a"})
    with pytest.raises(UserError, match="runs in .*: a"):
        find_run("nope", tmp_path)
