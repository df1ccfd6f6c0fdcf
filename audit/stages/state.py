"""What a run knows: each stage's result, and the RunState that carries them between stages.

Stage boundaries are where a run could be persisted: every result below is a self-contained record
of tables and values (the score heads are the one exception: they are rebuilt from the target and
the probe set, ``Target.head``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import pandas as pd
import torch

from audit.config import AuditConfig
from audit.generation import GenerationPlan, GenerationResult
from audit.loaded_model import LoadedModel
from audit.metrics.translation import TranslationPlan, TranslationResult
from audit.probe_inputs import ProbeInputs, SetScores
from audit.tables import TABLES
from audit.targets import Target
from audit.windows import LongInputPolicy
from probes.schema import ProbeSet

R = TypeVar("R")


@dataclass
class Prepared:
    """prepare: everything checked before the run folder exists (audit/stages/prepare.py)."""

    device: torch.device
    loaded: LoadedModel
    target: Target
    probe_sets: list[ProbeSet]
    """Fully validated, long documents built for this model, prepared by the target."""
    policy: LongInputPolicy
    attention_unavailable: str | None
    """Why attention statistics cannot be read from this model (None: they can, or none were asked for)."""


@dataclass
class Encoding:
    """encode: every probe set's encoded variants and the examples table (audit/stages/encode.py)."""

    sets: list[ProbeInputs]
    examples: pd.DataFrame


@dataclass
class OutputPlans:
    """What the generate stage will make, checked before the run folder exists: continuations of
    a causal LM (--generate), or a seq2seq model's translations (None: neither)."""

    generation: GenerationPlan | None = None
    translation: TranslationPlan | None = None


@dataclass
class Scored:
    """score: the predictions table and each probe set's score matrix (audit/stages/score.py)."""

    predictions: pd.DataFrame
    sets: dict[str, SetScores]


@dataclass
class Generated:
    """generate: what the model generated (audit/stages/generate.py)."""

    predictions: pd.DataFrame
    """The predictions table: the scores, and the gen:* scores of generated continuations."""
    generation: GenerationResult | None = None
    translation: TranslationResult | None = None

    @property
    def table(self) -> pd.DataFrame:
        """The generations table (empty when nothing was generated)."""
        if self.generation is not None:
            return self.generation.table
        if self.translation is not None:
            return self.translation.table
        return pd.DataFrame(columns=TABLES["generations"])

    @property
    def manifest(self) -> dict[str, Any] | None:
        made = self.generation or self.translation
        return made.manifest if made is not None else None

    @property
    def warnings(self) -> list[str]:
        made = self.generation or self.translation
        return list(made.warnings) if made is not None else []

    @property
    def tested_outputs(self) -> list[str]:
        """Outputs compared like the scores: the gen:* scores of generated continuations."""
        return list(self.generation.tested_outputs) if self.generation is not None else []


@dataclass
class Compared:
    """compare: every kind's effects and findings, joined (audit/stages/compare.py)."""

    effects: pd.DataFrame
    findings: pd.DataFrame
    left_out: dict[str, dict[str, int]]
    """Per reason, per probe set: instances left out of effects and findings."""
    unreadable_languages: dict[str, dict[str, float]]
    """Per parallel set: the languages the model cannot read, with their unknown-token rate."""
    n_underpowered: int
    warnings: list[str]


@dataclass
class Explained:
    """explain: attributions, and the findings explanations add (audit/stages/explain.py)."""

    attributions: pd.DataFrame
    attribution_pairs: pd.DataFrame
    segments: pd.DataFrame
    findings: pd.DataFrame
    """The compare stage's findings with the rows explanations add (content-word shares)."""
    warnings: list[str] = field(default_factory=list)
    pair_attributions: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=TABLES["pair_attributions"])
    )
    """What explains each attributed pair's difference (audit/attribution/contrast.py)."""


@dataclass
class Patched:
    """patch (--patching): activation patching of the attributed pairs (audit/stages/patch.py)."""

    patching: pd.DataFrame
    effects: pd.DataFrame
    """The patching_effects table: per probe set, layer and relative position, over instances."""
    warnings: list[str] = field(default_factory=list)


@dataclass
class AttentionStats:
    """attention: per example, layer and head, the attention statistics (audit/stages/attention.py)."""

    attention: pd.DataFrame


@dataclass
class RunState:
    """One run: its settings, what was prepared and encoded before the run folder existed, and each
    later stage's result as it completes (None until then)."""

    config: AuditConfig
    prepared: Prepared
    encoding: Encoding
    plans: OutputPlans
    scored: Scored | None = None
    generated: Generated | None = None
    compared: Compared | None = None
    explained: Explained | None = None
    patched: Patched | None = None
    attention: AttentionStats | None = None


def ready(result: R | None, stage: str) -> R:
    """A stage's result, which a later stage needs: the pipeline runs them in order."""
    if result is None:
        raise RuntimeError(f"the {stage} stage has not run yet")
    return result
