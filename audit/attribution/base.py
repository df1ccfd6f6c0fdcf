"""The Attributor interface, its settings and results, and the registry of methods.

An attributor explains one column of a score function ``forward(input_ids, attention_mask[,
variant_index]) -> (batch, n_outputs)`` (a ``ScoreHead.forward``) through the model's token embedding layer: one
number per token, summed over the embedding dimension.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from audit.attribution.integrated import IntegrationSettings
from audit.errors import UserError

ScoreFunction = Callable[..., torch.Tensor]
"""(input_ids, attention_mask[, variant_index]) -> (batch, n_outputs); the same shape as ``audit.targets.base.ScoreFunction``
(not imported from there so that this package does not pull in every target adapter)."""


@dataclass(frozen=True)
class AttributionSettings:
    """Knobs shared by the methods; each method uses the ones that apply to it."""

    integration: IntegrationSettings = field(default_factory=IntegrationSettings)
    """How integrated gradients integrates along the path (steps, cap, tolerance, rule, rows per pass);
    its ``internal_batch_size`` also bounds the rows of gradient x input's passes."""
    baseline_token_id: int = 0
    """Token that replaces every non-special token in the baseline (the pad token)."""


@dataclass
class BatchAttribution:
    """What an attributor returns for a padded batch (tensors on the model's device)."""

    attributions: torch.Tensor
    """(batch, tokens): attribution per token, zero at padding."""
    scores: torch.Tensor
    """(batch,): the explained output f(x)."""
    baseline_scores: torch.Tensor | None
    """(batch,): f(baseline), for methods with a baseline."""
    convergence_delta: torch.Tensor | None
    """(batch,): sum of attributions - (f(x) - f(baseline)); None for gradient-only methods."""
    n_steps: torch.Tensor | None = None
    """(batch,): integration steps used; None for methods without a path."""
    completeness_error: torch.Tensor | None = None
    """(batch,): |convergence_delta| / max(|f(x) - f(baseline)|, floor); None without a baseline."""
    converged: torch.Tensor | None = None
    """(batch,): completeness_error within the tolerance; None without a baseline."""


@dataclass(frozen=True)
class TokenAttribution:
    """One example's attributions, padding stripped (one value per real token, special tokens included)."""

    method: str
    output_index: int
    input_ids: np.ndarray
    attributions: np.ndarray
    score: float
    baseline_score: float | None
    convergence_delta: float | None
    n_steps: int | None = None
    completeness_error: float | None = None
    converged: bool | None = None


class Attributor(ABC):
    """One attribution method bound to a score function and an embedding layer."""

    name: ClassVar[str] = ""
    has_convergence_delta: ClassVar[bool] = False

    def __init__(
        self, forward: ScoreFunction, embedding_layer: nn.Module, settings: AttributionSettings
    ) -> None:
        self.forward = forward
        self.embedding_layer = embedding_layer
        self.settings = settings

    @abstractmethod
    def attribute(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        special_mask: torch.Tensor,
        output_index: torch.Tensor,
        variant_index: torch.Tensor | None = None,
    ) -> BatchAttribution:
        """Attribute column ``output_index[b]`` of row b; all inputs are (batch, tokens) except
        output_index and variant_index (batch,); variant_index is passed on to the score function."""

    def explained_scores(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        output_index: torch.Tensor,
        variant_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """f(x): the explained column of each row, without gradients."""
        with torch.no_grad():
            scores = self.forward(input_ids, *forward_args(attention_mask, variant_index))
        return scores.gather(1, output_index[:, None]).squeeze(1).float()


def forward_args(
    attention_mask: torch.Tensor, variant_index: torch.Tensor | None
) -> tuple[torch.Tensor, ...]:
    """The score function's arguments after the input ids (Captum's ``additional_forward_args``)."""
    return (attention_mask,) if variant_index is None else (attention_mask, variant_index)


_METHODS: dict[str, type[Attributor]] = {}


def register_method(name: str) -> Callable[[type[Attributor]], type[Attributor]]:
    """Class decorator: make an Attributor available under ``name``."""

    def add(cls: type[Attributor]) -> type[Attributor]:
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(
                f"attribution method {name!r} is already registered by {_METHODS[name].__name__}"
            )
        cls.name = name
        _METHODS[name] = cls
        return cls

    return add


def list_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> type[Attributor]:
    try:
        return _METHODS[name]
    except KeyError:
        raise UserError(f"unknown attribution method {name!r}; choose one of {list_methods()}") from None
