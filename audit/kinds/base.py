"""What a probe kind is to the runner: a ``Kind`` compares its sets' variants, may add
explanations, chooses the variants whose attention is measured, and writes its CLI summary lines.

The stages loop over the kinds of audit/kinds/registry.py; a kind sees only its own probe sets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd
from rich.progress import Progress

from audit.config import AuditConfig
from audit.kinds.names import ProbeKind
from audit.probe_inputs import ProbeInputs, SetScores
from audit.stages.state import Compared, Generated
from audit.targets import Target
from probes.schema import ProbeSet


@dataclass
class Evidence:
    """What every kind's comparison reads."""

    examples: pd.DataFrame
    predictions: pd.DataFrame
    target: Target
    config: AuditConfig
    generated: Generated


@dataclass
class Comparison:
    """One kind's comparison of its sets' variants."""

    effects: pd.DataFrame
    findings: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    """Warnings for the run (instances left out, and why)."""
    left_out: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per reason, per probe set: instances left out of effects and findings."""
    unreadable_languages: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per probe set: languages the model cannot read (parallel sets)."""


@dataclass
class Explaining:
    """What a kind's extra explanations read."""

    examples: pd.DataFrame
    compared: Compared
    attributions: pd.DataFrame
    """The token attributions of the top instances (every kind's with ``attributes_top_instances``)."""
    scores: Mapping[str, SetScores]
    target: Target
    config: AuditConfig
    bars: Progress


@dataclass
class Explanation:
    """A kind's extra explanations: rows for the findings, segment and token attributions."""

    findings: pd.DataFrame | None = None
    segments: pd.DataFrame | None = None
    tokens: pd.DataFrame | None = None


class Kind(ABC):
    """A probe kind; subclasses set ``name`` to the probe-set kind (audit.kinds.names.ProbeKind)."""

    name: ClassVar[ProbeKind]
    in_default_run: ClassVar[bool] = True
    """Its built-in sets run when no probes are named (long documents are asked for by name)."""
    always_compared: ClassVar[bool] = False
    """Compared even without sets of its own (the counterfactual comparison: its effects and
    findings tables are the ones every other kind's rows join)."""
    attributes_top_instances: ClassVar[bool] = True
    """The explain stage attributes the tokens of its instances with the largest effects."""
    pairs_focus_attributions: ClassVar[bool] = True
    """Those attributions are weighed on the focus tokens of each pair of variants (languages
    have no swapped words to weigh against each other)."""
    summary_order: ClassVar[int] = 0
    """Where its CLI summary lines come among the kinds'."""

    @abstractmethod
    def compare(self, sets: list[ProbeInputs], evidence: Evidence) -> Comparison:
        """Effects and findings of its sets (called with none only when ``always_compared``)."""

    def explain(self, sets: list[ProbeInputs], explaining: Explaining) -> Explanation:
        """Explanations beyond the top instances' token attributions (none by default)."""
        return Explanation()

    def attention_variants(self, item: ProbeInputs) -> list[int]:
        """Variants whose attention is measured: all of them by default."""
        return list(range(len(item.texts)))

    def manifest_entry(self, probe_set: ProbeSet, config: AuditConfig) -> dict[str, Any]:
        """What the manifest records of one of its sets beyond name, kind, source, hash and counts."""
        return {}

    def summary_lines(self, findings: pd.DataFrame, manifest: dict[str, Any]) -> list[str]:
        """Lines the CLI prints under the findings table for its sets."""
        return []
