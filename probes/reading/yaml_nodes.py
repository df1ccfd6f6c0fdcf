"""Reading YAML probe files node by node, so that every problem names its line: the line of a
node, mappings (repeated keys reported), texts exactly as written, lists of distinct texts, whole
numbers, and the keys several YAML kinds share (card / card_file, in_default_run, a file named
next to the YAML file)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from probes.reading.problems import Problems, read_utf8

Entries = dict[str, tuple[yaml.Node, yaml.Node]]
"""A YAML mapping's entries by key: (key node, value node)."""

NULL_TAG = "tag:yaml.org,2002:null"
INT_TAG = "tag:yaml.org,2002:int"
FLOAT_TAG = "tag:yaml.org,2002:float"
SCALARS = yaml.constructor.SafeConstructor()
"""Turns a scalar node into its Python value (``construct_yaml_int`` ...)."""


def node_line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "text"


def node_mapping(node: yaml.Node, what: str, problems: Problems) -> Entries | None:
    """A YAML mapping's entries by key (reporting repeated and non-text keys), or None if not a mapping."""
    if not isinstance(node, yaml.MappingNode):
        problems.add(node_line(node), f"{what} must be a mapping (key: value lines), not {node_kind(node)}")
        return None
    entries: Entries = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            problems.add(node_line(key), f"{what} has a key that is not text")
            continue
        if key.value in entries:
            problems.add(
                node_line(key),
                f"{what} repeats the key {key.value!r} (first on line {node_line(entries[key.value][0])}); "
                "YAML would keep only the last one, so remove or rename one",
            )
            continue
        entries[key.value] = (key, value)
    return entries


def report_unknown_keys(entries: Entries, known: Iterable[str], what: str, problems: Problems) -> None:
    for key, (key_node, _) in entries.items():
        if key not in known:
            problems.add(
                node_line(key_node), f"{what} has an unknown key {key!r} (known keys: {', '.join(known)})"
            )


def mapping_items(
    node: yaml.SequenceNode, noun: str, known: Iterable[str], problems: Problems
) -> Iterator[tuple[yaml.Node, str, Entries]]:
    """The mappings of a YAML list, each as (node, "<noun> <number>", its entries), its unknown keys
    reported; an item that is not a mapping is reported and skipped."""
    for number, item in enumerate(node.value, start=1):
        what = f"{noun} {number}"
        entries = node_mapping(item, what, problems)
        if entries is None:
            continue
        report_unknown_keys(entries, known, what, problems)
        yield item, what, entries


def node_text(node: yaml.Node, what: str, problems: Problems) -> str | None:
    """A scalar's text exactly as written (``no`` stays "no"), or None with a problem."""
    if not isinstance(node, yaml.ScalarNode):
        problems.add(node_line(node), f"{what} must be text, not {node_kind(node)}")
        return None
    if node.tag == NULL_TAG or not node.value.strip():
        problems.add(node_line(node), f"{what} is empty; write a value or remove the key")
        return None
    return str(node.value)


def node_text_list(node: yaml.Node, what: str, problems: Problems) -> list[str] | None:
    """The distinct texts of a list (problems reported, duplicates dropped); None when none is usable."""
    if not isinstance(node, yaml.SequenceNode):
        problems.add(node_line(node), f"{what} must be a list of texts, not {node_kind(node)}")
        return None
    if not node.value:
        problems.add(node_line(node), f"{what} is an empty list; give at least one value")
        return None
    values: list[str] = []
    for item in node.value:
        value = node_text(item, f"an item of {what}", problems)
        if value is not None and value in values:
            problems.add(node_line(item), f"{what} repeats {value!r}; remove the duplicate")
        elif value is not None:
            values.append(value)
    return values or None


def node_shown(node: yaml.Node) -> str:
    return repr(node.value) if isinstance(node, yaml.ScalarNode) else node_kind(node)


def node_whole_number(node: yaml.Node, what: str, minimum: int, problems: Problems) -> int | None:
    """A YAML integer of at least ``minimum``, or None with a problem."""
    if not isinstance(node, yaml.ScalarNode) or node.tag != INT_TAG:
        problems.add(node_line(node), f"{what} must be a whole number, not {node_shown(node)}")
        return None
    value = int(SCALARS.construct_yaml_int(node))
    if value < minimum:
        problems.add(node_line(node), f"{what} is {value}; it must be at least {minimum}")
        return None
    return value


def read_in_default_run(top: Entries, problems: Problems) -> bool:
    """The file's ``in_default_run`` (default true): false keeps a built-in set out of the audit run
    with no probes named."""
    if "in_default_run" not in top:
        return True
    node = top["in_default_run"][1]
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:bool":
        return bool(SCALARS.construct_yaml_bool(node))
    problems.add(node_line(node), f"in_default_run must be true or false, not {node_shown(node)}")
    return True


def read_card(path: Path, top: Entries, problems: Problems) -> str | None:
    if "card" in top and "card_file" in top:
        problems.add(
            node_line(top["card_file"][0]), "give either card (inline text) or card_file (a path), not both"
        )
        return None
    if "card" in top:
        return node_text(top["card"][1], "card", problems)
    if "card_file" not in top:
        return ""
    relative = node_text(top["card_file"][1], "card_file", problems)
    if relative is None:
        return None
    card_path = path.parent / relative
    try:
        return card_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "it is not UTF-8"
        problems.add(
            node_line(top["card_file"][1]),
            f"cannot read card_file {relative!r} ({reason}); the path is relative to this YAML file",
        )
        return None


def read_named_file(path: Path, top: Entries, key: str, problems: Problems) -> tuple[Path, str] | None:
    """The file a ``*_file`` key names (relative to the YAML file) and its text; None with a problem."""
    relative = node_text(top[key][1], key, problems)
    if relative is None:
        return None
    named = path.parent / relative
    if not named.is_file():
        problems.add(
            node_line(top[key][1]),
            f"cannot read {key} {relative!r} (no such file); the path is relative to this YAML file",
        )
        return None
    own = Problems(str(named))
    text = read_utf8(named, own)
    problems.items.extend(own.items)
    return (named, text) if text is not None else None
