"""Long-document probe files (YAML, ``kind: long_document``): not instances but the spec the
documents are built from for each model (``probes.long_document.materialize``): filler sentences,
key sentences and identity swaps (inline or in files named next to the YAML file), lengths and
positions. Every problem is reported at its file and line, the named files' included."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from audit.errors import Problem
from probes.formats import YamlKind, register_yaml_kind
from probes.long_document import ID_PATTERN, position_name
from probes.reading.problems import LoadOptions, Problems, normalised, validation_messages
from probes.reading.rows import ROW_EXTENSIONS, csv_table, jsonl_table
from probes.reading.yaml_nodes import (
    FLOAT_TAG,
    INT_TAG,
    SCALARS,
    Entries,
    mapping_items,
    node_line,
    node_mapping,
    node_shown,
    node_text,
    node_text_list,
    node_whole_number,
    read_card,
    read_named_file,
    report_unknown_keys,
)
from probes.schema import KeySentence, LongDocumentSpec, ProbeSet, SwapSentence

_LONG_TOP_KEYS = (
    "name",
    "kind",
    "description",
    "card",
    "card_file",
    "tasks",
    "lengths",
    "positions",
    "max_doc_tokens",
    "seed",
    "filler",
    "filler_file",
    "filler_source",
    "keys",
    "keys_file",
    "swaps",
    "swaps_file",
)
_KEY_KEYS = ("id", "text", "label", "query")
_SWAP_KEYS = ("id", "attribute", "variants", "label", "query")
_KEY_FILE_COLUMNS = ("id", "text")
_SWAP_FILE_COLUMNS = ("id", "attribute", "group", "text")
_OPTIONAL_FILE_COLUMNS = ("label", "query")


@dataclass(frozen=True)
class _Where:
    """Where an item of a long-document set was written: a file (the YAML or a file it names) and line."""

    file: str
    line: int | None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def seen_from(self, other: _Where) -> str:
        """How to point at this place from a problem reported at ``other``."""
        return f"line {self.line}" if self.file == other.file and self.line is not None else str(self)


def _parse_lengths(
    node: yaml.Node, problems: Problems
) -> tuple[tuple[int, ...] | str, list[tuple[int, int]]] | None:
    """``auto`` or the listed lengths (with their lines), or None when there is a problem."""
    if isinstance(node, yaml.ScalarNode) and node.value == "auto" and node.tag != INT_TAG:
        return "auto", []
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        problems.add(
            node_line(node),
            f"lengths must be auto or a list of token counts such as [512, 2048], not {node_shown(node)}",
        )
        return None
    lengths: list[tuple[int, int]] = []
    ok = True
    for item in node.value:
        value = node_whole_number(item, "a length", 1, problems)
        if value is None:
            ok = False
        elif value in [length for length, _ in lengths]:
            problems.add(node_line(item), f"lengths repeat {value}; remove the duplicate")
            ok = False
        else:
            lengths.append((value, node_line(item)))
    if not ok:
        return None
    return tuple(sorted(length for length, _ in lengths)), lengths


def _parse_positions(node: yaml.Node, problems: Problems) -> tuple[float, ...] | None:
    """Positions between 0 and 1, increasing, each with its own whole-percent name; or None."""
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        problems.add(
            node_line(node),
            f"positions must be a list of numbers from 0 (start) to 1 (end) such as [0, 0.5, 1], "
            f"not {node_shown(node)}",
        )
        return None
    positions: list[float] = []
    names: dict[str, int] = {}
    ok = True
    for item in node.value:
        if not isinstance(item, yaml.ScalarNode) or item.tag not in (INT_TAG, FLOAT_TAG):
            problems.add(node_line(item), f"a position must be a number from 0 to 1, not {node_shown(item)}")
            ok = False
            continue
        value = float(SCALARS.construct_object(item))
        if not 0.0 <= value <= 1.0:
            problems.add(
                node_line(item),
                f"position {item.value} lies outside 0..1 (0: the start, 1: the end of the document)",
            )
            ok = False
            continue
        if positions and value <= positions[-1]:
            problems.add(
                node_line(item),
                f"position {item.value} does not come after {positions[-1]:g}; list positions once each, "
                "in increasing order",
            )
            ok = False
            continue
        name = position_name(value)
        if name in names:
            problems.add(
                node_line(item),
                f"position {item.value} is named {name} like the position on line {names[name]}; variants "
                "are named by whole percent, so positions must differ by at least 0.01",
            )
            ok = False
            continue
        names[name] = node_line(item)
        positions.append(value)
    return tuple(positions) if ok else None


def _either(top: Entries, inline: str, file_key: str, problems: Problems) -> bool:
    """False (with a problem) when the file gives both the inline list and the file of the same thing."""
    if inline in top and file_key in top:
        problems.add(
            node_line(top[file_key][0]), f"give either {inline} (a list) or {file_key} (a path), not both"
        )
        return False
    return True


def _parse_filler(path: Path, top: Entries, problems: Problems) -> list[tuple[str, _Where]] | None:
    """The usable filler sentences with where each was written (problems reported); None when there is
    no filler at all."""
    if not _either(top, "filler", "filler_file", problems):
        return None
    if "filler" in top:
        node = top["filler"][1]
        values = node_text_list(node, "filler", problems) or []
        items = node.value if isinstance(node, yaml.SequenceNode) else []
        lines = {item.value: node_line(item) for item in items if isinstance(item, yaml.ScalarNode)}
        return [(value.strip(), _Where(problems.file, lines.get(value))) for value in values]
    if "filler_file" not in top:
        problems.add(
            1,
            "missing filler: give filler (a list of neutral sentences) or filler_file (a text file next "
            "to this one, one sentence per line)",
        )
        return None
    named = read_named_file(path, top, "filler_file", problems)
    if named is None:
        return None
    filler_path, text = named
    sentences: list[tuple[str, _Where]] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        sentence = raw.strip()
        if not sentence:
            continue
        if sentence in first_line:
            problems.items.append(
                Problem(
                    str(filler_path),
                    number,
                    f"repeats the filler sentence of line {first_line[sentence]}; remove the duplicate",
                )
            )
            continue
        first_line[sentence] = number
        sentences.append((sentence, _Where(str(filler_path), number)))
    if not first_line:
        problems.items.append(
            Problem(str(filler_path), None, "has no sentences; write one filler sentence per line")
        )
        return None
    return sentences


def _checked_id(value: str, what: str, where: _Where, problems: Problems) -> bool:
    if ID_PATTERN.match(value):
        return True
    problems.items.append(
        Problem(
            where.file,
            where.line,
            f"{what} {value!r} must be letters, digits, _ . - only (it becomes part of instance and "
            "example ids, so no '/' or spaces)",
        )
    )
    return False


def _parse_keys(path: Path, top: Entries, problems: Problems) -> list[tuple[KeySentence, _Where]] | None:
    """The usable key sentences (inline list or keys_file) with where each was written (problems
    reported); None when the keys cannot be read at all."""
    if not _either(top, "keys", "keys_file", problems):
        return None
    keys: list[tuple[KeySentence, _Where]] = []
    if "keys" in top:
        node = top["keys"][1]
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            problems.add(
                node_line(node),
                f"keys must be a list of {{id, text, label, query}} mappings, not {node_shown(node)}",
            )
            return None
        for item, what, entries in mapping_items(node, "key", _KEY_KEYS, problems):
            values = _entry_texts(entries, item, what, ("id", "text"), ("label", "query"), problems)
            if values is None:
                continue
            where = _Where(problems.file, node_line(item))
            _checked_id(values["id"], "key id", where, problems)
            keys.append((KeySentence(**values), where))  # still checked against the others
    elif "keys_file" in top:
        table = _named_table(path, top, "keys_file", _KEY_FILE_COLUMNS, problems)
        if table is None:
            return None
        keys_path, rows = table
        for line, row in rows:
            where = _Where(str(keys_path), line)
            _checked_id(row["id"], "key id", where, problems)
            keys.append((KeySentence(**row), where))
    return keys


def _entry_texts(
    entries: Entries,
    item: yaml.Node,
    what: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    problems: Problems,
) -> dict[str, str] | None:
    """The text values of a mapping's keys (stripped); None when a required one is missing or bad."""
    missing = [key for key in required if key not in entries]
    if missing:
        problems.add(node_line(item), f"{what} misses {', '.join(missing)} (needs {', '.join(required)})")
        return None
    values: dict[str, str] = {}
    ok = True
    for key in required + optional:
        if key in entries:
            value = node_text(entries[key][1], f"{key} of {what}", problems)
            if value is None:
                ok = False
            else:
                values[key] = value.strip()
    return values if ok else None


def _named_table(
    path: Path,
    top: Entries,
    key: str,
    required: tuple[str, ...],
    problems: Problems,
) -> tuple[Path, list[tuple[int, dict[str, str]]]] | None:
    """The rows of a CSV/JSONL file named by ``key``, with every value stripped; None on problems."""
    named = read_named_file(path, top, key, problems)
    if named is None:
        return None
    table_path, text = named
    own = Problems(str(table_path))
    suffix = table_path.suffix.lower()
    if suffix not in ROW_EXTENSIONS:
        problems.add(
            node_line(top[key][1]),
            f"{key} must be a .csv or .jsonl file, not {table_path.suffix or '(none)'!r}",
        )
        return None
    table = csv_table(text, own) if suffix == ".csv" else jsonl_table(text, own)
    rows: list[tuple[int, dict[str, str]]] = []
    known = required + _OPTIONAL_FILE_COLUMNS
    if table is not None:
        reported: set[str] = set()
        for line, raw in table.rows:
            for column in raw:
                if column not in known and column not in reported:
                    reported.add(column)
                    own.add(
                        table.header_line or line,
                        f"unknown column {column!r}; the columns are {', '.join(required)} and optional "
                        f"{', '.join(_OPTIONAL_FILE_COLUMNS)}",
                    )
            row = {c: v.strip() for c, v in raw.items() if c in known and v is not None and v.strip()}
            absent = [c for c in required if c not in row]
            if absent:
                own.add(
                    line,
                    f"column(s) {', '.join(absent)} empty or missing; every row needs {', '.join(required)}",
                )
                continue
            rows.append((line, row))
    problems.items.extend(own.items)
    return (table_path, rows) if table is not None and not own.items else None


def _parse_swaps(path: Path, top: Entries, problems: Problems) -> list[tuple[SwapSentence, _Where]] | None:
    """The usable identity swaps (inline list or swaps_file) with where each was written (problems
    reported); None when the swaps cannot be read at all."""
    if not _either(top, "swaps", "swaps_file", problems):
        return None
    if "swaps" in top:
        return _inline_swaps(top["swaps"][1], problems)
    if "swaps_file" in top:
        return _file_swaps(path, top, problems)
    return []


def _inline_swaps(node: yaml.Node, problems: Problems) -> list[tuple[SwapSentence, _Where]] | None:
    """The usable swaps of the inline ``swaps:`` list; None when it is not a non-empty list."""
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        problems.add(
            node_line(node),
            f"swaps must be a list of {{id, attribute, variants, label, query}} mappings, not {node_shown(node)}",
        )
        return None
    swaps: list[tuple[SwapSentence, _Where]] = []
    for number, item in enumerate(node.value, start=1):
        swap = _inline_swap(item, f"swap {number}", problems)
        if swap is not None:
            swaps.append(swap)
    return swaps


def _inline_swap(item: yaml.Node, what: str, problems: Problems) -> tuple[SwapSentence, _Where] | None:
    """One ``{id, attribute, variants, label, query}`` item of the inline list; None on problems."""
    entries = node_mapping(item, what, problems)
    if entries is None:
        return None
    report_unknown_keys(entries, _SWAP_KEYS, what, problems)
    values = _entry_texts(entries, item, what, ("id", "attribute"), ("label", "query"), problems)
    if "variants" not in entries:
        problems.add(node_line(item), f"{what} misses variants (group: sentence, one per group)")
        return None
    groups = node_mapping(entries["variants"][1], f"variants of {what}", problems)
    if values is None or groups is None:
        return None
    where = _Where(problems.file, node_line(item))
    sentences: dict[str, str] = {}
    ok = _checked_id(values["id"], "swap id", where, problems)
    for group, (group_key, group_value) in groups.items():
        sentence = node_text(group_value, f"sentence of group {group!r} in {what}", problems)
        group_where = _Where(problems.file, node_line(group_key))
        ok = _checked_id(group, "group name", group_where, problems) and ok
        if sentence is None:
            ok = False
        else:
            sentences[group] = sentence.strip()
    if ok and _swap_groups_ok(values["id"], sentences, where, problems):
        return SwapSentence(**values, variants=sentences), where
    return None


def _file_swaps(path: Path, top: Entries, problems: Problems) -> list[tuple[SwapSentence, _Where]] | None:
    """The usable swaps of the ``swaps_file`` table (one row per swap and group, grouped by id); None
    when the file cannot be read."""
    table = _named_table(path, top, "swaps_file", _SWAP_FILE_COLUMNS, problems)
    if table is None:
        return None
    swaps_path, rows = table
    grouped: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for line, row in rows:
        grouped.setdefault(row["id"], []).append((line, row))
    swaps: list[tuple[SwapSentence, _Where]] = []
    for swap_id, swap_rows in grouped.items():
        swap = _file_swap(swap_id, swap_rows, str(swaps_path), problems)
        if swap is not None:
            swaps.append(swap)
    return swaps


def _file_swap(
    swap_id: str, swap_rows: list[tuple[int, dict[str, str]]], file: str, problems: Problems
) -> tuple[SwapSentence, _Where] | None:
    """One swap from its rows of the swaps file (the first row gives attribute, label and query);
    None on problems."""
    first_line, first = swap_rows[0]
    where = _Where(file, first_line)
    ok = _checked_id(swap_id, "swap id", where, problems)
    sentences: dict[str, str] = {}
    for line, row in swap_rows:
        ok = _swap_row_agrees(swap_id, line, row, swap_rows[0], file, problems) and ok
        if row["group"] in sentences:
            problems.items.append(
                Problem(
                    file,
                    line,
                    f"swap {swap_id!r} already has group {row['group']!r}; each group appears once",
                )
            )
            ok = False
            continue
        ok = _checked_id(row["group"], "group name", _Where(file, line), problems) and ok
        sentences[row["group"]] = row["text"]
    if not (ok and _swap_groups_ok(swap_id, sentences, where, problems)):
        return None
    extra = {c: first[c] for c in ("label", "query") if c in first}
    return SwapSentence(id=swap_id, attribute=first["attribute"], variants=sentences, **extra), where


def _swap_row_agrees(
    swap_id: str,
    line: int,
    row: dict[str, str],
    first_row: tuple[int, dict[str, str]],
    file: str,
    problems: Problems,
) -> bool:
    """Whether a row of a swap gives the attribute, label and query of its first row (problems reported)."""
    first_line, first = first_row
    ok = True
    for column in ("attribute", "label", "query"):
        if row.get(column) != first.get(column):
            problems.items.append(
                Problem(
                    file,
                    line,
                    f"swap {swap_id!r} has {column} {row.get(column)!r} here but "
                    f"{first.get(column)!r} on line {first_line}; one swap has one {column}",
                )
            )
            ok = False
    return ok


def _swap_groups_ok(swap_id: str, sentences: dict[str, str], where: _Where, problems: Problems) -> bool:
    """At least two groups, whose sentences differ once normalised."""
    if len(sentences) < 2:
        problems.items.append(
            Problem(
                where.file,
                where.line,
                f"swap {swap_id!r} has {len(sentences)} group(s); an identity swap needs at least 2",
            )
        )
        return False
    seen: dict[str, str] = {}
    for group, sentence in sentences.items():
        key = normalised(sentence)
        if key in seen:
            problems.items.append(
                Problem(
                    where.file,
                    where.line,
                    f"groups {seen[key]!r} and {group!r} of swap {swap_id!r} have the same sentence; "
                    "nothing differs between them",
                )
            )
            return False
        seen[key] = group
    return True


def read_long_document(path: Path, top: Entries, options: LoadOptions, problems: Problems) -> ProbeSet | None:
    """A ``kind: long_document`` file: the spec its documents are built from (per model, later)."""
    report_unknown_keys(top, _LONG_TOP_KEYS, "the file", problems)

    def text_of(key: str) -> str | None:
        return node_text(top[key][1], key, problems) if key in top else None

    set_name = options.name or text_of("name") or path.stem
    description = text_of("description") or ""
    filler_source = text_of("filler_source") or ""
    card = read_card(path, top, problems)
    tasks = node_text_list(top["tasks"][1], "tasks", problems) if "tasks" in top else None
    spec_values: dict[str, Any] = {}
    lengths = _parse_lengths(top["lengths"][1], problems) if "lengths" in top else ("auto", [])
    if lengths is not None:
        spec_values["lengths"] = lengths[0]
    if "positions" in top:
        spec_values["positions"] = _parse_positions(top["positions"][1], problems)
    for key, minimum in (("max_doc_tokens", 16), ("seed", 0)):
        if key in top:
            spec_values[key] = node_whole_number(top[key][1], key, minimum, problems)
    if lengths is not None and spec_values.get("max_doc_tokens") is not None:
        for length, line in lengths[1]:
            if length > spec_values["max_doc_tokens"]:
                problems.add(
                    line,
                    f"length {length} is above max_doc_tokens {spec_values['max_doc_tokens']}; raise "
                    "max_doc_tokens or drop the length",
                )
    filler = _parse_filler(path, top, problems)
    keys = _parse_keys(path, top, problems)
    swaps = _parse_swaps(path, top, problems)
    if keys is not None and swaps is not None:
        _check_long_document_items(keys, swaps, filler or [], problems)
    if problems.items or filler is None or keys is None or swaps is None or card is None:
        return None
    try:
        spec = LongDocumentSpec(
            filler=tuple(sentence for sentence, _ in filler),
            filler_source=filler_source,
            keys=tuple(key for key, _ in keys),
            swaps=tuple(swap for swap, _ in swaps),
            **spec_values,
        )
        extra: dict[str, Any] = {"tasks": tuple(tasks)} if tasks else {}
        return ProbeSet(
            name=set_name,
            kind="long_document",
            description=description,
            card=card,
            source=str(path),
            instances=(),
            long_document=spec,
            **extra,
        )
    except ValidationError as error:
        for message in validation_messages(error):
            problems.add(1, message)
        return None


def _check_long_document_items(
    keys: list[tuple[KeySentence, _Where]],
    swaps: list[tuple[SwapSentence, _Where]],
    filler: list[tuple[str, _Where]],
    problems: Problems,
) -> None:
    """Across keys and swaps: something to place, unique ids, and no key or swap sentence that the
    filler already contains. (Labels and queries are checked against the model by its target: an
    embedding audit needs a query for every key and swap.)"""

    def add(where: _Where, message: str) -> None:
        problems.items.append(Problem(where.file, where.line, message))

    if not keys and not swaps:
        problems.add(
            1,
            "a long-document set needs at least one key sentence (keys or keys_file) or identity swap "
            "(swaps or swaps_file)",
        )
    items: list[tuple[KeySentence | SwapSentence, _Where]] = [*keys, *swaps]
    first_at: dict[str, _Where] = {}
    for item, where in items:
        if item.id in first_at:
            add(
                where,
                f"id {item.id!r} is already used on {first_at[item.id].seen_from(where)}; key and swap ids "
                "must be unique",
            )
        else:
            first_at[item.id] = where
    filler_forms = [(normalised(sentence).casefold(), where) for sentence, where in filler]
    seen_texts: dict[str, _Where] = {}
    for item, where in items:
        texts = [item.text] if isinstance(item, KeySentence) else list(item.variants.values())
        for text in texts:
            form = normalised(text).casefold()
            if isinstance(item, KeySentence):
                if form in seen_texts:
                    add(
                        where,
                        f"key {item.id!r} repeats the sentence of the key on {seen_texts[form].seen_from(where)}",
                    )
                seen_texts[form] = where
            inside = next((w for sentence, w in filler_forms if form in sentence), None)
            if inside is not None:
                add(
                    where,
                    f"{'key' if isinstance(item, KeySentence) else 'swap'} {item.id!r}: the filler sentence "
                    f"on {inside.seen_from(where)} contains {text!r}, so a document without it would contain it too; "
                    "remove it from the filler",
                )


register_yaml_kind(YamlKind("long_document", read_long_document))
