"""The public API for probe sets: ``load_probe_set`` (a built-in name or a path, in any registered
format), the built-in sets (``list_builtin``, ``load_builtin``) and ``load_hf_dataset``.

A path is read by the first format of ``probes.formats`` that claims it (see docs/probes.md for
the full reference of each format). Every format collects *all* the problems of a file (each with
its file and 1-based line, or record number for datasets) before giving up; ``load_probe_set``
raises ``ProbeFileError`` with all of them and never returns a partial set.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path

from audit.errors import ProbeFileError, Problem, UserError
from audit.kinds.names import ProbeKind
from probes.formats import file_format_for, unknown_extension_hint
from probes.formats.hf_dataset import dataset_label, read_dataset
from probes.reading.problems import LoadOptions, Problems
from probes.schema import ProbeSet

BUILTIN_DIR = Path(__file__).parent / "builtin"


def list_builtin(kind: ProbeKind | None = None, *, default_run_only: bool = False) -> list[str]:
    """Names of the built-in probe sets, sorted; only those of one ``kind`` when given
    (``"counterfactual"``: the sets an audit runs by default; ``"long_document"``: long-context).
    ``default_run_only`` leaves out the sets whose file says ``in_default_run: false`` (the
    French, Spanish and German gender sets: asked for by name)."""
    names = sorted(path.stem for path in BUILTIN_DIR.glob("*.yaml"))
    if kind is not None:
        names = [name for name in names if load_builtin(name).kind == kind]
    if default_run_only:
        names = [name for name in names if load_builtin(name).in_default_run]
    return names


@functools.cache
def load_builtin(name: str) -> ProbeSet:
    """One built-in probe set by name (``list_builtin()`` gives the names)."""
    if name not in list_builtin():
        raise UserError(f"unknown built-in probe set {name!r}; built-in sets: {', '.join(list_builtin())}")
    probe_set = _load_or_raise(BUILTIN_DIR / f"{name}.yaml", LoadOptions())
    return probe_set.model_copy(update={"source": f"builtin:{name}"})


def load_probe_set(
    spec: str | Path,
    *,
    name: str | None = None,
    mapping: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
    split: str | None = None,
) -> ProbeSet:
    """Load a probe set from a built-in name (``gender`` or ``builtin:gender``) or a path.

    The format comes from the extension: ``.yaml``/``.yml`` templates, ``.csv``/``.jsonl`` rows,
    ``.parquet``/``.arrow`` or a folder as a local Hugging Face dataset. ``mapping`` renames columns
    (``{"text_a": "sent_more"}``: our column -> the file's column), ``defaults`` fills columns the
    file lacks (``{"attribute": "gender"}``), ``split`` picks a dataset split and ``name`` overrides
    the set's name (rows and datasets are named after the file otherwise).

    Raises ``ProbeFileError`` listing every problem found; nothing partial is returned.
    """
    options = LoadOptions(name=name, mapping=mapping, defaults=defaults, split=split)
    builtin = builtin_name(spec)
    if builtin is not None:
        if builtin not in list_builtin():
            raise UserError(
                f"{spec!s} is neither a file nor a built-in probe set; built-in sets: {', '.join(list_builtin())}"
            )
        if options.has_row_options() or name is not None:
            raise UserError(
                "--probe-map, --probe-default and --probe-split (Python: name=, mapping=, defaults=, "
                f"split=) do not apply to the built-in set {builtin!r}; leave them out"
            )
        return load_builtin(builtin)
    return _load_or_raise(Path(spec), options)


def load_hf_dataset(
    path: str | Path,
    *,
    mapping: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
    split: str | None = None,
    name: str | None = None,
) -> ProbeSet:
    """Load a probe set from a local Hugging Face dataset (never the hub).

    ``path`` is a ``Dataset.save_to_disk`` folder, a folder of data files, or a single
    ``.csv``/``.jsonl``/``.json``/``.parquet`` file read through ``datasets``. Its columns, renamed by
    ``mapping`` (our column -> dataset column) and completed by ``defaults``, must form the pairs or
    the variants layout. Problems are located by record number (1-based).
    """
    options = LoadOptions(name=name, mapping=mapping, defaults=defaults, split=split)
    problems = Problems(dataset_label(Path(path), split))
    probe_set = read_dataset(Path(path), options, problems)
    if problems.items or probe_set is None:
        raise ProbeFileError(problems.items or [Problem(str(path), None, "no probe set could be read")])
    return probe_set


def builtin_name(spec: str | Path) -> str | None:
    """The built-in set a spec names, or None when the spec is a path."""
    text = str(spec)
    if text.startswith("builtin:"):
        return text.removeprefix("builtin:")
    if isinstance(spec, Path) or "/" in text or "\\" in text or Path(text).suffix or Path(text).exists():
        return None
    return text


def _load_or_raise(path: Path, options: LoadOptions) -> ProbeSet:
    probe_set, problems = read_probe_file(path, options)
    if problems or probe_set is None:
        raise ProbeFileError(problems or [Problem(str(path), None, "no probe set could be read")])
    return probe_set


def read_probe_file(path: Path, options: LoadOptions | None = None) -> tuple[ProbeSet | None, list[Problem]]:
    """Parse one probe file or dataset; returns the set (None when there is any problem) and every problem."""
    options = options or LoadOptions()
    problems = Problems(str(path))
    if not path.exists():
        builtin_hint = f" (built-in sets: {', '.join(list_builtin())})" if not path.suffix else ""
        problems.add(None, f"no such file or folder; check the path{builtin_hint}")
        return None, problems.items
    file_format = file_format_for(path, options)
    if file_format is None:
        problems.add(
            None,
            f"unknown file extension {path.suffix or '(none)'!r}; use {unknown_extension_hint()}",
        )
        return None, problems.items
    if file_format.label is not None:
        problems = Problems(file_format.label(path, options))
    probe_set = file_format.read(path, options, problems)
    if problems.items:
        # the file's own problems first, then those of the files it names (keys_file ...), by line
        return None, sorted(problems.items, key=lambda p: (p.file != problems.file, p.file, p.line or 0))
    return probe_set, []
