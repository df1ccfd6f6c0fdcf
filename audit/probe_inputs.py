"""One probe set as the model reads it (``ProbeInputs``: its variants encoded, with its score head)
and as the model scored it (``SetScores``).

The encode and score stages make them; the probe kinds, the attribution of chosen variants
(audit/attribution/variants.py) and the later stages read them. They live below all of these, so
that a kind or an attribution helper needs no stage module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audit.batching import Encoded
from audit.targets import ScoreHead
from audit.tokenization import TokenCounts
from audit.windows import EncodedText
from probes.schema import ProbeSet


@dataclass
class ProbeInputs:
    """One probe set's variants, encoded for the model, with its score head."""

    probe_set: ProbeSet
    head: ScoreHead
    example_ids: list[str]
    texts: list[EncodedText]
    """Per variant: its model input, or its sliding windows (audit/windows.py)."""
    focus_lost: list[bool]
    """Per variant: it has focus spans, but truncation cut every focus token off."""
    inputs_identical: list[bool]
    """Per variant: every variant of its instance has the same input ids."""
    focus_partly_lost: list[bool]
    """Per variant: truncation cut off part of its focus span (some of it reached the model)."""
    coverage: list[TokenCounts]
    """Per variant: how the tokenizer covers its whole text (audit/tokenization.py)."""

    @property
    def name(self) -> str:
        return self.probe_set.name

    def windows(self, indices: list[int]) -> tuple[list[Encoded], list[int]]:
        """The model inputs of these variants (a text's one input, or its windows) and which
        variant each belongs to."""
        inputs: list[Encoded] = []
        owners: list[int] = []
        for i in indices:
            inputs.extend(self.texts[i].windows)
            owners.extend([i] * len(self.texts[i].windows))
        return inputs, owners


@dataclass
class SetScores:
    """One probe set's scores: (variants, outputs), and per variant its windows' scores."""

    scores: np.ndarray
    window_scores: list[np.ndarray]
