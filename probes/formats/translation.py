"""Translation probe files: English sources whose variants carry target texts (seq2seq audits).

A variant of a seq2seq set carries ``targets`` (name -> a target text, e.g. the translation with the
feminine and with the masculine form of an occupation), the language they are in (``target_lang``)
and ``target_words`` (name -> words that mark a generated translation as using that form). The
seq2seq target scores log P(target | source) for every target, and classifies the model's own
translations by the words (``classify_output``).

Two ways to write such a set:

- ``kind: translation`` YAML (the built-in ``translation-gender-*`` sets), WinoMT style
  (Stanovsky et al. 2019): occupations with their gendered forms in the target language, and
  sentences whose source and target are written once per group::

      kind: translation
      attribute: gender
      target_lang: de
      forms: {feminine: female, masculine: male}    # target name -> the group it is correct for
      occupations:
        - {en: doctor, feminine: die Ärztin, masculine: der Arzt}
      sentences:
        - id: shift
          source:
            female: The {occupation} finished her shift.
            male: The {occupation} finished his shift.
            ambiguous: The {occupation} finished the shift.
          target:
            female: "{Occupation} beendete ihre Schicht."
            male: "{Occupation} beendete seine Schicht."
            ambiguous: "{Occupation} beendete die Schicht."

  Each sentence x occupation is one instance; each group one variant whose targets are the
  group's target sentence with every form of the occupation (``{Occupation}``: capitalised). A
  variant's ``label`` is the form its group calls for (female -> feminine); groups no form names
  (ambiguous) have none. ``target:`` may be one text for every group.

- CSV/JSONL rows in the variants layout with ``target`` or ``target:NAME`` columns, optional
  ``target_words:NAME`` (words separated by ``|``) and ``target_lang`` (``attach_row_targets``,
  called by the rows format).

Words that mark a form default to what differs between the forms: the noun when the nouns differ
("Ärztin" / "Arzt", "doctora" / "doctor"), else the whole phrase ("la médecin" / "le médecin").
Matching ignores case and accents and works on words (``l'infirmière`` matches ``l ' infirmière``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from probes.formats import YamlKind, register_yaml_kind
from probes.reading.focus import focus_spans
from probes.reading.problems import LoadOptions, Problems, validated_probe_set, validation_messages
from probes.reading.rows import RowLines, Table
from probes.reading.yaml_nodes import (
    Entries,
    mapping_items,
    node_line,
    node_mapping,
    node_text,
    node_text_list,
    read_card,
    read_in_default_run,
    report_unknown_keys,
)
from probes.schema import Instance, ProbeSet, Variant
from probes.translation import default_form_words, differing_words, words_of

TRANSLATION_TOP_KEYS = (
    "name",
    "kind",
    "description",
    "card",
    "card_file",
    "attribute",
    "lang",
    "target_lang",
    "tasks",
    "forms",
    "occupations",
    "sentences",
    "in_default_run",
)
_SENTENCE_KEYS = ("id", "source", "target")
_SLOT = "occupation"
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
TARGET_COLUMN = "target"
TARGET_PREFIX = "target:"
WORDS_PREFIX = "target_words:"
TARGET_LANG_COLUMN = "target_lang"
WORD_SEPARATOR = "|"


def _fill(template: str, value: str) -> str:
    """The template with {occupation} (as written) and {Occupation} (first letter capitalised)."""

    def replace(match: re.Match[str]) -> str:
        return value[:1].upper() + value[1:] if match.group(1) == "Occupation" else value

    return _PLACEHOLDER.sub(replace, template)


def _placeholder_problems(template: str) -> list[str]:
    bad = [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1) not in (_SLOT, "Occupation")]
    problems = [
        f"uses {{{name}}}; only {{occupation}} and {{Occupation}} (capitalised) exist" for name in bad
    ]
    if _SLOT not in template and "{Occupation}" not in template:
        problems.append("names no {occupation} (or {Occupation}); every text must say where it goes")
    return problems


def _slug(value: str) -> str:
    return re.sub(r"[^\w]+", "-", value.lower()).strip("-_")


def read_translation(path: Path, top: Entries, options: LoadOptions, problems: Problems) -> ProbeSet | None:
    """A ``kind: translation`` YAML file (its top-level mapping already read by the YAML file format)."""

    report_unknown_keys(top, TRANSLATION_TOP_KEYS, "the file", problems)
    for key in ("attribute", "target_lang", "forms", "occupations", "sentences"):
        if key not in top:
            problems.add(
                1,
                f"missing required key {key!r}; a translation set needs attribute, target_lang, forms, "
                "occupations and sentences",
            )

    def text_of(key: str) -> str | None:
        return node_text(top[key][1], key, problems) if key in top else None

    set_name = options.name or text_of("name") or path.stem
    attribute = text_of("attribute")
    lang = text_of("lang") or "en"
    target_lang = text_of("target_lang")
    description = text_of("description") or ""
    card = read_card(path, top, problems)
    tasks = node_text_list(top["tasks"][1], "tasks", problems) if "tasks" in top else ["seq2seq"]
    in_default_run = read_in_default_run(top, problems)
    forms = _parse_forms(top["forms"][1], problems) if "forms" in top else None
    occupations = (
        _parse_occupations(top["occupations"][1], forms, problems) if "occupations" in top and forms else None
    )
    sentences = _parse_sentences(top["sentences"][1], problems) if "sentences" in top else None
    if None in (attribute, target_lang, card, forms, occupations, sentences, tasks):
        return None
    assert attribute is not None and target_lang is not None and forms is not None
    assert occupations is not None and sentences is not None and tasks is not None and card is not None
    instances: list[Instance] = []
    for sentence in sentences:
        groups = list(sentence.sources)
        unknown = sorted(set(forms.values()) - set(groups))
        if unknown:
            problems.add(
                sentence.line,
                f"sentence {sentence.id!r} has no source for group(s) {unknown}, which forms name; "
                f"its groups: {groups}",
            )
            continue
        for occupation in occupations:
            instance_id = f"{sentence.id}-{_slug(occupation.en)}"
            texts = {group: _fill(source, occupation.en) for group, source in sentence.sources.items()}
            variants = []
            for group, text in texts.items():
                targets = {
                    name: _fill(sentence.targets[group], form) for name, form in occupation.forms.items()
                }
                label = next((name for name, g in forms.items() if g == group), None)
                variants.append(
                    Variant(
                        instance_id=instance_id,
                        variant=group,
                        attribute=attribute,
                        text=text,
                        label=label,
                        lang=lang,
                        focus=focus_spans(text, list(texts.values()), by="edges"),
                        targets=targets,
                        target_lang=target_lang,
                        target_words=occupation.words,
                    )
                )
            instances.append(
                Instance(
                    instance_id=instance_id,
                    attribute=attribute,
                    variants=tuple(variants),
                    context=next(iter(sentence.sources.values())),
                )
            )
    if problems.items:
        return None
    return validated_probe_set(
        problems,
        node_line(top["sentences"][0]),
        name=set_name,
        description=description,
        card=card,
        source=str(path),
        tasks=tuple(tasks),
        instances=tuple(instances),
        in_default_run=in_default_run,
    )


def _parse_forms(node: yaml.Node, problems: Problems) -> dict[str, str] | None:
    entries = node_mapping(node, "forms", problems)
    if entries is None:
        return None
    forms: dict[str, str] = {}
    for name, (key_node, value_node) in entries.items():
        group = node_text(value_node, f"the group of form {name!r}", problems)
        if group is None:
            continue
        if group in forms.values():
            problems.add(node_line(key_node), f"forms {name!r} and another form both name group {group!r}")
            continue
        forms[name] = group
    if len(forms) < 2:
        problems.add(
            node_line(node), "forms must name at least two forms (e.g. feminine: female, masculine: male)"
        )
        return None
    return forms


class _Occupation:
    def __init__(self, en: str, forms: dict[str, str], words: dict[str, tuple[str, ...]]) -> None:
        self.en = en
        self.forms = forms
        self.words = words


def _parse_occupations(
    node: yaml.Node, forms: dict[str, str], problems: Problems
) -> list[_Occupation] | None:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        problems.add(
            node_line(node), "occupations must be a non-empty list of {en, <form>: phrase, ...} mappings"
        )
        return None
    known = ("en", *forms, "words")
    occupations: list[_Occupation] = []
    seen: dict[str, int] = {}
    for item, what, entries in mapping_items(node, "occupation", known, problems):
        missing = [key for key in ("en", *forms) if key not in entries]
        if missing:
            problems.add(
                node_line(item),
                f"{what} lacks {', '.join(missing)} (needs en and every form: {', '.join(forms)})",
            )
            continue
        en = node_text(entries["en"][1], f"en of {what}", problems)
        phrases = {name: node_text(entries[name][1], f"{name} of {what}", problems) for name in forms}
        if en is None or any(p is None for p in phrases.values()):
            continue
        given = {name: str(p) for name, p in phrases.items()}
        if len({words_of(p) for p in given.values()}) < len(given):
            problems.add(node_line(item), f"{what} ({en}) writes two forms the same; the forms must differ")
            continue
        words = default_form_words(given)
        if "words" in entries:
            listed = node_mapping(entries["words"][1], f"words of {what}", problems) or {}
            for name, (key_node, value_node) in listed.items():
                if name not in forms:
                    problems.add(
                        node_line(key_node),
                        f"words of {what} name {name!r}, which is not a form ({', '.join(forms)})",
                    )
                    continue
                values = node_text_list(value_node, f"words {name!r} of {what}", problems)
                if values:
                    words[name] = tuple(values)
        slug = _slug(en)
        if slug in seen:
            problems.add(node_line(item), f"{what} ({en}) repeats occupation {en!r} of line {seen[slug]}")
            continue
        seen[slug] = node_line(item)
        occupations.append(_Occupation(en, given, words))
    return occupations if occupations else None


class _Sentence:
    def __init__(self, id: str, line: int, sources: dict[str, str], targets: dict[str, str]) -> None:
        self.id = id
        self.line = line
        self.sources = sources
        self.targets = targets


def _parse_sentences(node: yaml.Node, problems: Problems) -> list[_Sentence] | None:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        problems.add(node_line(node), "sentences must be a non-empty list of {id, source, target} mappings")
        return None
    sentences: list[_Sentence] = []
    ids: dict[str, int] = {}
    for item, what, entries in mapping_items(node, "sentence", _SENTENCE_KEYS, problems):
        missing = [key for key in _SENTENCE_KEYS if key not in entries]
        if missing:
            problems.add(node_line(item), f"{what} lacks {', '.join(missing)} (needs id, source and target)")
            continue
        sentence_id = node_text(entries["id"][1], f"id of {what}", problems)
        if sentence_id is not None and not _ID.match(sentence_id):
            problems.add(
                node_line(entries["id"][1]),
                f"id {sentence_id!r} of {what} must be letters, digits, _ . - only",
            )
            continue
        if sentence_id is not None and sentence_id in ids:
            problems.add(node_line(item), f"{what} repeats id {sentence_id!r} of line {ids[sentence_id]}")
            continue
        sources = _per_group(entries["source"][1], f"source of {what}", None, problems)
        if sources is None or sentence_id is None:
            continue
        targets = _per_group(entries["target"][1], f"target of {what}", list(sources), problems)
        if targets is None:
            continue
        if len(sources) < 2:
            problems.add(node_line(entries["source"][1]), f"source of {what} needs at least two groups")
            continue
        if len({words_of(t) for t in sources.values()}) < len(sources):
            problems.add(node_line(entries["source"][1]), f"two groups of {what} have the same source text")
            continue
        ids[sentence_id] = node_line(item)
        sentences.append(_Sentence(sentence_id, node_line(item), sources, targets))
    return sentences if sentences else None


def _per_group(
    node: yaml.Node, what: str, groups: list[str] | None, problems: Problems
) -> dict[str, str] | None:
    """{group: text}; a single text stands for every group (targets only: ``groups`` given)."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.ScalarNode) and groups is not None:
        text = node_text(node, what, problems)
        if text is None:
            return None
        texts = dict.fromkeys(groups, text)
        lines = dict.fromkeys(groups, node_line(node))
    else:
        entries = node_mapping(node, what, problems)
        if entries is None:
            return None
        texts = {}
        for group, (key, value) in entries.items():
            text = node_text(value, f"{what}, group {group!r}", problems)
            lines[group] = node_line(key)
            if text is not None:
                texts[group] = text
        if groups is not None and set(entries) != set(groups):
            extra = [g for g in entries if g not in groups]
            problems.add(
                lines[extra[0]] if extra else node_line(node),
                f"{what} has groups {sorted(entries)} but the source has {sorted(groups)}; write one target per "
                "source group, or one text for all",
            )
            return None
        if len(texts) < len(entries):
            return None
    ok = True
    for group, text in texts.items():
        for message in _placeholder_problems(text):
            problems.add(lines[group], f"{what}, group {group!r}, {message}")
            ok = False
    return texts if ok else None


# ----------------------------------------------------------------------------------------- row files


def target_columns(columns: Iterable[str]) -> list[str]:
    """The seq2seq columns of a rows file: target, target:NAME, target_words:NAME, target_lang."""
    return [
        c
        for c in columns
        if c in (TARGET_COLUMN, TARGET_LANG_COLUMN) or c.startswith((TARGET_PREFIX, WORDS_PREFIX))
    ]


def attach_row_targets(
    instances: list[Instance],
    lines: RowLines,
    table: Table,
    renamed: Mapping[str, str],
    is_pairs: bool,
    problems: Problems,
) -> tuple[list[Instance], dict[str, Any]]:
    """The instances with the targets their rows give (``target`` / ``target:NAME`` columns,
    ``target_words:NAME`` with words separated by ``|``, ``target_lang``), and the ProbeSet keyword
    arguments they call for (``tasks: [seq2seq]`` when there are targets). Problems by row."""
    columns = target_columns(renamed.get(c, c) for c in table.columns)
    if not columns:
        return instances, {}
    named = _target_text_columns(columns, table.header_line, is_pairs, problems)
    if named is None:
        return instances, {}
    rows = {where: {renamed.get(k, k): v for k, v in raw.items()} for where, raw in table.rows}
    words_columns = [c for c in columns if c.startswith(WORDS_PREFIX)]
    updated: list[Instance] = []
    for instance in instances:
        variants = []
        for variant in instance.variants:
            where = lines[(instance.instance_id, variant.variant)]
            variants.append(
                _variant_with_targets(variant, rows[where], where, named, words_columns, problems)
            )
        _check_same_target_names(instance, variants, lines, table.place, problems)
        updated.append(instance.model_copy(update={"variants": tuple(variants)}))
    return updated, {"tasks": ("seq2seq",)}


def _target_text_columns(
    columns: list[str], header_line: int | None, is_pairs: bool, problems: Problems
) -> list[str] | None:
    """The columns that give target texts (``target`` or ``target:NAME``); None, with a problem, when
    the target columns cannot be used (a pairs file, no target text, both forms, a nameless one)."""
    if is_pairs:
        problems.add(
            header_line,
            f"column(s) {', '.join(columns)} need the variants layout (instance_id,variant,attribute,text plus "
            "target columns, one row per variant); a pair row has two texts but one set of targets",
        )
        return None
    named = [c for c in columns if c == TARGET_COLUMN or c.startswith(TARGET_PREFIX)]
    if not named:
        problems.add(
            header_line,
            f"column(s) {', '.join(columns)} need target texts: add a target column (or target:NAME columns)",
        )
        return None
    if TARGET_COLUMN in named and len(named) > 1:
        problems.add(header_line, "give either one target column or target:NAME columns, not both")
        return None
    if any(not c.removeprefix(TARGET_PREFIX).strip() for c in named if c != TARGET_COLUMN):
        problems.add(header_line, "a target:NAME column has no name after 'target:'")
        return None
    return named


def _variant_with_targets(
    variant: Variant,
    row: Mapping[str, str | None],
    where: int,
    named: list[str],
    words_columns: list[str],
    problems: Problems,
) -> Variant:
    """The variant with its row's targets, target words and target language; the variant unchanged
    when they do not validate (problems reported at the row)."""
    targets = _row_targets(row, where, named, problems)
    words = _row_target_words(row, where, words_columns, targets, len(named), problems)
    if not words and len(targets) > 1:
        words = differing_words(targets)
    if variant.label is not None and targets and variant.label not in targets:
        problems.add(
            where,
            f"label {variant.label!r} is not one of the row's targets ({', '.join(targets)}); a seq2seq "
            "row's label names the target its translation should use",
        )
    lang = str(row.get(TARGET_LANG_COLUMN) or "").strip() or None
    try:
        return Variant.model_validate(
            {**variant.model_dump(), "targets": targets, "target_words": words, "target_lang": lang}
        )
    except ValidationError as error:
        for message in validation_messages(error):
            problems.add(where, message)
        return variant


def _row_targets(
    row: Mapping[str, str | None], where: int, named: list[str], problems: Problems
) -> dict[str, str]:
    """The row's target texts by name (``target`` for the single column); an empty one is reported."""
    targets: dict[str, str] = {}
    for column in named:
        value = row.get(column)
        name = "target" if column == TARGET_COLUMN else column.removeprefix(TARGET_PREFIX).strip()
        if value is None or not str(value).strip():
            problems.add(where, f"column {column} is empty; every row of a seq2seq set needs its target(s)")
            continue
        targets[name] = str(value)
    return targets


def _row_target_words(
    row: Mapping[str, str | None],
    where: int,
    words_columns: list[str],
    targets: dict[str, str],
    named_count: int,
    problems: Problems,
) -> dict[str, tuple[str, ...]]:
    """The row's ``target_words:NAME`` lists (words separated by ``|``) by target name; a column
    naming a target no column gives is reported."""
    words: dict[str, tuple[str, ...]] = {}
    for column in words_columns:
        name = column.removeprefix(WORDS_PREFIX).strip()
        value = row.get(column)
        if value is None or not str(value).strip():
            continue
        if name not in targets and len(targets) == named_count:
            problems.add(where, f"column {column} names target {name!r}, which no target:{name} column gives")
            continue
        listed = tuple(w.strip() for w in str(value).split(WORD_SEPARATOR) if w.strip())
        if listed:
            words[name] = listed
    return words


def _check_same_target_names(
    instance: Instance, variants: list[Variant], lines: RowLines, place: str, problems: Problems
) -> None:
    """Every variant of an instance (with its targets) has the same target names; a problem otherwise."""
    names = [sorted(v.targets) for v in variants]
    if any(n != names[0] for n in names):
        problems.add(
            lines[(instance.instance_id, instance.variants[0].variant)],
            f"the variants of instance {instance.instance_id!r} ({place}s "
            f"{', '.join(str(lines[(instance.instance_id, v.variant)]) for v in instance.variants)}) "
            "have different target names; give every variant the same targets",
        )


register_yaml_kind(YamlKind("translation", read_translation))
