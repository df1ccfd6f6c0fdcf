"""Multiple-choice (BBQ-style) probe sets: a question about a context, answered by one of two groups
or "unknown" (Parrish et al. 2022, "BBQ: A Hand-Built Bias Benchmark for Question Answering",
Findings of ACL 2022).

Two ways to write one (docs/probes.md, "Multiple-choice (BBQ-style) sets"):

- a ``.jsonl`` file in the layout of nyu-mll/BBQ ``data/<Category>.jsonl`` (recognised by its
  content: rows with ``answer_info``, ``context_condition``, ``question_polarity`` ...). One
  row per item::

    {"example_id": 0, "question_index": "1", "question_polarity": "neg", "context_condition": "ambig",
     "category": "Age", "answer_info": {"ans0": ["grandfather", "old"], "ans1": ["grandson", "nonOld"],
     "ans2": ["Can't be determined", "unknown"]}, "additional_metadata": {"subcategory": "None",
     "stereotyped_groups": ["old"], "version": "a", "source": "..."}, "context": "...",
     "question": "...", "ans0": "The grandfather", "ans1": "The grandson", "ans2": "Can't be determined",
     "label": 2}

- a YAML file with ``kind: multiple_choice`` that names such a file (``bbq_file``) and gives the
  set its name, card and tasks (the built-in ``bbq-mini`` is one).

Each row becomes one instance (id ``<category>-<example_id>``, attribute = the category in lower
case) with three variants named by role, never by position: ``stereotyped`` (the answer naming a
group of ``additional_metadata.stereotyped_groups``), ``non_stereotyped`` (the other group) and
``unknown`` (the answer whose ``answer_info`` tag is ``unknown``). Every variant's text is the same
model input: the question, a line break, then the passage: the context followed by one sentence
that lists the three answers in the file's order (``OPTIONS_PREFIX``), so that every answer,
"Can't be determined" included, is a span an extractive QA model can point at. A variant's focus
span is its answer inside that sentence. The question-answering target replaces the line break
by the tokenizer's own pair separator (``[SEP]``) before anything is encoded.

Which answer names the stereotyped group: each answer's text and ``answer_info`` tag, and the
parts of a tag split at "-" (``F-Black`` -> ``F``, ``Black``), are compared with the stereotyped
groups after case folding and the aliases of ``ALIASES`` (``man``/``boy`` -> ``M``, ``low SES`` ->
``lowSES``, ``transgender women`` -> ``trans`` ...). Whole words are compared, never substrings,
so ``old`` does not match ``nonOld``. Exactly one of the two non-unknown answers must match;
otherwise the row is reported. Intersectional categories (``Race_x_gender``, ``Race_x_SES``)
state two stereotyped attributes per answer and are refused.

Every problem is reported as ``FILE:LINE: message``, all at once; nothing partial is returned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from probes.formats import FileFormat, YamlKind, register_file_format, register_yaml_kind
from probes.reading.problems import LoadOptions, Problems, read_utf8
from probes.reading.rows import json_lines
from probes.reading.yaml_nodes import (
    Entries,
    node_text,
    node_text_list,
    read_card,
    read_in_default_run,
    read_named_file,
    report_unknown_keys,
)
from probes.schema import Instance, MultipleChoice, ProbeSet, Span, Variant

BBQ_FIELDS = (
    "example_id",
    "question_index",
    "question_polarity",
    "context_condition",
    "category",
    "answer_info",
    "additional_metadata",
    "context",
    "question",
    "ans0",
    "ans1",
    "ans2",
    "label",
)
ANSWER_KEYS = ("ans0", "ans1", "ans2")
STEREOTYPED, NON_STEREOTYPED, UNKNOWN = "stereotyped", "non_stereotyped", "unknown"
"""The variant names of every BBQ instance."""
QUESTION_SEPARATOR = "\n"
"""Between the question and the passage in a loaded set (the QA target puts its [SEP] there)."""
OPTIONS_PREFIX = "Answers:"
"""The passage is the context, a space, then ``Answers: <ans0>; <ans1>; <ans2>.``"""
BBQ_TASKS = ("question-answering",)
"""The model tasks a multiple-choice set is for when it names none (extractive QA reads the answers)."""
MULTIPLE_CHOICE_TOP_KEYS = (
    "name",
    "kind",
    "description",
    "card",
    "card_file",
    "tasks",
    "bbq_file",
    "in_default_run",
)
ALIASES = {
    "m": "m",
    "man": "m",
    "men": "m",
    "boy": "m",
    "boys": "m",
    "male": "m",
    "f": "f",
    "woman": "f",
    "women": "f",
    "girl": "f",
    "girls": "f",
    "female": "f",
    "low ses": "lowses",
    "high ses": "highses",
    "transgender women": "trans",
    "transgender men": "trans",
    "transgender": "trans",
    "trans women": "trans",
    "trans men": "trans",
}
"""Spellings of one group in stereotyped_groups and answer_info (BBQ uses several), case-folded."""
DEFAULT_CARD = """# BBQ-layout multiple-choice set

**What it measures.** Whether a question-answering model answers an under-informative
(ambiguous) question with the stereotyped group instead of "unknown", and whether its accuracy on
informative (disambiguated) contexts depends on the answer agreeing with a stereotype. Items in
the layout of BBQ, Parrish et al. (2022), "BBQ: A Hand-Built Bias Benchmark for Question
Answering", Findings of ACL 2022 (https://github.com/nyu-mll/BBQ, CC BY 4.0).

**Known confounds.** The answers are scored as spans of a sentence appended to the context
("Answers: A; B; C."), which is not how BBQ was released for extractive models; answer order and
length can move span probabilities. See docs/probes.md.
"""


def is_bbq_layout(text: str) -> bool:
    """Whether a JSONL text is in the BBQ layout: its first record has answer_info,
    context_condition and question_polarity."""
    for raw in text.split("\n"):
        if raw.strip():
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                return False
            return isinstance(record, dict) and {
                "answer_info",
                "context_condition",
                "question_polarity",
            } <= set(record)
    return False


def options_sentence(answers: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The sentence that lists the answers, and each answer's span inside it."""
    sentence = OPTIONS_PREFIX
    spans = []
    for index, answer in enumerate(answers):
        sentence += " " if index == 0 else "; "
        spans.append((len(sentence), len(sentence) + len(answer)))
        sentence += answer
    return sentence + ".", spans


def choice_instance(
    instance_id: str,
    attribute: str,
    question: str,
    context: str,
    answers: Sequence[tuple[str, str]],
    *,
    context_condition: str,
    question_polarity: str,
    correct: str,
    stereotyped: str,
    unknown: str,
    groups: Mapping[str, str] | None = None,
    source_id: str | None = None,
) -> Instance:
    """A multiple-choice instance from its parts; ``answers`` are (variant name, answer text) in the
    order the options sentence lists them. Raises pydantic's ValidationError on bad parts."""
    sentence, spans = options_sentence([text for _, text in answers])
    passage = f"{context.strip()} {sentence}"
    text = question.strip() + QUESTION_SEPARATOR + passage
    offset = len(text) - len(sentence)
    variants = tuple(
        Variant(
            instance_id=instance_id,
            variant=name,
            attribute=attribute,
            text=text,
            focus=(Span(start=offset + start, end=offset + end),),
        )
        for (name, _), (start, end) in zip(answers, spans, strict=True)
    )
    return Instance(
        instance_id=instance_id,
        attribute=attribute,
        variants=variants,
        choice=MultipleChoice(
            question=question.strip(),
            passage=passage,
            context_condition=context_condition,  # type: ignore[arg-type]
            question_polarity=question_polarity,  # type: ignore[arg-type]
            correct=correct,
            stereotyped=stereotyped,
            unknown=unknown,
            groups=dict(groups or {}),
            source_id=source_id,
        ),
    )


def _folded(value: str) -> str:
    """Case-folded, with spaces, "_" and "-" dropped, after the aliases (``low SES`` -> ``lowses``)."""
    key = re.sub(r"[\s_-]+", " ", value.strip().casefold()).strip()
    return ALIASES.get(key, key.replace(" ", ""))


def _names_of(answer: str, tag: str) -> set[str]:
    """Every way an answer names its group: its text, its tag and the tag's parts split at "-"."""
    names = {_folded(answer), _folded(tag)}
    names |= {_folded(part) for part in tag.split("-") if part.strip()}
    if _folded(tag).startswith("trans"):
        names.add("trans")
    return names


def _text_field(record: Mapping[str, Any], key: str, line: int, problems: Problems) -> str | None:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.add(line, f"{key} must be non-empty text, not {json.dumps(value)}")
        return None
    return value


def _answer_info(
    record: Mapping[str, Any], line: int, problems: Problems
) -> dict[str, tuple[str, str]] | None:
    info = record.get("answer_info")
    if not isinstance(info, dict) or set(info) != set(ANSWER_KEYS):
        problems.add(
            line,
            'answer_info must map ans0, ans1 and ans2 to [answer, group] lists, e.g. "ans0": ["grandfather", "old"]',
        )
        return None
    parsed = {}
    for key in ANSWER_KEYS:
        entry = info[key]
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(e, str) for e in entry)):
            problems.add(
                line,
                f"answer_info.{key} must be a list of two texts [answer, group], not {json.dumps(entry)}",
            )
            return None
        parsed[key] = (str(entry[0]), str(entry[1]))
    return parsed


def _stereotyped_groups(record: Mapping[str, Any], line: int, problems: Problems) -> list[str] | None:
    metadata = record.get("additional_metadata")
    groups = metadata.get("stereotyped_groups") if isinstance(metadata, dict) else None
    if not (isinstance(groups, list) and groups and all(isinstance(g, str) and g.strip() for g in groups)):
        problems.add(
            line,
            "additional_metadata.stereotyped_groups must be a non-empty list of group names, not "
            f"{json.dumps(groups)}",
        )
        return None
    return [str(g) for g in groups]


def _roles(
    info: dict[str, tuple[str, str]], groups: list[str], category: str, line: int, problems: Problems
) -> dict[str, str] | None:
    """Answer key -> role (stereotyped, non_stereotyped, unknown), or None with a problem."""
    unknown = [key for key in ANSWER_KEYS if info[key][1].strip().casefold() == "unknown"]
    if len(unknown) != 1:
        problems.add(
            line,
            f'answer_info tags {len(unknown)} answers "unknown"; exactly one answer must be the unknown one',
        )
        return None
    stereotyped = {_folded(g) for g in groups}
    named = [key for key in ANSWER_KEYS if key != unknown[0]]
    matching = [key for key in named if _names_of(*info[key]) & stereotyped]
    if not matching and category.strip().casefold() == "disability_status":
        # BBQ's own analysis script reads every Disability_status item as about the "disabled" tag
        matching = [key for key in named if _folded(info[key][1]) == "disabled"]
    if len(matching) != 1:
        described = ", ".join(f"{key} {list(info[key])}" for key in named)
        reason = "both" if matching else "neither"
        problems.add(
            line,
            f"cannot tell which answer names the stereotyped group: stereotyped_groups {groups} match {reason} "
            f"of {described}; name one answer's group (its answer_info tag) in stereotyped_groups",
        )
        return None
    other = next(key for key in named if key != matching[0])
    return {matching[0]: STEREOTYPED, other: NON_STEREOTYPED, unknown[0]: UNKNOWN}


def _record_instance(record: Mapping[str, Any], line: int, problems: Problems) -> Instance | None:
    """One BBQ row as an instance, or None with its problems reported."""
    missing = [key for key in BBQ_FIELDS if key not in record]
    if missing:
        problems.add(line, f"missing field(s) {', '.join(missing)}; a BBQ row has {', '.join(BBQ_FIELDS)}")
        return None
    before = len(problems.items)
    category = _text_field(record, "category", line, problems)
    context = _text_field(record, "context", line, problems)
    question = _text_field(record, "question", line, problems)
    answers = [_text_field(record, key, line, problems) for key in ANSWER_KEYS]
    example_id = record["example_id"]
    if isinstance(example_id, bool) or not isinstance(example_id, (int, str)) or not str(example_id).strip():
        problems.add(line, f"example_id must be a number or text, not {json.dumps(example_id)}")
    elif "/" in str(example_id):
        problems.add(line, f"example_id {example_id!r} contains '/', which run folders use to join ids")
    condition, polarity = record["context_condition"], record["question_polarity"]
    if condition not in ("ambig", "disambig"):
        problems.add(line, f"context_condition must be ambig or disambig, not {json.dumps(condition)}")
    if polarity not in ("neg", "nonneg"):
        problems.add(line, f"question_polarity must be neg or nonneg, not {json.dumps(polarity)}")
    label = record["label"]
    if isinstance(label, bool) or label not in (0, 1, 2):
        problems.add(
            line, f"label must be 0, 1 or 2 (the index of the correct answer), not {json.dumps(label)}"
        )
    info = _answer_info(record, line, problems)
    groups = _stereotyped_groups(record, line, problems)
    if category is not None and "_x_" in category:
        problems.add(
            line,
            f"category {category} is intersectional (two stereotyped attributes per answer), which this "
            "loader does not resolve; use the single-attribute category files",
        )
    if len(problems.items) > before or info is None or groups is None:
        return None
    roles = _roles(info, groups, str(category), line, problems)
    if roles is None:
        return None
    texts = [str(a) for a in answers]
    if len({t.strip().casefold() for t in texts}) != 3:
        problems.add(line, f"two answers are the same text ({texts}); each answer must be its own span")
        return None
    correct = roles[ANSWER_KEYS[int(label)]]
    if (condition == "ambig") != (correct == UNKNOWN):
        expected = "the unknown answer" if condition == "ambig" else "a group's answer, not the unknown one"
        where = "an ambiguous" if condition == "ambig" else "a disambiguated"
        problems.add(line, f"label {label} ({correct}) in {where} context; it must be {expected}")
        return None
    assert category is not None and context is not None and question is not None
    try:
        return choice_instance(
            f"{category}-{example_id}",
            category.strip().lower(),
            question,
            context,
            [(roles[key], text) for key, text in zip(ANSWER_KEYS, texts, strict=True)],
            context_condition=str(condition),
            question_polarity=str(polarity),
            correct=correct,
            stereotyped=STEREOTYPED,
            unknown=UNKNOWN,
            groups={roles[key]: info[key][1] for key in ANSWER_KEYS},
            source_id=str(example_id),
        )
    except ValidationError as error:
        for item in error.errors():
            problems.add(line, str(item["msg"]).removeprefix("Value error, "))
        return None


def bbq_instances(text: str, problems: Problems) -> list[Instance]:
    """Every row of a BBQ-layout JSONL text as an instance (rows with problems are reported and left
    out; the caller returns nothing when there is any problem)."""
    instances: list[Instance] = []
    seen: dict[str, int] = {}
    for number, record in json_lines(text, problems, each_line="one BBQ row", write="one BBQ row"):
        instance = _record_instance(record, number, problems)
        if instance is None:
            continue
        if instance.instance_id in seen:
            problems.add(
                number,
                f"category and example_id {instance.instance_id!r} repeat line {seen[instance.instance_id]}; "
                "each row needs its own example_id within its category",
            )
            continue
        seen[instance.instance_id] = number
        instances.append(instance)
    if not instances and not problems.items:
        problems.add(1, "file has no rows; write one BBQ row (a JSON object) per line")
    return instances


def bbq_from_text(
    text: str,
    stem: str,
    source: str,
    options: LoadOptions,
    problems: Problems,
    *,
    name: str | None = None,
    description: str = "",
    card: str | None = None,
    tasks: Sequence[str] | None = None,
    in_default_run: bool = True,
) -> ProbeSet | None:
    """A multiple-choice probe set from a BBQ-layout JSONL text."""
    if options.has_row_options():
        problems.add(
            None,
            "--probe-map, --probe-default and --probe-split (Python: mapping=, defaults=, split=) do not apply "
            "to BBQ-layout files: their fields are fixed; leave them out",
        )
        return None
    instances = bbq_instances(text, problems)
    if problems.items:
        return None
    try:
        return ProbeSet(
            name=options.name or name or stem,
            kind="multiple_choice",
            description=description or "BBQ-style multiple-choice questions (Parrish et al. 2022)",
            card=DEFAULT_CARD if card is None else card,
            source=source,
            tasks=tuple(tasks or BBQ_TASKS),
            instances=tuple(instances),
            in_default_run=in_default_run,
        )
    except ValidationError as error:
        for item in error.errors():
            problems.add(None, str(item["msg"]).removeprefix("Value error, "))
        return None


def read_multiple_choice(
    path: Path, top: Entries, options: LoadOptions, problems: Problems
) -> ProbeSet | None:
    """A ``kind: multiple_choice`` YAML file: a name, card and tasks for the BBQ-layout rows of its
    ``bbq_file`` (a path relative to the YAML file)."""
    report_unknown_keys(top, MULTIPLE_CHOICE_TOP_KEYS, "the file", problems)
    if "bbq_file" not in top:
        problems.add(
            1, "missing required key 'bbq_file'; a multiple_choice set names a BBQ-layout .jsonl file"
        )
        return None

    def text_of(key: str) -> str | None:
        return node_text(top[key][1], key, problems) if key in top else None

    name = text_of("name")
    description = text_of("description") or ""
    card = read_card(path, top, problems)
    tasks = node_text_list(top["tasks"][1], "tasks", problems) if "tasks" in top else None
    in_default_run = read_in_default_run(top, problems)
    named = read_named_file(path, top, "bbq_file", problems)
    if named is None or problems.items:
        return None
    file_path, text = named
    own = Problems(str(file_path))
    probe_set = bbq_from_text(
        text,
        path.stem,
        str(path),
        options,
        own,
        name=name,
        description=description,
        card=card or None,
        tasks=tasks,
        in_default_run=in_default_run,
    )
    problems.items.extend(own.items)
    return probe_set


def _claims(path: Path, options: LoadOptions) -> bool:
    """A BBQ-layout JSON-lines file (recognised by its first record), unless a split is asked for
    (the rows format then says that files have no splits)."""
    if path.is_dir() or path.suffix.lower() not in (".jsonl", ".ndjson") or options.split:
        return False
    text = read_utf8(path, Problems(str(path)))  # unreadable: the rows format reports why
    return text is not None and is_bbq_layout(text)


def read_bbq_file(path: Path, options: LoadOptions, problems: Problems) -> ProbeSet | None:
    """A BBQ-layout JSON-lines file (nyu-mll/BBQ ``data/<Category>.jsonl``)."""
    text = read_utf8(path, problems)
    return bbq_from_text(text, path.stem, str(path), options, problems) if text is not None else None


register_file_format(FileFormat("bbq", claims=_claims, read=read_bbq_file, order=15))
register_yaml_kind(YamlKind("multiple_choice", read_multiple_choice))
