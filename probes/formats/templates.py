"""Template probe files (YAML, ``kind: counterfactual`` or no kind): templates filled from group
slots and lexicons (CheckList-like), one instance per template and lexicon combination, one variant
per group; the focus of each variant is where its group's slots were filled."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from probes.agreement import check_template_agreement
from probes.formats import YamlKind, register_yaml_kind
from probes.reading.associations import parse_associations
from probes.reading.problems import LoadOptions, Problems, normalised, validated_probe_set
from probes.reading.yaml_nodes import (
    Entries,
    node_line,
    node_mapping,
    node_text,
    node_text_list,
    read_card,
    read_in_default_run,
    report_unknown_keys,
)
from probes.schema import Instance, ProbeSet, Span, Variant

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TEMPLATE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
MAX_TEMPLATE_INSTANCES = 100_000
"""A template file that expands beyond this is almost surely a mistake (lexicons multiply)."""

_TOP_KEYS = (
    "name",
    "kind",
    "description",
    "card",
    "card_file",
    "attribute",
    "lang",
    "tasks",
    "groups",
    "lexicons",
    "templates",
    "associations",
    "in_default_run",
    "continuations",
)
_TEMPLATE_KEYS = ("text", "id", "label")


_LETTER_NAMES_WITH_VOWEL_SOUND = frozenset("AEFHILMNORSX")
"""Letters whose spoken name starts with a vowel sound: "an F", "an M", "an X" (but "a U", "a B")."""
_VOWELS = frozenset("AEIOU")


def _read_as_letters(token: str) -> bool:
    """Whether an all-caps token is spelled out letter by letter (FBI, HR, HTML) rather than read
    as a word (NASA, NATO, FIFA): no vowel, at most 3 letters, or 4 letters not starting
    consonant-vowel. Longer tokens with a vowel are taken as words."""
    if not any(ch in _VOWELS for ch in token) or len(token) <= 3:
        return True
    return len(token) == 4 and not (token[0] not in _VOWELS and token[1] in _VOWELS)


def _apply_article(value: str) -> str:
    """'a' or 'an' before ``value``, by how it is spoken: vowels, silent h, numbers read 8/11/18,
    initialisms spelled out ("an FBI agent", "a UFO", "a NASA engineer") and a single letter before
    a hyphen ("an x-ray", "a T-shirt")."""
    word = value.lower()
    an = word[:1] in ("a", "e", "i", "o", "u")
    if word.startswith(("uni", "use", "usu", "uti", "ure", "uro", "eu", "one", "once", "ewe")):
        an = False
    if word.startswith(("hour", "honest", "honor", "honour", "heir")):
        an = True
    letters = re.match(r"[A-Za-z]+", value)
    token = letters.group() if letters else ""
    if len(token) > 2 and token.endswith("s") and token[:-1].isupper():
        token = token[:-1]  # plural initialism: "MBAs"
    if len(token) == 1 and (len(value) == 1 or value[1] in "-\u2010"):
        an = token.upper() in _LETTER_NAMES_WITH_VOWEL_SOUND  # "an x-ray", "a T-shirt", "an F"
    elif len(token) >= 2 and token.isupper():
        if _read_as_letters(token):
            an = token[0] in _LETTER_NAMES_WITH_VOWEL_SOUND
        elif token[0] == "U":
            an = False  # "a UNESCO report": U read as "you"
    digits = re.match(r"\d+", word)
    if digits:
        number = digits.group()
        an = number.startswith("8") or (len(number) in (2, 5) and number[:2] in ("11", "18"))
    return f"{'an' if an else 'a'} {value}"


FILTERS = {
    "cap": lambda v: v[:1].upper() + v[1:],
    "upper": str.upper,
    "lower": str.lower,
    "title": str.title,
    "a": _apply_article,
}
"""Placeholder filters: ``{occupation|a}`` -> "an engineer", ``{pronoun|cap}`` -> "She"."""


@dataclass(frozen=True)
class _Placeholder:
    name: str
    filters: tuple[str, ...]

    def fill(self, value: str) -> str:
        for name in self.filters:
            value = FILTERS[name](value)
        return value


@dataclass
class _Slot:
    values: list[str]
    is_list: bool
    line: int


@dataclass
class _Group:
    name: str
    line: int
    slots: dict[str, _Slot] = field(default_factory=dict)


@dataclass
class _Template:
    number: int
    template_id: str
    text: str
    label: str | None
    line: int
    parts: list[str | _Placeholder]
    broken: bool = False
    """True when the template text has syntax problems (reported); it is not expanded."""

    @property
    def placeholders(self) -> list[_Placeholder]:
        return [p for p in self.parts if isinstance(p, _Placeholder)]


def read_templates(path: Path, top: Entries, options: LoadOptions, problems: Problems) -> ProbeSet | None:
    """A template probe file, its top-level mapping already read."""
    report_unknown_keys(top, _TOP_KEYS, "the file", problems)
    for key in ("attribute", "groups", "templates"):
        if key not in top:
            problems.add(
                1, f"missing required key {key!r}; a template probe set needs attribute, groups and templates"
            )

    def text_of(key: str) -> str | None:
        return node_text(top[key][1], key, problems) if key in top else None

    set_name = options.name or text_of("name") or path.stem
    attribute = text_of("attribute")
    lang = text_of("lang") or "en"
    description = node_text(top["description"][1], "description", problems) if "description" in top else ""
    card = read_card(path, top, problems)
    tasks = node_text_list(top["tasks"][1], "tasks", problems) if "tasks" in top else None

    groups = _parse_groups(top["groups"][1], problems) if "groups" in top else None
    lexicons = _parse_lexicons(top["lexicons"][1], problems) if "lexicons" in top else {}
    templates = _parse_templates(top["templates"][1], problems) if "templates" in top else None
    associations = parse_associations(top["associations"][1], problems) if "associations" in top else []
    continuations = _parse_continuations(top, tasks, problems)
    if groups is None or lexicons is None or templates is None or attribute is None:
        return None
    instances = _expand(groups, lexicons, templates, attribute, lang, problems)
    # French, Spanish, German: every word that agrees with the person must be a group slot
    template_lines = {t.text: t.line for t in reversed(templates)}
    for line, message in check_template_agreement(lang, instances, template_lines):
        problems.add(line, message)
    in_default_run = read_in_default_run(top, problems)
    if problems.items:
        return None
    extra: dict[str, Any] = {"tasks": tuple(tasks)} if tasks else {}
    if continuations:
        extra["continuations"] = tuple(continuations)
    return validated_probe_set(
        problems,
        1,
        name=set_name,
        description=description or "",
        card=card or "",
        source=str(path),
        instances=tuple(instances),
        associations=tuple(associations or ()),
        in_default_run=in_default_run,
        **extra,
    )


def _parse_continuations(top: Entries, tasks: list[str] | None, problems: Problems) -> list[str]:
    """The file's ``continuations`` (causal LMs score log P(continuation | variant) for each): a
    list of distinct texts, in a set whose ``tasks`` include causal-lm."""
    if "continuations" not in top:
        return []
    key, node = top["continuations"]
    values = node_text_list(node, "continuations", problems) or []
    first: dict[str, tuple[str, int]] = {}  # output name -> the first continuation with it, and its line
    for item in node.value if isinstance(node, yaml.SequenceNode) else []:
        if not isinstance(item, yaml.ScalarNode) or not item.value.strip():
            continue
        name = item.value.strip()
        if name in first and item.value != first[name][0]:  # exact repeats: reported by _text_list
            problems.add(
                node_line(item),
                f"continuation {item.value!r} names the same output (loglik:{name}) as the one on line "
                f"{first[name][1]}: spaces around a continuation do not make it another one",
            )
        first.setdefault(name, (item.value, node_line(item)))
    if "causal-lm" not in (tasks or ()):
        problems.add(
            node_line(key),
            "continuations are scored by causal language models only; add causal-lm to 'tasks:' "
            "(e.g. tasks: [causal-lm])",
        )
    return values


def _parse_groups(node: yaml.Node, problems: Problems) -> dict[str, _Group] | None:
    entries = node_mapping(node, "groups", problems)
    if entries is None:
        return None
    if len(entries) < 2:
        problems.add(
            node_line(node), f"groups defines {len(entries)} group(s); a counterfactual needs at least 2"
        )
    groups: dict[str, _Group] = {}
    for group_name, (key_node, value_node) in entries.items():
        group = _Group(group_name, node_line(key_node))
        slots = node_mapping(value_node, f"group {group_name!r}", problems)
        if slots is None:
            continue
        if not slots:
            problems.add(
                node_line(key_node),
                f"group {group_name!r} defines no slots; give it values such as pronoun: she",
            )
        for slot_name, (slot_key, slot_value) in slots.items():
            if not _NAME.match(slot_name):
                problems.add(
                    node_line(slot_key), f"slot name {slot_name!r} must be letters, digits and _ (no spaces)"
                )
                continue
            what = f"slot {slot_name!r} of group {group_name!r}"
            if isinstance(slot_value, yaml.SequenceNode):
                values = node_text_list(slot_value, what, problems)
                if values is not None:
                    group.slots[slot_name] = _Slot(values, True, node_line(slot_key))
            else:
                value = node_text(slot_value, what, problems)
                if value is not None:
                    group.slots[slot_name] = _Slot([value], False, node_line(slot_key))
        groups[group_name] = group
    _check_list_lengths(groups, problems)
    return groups


def _check_list_lengths(groups: dict[str, _Group], problems: Problems) -> None:
    """List slots pair up by position across groups, so each list slot has one length everywhere."""
    slot_names = sorted({s for g in groups.values() for s, slot in g.slots.items() if slot.is_list})
    for slot_name in slot_names:
        with_list = [(g, g.slots[slot_name]) for g in groups.values() if slot_name in g.slots]
        with_list = [(g, s) for g, s in with_list if s.is_list]
        first_group, first = with_list[0]
        for group, slot in with_list[1:]:
            if len(slot.values) != len(first.values):
                problems.add(
                    slot.line,
                    f"slot {slot_name!r} has {len(slot.values)} values in group {group.name!r} but "
                    f"{len(first.values)} in group {first_group.name!r}; list slots pair up by position "
                    "(item i of every group makes one instance), so give every group the same number",
                )


def _parse_lexicons(node: yaml.Node, problems: Problems) -> dict[str, tuple[list[str], int]] | None:
    entries = node_mapping(node, "lexicons", problems)
    if entries is None:
        return None
    lexicons: dict[str, tuple[list[str], int]] = {}
    for lexicon_name, (key_node, value_node) in entries.items():
        if not _NAME.match(lexicon_name):
            problems.add(
                node_line(key_node),
                f"lexicon name {lexicon_name!r} must be letters, digits and _ (no spaces)",
            )
            continue
        values = node_text_list(value_node, f"lexicon {lexicon_name!r}", problems)
        if values is not None:
            lexicons[lexicon_name] = (values, node_line(key_node))
    return lexicons


def _parse_placeholders(text: str) -> tuple[list[str | _Placeholder], list[str]]:
    """Split a template into literal text and placeholders; ``{{`` and ``}}`` are literal braces."""
    parts: list[str | _Placeholder] = []
    errors: list[str] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if text.startswith("{{", i) or text.startswith("}}", i):
            literal.append(ch)
            i += 2
        elif ch == "}":
            errors.append(f"has a stray '}}' at column {i + 1}; write '}}}}' for a literal brace")
            i += 1
        elif ch == "{":
            end = text.find("}", i + 1)
            inner = text[i + 1 : end] if end != -1 else ""
            if end == -1 or "{" in inner:
                errors.append(
                    f"has an unclosed '{{' at column {i + 1}; close it or write '{{{{' for a literal brace"
                )
                i = end + 1 if end != -1 and "{" not in inner else i + 1
                continue
            name, *filters = [piece.strip() for piece in inner.split("|")]
            if not _NAME.match(name):
                errors.append(f"has a placeholder {{{inner}}} whose name is not letters, digits and _")
            for filter_name in filters:
                if filter_name not in FILTERS:
                    errors.append(
                        f"uses an unknown filter |{filter_name} in {{{inner}}} (known filters: {', '.join(sorted(FILTERS))})"
                    )
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_Placeholder(name, tuple(filters)))
            i = end + 1
        else:
            literal.append(ch)
            i += 1
    if literal:
        parts.append("".join(literal))
    return parts, errors


def _parse_templates(node: yaml.Node, problems: Problems) -> list[_Template] | None:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        problems.add(
            node_line(node), "templates must be a non-empty list of texts (or of {text, id, label} mappings)"
        )
        return None
    templates: list[_Template] = []
    ids: dict[str, int] = {}
    for number, item in enumerate(node.value, start=1):
        template_id, label, broken = f"t{number}", None, False
        text: str | None
        if isinstance(item, yaml.MappingNode):
            entries = node_mapping(item, f"template {number}", problems) or {}
            if "text" not in entries:
                quoting = item.flow_style and not set(entries) & set(_TEMPLATE_KEYS)
                hint = (
                    ' (a template that starts with "{" must be quoted)' if quoting else " (write text: ...)"
                )
                problems.add(node_line(item), f"template {number} has no text{hint}")
                continue
            report_unknown_keys(entries, _TEMPLATE_KEYS, f"template {number}", problems)
            text = node_text(entries["text"][1], f"template {number}", problems)
            if "id" in entries:
                given = node_text(entries["id"][1], f"id of template {number}", problems)
                if given is not None and not _TEMPLATE_ID.match(given):
                    problems.add(
                        node_line(entries["id"][1]),
                        f"template id {given!r} must be letters, digits, _ . - only",
                    )
                    broken = True
                elif given is not None:
                    template_id = given
            if "label" in entries:
                label = node_text(entries["label"][1], f"label of template {number}", problems)
        else:
            text = node_text(item, f"template {number}", problems)
        if text is None:
            continue
        if template_id in ids:
            problems.add(
                node_line(item), f"template id {template_id!r} is already used on line {ids[template_id]}"
            )
            continue
        ids[template_id] = node_line(item)
        parts, errors = _parse_placeholders(text)
        for error in errors:
            problems.add(node_line(item), f"template {error}")
        templates.append(
            _Template(number, template_id, text, label, node_line(item), parts, broken=broken or bool(errors))
        )
    return templates


def _slug(value: str) -> str:
    return re.sub(r"[^\w]+", "-", value.lower()).strip("-_")


def _expand(
    groups: dict[str, _Group],
    lexicons: dict[str, tuple[list[str], int]],
    templates: list[_Template],
    attribute: str,
    lang: str,
    problems: Problems,
) -> list[Instance]:
    """Fill every template once per lexicon combination and list position, one variant per group."""
    group_slot_names = {s for g in groups.values() for s in g.slots}
    for lexicon_name, (_, line) in lexicons.items():
        if lexicon_name in group_slot_names:
            problems.add(line, f"lexicon {lexicon_name!r} has the name of a group slot; rename one of them")
    known = sorted(group_slot_names | set(lexicons))
    used: set[str] = set()
    instances: list[Instance] = []
    ids: dict[str, int] = {}
    for template in templates:
        names = list(dict.fromkeys(p.name for p in template.placeholders))
        used.update(names)
        unknown = [n for n in names if n not in group_slot_names and n not in lexicons]
        for name in unknown:
            problems.add(
                template.line,
                f"template uses {{{name}}}, which no lexicon or group defines (known: {', '.join(known) or 'none'})",
            )
        slot_names = [n for n in names if n in group_slot_names and n not in lexicons]
        lexicon_names = [n for n in names if n in lexicons]
        ambiguous = any(n in group_slot_names and n in lexicons for n in names)
        if unknown or ambiguous or template.broken:
            continue  # each reported above or where it was found
        if not slot_names:
            problems.add(
                template.line,
                "template uses no group slot, so all its variants would be the same text; "
                f"add a group placeholder such as {{{sorted(group_slot_names)[0] if group_slot_names else 'pronoun'}}}",
            )
            continue
        eligible = [g for g in groups.values() if all(s in g.slots for s in slot_names)]
        if len(eligible) < 2:
            having = ", ".join(g.name for g in eligible) or "no group"
            problems.add(
                template.line,
                f"template needs slots {', '.join(slot_names)}, which only {having} defines; "
                "at least two groups must define every slot a template uses",
            )
            continue
        paired = _list_lengths(template, eligible, slot_names, problems)
        if paired is None:
            continue
        lengths, positions = paired
        lexicon_values = [lexicons[n][0] for n in lexicon_names]
        expected = positions * math.prod(len(v) for v in lexicon_values)
        if len(instances) + expected > MAX_TEMPLATE_INSTANCES:
            problems.add(
                template.line,
                f"template would bring the set to {len(instances) + expected} instances (at most "
                f"{MAX_TEMPLATE_INSTANCES}); use shorter lexicons or split the file",
            )
            break
        slugs = {n: _unique_slugs(lexicons[n][0]) for n in lexicon_names}
        clash_reported = False
        for combo in itertools.product(*lexicon_values):
            fixed = dict(zip(lexicon_names, combo, strict=True))
            for position in range(positions):
                id_parts = [template.template_id, *(slugs[n][v] for n, v in fixed.items())]
                if lengths:
                    id_parts.append(str(position + 1))
                instance_id = "-".join(id_parts)
                variants = _fill(
                    template, eligible, fixed, position, slot_names, instance_id, attribute, lang
                )
                if not clash_reported:
                    clash_reported = _report_identical_fill(template, variants, problems)
                if instance_id in ids:
                    problems.add(
                        template.line,
                        f"instance id {instance_id!r} is also made by the template on line {ids[instance_id]}; "
                        "give one of the templates an explicit id",
                    )
                    continue
                ids[instance_id] = template.line
                instances.append(
                    Instance(
                        instance_id=instance_id,
                        attribute=attribute,
                        variants=tuple(variants),
                        context=template.text,
                    )
                )
    _report_unused(groups, lexicons, used, problems)
    return instances


def _list_lengths(
    template: _Template, groups: list[_Group], slot_names: list[str], problems: Problems
) -> tuple[dict[str, int], int] | None:
    """The length of each list slot the template uses and how many positions they make (1 with no
    list slot); None when the lengths differ (reported)."""
    per_slot = {s: {len(g.slots[s].values) for g in groups if g.slots[s].is_list} for s in slot_names}
    if any(len(counts) > 1 for counts in per_slot.values()):
        return None  # unequal lengths across groups: reported with the groups
    lengths = {s: counts.pop() for s, counts in per_slot.items() if counts}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{s} ({n} values)" for s, n in lengths.items())
        problems.add(
            template.line,
            f"template pairs list slots of different lengths: {described}; list slots used together "
            "pair up by position, so give them the same number of values",
        )
        return None
    positions = next(iter(lengths.values()), 1)
    return lengths, positions


def _fill(
    template: _Template,
    groups: list[_Group],
    fixed: dict[str, str],
    position: int,
    slot_names: list[str],
    instance_id: str,
    attribute: str,
    lang: str,
) -> list[Variant]:
    """One variant per group: the template with the lexicon values ``fixed`` and each group's slot
    values at list ``position``."""
    variants = []
    for group in groups:
        values = dict(fixed)
        for s in slot_names:
            slot = group.slots[s]
            values[s] = slot.values[position] if slot.is_list else slot.values[0]
        text, spans = _render(template.parts, values, set(slot_names))
        variants.append(
            Variant(
                instance_id=instance_id,
                variant=group.name,
                attribute=attribute,
                text=text,
                label=template.label,
                lang=lang,
                focus=tuple(spans),
            )
        )
    return variants


def _report_identical_fill(template: _Template, variants: list[Variant], problems: Problems) -> bool:
    """Report groups that fill the template identically (once normalised); True if any do."""
    texts = [v.text for v in variants]
    keys = [normalised(text) for text in texts]
    if len(set(keys)) == len(keys):
        return False
    exact = len(set(texts)) < len(texts)
    same = [v for v in variants if (texts.count(v.text) if exact else keys.count(normalised(v.text))) > 1]
    problems.add(
        template.line,
        f"groups {', '.join(v.variant for v in same)} fill the template identically "
        f"({same[0].text!r}){'' if exact else ' once whitespace and Unicode (NFC) are normalised'}; "
        "give them different slot values",
    )
    return True


def _report_unused(
    groups: dict[str, _Group], lexicons: dict[str, tuple[list[str], int]], used: set[str], problems: Problems
) -> None:
    """Every group slot and lexicon no template uses (most likely a typo in its name)."""
    for group in groups.values():
        for slot_name, slot in group.slots.items():
            if slot_name not in used:
                problems.add(
                    slot.line,
                    f"slot {slot_name!r} of group {group.name!r} is used by no template "
                    f"(templates use: {', '.join(sorted(used)) or 'nothing'}); fix its name or remove it",
                )
    for lexicon_name, (_, line) in lexicons.items():
        if lexicon_name not in used:
            problems.add(line, f"lexicon {lexicon_name!r} is used by no template; fix its name or remove it")


def _unique_slugs(values: list[str]) -> dict[str, str]:
    """Readable id pieces for lexicon values ("software developer" -> "software-developer")."""
    slugs = [_slug(v) or str(i + 1) for i, v in enumerate(values)]
    return {
        v: s if slugs.count(s) == 1 else f"{s}{i + 1}"
        for i, (v, s) in enumerate(zip(values, slugs, strict=True))
    }


def _render(
    parts: list[str | _Placeholder], values: dict[str, str], group_slots: set[str]
) -> tuple[str, list[Span]]:
    """The filled template and the spans where group slots were filled."""
    pieces: list[str] = []
    spans: list[Span] = []
    position = 0
    for part in parts:
        filled = part if isinstance(part, str) else part.fill(values[part.name])
        if isinstance(part, _Placeholder) and part.name in group_slots:
            spans.append(Span(start=position, end=position + len(filled)))
        pieces.append(filled)
        position += len(filled)
    return "".join(pieces), spans


register_yaml_kind(YamlKind("counterfactual", read_templates))
