"""Read run folders for the dashboard: manifests and parquet tables, defensively and cached.

A run is ``<runs_dir>/<run_id>/`` with ``manifest.json`` and one ``<table>.parquet`` per table named
in :mod:`audit.tables`. Any table may be absent (``--no-attention``, a run that stopped early); a
missing table reads as an empty frame with the contract columns. Nothing here imports torch or the
audit engine.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from audit.tables import TABLES, check_columns, empty_table

RUNS_DIR_ENV = "PROBELENS_RUNS_DIR"
DEFAULT_RUNS_DIR = "runs"
ADDED_IN_SCHEMA_2: dict[str, tuple[str, ...]] = {
    "examples": ("n_windows", "doc_length", "position", "swap_group"),
    "effects": ("doc_length", "position"),
    "findings": ("doc_length", "position", "note"),
}
"""Columns a version-1 run's tables lack; they read as null (audit.tables.SCHEMA_VERSION)."""
ADDED_IN_SCHEMA_3: dict[str, tuple[str, ...]] = {
    "examples": ("n_text_tokens", "n_words", "n_chars", "n_unknown", "n_unknown_chars", "n_byte_fallback"),
    "findings": ("subset",),
}
"""Columns a version-1 or version-2 run's tables lack (tokenization of each text); they read as null."""
ADDED_IN_SCHEMA_5: dict[str, tuple[str, ...]] = {
    "findings": ("ci_method",),
    "attributions": ("n_steps", "completeness_error", "converged"),
    "attribution_pairs": ("converged",),
}
"""Columns a run before version 5 lacks (how each interval was made, integrated gradients'
completeness); they read as null. Version 5's new tables read empty when their files are absent."""


class RunDataError(ValueError):
    """A run folder or table the dashboard cannot read, with what is wrong with it."""


def runs_dir_from(argv: Sequence[str], environ: Mapping[str, str]) -> Path:
    """The runs folder: ``--runs DIR`` (or ``--runs=DIR``) in argv, else $PROBELENS_RUNS_DIR, else ./runs."""
    for index, argument in enumerate(argv):
        if argument == "--runs" and index + 1 < len(argv):
            return Path(argv[index + 1]).expanduser()
        if argument.startswith("--runs="):
            return Path(argument.split("=", 1)[1]).expanduser()
    from_env = environ.get(RUNS_DIR_ENV, "").strip()
    return Path(from_env).expanduser() if from_env else Path(DEFAULT_RUNS_DIR)


@dataclass(frozen=True)
class RunInfo:
    """One run folder and what its manifest says (read with defaults for every missing field)."""

    run_id: str
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    """Why the manifest could not be read; None when it was read."""

    @property
    def model(self) -> dict[str, Any]:
        model = self.manifest.get("model")
        return model if isinstance(model, dict) else {}

    @property
    def model_name(self) -> str:
        return str(self.model.get("name") or "?")

    @property
    def task(self) -> str:
        return str(self.model.get("task") or "?")

    @property
    def created_at(self) -> str:
        return str(self.manifest.get("created_at") or "")

    @property
    def status(self) -> str:
        if self.problem:
            return "unreadable"
        return str(self.manifest.get("status") or "unknown")

    @property
    def probe_sets(self) -> list[str]:
        entries = self.manifest.get("probe_sets")
        if not isinstance(entries, list):
            return []
        return [str(e.get("name")) for e in entries if isinstance(e, dict) and e.get("name")]

    @property
    def config(self) -> dict[str, Any]:
        config = self.manifest.get("config")
        return config if isinstance(config, dict) else {}

    def summary_count(self, name: str) -> int | None:
        summary = self.manifest.get("summary")
        value = summary.get(name) if isinstance(summary, dict) else None
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    @property
    def label(self) -> str:
        """Short text for pickers: run id, model and creation time."""
        when = f", {self.created_at}" if self.created_at else ""
        return f"{self.run_id} ({self.model_name}{when})"


def read_run(run_dir: Path) -> RunInfo:
    """Read one run folder's manifest; an unreadable manifest becomes ``problem``, never an exception."""
    manifest_path = run_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return RunInfo(run_dir.name, run_dir, {}, "manifest.json is missing")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return RunInfo(run_dir.name, run_dir, {}, f"manifest.json cannot be read: {error}")
    if not isinstance(manifest, dict):
        return RunInfo(run_dir.name, run_dir, {}, "manifest.json does not hold a JSON object")
    run_id = str(manifest.get("run_id") or run_dir.name)
    return RunInfo(run_id, run_dir, manifest)


def list_runs(runs_dir: Path) -> list[RunInfo]:
    """Every run folder (a folder with a manifest.json) in runs_dir, newest first."""
    if not runs_dir.is_dir():
        return []
    runs = [read_run(child) for child in runs_dir.iterdir() if (child / "manifest.json").is_file()]
    return sorted(runs, key=lambda run: (run.created_at, run.run_id), reverse=True)


def runs_frame(runs: Sequence[RunInfo]) -> pd.DataFrame:
    """The runs list as a table: one row per run."""
    rows = [
        {
            "run_id": run.run_id,
            "model": run.model_name,
            "task": run.task,
            "created": run.created_at,
            "probe sets": ", ".join(run.probe_sets),
            "significant": run.summary_count("n_significant"),
            "findings": run.summary_count("n_findings"),
            "status": run.status,
            "problem": run.problem or "",
        }
        for run in runs
    ]
    columns = [
        "run_id",
        "model",
        "task",
        "created",
        "probe sets",
        "significant",
        "findings",
        "status",
        "problem",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("significant", "findings"):
        frame[column] = frame[column].astype("Int64")
    return frame


def read_table(run_dir: Path, name: str) -> pd.DataFrame:
    """One table of a run; a missing file reads as an empty table with the contract columns.

    An older run's table reads with the columns added since as nulls (``ADDED_IN_SCHEMA_2`` for a
    version-1 run, ``ADDED_IN_SCHEMA_3`` for versions 1 and 2, ``ADDED_IN_SCHEMA_5`` for versions
    before 5); a missing table file (``segment_attributions``, ``pair_attributions``, ``patching``, ...)
    reads empty like any other absent table.

    Raises RunDataError when the file exists but is not a readable parquet table with those columns.
    """
    if name not in TABLES:
        raise RunDataError(f"unknown table {name!r}; the tables are {sorted(TABLES)}")
    path = run_dir / f"{name}.parquet"
    if not path.is_file():
        return empty_table(name)
    stat = path.stat()
    return _cached_parquet(str(path), name, stat.st_mtime_ns, stat.st_size).copy()


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_parquet(path: str, name: str, mtime_ns: int, size: int) -> pd.DataFrame:
    """Parquet read, cached per file version (mtime and size are part of the key)."""
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several unrelated types for a damaged file
        raise RunDataError(f"{path} is not a readable parquet table: {error}") from error
    added = (
        *ADDED_IN_SCHEMA_2.get(name, ()),
        *ADDED_IN_SCHEMA_3.get(name, ()),
        *ADDED_IN_SCHEMA_5.get(name, ()),
    )
    for column in added:
        if column not in frame.columns:
            frame[column] = None
    try:
        check_columns(name, frame)
    except ValueError as error:
        raise RunDataError(f"{path}: {error}") from error
    return frame


def parse_focus(value: object) -> list[tuple[int, int]]:
    """Focus spans from the examples table's JSON text (or an already decoded list); [] when absent."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    decoded: object = value
    if isinstance(value, str):
        try:
            decoded = json.loads(value) if value.strip() else []
        except json.JSONDecodeError:
            return []
    if isinstance(decoded, str | bytes) or not isinstance(decoded, Iterable):
        return []
    spans: list[tuple[int, int]] = []
    for span in decoded:
        try:
            start, end = (int(part) for part in span)
        except (TypeError, ValueError):
            continue
        if 0 <= start <= end:
            spans.append((start, end))
    return spans
