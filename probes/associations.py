"""Association sets (SEAT/WEAT style) given apart from a probe file, for embedding audits of
probe sets that cannot hold them (CSV/JSONL rows, datasets).

A spec is a built-in probe set's name (its associations are borrowed) or a YAML file:

    associations:
      - name: career_vs_family
        a_name: career
        b_name: family
        a: [executive, management, professional, corporation, salary, office, business, career]
        b: [home, parents, children, family, cousins, marriage, wedding, relatives]
        source: "WEAT 6, Caliskan et al. 2017"

The list is read by the same parser as a template file's ``associations:`` (every problem at its
line).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from audit.errors import ProbeFileError, Problem, UserError
from probes.loaders import list_builtin, load_builtin
from probes.reading.associations import parse_associations
from probes.reading.problems import Problems
from probes.schema import Association


def load_associations(spec: str | Path) -> tuple[Association, ...]:
    """The associations of a built-in set (by name) or of a YAML file (see the module docstring)."""
    path = Path(spec)
    if not path.exists():
        if str(spec) in list_builtin():
            return load_builtin(str(spec)).associations
        raise UserError(
            f"{spec} is neither an associations file nor a built-in probe set ({', '.join(list_builtin())})"
        )
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        line = getattr(getattr(error, "problem_mark", None), "line", None)
        raise ProbeFileError(
            [Problem(str(path), None if line is None else line + 1, f"cannot read: {error}")]
        ) from None
    entries = root.value if isinstance(root, yaml.MappingNode) else []
    # the last 'associations' key, as YAML keeps it
    node = next((value for key, value in reversed(entries) if key.value == "associations"), None)
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise ProbeFileError([Problem(str(path), 1, "expected a top-level 'associations:' list")])
    problems = Problems(str(path))
    associations = parse_associations(node, problems)
    if problems.items or not associations:
        raise ProbeFileError(problems.items or [Problem(str(path), 1, "no usable association")])
    return tuple(associations)
