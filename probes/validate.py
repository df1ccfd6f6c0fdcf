"""Check probe files without running anything: every problem, each located by file and line."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from audit.errors import Problem
from probes.loaders import BUILTIN_DIR, builtin_name, list_builtin, read_probe_file
from probes.reading.problems import LoadOptions


def validate_file(
    path: str | Path,
    *,
    mapping: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
    split: str | None = None,
) -> list[Problem]:
    """Every problem in a probe file (or dataset, or built-in set by name); empty when it loads.

    Each ``Problem`` prints as ``FILE:LINE: message`` (record number for datasets). The options
    are those of ``load_probe_set``.
    """
    builtin = builtin_name(path)
    if builtin is not None:
        if builtin not in list_builtin():
            return [
                Problem(
                    str(path), None, f"no such file, nor a built-in probe set ({', '.join(list_builtin())})"
                )
            ]
        path = BUILTIN_DIR / f"{builtin}.yaml"
    _, problems = read_probe_file(Path(path), LoadOptions(mapping=mapping, defaults=defaults, split=split))
    return problems
