"""Rows files (``.csv`` / ``.jsonl`` / ``.ndjson``) and the rows of datasets: explicit *pairs*
(``text_a,text_b,group_a,group_b,attribute``) or *variants* (``instance_id,variant,attribute,text``),
columns renamed by ``mapping`` and completed by ``defaults``; rows in the parallel layout go to the
parallel format and target columns to the translation format."""

from __future__ import annotations

from pathlib import Path

from probes.formats import FileFormat, register_file_format
from probes.formats.parallel import is_parallel_layout, parallel_from_rows
from probes.formats.translation import attach_row_targets
from probes.reading.focus import differing_regions, focus_spans
from probes.reading.problems import (
    SAME_ONCE_NORMALISED,
    LoadOptions,
    Problems,
    normalised,
    read_utf8,
    validated_probe_set,
)
from probes.reading.rows import (
    KNOWN_COLUMNS,
    PAIR_COLUMNS,
    PAIR_OPTIONAL_COLUMNS,
    ROW_EXTENSIONS,
    VARIANT_COLUMNS,
    VARIANT_OPTIONAL_COLUMNS,
    RowLines,
    Table,
    csv_table,
    jsonl_table,
)
from probes.schema import Instance, ProbeSet, Span, Variant


def read_rows_file(path: Path, options: LoadOptions, problems: Problems) -> ProbeSet | None:
    """A CSV or JSON-lines file of rows."""
    if options.split:
        problems.add(
            None,
            f"--probe-split {options.split} (Python: split={options.split!r}) applies to datasets only; "
            "a CSV/JSONL file has no splits, so leave it out",
        )
        return None
    text = read_utf8(path, problems)
    if text is None:
        return None
    suffix = path.suffix.lower()
    table = csv_table(text, problems) if suffix == ".csv" else jsonl_table(text, problems)
    if table is None:
        return None
    return rows_to_probe_set(table, path.stem, str(path), options, problems)


def rows_to_probe_set(
    table: Table, stem: str, source: str, options: LoadOptions, problems: Problems
) -> ProbeSet | None:
    """Build a probe set from rows in the pairs or the variants layout (or the parallel one)."""

    if not options.mapping and is_parallel_layout(table.columns):
        return parallel_from_rows(table, stem, source, options, problems)
    mapping = dict(options.mapping or {})
    defaults = dict(options.defaults or {})
    if not _row_options_fit(table, mapping, defaults, problems):
        return None
    renamed = {theirs: ours for ours, theirs in mapping.items()}
    columns = {renamed.get(c, c) for c in table.columns} | set(defaults)
    is_pairs = _is_pairs_layout(columns, table.header_line, problems)
    if is_pairs is None:
        return None
    records = _layout_records(table, renamed, defaults, is_pairs, problems)
    build = _pairs_instances if is_pairs else _variants_instances
    instances, lines = build(records, table.place, problems)
    _check_example_ids(instances, lines, table.place, problems)

    instances, extra = attach_row_targets(instances, lines, table, renamed, is_pairs, problems)
    if problems.items:
        return None
    return validated_probe_set(
        problems, None, name=options.name or stem, source=source, instances=tuple(instances), **extra
    )


def _row_options_fit(
    table: Table, mapping: dict[str, str], defaults: dict[str, str], problems: Problems
) -> bool:
    """Whether ``mapping`` and ``defaults`` name only our columns and the mapping only columns the
    data has (problems reported)."""
    known_before = len(problems.items)
    for option, python, pairs in (
        ("--probe-map", "mapping", mapping),
        ("--probe-default", "defaults", defaults),
    ):
        for ours, given in pairs.items():
            if ours not in KNOWN_COLUMNS:
                problems.add(
                    None,
                    f"{option} {ours}={given} (Python: {python}={{{ours!r}: {given!r}}}): {ours!r} is not a "
                    f"probe column; the left side names one of ours ({', '.join(sorted(KNOWN_COLUMNS))})",
                )
    for ours, theirs in mapping.items():
        if theirs not in table.columns:
            problems.add(
                table.header_line,
                f"--probe-map {ours}={theirs} (Python: mapping={{{ours!r}: {theirs!r}}}) names column "
                f"{theirs!r}, which the data lacks (columns: {', '.join(table.columns)})",
            )
    return len(problems.items) == known_before


def _is_pairs_layout(columns: set[str], header_line: int | None, problems: Problems) -> bool | None:
    """True for the pairs layout, False for the variants one (after renaming and defaults, the
    columns match exactly one and give all it needs); None, with a problem, otherwise."""
    is_pairs = bool({"text_a", "text_b"} & columns)
    is_variants = bool({"text", "variant"} & columns)
    if is_pairs == is_variants:
        reason = "mix both" if is_pairs else "match neither"
        problems.add(
            header_line,
            f"columns {', '.join(sorted(columns)) or '(none)'} {reason} of the two layouts: pairs need "
            f"{','.join(PAIR_COLUMNS)} (optional {','.join(PAIR_OPTIONAL_COLUMNS)}); variants need "
            f"{','.join(VARIANT_COLUMNS)} (optional {','.join(VARIANT_OPTIONAL_COLUMNS)})"
            + "; map a column onto one of ours with --probe-map OUR=FILE_COLUMN and fill a missing one with "
            "--probe-default COLUMN=VALUE (Python: mapping={OUR: FILE_COLUMN}, defaults={COLUMN: VALUE})",
        )
        return None
    required = PAIR_COLUMNS if is_pairs else VARIANT_COLUMNS
    layout = "pairs" if is_pairs else "variants"
    absent = [c for c in required if c not in columns]
    if absent:
        problems.add(
            header_line,
            f"missing required column(s) {', '.join(absent)}; the {layout} layout needs {','.join(required)}; "
            f"map one with --probe-map {absent[0]}=FILE_COLUMN or fill it with --probe-default "
            f"{absent[0]}=VALUE (Python: mapping={{{absent[0]!r}: FILE_COLUMN}}, "
            f"defaults={{{absent[0]!r}: VALUE}})",
        )
        return None
    return is_pairs


def _layout_records(
    table: Table, renamed: dict[str, str], defaults: dict[str, str], is_pairs: bool, problems: Problems
) -> list[tuple[int, dict[str, str]]]:
    """Each row with a value for every required column (renamed, defaults filled in; texts kept as
    written, other values stripped) and its line; a row missing one is reported and left out."""
    required = PAIR_COLUMNS if is_pairs else VARIANT_COLUMNS
    layout = "pairs" if is_pairs else "variants"
    records: list[tuple[int, dict[str, str]]] = []
    for where, raw in table.rows:
        values = {renamed.get(k, k): v for k, v in raw.items()}
        row: dict[str, str] = {}
        ok = True
        for column in required + (PAIR_OPTIONAL_COLUMNS if is_pairs else VARIANT_OPTIONAL_COLUMNS):
            value = values.get(column)
            if value is None and column in defaults:
                value = defaults[column]
            if value is None or not str(value).strip():
                if column in required:
                    state = "is empty" if column in values or table.column_everywhere else "is missing"
                    problems.add(
                        where, f"column {column} {state}; every {layout} row needs {','.join(required)}"
                    )
                    ok = False
                continue
            row[column] = str(value) if column.startswith("text") else str(value).strip()
        if ok:
            records.append((where, row))
    return records


def _check_example_ids(instances: list[Instance], lines: RowLines, place: str, problems: Problems) -> None:
    """The runner names each example ``<set>/<instance id>/<variant>``, so a '/' inside an id can make
    two different (instance, variant) pairs share a name; report the later one."""
    entries = sorted(
        (
            (lines[(i.instance_id, v.variant)], i.instance_id, v.variant)
            for i in instances
            for v in i.variants
        ),
        key=lambda entry: entry[0],
    )
    seen: dict[str, tuple[int, str, str]] = {}
    for where, instance_id, variant in entries:
        example_id = f"{instance_id}/{variant}"
        if example_id not in seen:
            seen[example_id] = (where, instance_id, variant)
            continue
        first_where, first_instance, first_variant = seen[example_id]
        problems.add(
            where,
            f"instance {instance_id!r} variant {variant!r} and instance {first_instance!r} variant "
            f"{first_variant!r} ({place} {first_where}) make the same example id {example_id!r}; "
            "avoid '/' in ids or rename one",
        )


def _pairs_instances(
    records: list[tuple[int, dict[str, str]]], place: str, problems: Problems
) -> tuple[list[Instance], RowLines]:
    instances: list[Instance] = []
    lines: RowLines = {}
    seen: dict[str, int] = {}
    for where, row in records:
        instance_id = row.get("instance_id") or f"{place}{where}"
        if instance_id in seen:
            problems.add(
                where,
                f"instance id {instance_id!r} is already used on {place} {seen[instance_id]}; ids must be unique",
            )
            continue
        seen[instance_id] = where
        if row["group_a"] == row["group_b"]:
            problems.add(
                where,
                f"group_a and group_b are both {row['group_a']!r}; a pair compares two different groups",
            )
            continue
        if row["text_a"] == row["text_b"]:
            problems.add(where, "text_a and text_b are identical; a pair must differ in the swapped words")
            continue
        if normalised(row["text_a"]) == normalised(row["text_b"]):
            problems.add(
                where,
                f"variants {row['group_a']!r} and {row['group_b']!r} of instance {instance_id!r} "
                f"{SAME_ONCE_NORMALISED}; nothing differs between them",
            )
            continue
        (span_a,), (span_b,) = differing_regions(row["text_a"], row["text_b"], by="edges")
        variants = []
        for text, group, (start, end) in (
            (row["text_a"], row["group_a"], span_a),
            (row["text_b"], row["group_b"], span_b),
        ):
            variants.append(
                Variant(
                    instance_id=instance_id,
                    variant=group,
                    attribute=row["attribute"],
                    text=text,
                    label=row.get("label"),
                    lang=row.get("lang", "en"),
                    focus=(Span(start=start, end=end),) if end > start else (),
                )
            )
        instances.append(
            Instance(instance_id=instance_id, attribute=row["attribute"], variants=tuple(variants))
        )
        lines[(instance_id, row["group_a"])] = lines[(instance_id, row["group_b"])] = where
    return instances, lines


def _variants_instances(
    records: list[tuple[int, dict[str, str]]], place: str, problems: Problems
) -> tuple[list[Instance], RowLines]:
    grouped: dict[str, list[tuple[int, dict[str, str]]]] = {}
    for where, row in records:
        rows = grouped.setdefault(row["instance_id"], [])
        earlier = next((w for w, r in rows if r["variant"] == row["variant"]), None)
        if earlier is not None:
            problems.add(
                where,
                f"instance {row['instance_id']!r} already has variant {row['variant']!r} ({place} {earlier}); "
                "each variant of an instance appears once",
            )
            continue
        if rows and row["attribute"] != rows[0][1]["attribute"]:
            problems.add(
                where,
                f"instance {row['instance_id']!r} has attribute {row['attribute']!r} here but "
                f"{rows[0][1]['attribute']!r} on {place} {rows[0][0]}; one instance has one attribute",
            )
            continue
        rows.append((where, row))
    instances: list[Instance] = []
    lines: RowLines = {}
    for instance_id, rows in grouped.items():
        first = rows[0][0]
        if len(rows) < 2:
            problems.add(
                first,
                f"instance {instance_id!r} has only 1 variant ({rows[0][1]['variant']!r}); add at least one more "
                f"row with instance_id {instance_id}",
            )
            continue
        texts = [r["text"] for _, r in rows]
        if len(set(texts)) == 1:
            problems.add(
                first,
                f"all variants of instance {instance_id!r} have the same text; nothing differs between them",
            )
            continue
        if _report_same_texts(instance_id, rows, place, problems):
            continue
        variants = [
            Variant(
                instance_id=instance_id,
                variant=row["variant"],
                attribute=row["attribute"],
                text=row["text"],
                label=row.get("label"),
                lang=row.get("lang", "en"),
                focus=focus_spans(row["text"], texts, by="edges"),
            )
            for _, row in rows
        ]
        instances.append(
            Instance(instance_id=instance_id, attribute=rows[0][1]["attribute"], variants=tuple(variants))
        )
        lines.update({(instance_id, row["variant"]): where for where, row in rows})
    return instances, lines


def _report_same_texts(
    instance_id: str, rows: list[tuple[int, dict[str, str]]], place: str, problems: Problems
) -> bool:
    """Report every variant whose text equals an earlier variant's once normalised; True if any did."""
    first_with: dict[str, tuple[int, dict[str, str]]] = {}
    found = False
    for where, row in rows:
        key = normalised(row["text"])
        if key not in first_with:
            first_with[key] = (where, row)
            continue
        first_where, first = first_with[key]
        how = "have the same text" if first["text"] == row["text"] else SAME_ONCE_NORMALISED
        problems.add(
            where,
            f"variants {first['variant']!r} ({place} {first_where}) and {row['variant']!r} of instance "
            f"{instance_id!r} {how}; nothing differs between them",
        )
        found = True
    return found


register_file_format(
    FileFormat(
        "rows",
        claims=lambda path, options: not path.is_dir() and path.suffix.lower() in ROW_EXTENSIONS,
        read=read_rows_file,
        order=30,
        hint=(2, ".csv or .jsonl (pairs or variants rows)"),
    )
)
