"""The ``associations:`` list (SEAT/WEAT-style word sets an embedding audit compares each variant
with), read from its YAML node: in a template probe file, or in a file of associations alone
(``--associations FILE``, probes/associations.py)."""

from __future__ import annotations

import yaml

from probes.reading.problems import Problems
from probes.reading.yaml_nodes import (
    mapping_items,
    node_kind,
    node_line,
    node_text,
    node_text_list,
)
from probes.schema import Association

ASSOCIATION_KEYS = ("name", "a_name", "b_name", "a", "b", "source")


def parse_associations(node: yaml.Node, problems: Problems) -> list[Association] | None:
    """The usable associations of the list (every problem reported at its line); None when the node
    is not a list."""
    if not isinstance(node, yaml.SequenceNode):
        problems.add(node_line(node), f"associations must be a list of mappings, not {node_kind(node)}")
        return None
    associations: list[Association] = []
    names: dict[str, int] = {}
    for item, what, entries in mapping_items(node, "association", ASSOCIATION_KEYS, problems):
        missing = [k for k in ("name", "a_name", "b_name", "a", "b") if k not in entries]
        if missing:
            problems.add(
                node_line(item), f"{what} misses {', '.join(missing)} (needs name, a_name, b_name, a, b)"
            )
            continue
        name = node_text(entries["name"][1], f"name of {what}", problems)
        a_name = node_text(entries["a_name"][1], f"a_name of {what}", problems)
        b_name = node_text(entries["b_name"][1], f"b_name of {what}", problems)
        source = (
            node_text(entries["source"][1], f"source of {what}", problems) if "source" in entries else None
        )
        a = node_text_list(entries["a"][1], f"set a of {what}", problems)
        b = node_text_list(entries["b"][1], f"set b of {what}", problems)
        if name is not None:
            if name in names:
                problems.add(
                    node_line(item), f"association name {name!r} is already used on line {names[name]}"
                )
            names[name] = node_line(item)
        ok = True
        for side, words in (("a", a), ("b", b)):
            if words is not None and len(words) < 2:
                problems.add(
                    node_line(entries[side][1]),
                    f"set {side} of {what} has {len(words)} word(s); give at least 2",
                )
                ok = False
        if a is not None and b is not None:
            shared = [w for w in a if w in b]
            if shared:
                problems.add(
                    node_line(entries["b"][1]),
                    f"sets a and b of {what} share {', '.join(shared)}; a word cannot stand for both sides",
                )
                ok = False
        if ok and name is not None and a_name is not None and b_name is not None and a and b:
            associations.append(
                Association(name=name, a_name=a_name, b_name=b_name, a=tuple(a), b=tuple(b), source=source)
            )
    return associations
