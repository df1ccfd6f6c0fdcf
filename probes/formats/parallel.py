"""Parallel (multilingual) probe sets: the same meaning written once per language.

A parallel set (``kind: parallel``) holds one instance per meaning and one variant per language:
``variant`` and ``lang`` are the language's BCP-47 code, ``attribute`` is ``language``, and the
``reference`` language is what every other language is compared with. Texts are stripped and put
in Unicode NFC when loaded. Parallel variants carry no focus spans: the whole text differs.

Three ways to write one (docs/probes.md, "Parallel (multilingual) sets"):

- YAML: ``kind: parallel``, ``reference``, ``languages`` and ``instances`` of ``{id, label, texts}``;
- wide rows (CSV/JSONL): ``id,label,en,de,...``: one row per instance, one column per language;
- long rows (CSV/JSONL): ``id,lang,text,label``: one row per instance and language.

``kind: parallel`` YAML files register here; the rows format sends rows with an ``id`` column (and
no ``instance_id``/``variant``/``text_a``) here. Every text is checked against its language's
script (probes/languages.py); every problem is reported as ``FILE:LINE: message``, all at once.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from audit.errors import Problem
from probes.formats import YamlKind, register_yaml_kind
from probes.languages import canonical_language, expected_scripts, language_problem, scripts_in
from probes.long_document import ID_PATTERN
from probes.reading.problems import LoadOptions, Problems, validated_probe_set
from probes.reading.rows import Table
from probes.reading.yaml_nodes import (
    Entries,
    node_line,
    node_mapping,
    node_text,
    node_text_list,
    read_card,
    report_unknown_keys,
)
from probes.schema import Instance, ProbeSet, Variant

ATTRIBUTE = "language"
"""The attribute of every instance of a parallel set."""

PARALLEL_TOP_KEYS = (
    "name",
    "kind",
    "description",
    "card",
    "card_file",
    "tasks",
    "reference",
    "languages",
    "instances",
)
INSTANCE_KEYS = ("id", "label", "texts")
WIDE_FIXED_COLUMNS = ("id", "label")
LONG_COLUMNS = ("id", "lang", "text")
LONG_OPTIONAL_COLUMNS = ("label",)
DEFAULT_REFERENCE = "en"


# ------------------------------------------------------------------------- the shared builder


@dataclass
class _Text:
    lang: str  # as written
    text: str | None  # None: empty or missing
    file: str
    line: int | None


@dataclass
class _Record:
    """One instance as read from any format: its id, label and texts, with where each was written."""

    instance_id: str
    label: str | None
    file: str
    line: int | None
    texts: list[_Text] = field(default_factory=list)


@dataclass
class _Languages:
    codes: list[str]  # canonical, in order
    reference: str


def _add(problems: Problems, file: str, line: int | None, message: str) -> None:
    problems.items.append(Problem(file, line, message))


def _where(file: str, line: int | None, here: str, place: str) -> str:
    if line is None:
        return "elsewhere"
    return f"{place} {line}" if file == here else f"{file}:{line}"


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


def _same_text_key(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split()).casefold()


def _build_instances(
    records: list[_Record], languages: _Languages, problems: Problems, place: str = "line"
) -> list[Instance]:
    """Check every record against the languages (every problem reported) and build the instances."""
    instances: list[Instance] = []
    first_id: dict[str, _Record] = {}
    first_reference: dict[str, _Record] = {}
    for record in records:
        ok = True
        if not ID_PATTERN.match(record.instance_id):
            _add(
                problems,
                record.file,
                record.line,
                f"instance id {record.instance_id!r} must be letters, digits, _ . - only (it becomes part "
                "of example ids, so no '/' or spaces)",
            )
            ok = False
        if record.instance_id in first_id:
            earlier = first_id[record.instance_id]
            _add(
                problems,
                record.file,
                record.line,
                f"instance id {record.instance_id!r} is already used on "
                f"{_where(earlier.file, earlier.line, record.file, place)}; ids must be unique",
            )
            ok = False
        else:
            first_id[record.instance_id] = record
        texts, texts_ok = _record_texts(record, languages, problems, place)
        ok = texts_ok and ok
        missing = [code for code in languages.codes if code not in texts]
        if missing:
            _add(
                problems,
                record.file,
                record.line,
                f"instance {record.instance_id!r} has no text in {', '.join(missing)}; every instance needs "
                f"a text in each of the set's languages ({', '.join(languages.codes)})",
            )
            ok = False
        filled = {code: _nfc(item.text) for code, item in texts.items() if item.text and item.text.strip()}
        if languages.reference not in filled:
            continue  # reported above: nothing to compare the other texts with
        ref_key = _same_text_key(filled[languages.reference])
        if ref_key in first_reference:
            earlier = first_reference[ref_key]
            _add(
                problems,
                texts[languages.reference].file,
                texts[languages.reference].line,
                f"the {languages.reference} (reference) text of instance {record.instance_id!r} is the same "
                f"as that of instance {earlier.instance_id!r} ({_where(earlier.file, earlier.line, record.file, place)}); "
                "each instance is a different sentence",
            )
            ok = False
        else:
            first_reference[ref_key] = record
        ok = _scripts_ok(record, texts, filled, languages, ref_key, problems) and ok
        if not ok:
            continue
        variants = tuple(
            Variant(
                instance_id=record.instance_id,
                variant=code,
                attribute=ATTRIBUTE,
                text=filled[code],
                label=record.label,
                lang=code,
            )
            for code in languages.codes
        )
        instances.append(Instance(instance_id=record.instance_id, attribute=ATTRIBUTE, variants=variants))
    return instances


def _record_texts(
    record: _Record, languages: _Languages, problems: Problems, place: str
) -> tuple[dict[str, _Text], bool]:
    """The record's texts by canonical language code, and False when any is bad (reported): an
    unknown code, a language the set lacks, a language given twice, an empty text."""
    ok = True
    texts: dict[str, _Text] = {}
    for item in record.texts:
        code = canonical_language(item.lang)
        if code is None:
            _add(problems, item.file, item.line, f"language {language_problem(item.lang)}")
            ok = False
            continue
        if code not in languages.codes:
            _add(
                problems,
                item.file,
                item.line,
                f"instance {record.instance_id!r} has a text in {code}, which is not among the set's "
                f"languages ({', '.join(languages.codes)}); add it to languages or remove the text",
            )
            ok = False
            continue
        if code in texts:
            _add(
                problems,
                item.file,
                item.line,
                f"instance {record.instance_id!r} already has a {code} text "
                f"({_where(texts[code].file, texts[code].line, item.file, place)}); give each language once",
            )
            ok = False
            continue
        texts[code] = item
        if item.text is None or not item.text.strip():
            _add(
                problems,
                item.file,
                item.line,
                f"the {code} text of instance {record.instance_id!r} is empty; write the translation",
            )
            ok = False
    return texts, ok


def _scripts_ok(
    record: _Record,
    texts: dict[str, _Text],
    filled: dict[str, str],
    languages: _Languages,
    ref_key: str,
    problems: Problems,
) -> bool:
    """False (reported) when a text looks untranslated: the reference text itself, or no letter of
    its language's scripts."""
    ok = True
    reference_scripts = expected_scripts(languages.reference)
    for code in languages.codes:
        if code == languages.reference:
            continue
        scripts = expected_scripts(code)
        if scripts is None or code not in filled:
            continue
        item, text = texts[code], filled[code]
        written = scripts_in(text)
        if (
            reference_scripts is not None
            and not scripts & reference_scripts
            and _same_text_key(text) == ref_key
        ):
            _add(
                problems,
                item.file,
                item.line,
                f"the {code} text of instance {record.instance_id!r} is the same as the "
                f"{languages.reference} (reference) text; it looks untranslated",
            )
            ok = False
        elif written and not set(written) & scripts:
            _add(
                problems,
                item.file,
                item.line,
                f"the {code} text of instance {record.instance_id!r} has no {' or '.join(sorted(scripts))} "
                f"letters (it is written in {', '.join(sorted(written))}); it looks untranslated",
            )
            ok = False
    return ok


def _make_set(
    problems: Problems,
    line: int | None,
    *,
    name: str,
    source: str,
    instances: list[Instance],
    reference: str,
    **extra: Any,
) -> ProbeSet | None:
    if problems.items:
        return None
    return validated_probe_set(
        problems,
        line,
        name=name,
        kind="parallel",
        source=source,
        instances=tuple(instances),
        reference_lang=reference,
        **extra,
    )


def _languages_from(
    codes: Sequence[tuple[str, int | None]],
    reference: tuple[str, int | None] | None,
    file: str,
    problems: Problems,
    what: str,
) -> _Languages | None:
    """Checked languages (BCP-47 shape, each once, at least 2) and reference (one of them)."""
    ok = True
    canonical: list[str] = []
    for code, line in codes:
        value = canonical_language(code)
        if value is None:
            _add(problems, file, line, f"{what}: {language_problem(code)}")
            ok = False
        elif value in canonical:
            _add(problems, file, line, f"{what} lists {value} twice; list each language once")
            ok = False
        else:
            canonical.append(value)
    if ok and len(canonical) < 2:
        _add(
            problems,
            file,
            codes[0][1] if codes else None,
            f"{what} gives {len(canonical)} language(s); a parallel set needs at least 2",
        )
        ok = False
    if reference is None:
        ref = DEFAULT_REFERENCE if DEFAULT_REFERENCE in canonical else (canonical[0] if canonical else None)
        ref_line = None
    else:
        ref, ref_line = canonical_language(reference[0]), reference[1]
        if ref is None:
            _add(problems, file, ref_line, f"reference: {language_problem(reference[0])}")
            return None
    if ref is None or not ok:
        return None
    if ref not in canonical:
        _add(
            problems,
            file,
            ref_line,
            f"the reference language {ref} is not among the languages ({', '.join(canonical)}); "
            "the reference must be one of them",
        )
        return None
    return _Languages(canonical, ref)


# ---------------------------------------------------------------------------------------- YAML


def read_parallel(path: Path, top: Entries, options: LoadOptions, problems: Problems) -> ProbeSet | None:
    """A ``kind: parallel`` YAML file (its top-level mapping already read by the YAML file format)."""
    report_unknown_keys(top, PARALLEL_TOP_KEYS, "the file", problems)

    def text_of(key: str) -> str | None:
        return node_text(top[key][1], key, problems) if key in top else None

    set_name = options.name or text_of("name") or path.stem
    description = text_of("description") or ""
    card = read_card(path, top, problems)
    tasks = node_text_list(top["tasks"][1], "tasks", problems) if "tasks" in top else None
    for key in ("languages", "instances"):
        if key not in top:
            problems.add(
                1,
                f"missing required key {key!r}; a parallel set needs languages (BCP-47 codes) and instances "
                "({id, label, texts: {language: text}})",
            )
    reference: tuple[str, int | None] | None = None
    if "reference" in top:
        value = text_of("reference")
        if value is None:
            return None
        reference = (value, node_line(top["reference"][1]))
    languages: _Languages | None = None
    if "languages" in top:
        node = top["languages"][1]
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            problems.add(node_line(node), "languages must be a list of BCP-47 codes such as [en, de, fr]")
        else:
            codes = []
            for item in node.value:
                code = node_text(item, "an item of languages", problems)
                if code is not None:
                    codes.append((code, node_line(item)))
            if (
                reference is None
                and codes
                and DEFAULT_REFERENCE not in {canonical_language(c) for c, _ in codes}
            ):
                problems.add(
                    node_line(top["languages"][0]),
                    f"no reference language: the languages lack {DEFAULT_REFERENCE}, so name the one the "
                    "others are compared with (reference: CODE)",
                )
            else:
                languages = _languages_from(codes, reference, problems.file, problems, "languages")
    records: list[_Record] = []
    if "instances" in top:
        node = top["instances"][1]
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            problems.add(node_line(node), "instances must be a non-empty list of {id, label, texts} mappings")
        else:
            for number, item in enumerate(node.value, start=1):
                record = _yaml_record(item, number, problems)
                if record is not None:
                    records.append(record)
    if languages is None or card is None:
        return None
    instances = _build_instances(records, languages, problems)
    extra: dict[str, Any] = {"tasks": tuple(tasks)} if tasks else {}
    return _make_set(
        problems,
        1,
        name=set_name,
        source=str(path),
        instances=instances,
        reference=languages.reference,
        description=description,
        card=card,
        **extra,
    )


def _yaml_record(item: yaml.Node, number: int, problems: Problems) -> _Record | None:
    what = f"instance {number}"
    entries = node_mapping(item, what, problems)
    if entries is None:
        return None
    report_unknown_keys(entries, INSTANCE_KEYS, what, problems)
    missing = [key for key in ("id", "texts") if key not in entries]
    if missing:
        problems.add(
            node_line(item), f"{what} misses {', '.join(missing)} (needs id and texts; label is optional)"
        )
        return None
    instance_id = node_text(entries["id"][1], f"id of {what}", problems)
    label = None
    if "label" in entries:
        label_node = entries["label"][1]
        is_null = isinstance(label_node, yaml.ScalarNode) and label_node.tag == "tag:yaml.org,2002:null"
        if not is_null:
            label = node_text(label_node, f"label of {what}", problems)
            if label is None:
                return None
            label = label.strip()
    texts = node_mapping(entries["texts"][1], f"texts of {what}", problems)
    if instance_id is None or texts is None:
        return None
    record = _Record(instance_id.strip(), label, problems.file, node_line(item))
    for lang, (key_node, value_node) in texts.items():
        if isinstance(value_node, yaml.ScalarNode) and (
            value_node.tag == "tag:yaml.org,2002:null" or not value_node.value.strip()
        ):
            text = None  # reported as empty, with the language, by the builder
        else:
            text = node_text(value_node, f"the {lang} text of {what}", problems)
            if text is None:
                return None
        record.texts.append(_Text(lang, text, problems.file, node_line(key_node)))
    return record


# ---------------------------------------------------------------------------------------- rows


def is_parallel_layout(columns: Iterable[str]) -> bool:
    """Whether rows with these columns are a parallel set: an ``id`` column, and none of the pairs
    or variants columns (``instance_id``, ``variant``, ``text_a``, ``text_b``)."""
    names = set(columns)
    return "id" in names and not names & {"instance_id", "variant", "text_a", "text_b"}


def parallel_from_rows(
    table: Table, stem: str, source: str, options: LoadOptions, problems: Problems
) -> ProbeSet | None:
    """Rows in the wide (``id,label,en,de,...``) or long (``id,lang,text,label``) parallel layout.

    The reference language is ``en`` when the rows have it, otherwise the first language (wide: the
    first language column; long: the first ``lang`` value)."""
    if options.mapping or options.defaults:
        problems.add(
            None,
            "--probe-map and --probe-default (Python: mapping=, defaults=) apply to pairs and variants rows, "
            "not to parallel rows (id plus one column per language, or id,lang,text); leave them out",
        )
        return None
    columns = list(table.columns)
    long_layout = bool({"lang", "text"} & set(columns))
    if long_layout:
        records, languages = _long_records(table, columns, problems)
    else:
        records, languages = _wide_records(table, columns, problems)
    if languages is None:
        return None
    instances = _build_instances(records, languages, problems, table.place)
    return _make_set(
        problems,
        table.header_line,
        name=options.name or stem,
        source=source,
        instances=instances,
        reference=languages.reference,
    )


def _cell(raw: dict[str, str | None], column: str) -> str | None:
    value = raw.get(column)
    return value if value is not None and value.strip() else None


def _wide_records(
    table: Table, columns: list[str], problems: Problems
) -> tuple[list[_Record], _Languages | None]:
    language_columns = [c for c in columns if c not in WIDE_FIXED_COLUMNS]
    bad = [c for c in language_columns if canonical_language(c) is None]
    for column in bad:
        problems.add(
            table.header_line,
            f"column {column!r} is not a BCP-47 language code; parallel rows have the columns id, optional "
            "label and one column per language (en, de, zh-Hant ...), or id,lang,text and optional label",
        )
    if bad:
        return [], None
    languages = _languages_from(
        [(c, table.header_line) for c in language_columns], None, problems.file, problems, "the columns"
    )
    records: list[_Record] = []
    for where, raw in table.rows:
        instance_id = _cell(raw, "id")
        if instance_id is None:
            problems.add(where, "column id is empty; every parallel row needs an id")
            continue
        record = _Record(
            instance_id.strip(), (_cell(raw, "label") or "").strip() or None, problems.file, where
        )
        for column in language_columns:
            if column in raw or table.column_everywhere:
                record.texts.append(_Text(column, _cell(raw, column), problems.file, where))
        records.append(record)
    return records, languages


def _long_records(
    table: Table, columns: list[str], problems: Problems
) -> tuple[list[_Record], _Languages | None]:
    unknown = [c for c in columns if c not in LONG_COLUMNS + LONG_OPTIONAL_COLUMNS]
    for column in unknown:
        problems.add(
            table.header_line,
            f"unknown column {column!r}; long parallel rows have the columns {','.join(LONG_COLUMNS)} and "
            f"optional {','.join(LONG_OPTIONAL_COLUMNS)} (or write one column per language: id,label,en,de,...)",
        )
    absent = [c for c in LONG_COLUMNS if c not in columns]
    if absent:
        problems.add(
            table.header_line,
            f"missing column(s) {', '.join(absent)}; long parallel rows need {','.join(LONG_COLUMNS)}",
        )
    if unknown or absent:
        return [], None
    by_id: dict[str, _Record] = {}
    codes: list[tuple[str, int | None]] = []
    seen_codes: set[str] = set()
    for where, raw in table.rows:
        empty = [c for c in ("id", "lang") if _cell(raw, c) is None]
        if empty:
            problems.add(
                where, f"column(s) {', '.join(empty)} empty; every long parallel row needs id,lang,text"
            )
            continue
        instance_id, lang = (raw["id"] or "").strip(), (raw["lang"] or "").strip()
        label = (_cell(raw, "label") or "").strip() or None
        record = by_id.get(instance_id)
        if record is None:
            record = by_id[instance_id] = _Record(instance_id, label, problems.file, where)
        elif label is not None and record.label is not None and label != record.label:
            problems.add(
                where,
                f"instance {instance_id!r} has label {label!r} here but {record.label!r} on "
                f"{table.place} {record.line}; one instance has one label",
            )
        elif label is not None:
            record.label = label
        record.texts.append(_Text(lang, _cell(raw, "text"), problems.file, where))
        code = canonical_language(lang)
        if code is not None and code not in seen_codes:
            seen_codes.add(code)
            codes.append((lang, where))
    if not codes:
        return list(by_id.values()), None
    languages = _languages_from(codes, None, problems.file, problems, "the lang column")
    return list(by_id.values()), languages


register_yaml_kind(YamlKind("parallel", read_parallel))
