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
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from audit.errors import ProbeFileError, Problem, UserError
from probes.loaders import list_builtin, load_builtin
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
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        line = getattr(getattr(error, "problem_mark", None), "line", None)
        raise ProbeFileError(
            [Problem(str(path), None if line is None else line + 1, f"cannot read: {error}")]
        ) from None
    items = document.get("associations") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        raise ProbeFileError([Problem(str(path), 1, "expected a top-level 'associations:' list")])
    problems, associations = [], []
    for index, item in enumerate(items, start=1):
        try:
            associations.append(Association.model_validate(item))
        except ValidationError as error:
            for e in error.errors():
                where = ".".join(str(p) for p in e["loc"]) or "entry"
                problems.append(Problem(str(path), None, f"association {index}: {where}: {e['msg']}"))
    if problems:
        raise ProbeFileError(problems)
    return tuple(associations)
