"""The probe formats, one module each, and the registry they register themselves in.

A *file format* claims a path (by its extension, its name or its content) and reads it into a
``ProbeSet``; a *YAML kind* reads a YAML probe file whose ``kind:`` names it (the YAML file format,
``yaml_file.py``, reads the file and hands its top-level mapping over). Every module of this
package is imported the first time the formats are asked for, so adding a format is one module
that calls ``register_file_format`` or ``register_yaml_kind`` at import time.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from probes.reading.problems import LoadOptions, Problems
from probes.reading.yaml_nodes import Entries
from probes.schema import ProbeSet

FileReader = Callable[[Path, LoadOptions, Problems], "ProbeSet | None"]
YamlReader = Callable[[Path, Entries, LoadOptions, Problems], "ProbeSet | None"]


@dataclass(frozen=True)
class FileFormat:
    """A probe file format: ``claims`` says whether a path is in it (checked in ``order``, lowest
    first: name- and content-based formats before extension-based ones), ``read`` reads it, every
    problem into ``problems`` (the file's own label from ``label``: a dataset's names its split)."""

    name: str
    claims: Callable[[Path, LoadOptions], bool]
    read: FileReader
    order: int
    hint: tuple[int, str] | None = None
    """Where and how the unknown-extension message lists this format."""
    label: Callable[[Path, LoadOptions], str] | None = None


@dataclass(frozen=True)
class YamlKind:
    """A ``kind:`` of YAML probe file and the reader of its top-level mapping."""

    kind: str
    read: YamlReader


_FILE_FORMATS: dict[str, FileFormat] = {}
_YAML_KINDS: dict[str, YamlKind] = {}


def register_file_format(file_format: FileFormat) -> None:
    if file_format.name in _FILE_FORMATS:
        raise ValueError(f"file format {file_format.name!r} is registered twice")
    _FILE_FORMATS[file_format.name] = file_format


def register_yaml_kind(kind: YamlKind) -> None:
    if kind.kind in _YAML_KINDS:
        raise ValueError(f"YAML kind {kind.kind!r} is registered twice")
    _YAML_KINDS[kind.kind] = kind


@functools.cache
def _import_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def file_formats() -> list[FileFormat]:
    """Every registered file format, in the order their claims are checked."""
    _import_all()
    return sorted(_FILE_FORMATS.values(), key=lambda f: f.order)


def file_format_for(path: Path, options: LoadOptions) -> FileFormat | None:
    """The format that claims ``path`` first, or None."""
    return next((f for f in file_formats() if f.claims(path, options)), None)


def yaml_kind(kind: str) -> YamlKind | None:
    """The reader of YAML files with this ``kind:``, or None."""
    _import_all()
    return _YAML_KINDS.get(kind)


def unknown_extension_hint() -> str:
    """What the formats' extensions are, for a file none claims."""
    hints = sorted(f.hint for f in file_formats() if f.hint is not None)
    texts = [text for _, text in hints]
    return ", ".join(texts[:-1]) + ", or " + texts[-1] if len(texts) > 1 else "".join(texts)
