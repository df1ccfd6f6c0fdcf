"""Rows of CSV/JSONL files and datasets, each with where it came from (its line or record number):
the column vocabulary of the pairs and variants layouts, the CSV and JSON-lines readers every row
format uses, and the table they make."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from probes.reading.problems import Problems

ROW_EXTENSIONS = (".csv", ".jsonl", ".ndjson")
PAIR_COLUMNS = ("text_a", "text_b", "group_a", "group_b", "attribute")
PAIR_OPTIONAL_COLUMNS = ("instance_id", "label", "lang")
VARIANT_COLUMNS = ("instance_id", "variant", "attribute", "text")
VARIANT_OPTIONAL_COLUMNS = ("label", "lang")
KNOWN_COLUMNS = frozenset(PAIR_COLUMNS + PAIR_OPTIONAL_COLUMNS + VARIANT_COLUMNS + VARIANT_OPTIONAL_COLUMNS)

RowLines = dict[tuple[str, str], int]
"""Where each (instance id, variant) of a rows file was read: its line or record number."""


@dataclass
class Table:
    """Rows of a CSV/JSONL file or a dataset, each with where it came from."""

    columns: list[str]
    rows: list[tuple[int, dict[str, str | None]]]
    header_line: int | None
    place: str = "line"
    column_everywhere: bool = True
    """True when every row has every column (CSV); JSONL and datasets may lack keys per row."""


def csv_rows(reader: Any, n_columns: int, problems: Problems) -> Iterator[tuple[int, list[str]]]:
    """The rows after a CSV header, each with the line it starts on; blank rows are skipped, and rows
    of another width than the header's, or that cannot be read, are problems."""
    line = reader.line_num + 1
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != n_columns:
                problems.add(
                    start,
                    f"row has {len(row)} fields but the header has {n_columns}; quote fields that contain commas",
                )
                continue
            yield start, row
    except csv.Error as error:
        problems.add(reader.line_num, f"cannot read the row: {error}")


def json_lines(
    text: str, problems: Problems, *, each_line: str = "one JSON object", write: str = "one {...}"
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The JSON objects of a JSONL text, each with its line; blank lines are skipped, and lines that
    are not a JSON object are problems ("each line must be <each_line>", "write <write> per line")."""
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as error:
            problems.add(
                number, f"not valid JSON ({error.msg} at column {error.colno}); each line must be {each_line}"
            )
            continue
        if not isinstance(record, dict):
            problems.add(
                number, f"line is a JSON {type(record).__name__}, not an object; write {write} per line"
            )
            continue
        yield number, record


def csv_table(text: str, problems: Problems) -> Table | None:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        problems.add(1, "file is empty; the first line must name the columns (see docs/probes.md)")
        return None
    except csv.Error as error:
        problems.add(1, f"cannot read the header: {error}")
        return None
    header = [h.strip() for h in header]
    ok = True
    for index, column in enumerate(header):
        if not column:
            problems.add(1, f"column {index + 1} of the header has no name")
            ok = False
        elif header.index(column) != index:
            problems.add(1, f"the header names column {column!r} twice")
            ok = False
    rows: list[tuple[int, dict[str, str | None]]] = [
        (start, dict(zip(header, row, strict=True))) for start, row in csv_rows(reader, len(header), problems)
    ]
    if not ok:
        return None
    if not rows and not problems.items:
        problems.add(1, "file has a header but no rows")
    return Table(header, rows, header_line=1)


def jsonl_table(text: str, problems: Problems) -> Table | None:
    rows: list[tuple[int, dict[str, str | None]]] = []
    columns: dict[str, None] = {}
    for number, record in json_lines(text, problems):
        values = plain_values(record, number, problems)
        if values is not None:
            rows.append((number, values))
            columns.update(dict.fromkeys(values))
    if not rows and not problems.items:
        problems.add(1, "file has no records; write one JSON object per line")
    return Table(list(columns), rows, header_line=None, column_everywhere=False)


def plain_values(record: Mapping[str, Any], where: int, problems: Problems) -> dict[str, str | None] | None:
    """A record's values as text; None stays None, nested values are problems (for known columns)."""
    values: dict[str, str | None] = {}
    ok = True
    for key, value in record.items():
        if value is None or isinstance(value, str):
            values[str(key)] = value
        elif isinstance(value, bool):
            values[str(key)] = "true" if value else "false"
        elif isinstance(value, (int, float)):
            values[str(key)] = str(value)
        elif str(key) in KNOWN_COLUMNS:
            problems.add(where, f"column {key} must be text, not {type(value).__name__}")
            ok = False
    return values if ok else None
