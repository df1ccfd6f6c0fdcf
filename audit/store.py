"""A run is a folder: manifest.json plus one parquet file per table, every write atomic.

Each file is written to a temporary name in the same folder and renamed into place, so a reader
(the dashboard, a second process) sees either the old file or the new one, never half of one.
The manifest's ``status`` is "running" until every table is written, then "complete".
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from audit.errors import UserError
from audit.tables import TABLES, check_columns, empty_table

MANIFEST = "manifest.json"


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _atomic_write(path: Path, write: Any) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(temporary)
        # mkstemp makes files owner-only; a run is shared like any other file (0666 minus umask)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class RunStore:
    """Reads and writes one run folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, path: Path, *, overwrite: bool = False, unique: bool = False) -> RunStore:
        """A new, empty run folder; refuses to write into an existing run unless told to.

        The folder is created exclusively, so two audits never share one. With ``unique`` (a
        default name), a taken name gets a numeric suffix instead of an error.
        """
        path = Path(path)
        candidate, suffix = path, 1
        while True:
            try:
                candidate.parent.mkdir(parents=True, exist_ok=True)
                candidate.mkdir()
                return cls(candidate)
            except FileExistsError:
                if overwrite and candidate.is_dir():
                    return cls(candidate)
                if not unique:
                    state = "holds a run" if (candidate / MANIFEST).exists() else "exists"
                    raise UserError(
                        f"{candidate} already {state}; choose another --name (or --out), "
                        "or pass --overwrite to replace it"
                    ) from None
                suffix += 1
                candidate = path.with_name(f"{path.name}-{suffix}")
            except OSError as error:
                raise UserError(
                    f"cannot create the run folder {candidate}: {error.strerror or error}"
                ) from None

    def mark(self, manifest: dict[str, Any], status: str, error: str | None = None) -> None:
        """Record how the run ended ('complete', 'failed', 'interrupted') in its manifest."""
        manifest["status"] = status
        if error is not None:
            manifest["error"] = error
        self.write_manifest(manifest)

    @property
    def id(self) -> str:
        return self.path.name

    def write_table(self, name: str, frame: pd.DataFrame) -> Path:
        if name not in TABLES:
            raise ValueError(f"unknown table {name!r}; tables are {sorted(TABLES)}")
        check_columns(name, frame)
        target = self.path / f"{name}.parquet"
        _atomic_write(target, lambda tmp: frame.reset_index(drop=True).to_parquet(tmp, index=False))
        return target

    def has_table(self, name: str) -> bool:
        return (self.path / f"{name}.parquet").exists()

    def read_table(self, name: str) -> pd.DataFrame:
        """A stored table (an empty one with the contract columns when it was never written)."""
        target = self.path / f"{name}.parquet"
        if not target.exists():
            return empty_table(name)
        try:
            return pd.read_parquet(target)
        except (OSError, ValueError) as error:
            raise UserError(f"{target}: the table cannot be read ({error}); the run is damaged") from None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        text = json.dumps(manifest, indent=2, sort_keys=False, default=str)
        _atomic_write(self.path / MANIFEST, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))

    def read_manifest(self) -> dict[str, Any]:
        manifest_path = self.path / MANIFEST
        if not manifest_path.exists():
            raise UserError(f"{self.path} is not a run folder (no {MANIFEST})")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UserError(
                f"{manifest_path}: the manifest cannot be read ({error}); the run is damaged"
            ) from None
        if not isinstance(manifest, dict):
            raise UserError(f"{manifest_path}: the manifest is not a JSON object; the run is damaged")
        return manifest


def iter_runs(runs_dir: Path) -> Iterator[RunStore]:
    """Every run folder directly under ``runs_dir``, newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return
    folders = [p for p in runs_dir.iterdir() if (p / MANIFEST).is_file()]
    for folder in sorted(folders, key=lambda p: p.name, reverse=True):
        yield RunStore(folder)


def find_run(reference: str, runs_dir: Path) -> RunStore:
    """A run by folder path or by its id under ``runs_dir``."""
    direct = Path(reference)
    if (direct / MANIFEST).is_file():
        return RunStore(direct)
    candidate = Path(runs_dir) / reference
    if (candidate / MANIFEST).is_file():
        return RunStore(candidate)
    known = [store.id for store in iter_runs(runs_dir)]
    hint = f"; runs in {runs_dir}: {', '.join(known[:10])}" if known else f"; {runs_dir} holds no runs"
    raise UserError(f"no run {reference!r}{hint}")
