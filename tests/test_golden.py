"""Behaviour unchanged: every golden audit (tests/golden.py) writes the tables recorded in
tests/data/golden/, floats within 1e-9. A refactor that changes a number fails here; a change
meant to alter results records the tables again (``python -m tests.support.golden record CASE``) and
says why in its commit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.golden import CASES, GOLDEN, REPO, Case, differences, run_case, tables


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_golden_audit_writes_the_recorded_tables(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the module case imports tests.lstm_package from the current folder
    recorded = tables(GOLDEN / case.name)
    assert recorded, (
        f"no recorded tables for {case.name}: run python -m tests.support.golden record {case.name}"
    )
    run_dir, _ = run_case(case, tmp_path)
    now = tables(run_dir)
    assert sorted(now) == sorted(recorded), "the run wrote other tables than were recorded"
    problems = [p for name in recorded for p in differences(recorded[name], now[name], name)]
    assert not problems, "\n".join(problems)
