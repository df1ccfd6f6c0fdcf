"""Local Hugging Face datasets (a ``save_to_disk`` folder, a folder of data files, a ``.parquet`` or
``.arrow`` file), read through ``datasets`` (never the hub) and turned into rows of the pairs or
variants layout; problems are located by record number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probes.formats import FileFormat, register_file_format
from probes.formats.rows import rows_to_probe_set
from probes.reading.problems import LoadOptions, Problems
from probes.reading.rows import Table, plain_values
from probes.schema import ProbeSet

DATASET_EXTENSIONS = (".parquet", ".arrow")


def dataset_label(path: Path, split: str | None) -> str:
    """How problems name a dataset: its path, and the split when one is chosen."""
    return f"{path}[{split}]" if split else str(path)


def read_dataset(path: Path, options: LoadOptions, problems: Problems) -> ProbeSet | None:
    """Read a local dataset through ``datasets`` and build a probe set from its rows."""
    if not path.exists():
        problems.add(
            None, "no such local dataset; probelens reads datasets from local paths only, never the hub"
        )
        return None
    import datasets  # slow import, only when a dataset is read

    try:
        loaded = _open_dataset(datasets, path)
    except Exception as error:  # datasets raises many types for unreadable folders and files
        problems.add(None, f"cannot read it as a Hugging Face dataset ({type(error).__name__}: {error})")
        return None
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        split = options.split or (splits[0] if len(splits) == 1 else None)
        if split not in loaded:
            wanted = f"has no split {options.split!r}" if options.split else "has several splits"
            problems.add(
                None,
                f"the dataset {wanted}; choose one with --probe-split NAME (Python: split='NAME'): "
                f"{', '.join(splits)}",
            )
            return None
        dataset = loaded[split]
    elif options.split:
        problems.add(
            None,
            f"the dataset has no splits, so --probe-split {options.split} (Python: split={options.split!r}) "
            "does not apply; leave it out",
        )
        return None
    else:
        dataset = loaded
    rows: list[tuple[int, dict[str, str | None]]] = []
    for number, record in enumerate(dataset, start=1):
        values = plain_values(record, number, problems)
        if values is not None:
            rows.append((number, values))
    if not rows and not problems.items:
        problems.add(None, "the dataset has no records")
        return None
    table = Table(list(dataset.column_names), rows, header_line=None, place="record", column_everywhere=False)
    stem = path.stem if path.is_file() else path.name
    return rows_to_probe_set(table, stem, str(path), options, problems)


def _open_dataset(datasets: Any, path: Path) -> Any:
    if path.is_dir():
        if any(
            (path / marker).exists() for marker in ("state.json", "dataset_dict.json", "dataset_info.json")
        ):
            return datasets.load_from_disk(str(path))
        return datasets.load_dataset(str(path))
    builder = {
        ".csv": "csv",
        ".json": "json",
        ".jsonl": "json",
        ".parquet": "parquet",
        ".arrow": "arrow",
    }.get(path.suffix.lower())
    if builder is None:
        raise ValueError(
            f"unknown data file extension {path.suffix!r}; use .csv, .jsonl, .json, .parquet or .arrow"
        )
    return datasets.load_dataset(builder, data_files=str(path))


register_file_format(
    FileFormat(
        "hf_dataset",
        claims=lambda path, options: path.is_dir() or path.suffix.lower() in DATASET_EXTENSIONS,
        read=read_dataset,
        order=20,
        hint=(3, ".parquet or a dataset folder (Hugging Face dataset)"),
        label=lambda path, options: dataset_label(path, options.split),
    )
)
