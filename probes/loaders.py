"""Turn probe files into validated ``ProbeSet`` objects.

Formats (see docs/probes.md for the full reference):

- ``.yaml`` / ``.yml``: templates filled from group slots and lexicons (CheckList-like);
- ``.csv`` / ``.jsonl``: explicit rows, either *pairs* (``text_a,text_b,group_a,group_b,attribute``)
  or *variants* (``instance_id,variant,attribute,text``);
- a local Hugging Face dataset (a ``save_to_disk`` folder, a folder of data files, a ``.parquet``
  file) whose columns map onto one of the row layouts;
- ``.yaml`` with ``kind: long_document``: filler, key and identity-swap sentences from which
  ``probes.long_document.materialize`` builds long documents for each model (the set has no
  instances until then);
- the built-in sets shipped in ``probes/builtin/``, by name.

Every parser collects *all* the problems of a file (each with its file and 1-based line, or record
number for datasets) before giving up; ``load_probe_set`` raises ``ProbeFileError`` with all of them
and never returns a partial set.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from audit.errors import ProbeFileError, Problem, UserError
from probes.agreement import check_template_agreement
from probes.long_document import ID_PATTERN, position_name
from probes.schema import (
    Association,
    Instance,
    KeySentence,
    LongDocumentSpec,
    ProbeKind,
    ProbeSet,
    Span,
    SwapSentence,
    Variant,
)

BUILTIN_DIR = Path(__file__).parent / "builtin"
YAML_EXTENSIONS = (".yaml", ".yml")
ROW_EXTENSIONS = (".csv", ".jsonl", ".ndjson")
DATASET_EXTENSIONS = (".parquet", ".arrow")

PAIR_COLUMNS = ("text_a", "text_b", "group_a", "group_b", "attribute")
PAIR_OPTIONAL_COLUMNS = ("instance_id", "label", "lang")
VARIANT_COLUMNS = ("instance_id", "variant", "attribute", "text")
VARIANT_OPTIONAL_COLUMNS = ("label", "lang")
KNOWN_COLUMNS = frozenset(PAIR_COLUMNS + PAIR_OPTIONAL_COLUMNS + VARIANT_COLUMNS + VARIANT_OPTIONAL_COLUMNS)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TEMPLATE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_NULL_TAG = "tag:yaml.org,2002:null"
MAX_TEMPLATE_INSTANCES = 100_000
"""A template file that expands beyond this is almost surely a mistake (lexicons multiply)."""


# --------------------------------------------------------------------------------------- public API


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
    probe_set = _load_or_raise(BUILTIN_DIR / f"{name}.yaml", _Options())
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
    options = _Options(name=name, mapping=mapping, defaults=defaults, split=split)
    builtin = _builtin_name(spec)
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
    options = _Options(name=name, mapping=mapping, defaults=defaults, split=split)
    problems = _Problems(_dataset_label(Path(path), split))
    probe_set = _parse_dataset(Path(path), options, problems)
    if problems.items or probe_set is None:
        raise ProbeFileError(problems.items or [Problem(str(path), None, "no probe set could be read")])
    return probe_set


# ------------------------------------------------------------------------------- shared plumbing


@dataclass(frozen=True)
class _Options:
    name: str | None = None
    mapping: Mapping[str, str] | None = None
    defaults: Mapping[str, str] | None = None
    split: str | None = None

    def has_row_options(self) -> bool:
        return bool(self.mapping or self.defaults or self.split)


class _Problems:
    """Collects the problems of one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[Problem] = []

    def add(self, line: int | None, message: str) -> None:
        self.items.append(Problem(self.file, line, message))


def _builtin_name(spec: str | Path) -> str | None:
    """The built-in set a spec names, or None when the spec is a path."""
    text = str(spec)
    if text.startswith("builtin:"):
        return text.removeprefix("builtin:")
    if isinstance(spec, Path) or "/" in text or "\\" in text or Path(text).suffix or Path(text).exists():
        return None
    return text


def _load_or_raise(path: Path, options: _Options) -> ProbeSet:
    probe_set, problems = _parse_file(path, options)
    if problems or probe_set is None:
        raise ProbeFileError(problems or [Problem(str(path), None, "no probe set could be read")])
    return probe_set


def _parse_file(path: Path, options: _Options | None = None) -> tuple[ProbeSet | None, list[Problem]]:
    """Parse one probe file or dataset; returns the set (None when there is any problem) and every problem."""
    options = options or _Options()
    problems = _Problems(str(path))
    suffix = path.suffix.lower()
    if not path.exists():
        builtin_hint = f" (built-in sets: {', '.join(list_builtin())})" if not suffix else ""
        problems.add(None, f"no such file or folder; check the path{builtin_hint}")
        return None, problems.items
    probe_set: ProbeSet | None = None
    from probes.public_formats import parse_public_format, public_format  # it imports this module

    layout = public_format(path, options.has_row_options()) if path.is_file() else None  # CrowS-Pairs ...
    if layout is not None:
        probe_set = parse_public_format(layout, path, options, problems)
    elif path.is_dir() or suffix in DATASET_EXTENSIONS:
        problems = _Problems(_dataset_label(path, options.split))
        probe_set = _parse_dataset(path, options, problems)
    elif suffix in YAML_EXTENSIONS:
        if options.has_row_options():
            problems.add(
                None,
                "--probe-map, --probe-default and --probe-split (Python: mapping=, defaults=, split=) apply "
                "to CSV/JSONL files and datasets, not to YAML templates; leave them out",
            )
            return None, problems.items
        text = _read_utf8(path, problems)
        if text is not None:
            probe_set = _parse_yaml(path, text, options, problems)
    elif suffix in ROW_EXTENSIONS:
        if options.split:
            problems.add(
                None,
                f"--probe-split {options.split} (Python: split={options.split!r}) applies to datasets only; "
                "a CSV/JSONL file has no splits, so leave it out",
            )
            return None, problems.items
        text = _read_utf8(path, problems)
        from probes.bbq import bbq_from_text, is_bbq_layout  # it imports this module lazily

        if text is not None and suffix != ".csv" and is_bbq_layout(text):  # nyu-mll/BBQ data/<Category>.jsonl
            probe_set = bbq_from_text(text, path.stem, str(path), options, problems)
        elif text is not None:
            table = _csv_table(text, problems) if suffix == ".csv" else _jsonl_table(text, problems)
            if table is not None:
                probe_set = _rows_to_probe_set(table, path.stem, str(path), options, problems)
    else:
        problems.add(
            None,
            f"unknown file extension {path.suffix or '(none)'!r}; use .yaml/.yml (templates), .csv or .jsonl "
            "(pairs or variants rows), .parquet or a dataset folder (Hugging Face dataset), or a public benchmark "
            "file (CrowS-Pairs .csv, StereoSet .json, WinoBias pro_/anti_stereotyped_*.txt.dev)",
        )
    if problems.items:
        # the file's own problems first, then those of the files it names (keys_file ...), by line
        return None, sorted(problems.items, key=lambda p: (p.file != problems.file, p.file, p.line or 0))
    return probe_set, []


def _read_utf8(path: Path, problems: _Problems) -> str | None:
    """The file as text, or None with one problem per line that is not valid UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as error:
        problems.add(None, f"cannot read the file ({error.strerror}); check the path and its permissions")
        return None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            problems.add(
                number,
                f"byte 0x{raw[error.start]:02x} at column {error.start + 1} is not UTF-8; "
                "re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)",
            )
    return None


def _normalised(text: str) -> str:
    """The text with Unicode in NFC form and whitespace collapsed and trimmed: two texts equal here
    reach the model as the same input."""
    return " ".join(unicodedata.normalize("NFC", text).split())


_SAME_ONCE_NORMALISED = "are the same text once whitespace and Unicode (NFC) are normalised"


def _to_problem_list(error: ValidationError) -> list[str]:
    return [f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in error.errors()]


def validated_probe_set(problems: _Problems, line: int | None, **fields: Any) -> ProbeSet | None:
    """``ProbeSet(**fields)``, or None with each validation error a problem at ``line``."""
    try:
        return ProbeSet(**fields)
    except ValidationError as error:
        for message in _to_problem_list(error):
            problems.add(line, message)
        return None


# ------------------------------------------------------------------------------------- focus spans


def _differing_region(a: str, b: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """The character region where ``a`` and ``b`` differ (common prefix/suffix removed), widened to
    whole words when the change touches a word: "He is" vs "She is" gives "He" and "She"."""
    prefix = 0
    limit = min(len(a), len(b))
    while prefix < limit and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and a[-1 - suffix] == b[-1 - suffix]:
        suffix += 1

    def char(text: str, index: int) -> str:
        return text[index] if 0 <= index < len(text) else ""

    if char(a, prefix - 1).isalnum() and (char(a, prefix).isalnum() or char(b, prefix).isalnum()):
        while prefix > 0 and a[prefix - 1].isalnum():
            prefix -= 1
    end_a, end_b = len(a) - suffix, len(b) - suffix

    def before_suffix(text: str, end: int) -> str:
        return char(text, end - 1) if end > prefix else char(text, prefix - 1)

    if char(a, end_a).isalnum() and (before_suffix(a, end_a).isalnum() or before_suffix(b, end_b).isalnum()):
        while end_a < len(a) and a[end_a].isalnum():
            end_a += 1
            end_b += 1
    return _strip_region(a, prefix, end_a), _strip_region(b, prefix, end_b)


def _strip_region(text: str, start: int, end: int) -> tuple[int, int]:
    """The region without surrounding whitespace ("male " -> "male")."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _focus_against(text: str, others: Iterable[str]) -> tuple[Span, ...]:
    """One span covering every character of ``text`` that differs from any of ``others``."""
    regions = [_differing_region(text, other)[0] for other in others if other != text]
    if not regions:
        return ()
    start, end = min(r[0] for r in regions), max(r[1] for r in regions)
    return (Span(start=start, end=end),) if end > start else ()


# ---------------------------------------------------------------------------------- YAML templates

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
_ASSOCIATION_KEYS = ("name", "a_name", "b_name", "a", "b", "source")


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


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "text"


def _mapping(
    node: yaml.Node, what: str, problems: _Problems
) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
    """A YAML mapping's entries by key (reporting repeated and non-text keys), or None if not a mapping."""
    if not isinstance(node, yaml.MappingNode):
        problems.add(_line(node), f"{what} must be a mapping (key: value lines), not {_kind(node)}")
        return None
    entries: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            problems.add(_line(key), f"{what} has a key that is not text")
            continue
        if key.value in entries:
            problems.add(
                _line(key),
                f"{what} repeats the key {key.value!r} (first on line {_line(entries[key.value][0])}); "
                "YAML would keep only the last one, so remove or rename one",
            )
            continue
        entries[key.value] = (key, value)
    return entries


def _unknown_keys(
    entries: dict[str, tuple[yaml.Node, yaml.Node]], known: Iterable[str], what: str, problems: _Problems
) -> None:
    for key, (key_node, _) in entries.items():
        if key not in known:
            problems.add(
                _line(key_node), f"{what} has an unknown key {key!r} (known keys: {', '.join(known)})"
            )


def _text(node: yaml.Node, what: str, problems: _Problems) -> str | None:
    """A scalar's text exactly as written (``no`` stays "no"), or None with a problem."""
    if not isinstance(node, yaml.ScalarNode):
        problems.add(_line(node), f"{what} must be text, not {_kind(node)}")
        return None
    if node.tag == _NULL_TAG or not node.value.strip():
        problems.add(_line(node), f"{what} is empty; write a value or remove the key")
        return None
    return str(node.value)


def _text_list(node: yaml.Node, what: str, problems: _Problems) -> list[str] | None:
    """The distinct texts of a list (problems reported, duplicates dropped); None when none is usable."""
    if not isinstance(node, yaml.SequenceNode):
        problems.add(_line(node), f"{what} must be a list of texts, not {_kind(node)}")
        return None
    if not node.value:
        problems.add(_line(node), f"{what} is an empty list; give at least one value")
        return None
    values: list[str] = []
    for item in node.value:
        value = _text(item, f"an item of {what}", problems)
        if value is not None and value in values:
            problems.add(_line(item), f"{what} repeats {value!r}; remove the duplicate")
        elif value is not None:
            values.append(value)
    return values or None


def _parse_yaml(path: Path, text: str, options: _Options, problems: _Problems) -> ProbeSet | None:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        detail = " ".join(
            str(p) for p in (getattr(error, "context", None), getattr(error, "problem", None)) if p
        )
        lines = text.split("\n")
        hint = "fix the YAML syntax"
        if line is not None and line <= len(lines) and re.match(r"\s*-\s*\{", lines[line - 1]):
            hint = 'quote a template that starts with "{", e.g. - "{pronoun|cap} works here."'
        problems.add(line, f"not valid YAML ({detail or error}); {hint}")
        return None
    if root is None:
        problems.add(
            1,
            "file is empty; a template probe set needs attribute, groups and templates (see docs/probes.md)",
        )
        return None
    top = _mapping(root, "the file", problems)
    if top is None:
        return None
    kind_node = top["kind"][1] if "kind" in top else None
    # a translation file makes a counterfactual set whose variants carry target texts (seq2seq)
    if isinstance(kind_node, yaml.ScalarNode) and kind_node.value == "translation":
        from probes.translation import translation_from_yaml  # it imports this module's helpers

        return translation_from_yaml(path, top, options, problems)
    kind = _probe_kind(top, problems)
    if kind is None:
        return None
    if kind == "long_document":
        return _parse_long_document(path, top, options, problems)
    if kind == "parallel":
        from probes.parallel import parallel_from_yaml  # it imports this module's helpers

        return parallel_from_yaml(path, top, options, problems)
    if kind == "multiple_choice":
        from probes.bbq import multiple_choice_from_yaml  # it imports this module's helpers

        return multiple_choice_from_yaml(path, top, options, problems)
    _unknown_keys(top, _TOP_KEYS, "the file", problems)
    for key in ("attribute", "groups", "templates"):
        if key not in top:
            problems.add(
                1, f"missing required key {key!r}; a template probe set needs attribute, groups and templates"
            )

    def text_of(key: str) -> str | None:
        return _text(top[key][1], key, problems) if key in top else None

    set_name = options.name or text_of("name") or path.stem
    attribute = text_of("attribute")
    lang = text_of("lang") or "en"
    description = _text(top["description"][1], "description", problems) if "description" in top else ""
    card = _read_card(path, top, problems)
    tasks = _text_list(top["tasks"][1], "tasks", problems) if "tasks" in top else None

    groups = _parse_groups(top["groups"][1], problems) if "groups" in top else None
    lexicons = _parse_lexicons(top["lexicons"][1], problems) if "lexicons" in top else {}
    templates = _parse_templates(top["templates"][1], problems) if "templates" in top else None
    associations = _parse_associations(top["associations"][1], problems) if "associations" in top else []
    continuations = _parse_continuations(top, tasks, problems)
    if groups is None or lexicons is None or templates is None or attribute is None:
        return None
    instances = _expand(groups, lexicons, templates, attribute, lang, problems)
    # French, Spanish, German: every word that agrees with the person must be a group slot
    template_lines = {t.text: t.line for t in reversed(templates)}
    for line, message in check_template_agreement(lang, instances, template_lines):
        problems.add(line, message)
    in_default_run = _in_default_run(top, problems)
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


def _parse_continuations(
    top: dict[str, tuple[yaml.Node, yaml.Node]], tasks: list[str] | None, problems: _Problems
) -> list[str]:
    """The file's ``continuations`` (causal LMs score log P(continuation | variant) for each): a
    list of distinct texts, in a set whose ``tasks`` include causal-lm."""
    if "continuations" not in top:
        return []
    key, node = top["continuations"]
    values = _text_list(node, "continuations", problems) or []
    first: dict[str, tuple[str, int]] = {}  # output name -> the first continuation with it, and its line
    for item in node.value if isinstance(node, yaml.SequenceNode) else []:
        if not isinstance(item, yaml.ScalarNode) or not item.value.strip():
            continue
        name = item.value.strip()
        if name in first and item.value != first[name][0]:  # exact repeats: reported by _text_list
            problems.add(
                _line(item),
                f"continuation {item.value!r} names the same output (loglik:{name}) as the one on line "
                f"{first[name][1]}: spaces around a continuation do not make it another one",
            )
        first.setdefault(name, (item.value, _line(item)))
    if "causal-lm" not in (tasks or ()):
        problems.add(
            _line(key),
            "continuations are scored by causal language models only; add causal-lm to 'tasks:' "
            "(e.g. tasks: [causal-lm])",
        )
    return values


def _in_default_run(top: dict[str, tuple[yaml.Node, yaml.Node]], problems: _Problems) -> bool:
    """The file's ``in_default_run`` (default true): false keeps a built-in set out of the audit run
    with no probes named."""
    if "in_default_run" not in top:
        return True
    node = top["in_default_run"][1]
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:bool":
        return bool(_SCALARS.construct_yaml_bool(node))
    problems.add(_line(node), f"in_default_run must be true or false, not {_shown(node)}")
    return True


def _read_card(path: Path, top: dict[str, tuple[yaml.Node, yaml.Node]], problems: _Problems) -> str | None:
    if "card" in top and "card_file" in top:
        problems.add(
            _line(top["card_file"][0]), "give either card (inline text) or card_file (a path), not both"
        )
        return None
    if "card" in top:
        return _text(top["card"][1], "card", problems)
    if "card_file" not in top:
        return ""
    relative = _text(top["card_file"][1], "card_file", problems)
    if relative is None:
        return None
    card_path = path.parent / relative
    try:
        return card_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "it is not UTF-8"
        problems.add(
            _line(top["card_file"][1]),
            f"cannot read card_file {relative!r} ({reason}); the path is relative to this YAML file",
        )
        return None


def _parse_groups(node: yaml.Node, problems: _Problems) -> dict[str, _Group] | None:
    entries = _mapping(node, "groups", problems)
    if entries is None:
        return None
    if len(entries) < 2:
        problems.add(
            _line(node), f"groups defines {len(entries)} group(s); a counterfactual needs at least 2"
        )
    groups: dict[str, _Group] = {}
    for group_name, (key_node, value_node) in entries.items():
        group = _Group(group_name, _line(key_node))
        slots = _mapping(value_node, f"group {group_name!r}", problems)
        if slots is None:
            continue
        if not slots:
            problems.add(
                _line(key_node), f"group {group_name!r} defines no slots; give it values such as pronoun: she"
            )
        for slot_name, (slot_key, slot_value) in slots.items():
            if not _NAME.match(slot_name):
                problems.add(
                    _line(slot_key), f"slot name {slot_name!r} must be letters, digits and _ (no spaces)"
                )
                continue
            what = f"slot {slot_name!r} of group {group_name!r}"
            if isinstance(slot_value, yaml.SequenceNode):
                values = _text_list(slot_value, what, problems)
                if values is not None:
                    group.slots[slot_name] = _Slot(values, True, _line(slot_key))
            else:
                value = _text(slot_value, what, problems)
                if value is not None:
                    group.slots[slot_name] = _Slot([value], False, _line(slot_key))
        groups[group_name] = group
    _check_list_lengths(groups, problems)
    return groups


def _check_list_lengths(groups: dict[str, _Group], problems: _Problems) -> None:
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


def _parse_lexicons(node: yaml.Node, problems: _Problems) -> dict[str, tuple[list[str], int]] | None:
    entries = _mapping(node, "lexicons", problems)
    if entries is None:
        return None
    lexicons: dict[str, tuple[list[str], int]] = {}
    for lexicon_name, (key_node, value_node) in entries.items():
        if not _NAME.match(lexicon_name):
            problems.add(
                _line(key_node), f"lexicon name {lexicon_name!r} must be letters, digits and _ (no spaces)"
            )
            continue
        values = _text_list(value_node, f"lexicon {lexicon_name!r}", problems)
        if values is not None:
            lexicons[lexicon_name] = (values, _line(key_node))
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


def _parse_templates(node: yaml.Node, problems: _Problems) -> list[_Template] | None:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        problems.add(
            _line(node), "templates must be a non-empty list of texts (or of {text, id, label} mappings)"
        )
        return None
    templates: list[_Template] = []
    ids: dict[str, int] = {}
    for number, item in enumerate(node.value, start=1):
        template_id, label, broken = f"t{number}", None, False
        text: str | None
        if isinstance(item, yaml.MappingNode):
            entries = _mapping(item, f"template {number}", problems) or {}
            if "text" not in entries:
                quoting = item.flow_style and not set(entries) & set(_TEMPLATE_KEYS)
                hint = (
                    ' (a template that starts with "{" must be quoted)' if quoting else " (write text: ...)"
                )
                problems.add(_line(item), f"template {number} has no text{hint}")
                continue
            _unknown_keys(entries, _TEMPLATE_KEYS, f"template {number}", problems)
            text = _text(entries["text"][1], f"template {number}", problems)
            if "id" in entries:
                given = _text(entries["id"][1], f"id of template {number}", problems)
                if given is not None and not _TEMPLATE_ID.match(given):
                    problems.add(
                        _line(entries["id"][1]), f"template id {given!r} must be letters, digits, _ . - only"
                    )
                    broken = True
                elif given is not None:
                    template_id = given
            if "label" in entries:
                label = _text(entries["label"][1], f"label of template {number}", problems)
        else:
            text = _text(item, f"template {number}", problems)
        if text is None:
            continue
        if template_id in ids:
            problems.add(
                _line(item), f"template id {template_id!r} is already used on line {ids[template_id]}"
            )
            continue
        ids[template_id] = _line(item)
        parts, errors = _parse_placeholders(text)
        for error in errors:
            problems.add(_line(item), f"template {error}")
        templates.append(
            _Template(number, template_id, text, label, _line(item), parts, broken=broken or bool(errors))
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
    problems: _Problems,
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
        per_slot = {s: {len(g.slots[s].values) for g in eligible if g.slots[s].is_list} for s in slot_names}
        if any(len(counts) > 1 for counts in per_slot.values()):
            continue  # unequal lengths across groups: reported with the groups
        lengths = {s: counts.pop() for s, counts in per_slot.items() if counts}
        if len(set(lengths.values())) > 1:
            described = ", ".join(f"{s} ({n} values)" for s, n in lengths.items())
            problems.add(
                template.line,
                f"template pairs list slots of different lengths: {described}; list slots used together "
                "pair up by position, so give them the same number of values",
            )
            continue
        positions = next(iter(lengths.values()), 1)
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
                variants = []
                for group in eligible:
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
                texts = [v.text for v in variants]
                keys = [_normalised(text) for text in texts]
                if len(set(keys)) < len(keys) and not clash_reported:
                    exact = len(set(texts)) < len(texts)
                    same = [
                        v
                        for v in variants
                        if (texts.count(v.text) if exact else keys.count(_normalised(v.text))) > 1
                    ]
                    problems.add(
                        template.line,
                        f"groups {', '.join(v.variant for v in same)} fill the template identically "
                        f"({same[0].text!r}){'' if exact else ' once whitespace and Unicode (NFC) are normalised'}; "
                        "give them different slot values",
                    )
                    clash_reported = True
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
    return instances


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


def _parse_associations(node: yaml.Node, problems: _Problems) -> list[Association] | None:
    if not isinstance(node, yaml.SequenceNode):
        problems.add(_line(node), f"associations must be a list of mappings, not {_kind(node)}")
        return None
    associations: list[Association] = []
    names: dict[str, int] = {}
    for number, item in enumerate(node.value, start=1):
        what = f"association {number}"
        entries = _mapping(item, what, problems)
        if entries is None:
            continue
        _unknown_keys(entries, _ASSOCIATION_KEYS, what, problems)
        missing = [k for k in ("name", "a_name", "b_name", "a", "b") if k not in entries]
        if missing:
            problems.add(
                _line(item), f"{what} misses {', '.join(missing)} (needs name, a_name, b_name, a, b)"
            )
            continue
        name = _text(entries["name"][1], f"name of {what}", problems)
        a_name = _text(entries["a_name"][1], f"a_name of {what}", problems)
        b_name = _text(entries["b_name"][1], f"b_name of {what}", problems)
        source = _text(entries["source"][1], f"source of {what}", problems) if "source" in entries else None
        a = _text_list(entries["a"][1], f"set a of {what}", problems)
        b = _text_list(entries["b"][1], f"set b of {what}", problems)
        if name is not None:
            if name in names:
                problems.add(_line(item), f"association name {name!r} is already used on line {names[name]}")
            names[name] = _line(item)
        ok = True
        for side, words in (("a", a), ("b", b)):
            if words is not None and len(words) < 2:
                problems.add(
                    _line(entries[side][1]), f"set {side} of {what} has {len(words)} word(s); give at least 2"
                )
                ok = False
        if a is not None and b is not None:
            shared = [w for w in a if w in b]
            if shared:
                problems.add(
                    _line(entries["b"][1]),
                    f"sets a and b of {what} share {', '.join(shared)}; a word cannot stand for both sides",
                )
                ok = False
        if ok and name is not None and a_name is not None and b_name is not None and a and b:
            associations.append(
                Association(name=name, a_name=a_name, b_name=b_name, a=tuple(a), b=tuple(b), source=source)
            )
    return associations


# ------------------------------------------------------------------------------ long-document sets

PROBE_KINDS: tuple[ProbeKind, ...] = ("counterfactual", "long_document", "parallel", "multiple_choice")
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
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_SCALARS = yaml.constructor.SafeConstructor()


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


def _probe_kind(top: dict[str, tuple[yaml.Node, yaml.Node]], problems: _Problems) -> ProbeKind | None:
    """The file's ``kind`` (default counterfactual), or None with a problem."""
    if "kind" not in top:
        return "counterfactual"
    value = _text(top["kind"][1], "kind", problems)
    if value is None:
        return None
    for kind in PROBE_KINDS:
        if value == kind:
            return kind
    problems.add(
        _line(top["kind"][1]),
        f"kind {value!r} is not known; use {' or '.join(PROBE_KINDS)} (leave it out for templates)",
    )
    return None


def _shown(node: yaml.Node) -> str:
    return repr(node.value) if isinstance(node, yaml.ScalarNode) else _kind(node)


def _whole_number(node: yaml.Node, what: str, minimum: int, problems: _Problems) -> int | None:
    """A YAML integer of at least ``minimum``, or None with a problem."""
    if not isinstance(node, yaml.ScalarNode) or node.tag != _INT_TAG:
        problems.add(_line(node), f"{what} must be a whole number, not {_shown(node)}")
        return None
    value = int(_SCALARS.construct_yaml_int(node))
    if value < minimum:
        problems.add(_line(node), f"{what} is {value}; it must be at least {minimum}")
        return None
    return value


def _parse_lengths(
    node: yaml.Node, problems: _Problems
) -> tuple[tuple[int, ...] | str, list[tuple[int, int]]] | None:
    """``auto`` or the listed lengths (with their lines), or None when there is a problem."""
    if isinstance(node, yaml.ScalarNode) and node.value == "auto" and node.tag != _INT_TAG:
        return "auto", []
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        problems.add(
            _line(node),
            f"lengths must be auto or a list of token counts such as [512, 2048], not {_shown(node)}",
        )
        return None
    lengths: list[tuple[int, int]] = []
    ok = True
    for item in node.value:
        value = _whole_number(item, "a length", 1, problems)
        if value is None:
            ok = False
        elif value in [length for length, _ in lengths]:
            problems.add(_line(item), f"lengths repeat {value}; remove the duplicate")
            ok = False
        else:
            lengths.append((value, _line(item)))
    if not ok:
        return None
    return tuple(sorted(length for length, _ in lengths)), lengths


def _parse_positions(node: yaml.Node, problems: _Problems) -> tuple[float, ...] | None:
    """Positions between 0 and 1, increasing, each with its own whole-percent name; or None."""
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        problems.add(
            _line(node),
            f"positions must be a list of numbers from 0 (start) to 1 (end) such as [0, 0.5, 1], "
            f"not {_shown(node)}",
        )
        return None
    positions: list[float] = []
    names: dict[str, int] = {}
    ok = True
    for item in node.value:
        if not isinstance(item, yaml.ScalarNode) or item.tag not in (_INT_TAG, _FLOAT_TAG):
            problems.add(_line(item), f"a position must be a number from 0 to 1, not {_shown(item)}")
            ok = False
            continue
        value = float(_SCALARS.construct_object(item))
        if not 0.0 <= value <= 1.0:
            problems.add(
                _line(item),
                f"position {item.value} lies outside 0..1 (0: the start, 1: the end of the document)",
            )
            ok = False
            continue
        if positions and value <= positions[-1]:
            problems.add(
                _line(item),
                f"position {item.value} does not come after {positions[-1]:g}; list positions once each, "
                "in increasing order",
            )
            ok = False
            continue
        name = position_name(value)
        if name in names:
            problems.add(
                _line(item),
                f"position {item.value} is named {name} like the position on line {names[name]}; variants "
                "are named by whole percent, so positions must differ by at least 0.01",
            )
            ok = False
            continue
        names[name] = _line(item)
        positions.append(value)
    return tuple(positions) if ok else None


def _named_file(
    path: Path, top: dict[str, tuple[yaml.Node, yaml.Node]], key: str, problems: _Problems
) -> tuple[Path, str] | None:
    """The file a ``*_file`` key names (relative to the YAML file) and its text; None with a problem."""
    relative = _text(top[key][1], key, problems)
    if relative is None:
        return None
    named = path.parent / relative
    if not named.is_file():
        problems.add(
            _line(top[key][1]),
            f"cannot read {key} {relative!r} (no such file); the path is relative to this YAML file",
        )
        return None
    own = _Problems(str(named))
    text = _read_utf8(named, own)
    problems.items.extend(own.items)
    return (named, text) if text is not None else None


def _either(
    top: dict[str, tuple[yaml.Node, yaml.Node]], inline: str, file_key: str, problems: _Problems
) -> bool:
    """False (with a problem) when the file gives both the inline list and the file of the same thing."""
    if inline in top and file_key in top:
        problems.add(
            _line(top[file_key][0]), f"give either {inline} (a list) or {file_key} (a path), not both"
        )
        return False
    return True


def _parse_filler(
    path: Path, top: dict[str, tuple[yaml.Node, yaml.Node]], problems: _Problems
) -> list[tuple[str, _Where]] | None:
    """The usable filler sentences with where each was written (problems reported); None when there is
    no filler at all."""
    if not _either(top, "filler", "filler_file", problems):
        return None
    if "filler" in top:
        node = top["filler"][1]
        values = _text_list(node, "filler", problems) or []
        items = node.value if isinstance(node, yaml.SequenceNode) else []
        lines = {item.value: _line(item) for item in items if isinstance(item, yaml.ScalarNode)}
        return [(value.strip(), _Where(problems.file, lines.get(value))) for value in values]
    if "filler_file" not in top:
        problems.add(
            1,
            "missing filler: give filler (a list of neutral sentences) or filler_file (a text file next "
            "to this one, one sentence per line)",
        )
        return None
    named = _named_file(path, top, "filler_file", problems)
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


def _checked_id(value: str, what: str, where: _Where, problems: _Problems) -> bool:
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


def _parse_keys(
    path: Path, top: dict[str, tuple[yaml.Node, yaml.Node]], problems: _Problems
) -> list[tuple[KeySentence, _Where]] | None:
    """The usable key sentences (inline list or keys_file) with where each was written (problems
    reported); None when the keys cannot be read at all."""
    if not _either(top, "keys", "keys_file", problems):
        return None
    keys: list[tuple[KeySentence, _Where]] = []
    if "keys" in top:
        node = top["keys"][1]
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            problems.add(
                _line(node), f"keys must be a list of {{id, text, label, query}} mappings, not {_shown(node)}"
            )
            return None
        for number, item in enumerate(node.value, start=1):
            what = f"key {number}"
            entries = _mapping(item, what, problems)
            if entries is None:
                continue
            _unknown_keys(entries, _KEY_KEYS, what, problems)
            values = _entry_texts(entries, item, what, ("id", "text"), ("label", "query"), problems)
            if values is None:
                continue
            where = _Where(problems.file, _line(item))
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
    entries: dict[str, tuple[yaml.Node, yaml.Node]],
    item: yaml.Node,
    what: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    problems: _Problems,
) -> dict[str, str] | None:
    """The text values of a mapping's keys (stripped); None when a required one is missing or bad."""
    missing = [key for key in required if key not in entries]
    if missing:
        problems.add(_line(item), f"{what} misses {', '.join(missing)} (needs {', '.join(required)})")
        return None
    values: dict[str, str] = {}
    ok = True
    for key in required + optional:
        if key in entries:
            value = _text(entries[key][1], f"{key} of {what}", problems)
            if value is None:
                ok = False
            else:
                values[key] = value.strip()
    return values if ok else None


def _named_table(
    path: Path,
    top: dict[str, tuple[yaml.Node, yaml.Node]],
    key: str,
    required: tuple[str, ...],
    problems: _Problems,
) -> tuple[Path, list[tuple[int, dict[str, str]]]] | None:
    """The rows of a CSV/JSONL file named by ``key``, with every value stripped; None on problems."""
    named = _named_file(path, top, key, problems)
    if named is None:
        return None
    table_path, text = named
    own = _Problems(str(table_path))
    suffix = table_path.suffix.lower()
    if suffix not in ROW_EXTENSIONS:
        problems.add(
            _line(top[key][1]), f"{key} must be a .csv or .jsonl file, not {table_path.suffix or '(none)'!r}"
        )
        return None
    table = _csv_table(text, own) if suffix == ".csv" else _jsonl_table(text, own)
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


def _parse_swaps(
    path: Path, top: dict[str, tuple[yaml.Node, yaml.Node]], problems: _Problems
) -> list[tuple[SwapSentence, _Where]] | None:
    """The usable identity swaps (inline list or swaps_file) with where each was written (problems
    reported); None when the swaps cannot be read at all."""
    if not _either(top, "swaps", "swaps_file", problems):
        return None
    swaps: list[tuple[SwapSentence, _Where]] = []
    if "swaps" in top:
        node = top["swaps"][1]
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            problems.add(
                _line(node),
                f"swaps must be a list of {{id, attribute, variants, label, query}} mappings, not {_shown(node)}",
            )
            return None
        for number, item in enumerate(node.value, start=1):
            what = f"swap {number}"
            entries = _mapping(item, what, problems)
            if entries is None:
                continue
            _unknown_keys(entries, _SWAP_KEYS, what, problems)
            values = _entry_texts(entries, item, what, ("id", "attribute"), ("label", "query"), problems)
            if "variants" not in entries:
                problems.add(_line(item), f"{what} misses variants (group: sentence, one per group)")
                continue
            groups = _mapping(entries["variants"][1], f"variants of {what}", problems)
            if values is None or groups is None:
                continue
            where = _Where(problems.file, _line(item))
            sentences: dict[str, str] = {}
            ok = _checked_id(values["id"], "swap id", where, problems)
            for group, (group_key, group_value) in groups.items():
                sentence = _text(group_value, f"sentence of group {group!r} in {what}", problems)
                group_where = _Where(problems.file, _line(group_key))
                ok = _checked_id(group, "group name", group_where, problems) and ok
                if sentence is None:
                    ok = False
                else:
                    sentences[group] = sentence.strip()
            if ok and _swap_groups_ok(values["id"], sentences, where, problems):
                swaps.append((SwapSentence(**values, variants=sentences), where))
    elif "swaps_file" in top:
        table = _named_table(path, top, "swaps_file", _SWAP_FILE_COLUMNS, problems)
        if table is None:
            return None
        swaps_path, rows = table
        grouped: dict[str, list[tuple[int, dict[str, str]]]] = {}
        for line, row in rows:
            grouped.setdefault(row["id"], []).append((line, row))
        for swap_id, swap_rows in grouped.items():
            first_line, first = swap_rows[0]
            where = _Where(str(swaps_path), first_line)
            ok = _checked_id(swap_id, "swap id", where, problems)
            sentences = {}
            for line, row in swap_rows:
                row_where = _Where(str(swaps_path), line)
                for column in ("attribute", "label", "query"):
                    if row.get(column) != first.get(column):
                        problems.items.append(
                            Problem(
                                str(swaps_path),
                                line,
                                f"swap {swap_id!r} has {column} {row.get(column)!r} here but "
                                f"{first.get(column)!r} on line {first_line}; one swap has one {column}",
                            )
                        )
                        ok = False
                if row["group"] in sentences:
                    problems.items.append(
                        Problem(
                            str(swaps_path),
                            line,
                            f"swap {swap_id!r} already has group {row['group']!r}; each group appears once",
                        )
                    )
                    ok = False
                    continue
                ok = _checked_id(row["group"], "group name", row_where, problems) and ok
                sentences[row["group"]] = row["text"]
            if ok and _swap_groups_ok(swap_id, sentences, where, problems):
                extra = {c: first[c] for c in ("label", "query") if c in first}
                swaps.append(
                    (
                        SwapSentence(id=swap_id, attribute=first["attribute"], variants=sentences, **extra),
                        where,
                    )
                )
    return swaps


def _swap_groups_ok(swap_id: str, sentences: dict[str, str], where: _Where, problems: _Problems) -> bool:
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
        key = _normalised(sentence)
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


def _parse_long_document(
    path: Path, top: dict[str, tuple[yaml.Node, yaml.Node]], options: _Options, problems: _Problems
) -> ProbeSet | None:
    """A ``kind: long_document`` file: the spec its documents are built from (per model, later)."""
    _unknown_keys(top, _LONG_TOP_KEYS, "the file", problems)

    def text_of(key: str) -> str | None:
        return _text(top[key][1], key, problems) if key in top else None

    set_name = options.name or text_of("name") or path.stem
    description = text_of("description") or ""
    filler_source = text_of("filler_source") or ""
    card = _read_card(path, top, problems)
    tasks = _text_list(top["tasks"][1], "tasks", problems) if "tasks" in top else None
    spec_values: dict[str, Any] = {}
    lengths = _parse_lengths(top["lengths"][1], problems) if "lengths" in top else ("auto", [])
    if lengths is not None:
        spec_values["lengths"] = lengths[0]
    if "positions" in top:
        spec_values["positions"] = _parse_positions(top["positions"][1], problems)
    for key, minimum in (("max_doc_tokens", 16), ("seed", 0)):
        if key in top:
            spec_values[key] = _whole_number(top[key][1], key, minimum, problems)
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
        for message in _to_problem_list(error):
            problems.add(1, message)
        return None


def _check_long_document_items(
    keys: list[tuple[KeySentence, _Where]],
    swaps: list[tuple[SwapSentence, _Where]],
    filler: list[tuple[str, _Where]],
    problems: _Problems,
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
    filler_forms = [(_normalised(sentence).casefold(), where) for sentence, where in filler]
    seen_texts: dict[str, _Where] = {}
    for item, where in items:
        texts = [item.text] if isinstance(item, KeySentence) else list(item.variants.values())
        for text in texts:
            form = _normalised(text).casefold()
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


# ------------------------------------------------------------------------------ rows: CSV / JSONL


@dataclass
class _Table:
    """Rows of a CSV/JSONL file or a dataset, each with where it came from."""

    columns: list[str]
    rows: list[tuple[int, dict[str, str | None]]]
    header_line: int | None
    place: str = "line"
    column_everywhere: bool = True
    """True when every row has every column (CSV); JSONL and datasets may lack keys per row."""


def csv_rows(reader: Any, n_columns: int, problems: _Problems) -> Iterator[tuple[int, list[str]]]:
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
    text: str, problems: _Problems, *, each_line: str = "one JSON object", write: str = "one {...}"
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


def _csv_table(text: str, problems: _Problems) -> _Table | None:
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
    return _Table(header, rows, header_line=1)


def _jsonl_table(text: str, problems: _Problems) -> _Table | None:
    rows: list[tuple[int, dict[str, str | None]]] = []
    columns: dict[str, None] = {}
    for number, record in json_lines(text, problems):
        values = _plain_values(record, number, problems)
        if values is not None:
            rows.append((number, values))
            columns.update(dict.fromkeys(values))
    if not rows and not problems.items:
        problems.add(1, "file has no records; write one JSON object per line")
    return _Table(list(columns), rows, header_line=None, column_everywhere=False)


def _plain_values(record: Mapping[str, Any], where: int, problems: _Problems) -> dict[str, str | None] | None:
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


def _rows_to_probe_set(
    table: _Table, stem: str, source: str, options: _Options, problems: _Problems
) -> ProbeSet | None:
    """Build a probe set from rows in the pairs or the variants layout (or the parallel one)."""
    from probes.parallel import is_parallel_layout, parallel_from_rows  # it imports this module

    if not options.mapping and is_parallel_layout(table.columns):
        return parallel_from_rows(table, stem, source, options, problems)
    mapping = dict(options.mapping or {})
    defaults = dict(options.defaults or {})
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
    if len(problems.items) > known_before:
        return None
    renamed = {theirs: ours for ours, theirs in mapping.items()}
    columns = {renamed.get(c, c) for c in table.columns} | set(defaults)
    is_pairs = bool({"text_a", "text_b"} & columns)
    is_variants = bool({"text", "variant"} & columns)
    if is_pairs == is_variants:
        reason = "mix both" if is_pairs else "match neither"
        problems.add(
            table.header_line,
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
            table.header_line,
            f"missing required column(s) {', '.join(absent)}; the {layout} layout needs {','.join(required)}; "
            f"map one with --probe-map {absent[0]}=FILE_COLUMN or fill it with --probe-default "
            f"{absent[0]}=VALUE (Python: mapping={{{absent[0]!r}: FILE_COLUMN}}, "
            f"defaults={{{absent[0]!r}: VALUE}})",
        )
        return None

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
    build = _pairs_instances if is_pairs else _variants_instances
    instances, lines = build(records, table.place, problems)
    _check_example_ids(instances, lines, table.place, problems)
    from probes.translation import attach_row_targets  # seq2seq target columns; it imports this module

    instances, extra = attach_row_targets(instances, lines, table, renamed, is_pairs, problems)
    if problems.items:
        return None
    return validated_probe_set(
        problems, None, name=options.name or stem, source=source, instances=tuple(instances), **extra
    )


_Lines = dict[tuple[str, str], int]
"""Where each (instance id, variant) of a rows file was read: its line or record number."""


def _check_example_ids(instances: list[Instance], lines: _Lines, place: str, problems: _Problems) -> None:
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
    records: list[tuple[int, dict[str, str]]], place: str, problems: _Problems
) -> tuple[list[Instance], _Lines]:
    instances: list[Instance] = []
    lines: _Lines = {}
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
        if _normalised(row["text_a"]) == _normalised(row["text_b"]):
            problems.add(
                where,
                f"variants {row['group_a']!r} and {row['group_b']!r} of instance {instance_id!r} "
                f"{_SAME_ONCE_NORMALISED}; nothing differs between them",
            )
            continue
        span_a, span_b = _differing_region(row["text_a"], row["text_b"])
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
    records: list[tuple[int, dict[str, str]]], place: str, problems: _Problems
) -> tuple[list[Instance], _Lines]:
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
    lines: _Lines = {}
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
                focus=_focus_against(row["text"], texts),
            )
            for _, row in rows
        ]
        instances.append(
            Instance(instance_id=instance_id, attribute=rows[0][1]["attribute"], variants=tuple(variants))
        )
        lines.update({(instance_id, row["variant"]): where for where, row in rows})
    return instances, lines


def _report_same_texts(
    instance_id: str, rows: list[tuple[int, dict[str, str]]], place: str, problems: _Problems
) -> bool:
    """Report every variant whose text equals an earlier variant's once normalised; True if any did."""
    first_with: dict[str, tuple[int, dict[str, str]]] = {}
    found = False
    for where, row in rows:
        key = _normalised(row["text"])
        if key not in first_with:
            first_with[key] = (where, row)
            continue
        first_where, first = first_with[key]
        how = "have the same text" if first["text"] == row["text"] else _SAME_ONCE_NORMALISED
        problems.add(
            where,
            f"variants {first['variant']!r} ({place} {first_where}) and {row['variant']!r} of instance "
            f"{instance_id!r} {how}; nothing differs between them",
        )
        found = True
    return found


# --------------------------------------------------------------------------- Hugging Face datasets


def _dataset_label(path: Path, split: str | None) -> str:
    return f"{path}[{split}]" if split else str(path)


def _parse_dataset(path: Path, options: _Options, problems: _Problems) -> ProbeSet | None:
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
        values = _plain_values(record, number, problems)
        if values is not None:
            rows.append((number, values))
    if not rows and not problems.items:
        problems.add(None, "the dataset has no records")
        return None
    table = _Table(
        list(dataset.column_names), rows, header_line=None, place="record", column_everywhere=False
    )
    stem = path.stem if path.is_file() else path.name
    return _rows_to_probe_set(table, stem, str(path), options, problems)


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
