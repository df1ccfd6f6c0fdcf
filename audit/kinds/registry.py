"""The probe kinds, in the order their rows join the effects and findings tables."""

from __future__ import annotations

from typing import Any

import pandas as pd

from audit.kinds.base import Kind
from audit.kinds.counterfactual import Counterfactual
from audit.kinds.long_document import LongDocument
from audit.kinds.multiple_choice import MultipleChoice
from audit.kinds.parallel import Parallel
from probes.schema import ProbeSet

KINDS: dict[str, Kind] = {
    kind.name: kind for kind in (Counterfactual(), Parallel(), LongDocument(), MultipleChoice())
}


def kind_of(probe_set: ProbeSet) -> Kind:
    return KINDS[probe_set.kind]


def summary_lines(findings: pd.DataFrame, manifest: dict[str, Any]) -> list[str]:
    """Every kind's summary lines for the CLI, kind by kind in their ``summary_order``."""
    ordered = sorted(KINDS.values(), key=lambda kind: kind.summary_order)
    return [line for kind in ordered for line in kind.summary_lines(findings, manifest)]
