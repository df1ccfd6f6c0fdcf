"""What every target adapter provides: the scores the findings compare, as one differentiable function.

A target wraps a loaded model for one task. For each probe set it builds a ``ScoreHead``: the
names of its outputs and a function from token ids to a (batch, n_outputs) tensor. The runner
scores variants with that function, and Captum explains a column of the very same function, so
what is explained is exactly what is compared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from audit.loaded_model import LoadedModel
from probes.schema import Instance, ProbeSet

ScoreFunction = Callable[..., torch.Tensor]
"""(input_ids, attention_mask[, variant_index]) -> scores of shape (batch, n_outputs).

``variant_index`` (batch,) says which variant of the probe set each row is (a window: its text's).
The runner always passes it; heads that score a part of the text (a masked LM's shared tokens, a
translation's target, an answer span) look their per-variant data up by it. Captum passes it as
an additional forward argument, expanded along the batch exactly like the attention mask."""


@dataclass
class ScoreHead:
    """The scores of one probe set under one target."""

    outputs: list[str]
    forward: ScoreFunction
    predict_labels: Callable[[np.ndarray], list[str | None]]
    """From a (batch, n_outputs) score array, the predicted label of each row (None if no labels)."""
    attribution_output: Callable[[list[str | None], np.ndarray], str]
    """Which output to explain for an instance, given its variants' expected labels and scores."""
    compared_outputs: list[str] | None = None
    """The outputs the findings test (default: all). A binary classifier's two probabilities sum
    to one, so only the second label's is tested: testing both would count one test twice."""
    notes: dict[str, Any] = field(default_factory=dict)
    key_outputs: Callable[[Instance], list[str]] | None = None
    """Long-document instances: the output(s) its key sentence should move (default: the tested ones)."""
    preference_outputs: list[str] = field(default_factory=list)
    """Outputs on which sets with "stereotype" and "anti-stereotype" variants (CrowS-Pairs, StereoSet,
    WinoBias) also get a stereotype_preference finding: how often the stereotype scores higher
    (audit/metrics/preference.py). Empty: no such finding (e.g. a masked LM sets ["pll"])."""

    @property
    def tested_outputs(self) -> list[str]:
        return self.outputs if self.compared_outputs is None else self.compared_outputs

    def outputs_of(self, instance: Instance) -> list[str]:
        """The outputs compared for one instance."""
        return self.key_outputs(instance) if self.key_outputs is not None else self.tested_outputs


class Target(ABC):
    """A loaded model for one task. Subclasses implement ``head``."""

    task: str = ""
    windows_supported: bool = True
    """Whether texts longer than the model may be scored as sliding windows (--long-inputs window);
    a head whose per-variant data is computed on the whole text (a masked LM's masks) says False."""

    def __init__(self, model: nn.Module, tokenizer: Any, device: torch.device, max_length: int) -> None:
        self.model: Any = model  # a transformers PreTrainedModel (typed loosely: its methods are dynamic)
        self.tokenizer = tokenizer
        self.device = device
        self.max_length = max_length

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, device: torch.device) -> Target:
        """The adapter for a loaded model (``audit.targets.build_target`` calls it). An adapter whose
        constructor takes more than the model, tokenizer, device and length overrides it."""
        return cls(loaded.model, loaded.tokenizer, device, loaded.max_length)

    @abstractmethod
    def head(self, probe_set: ProbeSet) -> ScoreHead:
        """Build the score function for one probe set (may embed anchor sets once)."""

    @abstractmethod
    def check_probe_set(self, probe_set: ProbeSet) -> list[str]:
        """Problems that make this probe set unusable with this target (empty when compatible)."""

    def prepare(self, probe_set: ProbeSet) -> ProbeSet:
        """The probe set as this model reads it, before anything is encoded (default: unchanged).
        The question-answering target writes its tokenizer's pair separator into multiple-choice texts."""
        return probe_set

    def embedding_layer(self) -> nn.Module:
        """The token embedding module Captum attributes through."""
        return self.model.get_input_embeddings()

    def transformer(self) -> nn.Module:
        """The module whose attention layers the attention statistics read."""
        return self.model

    def attention_unavailable(self) -> str | None:
        """Why attention statistics cannot be read from this model (None: they can); the runner
        skips the attention step and records this as a warning."""
        return None

    @property
    def has_attention(self) -> bool:
        return self.attention_unavailable() is None
