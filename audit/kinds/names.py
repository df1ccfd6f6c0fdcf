"""The names of the probe kinds: one vocabulary for the probe files, the runner's kinds, the metric
catalogue (whose BH families are named after them), the CLI and the dashboard.

Imports nothing but ``typing``: probes/schema.py, the metric catalogue and the dashboard read it
without pulling in numpy, pandas or pydantic.
"""

from __future__ import annotations

from typing import Literal, get_args

ProbeKind = Literal["counterfactual", "long_document", "parallel", "multiple_choice"]
"""A probe set's ``kind`` (probes.schema.ProbeSet.kind)."""

PROBE_KINDS: tuple[ProbeKind, ...] = get_args(ProbeKind)
"""Every probe kind, in the order of ``ProbeKind``."""

COUNTERFACTUAL: ProbeKind = "counterfactual"
LONG_DOCUMENT: ProbeKind = "long_document"
PARALLEL: ProbeKind = "parallel"
MULTIPLE_CHOICE: ProbeKind = "multiple_choice"
