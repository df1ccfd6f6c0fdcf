"""YAML probe files (``.yaml`` / ``.yml``): the file is read node by node and handed, by its
``kind:`` (templates when there is none), to the YAML kind registered under that name."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from audit.kinds.names import PROBE_KINDS
from probes.formats import FileFormat, register_file_format, yaml_kind
from probes.reading.problems import LoadOptions, Problems, read_utf8
from probes.reading.yaml_nodes import Entries, node_line, node_mapping, node_text
from probes.schema import ProbeSet

YAML_EXTENSIONS = (".yaml", ".yml")


def read_yaml_file(path: Path, options: LoadOptions, problems: Problems) -> ProbeSet | None:
    """A YAML probe file of any registered kind."""
    if options.has_row_options():
        problems.add(
            None,
            "--probe-map, --probe-default and --probe-split (Python: mapping=, defaults=, split=) apply "
            "to CSV/JSONL files and datasets, not to YAML templates; leave them out",
        )
        return None
    text = read_utf8(path, problems)
    if text is None:
        return None
    top = _top_mapping(text, problems)
    if top is None:
        return None
    kind = _kind_of(top, problems)
    reader = yaml_kind(kind) if kind is not None else None
    return reader.read(path, top, options, problems) if reader is not None else None


def _top_mapping(text: str, problems: Problems) -> Entries | None:
    """The file's top-level mapping, or None with a problem (bad YAML, an empty file, not a mapping)."""
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
    return node_mapping(root, "the file", problems)


def _kind_of(top: Entries, problems: Problems) -> str | None:
    """The file's ``kind`` (default counterfactual) when a YAML kind of that name is registered;
    otherwise None with a problem."""
    if "kind" not in top:
        return "counterfactual"
    node = top["kind"][1]
    if isinstance(node, yaml.ScalarNode) and yaml_kind(node.value) is not None:
        return str(node.value)
    value = node_text(node, "kind", problems)
    if value is None:
        return None
    problems.add(
        node_line(node),
        f"kind {value!r} is not known; use {' or '.join(PROBE_KINDS)} (leave it out for templates)",
    )
    return None


register_file_format(
    FileFormat(
        "yaml",
        claims=lambda path, options: not path.is_dir() and path.suffix.lower() in YAML_EXTENSIONS,
        read=read_yaml_file,
        order=30,
        hint=(1, ".yaml/.yml (templates)"),
    )
)
