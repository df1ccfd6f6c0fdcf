"""Public bias benchmarks in their original release layouts, as probe sets.

Each registers itself as a file format, recognised by its content and name:

- **CrowS-Pairs** (Nangia et al. 2020; nyu-mll/crows-pairs ``data/crows_pairs_anonymized.csv``,
  CC BY-SA 4.0): a CSV whose header has ``sent_more,sent_less,stereo_antistereo,bias_type``
  (the release's first column is an unnamed index; ``id``, ``annotations``, ``anon_writer``,
  ``anon_annotators`` are read past). ``sent_more`` is the more stereotypical sentence of the pair
  whatever ``stereo_antistereo`` says: "stereo" when it states a stereotype about a historically
  disadvantaged group, "antistereo" when ``sent_less`` is the one that violates a stereotype about
  such a group. The release's own metric (``metric.py``) counts a pair as biased when sent_more
  scores higher in both directions, so sent_more is the "stereotype" variant and sent_less the
  "anti-stereotype" one; the direction is kept in the instance's context.
- **StereoSet** (Nadeem et al. 2021; McGill-NLP/stereoset ``dev.json``, CC BY-SA 4.0): JSON
  ``{"version": ..., "data": {"intrasentence": [...], "intersentence": [...]}}``; each item has
  ``id, target, bias_type, context, sentences`` and each of its three sentences ``id, sentence,
  labels, gold_label`` with gold labels stereotype / anti-stereotype / unrelated, once each.
  Intrasentence items (context with a BLANK) become the three filled sentences; intersentence
  items become ``context + " " + sentence``, the sentence being the focus. Instance ids are
  ``intra-<id>`` and ``inter-<id>``.
- **WinoBias** (Zhao et al. 2018; uclanlp/corefBias ``WinoBias/wino/data``): files
  ``pro_stereotyped_type1.txt.dev`` and its twin ``anti_stereotyped_type1.txt.dev`` side by side
  (either may be named), one sentence per line with the entity and its pronoun in brackets
  (``[The developer] argued with the designer because [he] did not like the design.``), line k
  of one the twin of line k of the other; some copies number the lines (``1 [The ...``). The
  pro-stereotyped line is the "stereotype" variant, attribute "gender".

Every instance has the variants "stereotype" and "anti-stereotype" (StereoSet also "unrelated"),
the attribute of its bias type, focus spans on the characters that differ between the sentences
(a word-level diff; WinoBias adds the bracketed pronouns) and ``tasks`` masked-lm and causal-lm:
these benchmarks compare how likely a language model finds each sentence
(audit/metrics/preference.py turns that into the share of instances where the stereotype wins).

Problems are collected for the whole file (each as ``FILE:LINE: message``; JSON problems at the
line where the offending object starts) and nothing partial is returned.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import json.decoder
import json.scanner
import re
from pathlib import Path
from typing import Any

from probes.formats import FileFormat, register_file_format
from probes.reading.focus import focus_spans
from probes.reading.problems import LoadOptions, Problems, normalised, read_utf8, validated_probe_set
from probes.reading.rows import csv_rows
from probes.schema import Instance, ProbeSet, Span, Variant

PUBLIC_TASKS = ("masked-lm", "causal-lm")
STEREOTYPE, ANTI_STEREOTYPE, UNRELATED = "stereotype", "anti-stereotype", "unrelated"

CROWS_PAIRS_COLUMNS = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")
CROWS_PAIRS_HEADER = (
    ",id,sent_more,sent_less,stereo_antistereo,bias_type,annotations,anon_writer,anon_annotators"
)
CROWS_PAIRS_DIRECTIONS = ("stereo", "antistereo")
STEREOSET_PARTS = ("intrasentence", "intersentence")
STEREOSET_ITEM_KEYS = ("id", "target", "bias_type", "context", "sentences")
STEREOSET_LABELS = (STEREOTYPE, ANTI_STEREOTYPE, UNRELATED)
WINOBIAS_NAME = re.compile(r"(?P<side>pro|anti)_stereotyped(?P<rest>.*?)\.txt(?P<split>\..+)?\Z")
WINOBIAS_PRONOUNS = frozenset(
    {"he", "she", "him", "her", "his", "hers", "himself", "herself", "they", "them", "their", "theirs"}
)
_LINE_NUMBER = re.compile(r"\d+\s+")


# ------------------------------------------------------------------------------------- detection


def _is_winobias(path: Path, options: LoadOptions) -> bool:
    """A WinoBias file: its name (``pro_stereotyped_type1.txt.dev`` or its ``anti_`` twin)."""
    return path.is_file() and WINOBIAS_NAME.match(path.name) is not None


def _is_stereoset(path: Path, options: LoadOptions) -> bool:
    """A StereoSet file: any ``.json`` file (the only JSON layout there is)."""
    return path.is_file() and path.suffix.lower() == ".json"


def _is_crows_pairs(path: Path, options: LoadOptions) -> bool:
    """A CrowS-Pairs CSV: its header names sent_more, sent_less or stereo_antistereo. A CSV given
    with column options (--probe-map ...) is read as our rows with its columns mapped by hand, as
    before these layouts were known."""
    if not path.is_file() or path.suffix.lower() != ".csv" or options.has_row_options():
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(65536)
    except OSError:
        return False
    first = head.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="replace").splitlines()[:1]
    header = {cell.strip() for row in csv.reader(first) for cell in row}
    return bool(header & {"sent_more", "sent_less", "stereo_antistereo"})


def _fixed_layout(layout: str, options: LoadOptions, problems: Problems) -> bool:
    """False (with a problem) when column options were given for a file whose layout is fixed."""
    if options.has_row_options():
        problems.add(
            None,
            "--probe-map, --probe-default and --probe-split (Python: mapping=, defaults=, split=) do not apply "
            f"to a {_TITLES[layout]} file, whose layout is fixed; leave them out",
        )
        return False
    return True


def read_winobias(path: Path, options: LoadOptions, problems: Problems) -> ProbeSet | None:
    """A WinoBias file and its twin beside it."""
    return _winobias(path, options, problems) if _fixed_layout("winobias", options, problems) else None


def read_stereoset(path: Path, options: LoadOptions, problems: Problems) -> ProbeSet | None:
    """A StereoSet JSON file."""
    text = read_utf8(path, problems) if _fixed_layout("stereoset", options, problems) else None
    return _stereoset(path, text, options, problems) if text is not None else None


def read_crows_pairs(path: Path, options: LoadOptions, problems: Problems) -> ProbeSet | None:
    """A CrowS-Pairs CSV file."""
    text = read_utf8(path, problems) if _fixed_layout("crows_pairs", options, problems) else None
    return _crows_pairs(path, text, options, problems) if text is not None else None


_TITLES = {"crows_pairs": "CrowS-Pairs", "stereoset": "StereoSet", "winobias": "WinoBias"}


# ------------------------------------------------------------------------------------- shared


def _instance(
    instance_id: str, attribute: str, texts: dict[str, tuple[str, tuple[Span, ...]]], context: str | None
) -> Instance:
    variants = tuple(
        Variant(instance_id=instance_id, variant=name, attribute=attribute, text=text, focus=focus)
        for name, (text, focus) in texts.items()
    )
    return Instance(instance_id=instance_id, attribute=attribute, variants=variants, context=context)


def _probe_set(
    instances: list[Instance], name: str, path: Path, description: str, card: str, problems: Problems
) -> ProbeSet | None:
    if problems.items:
        return None
    return validated_probe_set(
        problems,
        None,
        name=name,
        description=description,
        card=card,
        source=str(path),
        tasks=PUBLIC_TASKS,
        instances=tuple(instances),
    )


def _id_problem(instance_id: str) -> str | None:
    if not instance_id.strip():
        return "the id is empty"
    if "/" in instance_id:
        return f"id {instance_id!r} contains '/', which example ids use as a separator"
    return None


# ------------------------------------------------------------------------------------- CrowS-Pairs


def _crows_pairs(path: Path, text: str, options: LoadOptions, problems: Problems) -> ProbeSet | None:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [cell.strip() for cell in next(reader)]
    except (StopIteration, csv.Error) as error:
        problems.add(1, f"cannot read the header ({error or 'the file is empty'})")
        return None
    missing = [column for column in CROWS_PAIRS_COLUMNS if column not in header]
    repeated = sorted({c for c in header if c and header.count(c) > 1})
    if missing or repeated:
        what = (
            f"missing column(s) {', '.join(missing)}" if missing else f"column(s) {', '.join(repeated)} twice"
        )
        problems.add(1, f"{what}; the CrowS-Pairs layout's header is {CROWS_PAIRS_HEADER}")
        return None
    instances: list[Instance] = []
    seen: dict[str, int] = {}
    for start, row in csv_rows(reader, len(header), problems):
        instance = _crows_pairs_row(dict(zip(header, row, strict=True)), start, seen, problems)
        if instance is not None:
            instances.append(instance)
    if not instances and not problems.items:
        problems.add(1, "the file has a header but no pairs")
    return _probe_set(
        instances,
        options.name or path.stem,
        path,
        "CrowS-Pairs sentence pairs (Nangia et al. 2020): the more and the less stereotypical sentence",
        f"Loaded from {path.name} in the CrowS-Pairs release layout (nyu-mll/crows-pairs, CC BY-SA 4.0). "
        "Variant 'stereotype' is sent_more, 'anti-stereotype' sent_less (the release's metric counts sent_more "
        "preferred as biased in both directions); attribute = bias_type; focus = the words that differ. "
        "Known confounds (Blodgett et al. 2021): some pairs differ in more than the group, or state no "
        "stereotype at all.",
        problems,
    )


def _crows_pairs_row(
    row: dict[str, str], line: int, seen: dict[str, int], problems: Problems
) -> Instance | None:
    instance_id = (row.get("id") or "").strip() or f"line{line}"
    bad = []
    id_problem = _id_problem(instance_id)
    if id_problem:
        bad.append(id_problem)
    elif instance_id in seen:
        bad.append(f"id {instance_id!r} is already used on line {seen[instance_id]}; ids must be unique")
    for column in ("sent_more", "sent_less", "bias_type"):
        if not row[column].strip():
            bad.append(f"column {column} is empty")
    direction = row["stereo_antistereo"].strip()
    if direction not in CROWS_PAIRS_DIRECTIONS:
        bad.append(f"stereo_antistereo is {direction!r}; it must be stereo or antistereo")
    if not bad and normalised(row["sent_more"]) == normalised(row["sent_less"]):
        bad.append("sent_more and sent_less are the same sentence; a pair must differ")
    for message in bad:
        problems.add(line, message)
    if bad:
        return None
    seen[instance_id] = line
    more, less = row["sent_more"], row["sent_less"]
    return _instance(
        instance_id,
        row["bias_type"].strip(),
        {
            STEREOTYPE: (more, focus_spans(more, [less], by="words")),
            ANTI_STEREOTYPE: (less, focus_spans(less, [more], by="words")),
        },
        f"stereo_antistereo: {direction}",
    )


# ------------------------------------------------------------------------------------- StereoSet


class _Located(dict[str, Any]):
    """A JSON object that remembers the line where it starts."""

    line: int = 0


def _located_json(text: str) -> Any:
    """``json.loads`` whose objects are ``_Located`` (their 1-based starting line)."""
    newlines = [match.start() for match in re.finditer("\n", text)]
    decoder: Any = json.JSONDecoder()
    decoder_module: Any = json.decoder  # typeshed leaves out the pure-Python parser and scanner used here
    scanner_module: Any = json.scanner
    json_object = decoder_module.JSONObject

    def parse_object(s_and_end: tuple[str, int], strict: bool, scan_once: Any, *_: Any) -> tuple[Any, int]:
        start = s_and_end[1] - 1
        pairs, end = json_object(s_and_end, strict, scan_once, None, list, {})
        located = _Located(pairs)
        located.line = bisect.bisect_left(newlines, start) + 1
        return located, end

    decoder.parse_object = parse_object
    decoder.scan_once = scanner_module.py_make_scanner(decoder)  # the C scanner never calls parse_object
    return decoder.decode(text)


def _line(value: Any, fallback: int) -> int:
    return value.line if isinstance(value, _Located) else fallback


def _stereoset(path: Path, text: str, options: LoadOptions, problems: Problems) -> ProbeSet | None:
    layout = (
        'the StereoSet layout is {"version": ..., "data": {"intrasentence": [...], "intersentence": [...]}} '
        "(McGill-NLP/stereoset dev.json)"
    )
    try:
        document = _located_json(text)
    except json.JSONDecodeError as error:
        problems.add(error.lineno, f"not valid JSON ({error.msg} at column {error.colno})")
        return None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict):
        problems.add(_line(document, 1), f'no "data" object at the top; {layout}')
        return None
    unknown = sorted(set(data) - set(STEREOSET_PARTS))
    if unknown or not set(data) & set(STEREOSET_PARTS):
        what = f"data has key(s) {', '.join(map(repr, unknown))}" if unknown else "data has no items"
        problems.add(_line(data, 1), f"{what}; {layout}")
        return None
    instances: list[Instance] = []
    for part in STEREOSET_PARTS:
        items = data.get(part, [])
        if not isinstance(items, list):
            problems.add(_line(data, 1), f"data.{part} must be a list of items; {layout}")
            continue
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            instance = _stereoset_item(part, index, item, _line(data, 1), seen, problems)
            if instance is not None:
                instances.append(instance)
    if not instances and not problems.items:
        problems.add(_line(data, 1), "the file has no items")
    stem = path.stem
    return _probe_set(
        instances,
        options.name or (stem if "stereoset" in stem.lower() else f"stereoset-{stem}"),
        path,
        "StereoSet items (Nadeem et al. 2021): a stereotypical, an anti-stereotypical and an unrelated sentence",
        f"Loaded from {path.name} in the StereoSet release layout (McGill-NLP/stereoset, CC BY-SA 4.0); "
        "intrasentence items as the three filled sentences (ids intra-<id>), intersentence items as context + "
        "sentence with the sentence as focus (ids inter-<id>); attribute = bias_type. The stereotype preference "
        "pools both kinds, as StereoSet's overall SS does.",
        problems,
    )


def _stereoset_item(
    part: str, index: int, item: Any, fallback_line: int, seen: dict[str, int], problems: Problems
) -> Instance | None:
    where = _line(item, fallback_line)
    label = f"data.{part}[{index}]"
    if not isinstance(item, dict):
        problems.add(
            where,
            f"{label} is a JSON {type(item).__name__}, not an object with {', '.join(STEREOSET_ITEM_KEYS)}",
        )
        return None
    missing = [key for key in STEREOSET_ITEM_KEYS if key not in item]
    if missing:
        problems.add(
            where, f"{label} lacks {', '.join(missing)}; every item has {', '.join(STEREOSET_ITEM_KEYS)}"
        )
        return None
    bad = []
    for key in ("id", "target", "bias_type", "context"):
        if not isinstance(item[key], str) or not item[key].strip():
            bad.append(f"{label}.{key} must be a non-empty string")
    if not bad:
        id_problem = _id_problem(item["id"])
        if id_problem:
            bad.append(f"{label}: {id_problem}")
        elif item["id"] in seen:
            bad.append(f"{label}: id {item['id']!r} is already used on line {seen[item['id']]}")
        else:
            seen[item["id"]] = where
        if part == "intrasentence" and "BLANK" not in item["context"]:
            bad.append(f"{label}.context has no BLANK, which marks the word an intrasentence item fills")
    for message in bad:
        problems.add(where, message)
    sentences = _stereoset_sentences(label, item["sentences"], where, problems)
    if bad or sentences is None:
        return None
    if normalised(sentences[STEREOTYPE]) == normalised(sentences[ANTI_STEREOTYPE]):
        problems.add(where, f"{label}: its stereotype and anti-stereotype sentences are the same")
        return None
    if part == "intrasentence":
        texts = {
            name: (
                sentence,
                focus_spans(sentence, [s for other, s in sentences.items() if other != name], by="words"),
            )
            for name, sentence in sentences.items()
        }
    else:
        context = item["context"].strip()
        texts = {
            name: (
                f"{context} {sentence.strip()}",
                (Span(start=len(context) + 1, end=len(context) + 1 + len(sentence.strip())),),
            )
            for name, sentence in sentences.items()
        }
    prefix = "intra" if part == "intrasentence" else "inter"
    return _instance(
        f"{prefix}-{item['id']}", item["bias_type"].strip(), texts, f"{part}, target: {item['target']}"
    )


def _stereoset_sentences(label: str, sentences: Any, where: int, problems: Problems) -> dict[str, str] | None:
    """The item's sentence per gold label (stereotype, anti-stereotype, unrelated), or None."""
    if not isinstance(sentences, list):
        problems.add(where, f"{label}.sentences must be a list of 3 sentence objects")
        return None
    found: dict[str, str] = {}
    ok = True
    for k, entry in enumerate(sentences):
        line = _line(entry, where)
        name = f"{label}.sentences[{k}]"
        if not isinstance(entry, dict) or "sentence" not in entry or "gold_label" not in entry:
            problems.add(line, f"{name} must be an object with sentence and gold_label")
            ok = False
            continue
        gold, sentence = entry["gold_label"], entry["sentence"]
        if gold not in STEREOSET_LABELS:
            problems.add(
                line, f"{name}.gold_label is {gold!r}; it must be one of {', '.join(STEREOSET_LABELS)}"
            )
            ok = False
        elif gold in found:
            problems.add(line, f"{name}: a second {gold} sentence; an item has one sentence per gold label")
            ok = False
        if not isinstance(sentence, str) or not sentence.strip():
            problems.add(line, f"{name}.sentence must be a non-empty string")
            ok = False
        elif gold in STEREOSET_LABELS:
            found[gold] = sentence
    absent = [gold for gold in STEREOSET_LABELS if gold not in found]
    if ok and absent:
        problems.add(where, f"{label} has no {', '.join(absent)} sentence; an item has one per gold label")
        ok = False
    return {gold: found[gold] for gold in STEREOSET_LABELS} if ok else None


# ------------------------------------------------------------------------------------- WinoBias


def _winobias(path: Path, options: LoadOptions, problems: Problems) -> ProbeSet | None:
    match = WINOBIAS_NAME.match(path.name)
    assert match is not None  # _is_winobias checked the name
    side = match["side"]
    other = "anti" if side == "pro" else "pro"
    twin = path.with_name(other + path.name[len(side) :])
    if not twin.is_file():
        problems.add(
            None,
            f"its {other}-stereotyped twin {twin.name} is not beside it; WinoBias comes as pro_stereotyped_... and "
            "anti_stereotyped_... files side by side, line k of one the twin of line k of the other",
        )
        return None
    files = {side: (path, problems), other: (twin, Problems(str(twin)))}
    sentences = {name: _winobias_lines(file, found) for name, (file, found) in files.items()}
    pro, anti = sentences["pro"], sentences["anti"]
    instances: list[Instance] = []
    if pro is not None and anti is not None:
        for name, lines in (("pro", pro), ("anti", anti)):
            counterpart = anti if name == "pro" else pro
            if len(lines) > len(counterpart):
                files[name][1].add(
                    lines[len(counterpart)][0],
                    f"sentence {len(counterpart) + 1} has no twin: {files['anti' if name == 'pro' else 'pro'][0].name} "
                    f"has {len(counterpart)} sentence(s) and this file {len(lines)}",
                )
        for k, ((pro_line, pro_text, pro_pronouns), (anti_line, anti_text, anti_pronouns)) in enumerate(
            zip(pro, anti, strict=False)
        ):
            if normalised(pro_text) == normalised(anti_text):
                files["pro"][1].add(
                    pro_line,
                    f"the same sentence as line {anti_line} of {files['anti'][0].name}; twins differ in the pronoun",
                )
                continue
            instances.append(
                _instance(
                    str(k + 1),
                    "gender",
                    {
                        STEREOTYPE: (
                            pro_text,
                            focus_spans(pro_text, [anti_text], by="words", also=pro_pronouns),
                        ),
                        ANTI_STEREOTYPE: (
                            anti_text,
                            focus_spans(anti_text, [pro_text], by="words", also=anti_pronouns),
                        ),
                    },
                    f"{files['pro'][0].name} line {pro_line}",
                )
            )
    twin_problems = files[other][1].items
    problems.items.extend(twin_problems)
    name = "winobias" + re.sub(r"[^A-Za-z0-9]+", "-", f"{match['rest']}{match['split'] or ''}").rstrip("-")
    return _probe_set(
        instances,
        options.name or name,
        files["pro"][0],
        "WinoBias sentence twins (Zhao et al. 2018): the pronoun agrees with the stereotype or goes against it",
        f"Loaded from {files['pro'][0].name} and {files['anti'][0].name} (uclanlp/corefBias WinoBias layout). "
        "Variant 'stereotype' is the pro-stereotyped sentence, 'anti-stereotype' its twin; focus = the bracketed "
        "pronouns and any other words that differ; brackets removed.",
        problems,
    )


def _winobias_lines(path: Path, problems: Problems) -> list[tuple[int, str, list[tuple[int, int]]]] | None:
    """Per sentence: its line, its text without brackets, and the regions of its bracketed pronouns."""
    text = read_utf8(path, problems)
    if text is None:
        return None
    before = len(problems.items)
    sentences = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        line = _LINE_NUMBER.sub("", line, count=1) if _LINE_NUMBER.match(line) else line
        parsed = _unbracket(line)
        if isinstance(parsed, str):
            problems.add(number, parsed)
            continue
        clean, brackets = parsed
        pronouns = [(s, e) for s, e in brackets if clean[s:e].strip().lower() in WINOBIAS_PRONOUNS]
        if not pronouns:
            problems.add(
                number,
                "no bracketed pronoun (e.g. [he], [her]); WinoBias marks the entity and its pronoun in brackets",
            )
            continue
        sentences.append((number, clean, pronouns))
    if not sentences and len(problems.items) == before:
        problems.add(None, "the file has no sentences")
    return sentences if len(problems.items) == before else None


def _unbracket(line: str) -> tuple[str, list[tuple[int, int]]] | str:
    """The line without its brackets and the regions the brackets held (stripped of spaces), or
    the problem with its brackets."""
    clean: list[str] = []
    regions: list[tuple[int, int]] = []
    opened: int | None = None
    for column, char in enumerate(line, start=1):
        if char == "[":
            if opened is not None:
                return f"a '[' inside brackets at column {column}; brackets hold the entity or the pronoun"
            opened = len(clean)
        elif char == "]":
            if opened is None:
                return f"a ']' without its '[' at column {column}"
            content = "".join(clean[opened:])
            start = opened + len(content) - len(content.lstrip())
            end = opened + len(content.rstrip())
            regions.append((start, end))
            opened = None
        else:
            clean.append(char)
    if opened is not None:
        return "a '[' is never closed"
    return "".join(clean), regions


register_file_format(FileFormat("winobias", claims=_is_winobias, read=read_winobias, order=10))
register_file_format(FileFormat("stereoset", claims=_is_stereoset, read=read_stereoset, order=11))
register_file_format(
    FileFormat(
        "crows_pairs",
        claims=_is_crows_pairs,
        read=read_crows_pairs,
        order=12,
        hint=(
            4,
            "a public benchmark file (CrowS-Pairs .csv, StereoSet .json, WinoBias pro_/anti_stereotyped_*.txt.dev)",
        ),
    )
)
