"""The attribution methods: Captum layer methods on the token embedding layer."""

from __future__ import annotations

import torch
from captum.attr import LayerGradientXActivation

from audit.attribution.base import Attributor, BatchAttribution, forward_args, register_method
from audit.attribution.integrated import integrated_gradients


def integrated_gradients_baseline(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, special_mask: torch.Tensor, baseline_token_id: int
) -> torch.Tensor:
    """The same sequence with every real, non-special token replaced by ``baseline_token_id``."""
    keep = special_mask.bool() | ~attention_mask.bool()
    return torch.where(keep, input_ids, torch.full_like(input_ids, baseline_token_id))


@register_method("integrated_gradients")
class IntegratedGradients(Attributor):
    """Integrated gradients from the pad-token baseline to the input, on the embedding layer, with
    as many steps per example as completeness needs (``audit.attribution.integrated``).

    Completeness: the attributions of a row sum to f(x) - f(baseline) up to ``convergence_delta``,
    within the tolerance where ``converged``.
    """

    has_convergence_delta = True

    def attribute(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        special_mask: torch.Tensor,
        output_index: torch.Tensor,
        variant_index: torch.Tensor | None = None,
    ) -> BatchAttribution:
        baseline = integrated_gradients_baseline(
            input_ids, attention_mask, special_mask, self.settings.baseline_token_id
        )
        result = integrated_gradients(
            self.forward,
            self.embedding_layer,
            input_ids,
            baseline,
            attention_mask,
            output_index,
            variant_index,
            self.settings.integration,
        )
        return BatchAttribution(
            attributions=torch.from_numpy(result.attributions),
            scores=torch.from_numpy(result.scores),
            baseline_scores=torch.from_numpy(result.baseline_scores),
            convergence_delta=torch.from_numpy(result.convergence_delta),
            n_steps=torch.from_numpy(result.n_steps),
            completeness_error=torch.from_numpy(result.completeness_error),
            converged=torch.from_numpy(result.converged),
        )


@register_method("gradient_x_input")
class GradientXInput(Attributor):
    """Gradient of the output times the token embedding (one backward pass, no baseline)."""

    def attribute(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        special_mask: torch.Tensor,
        output_index: torch.Tensor,
        variant_index: torch.Tensor | None = None,
    ) -> BatchAttribution:
        method = LayerGradientXActivation(self.forward, self.embedding_layer)
        attributions = method.attribute(
            inputs=input_ids,
            target=output_index.tolist(),
            additional_forward_args=forward_args(attention_mask, variant_index),
        )
        if isinstance(attributions, (tuple, list)):
            raise ValueError(
                "the embedding layer returned several tensors; attribute through a single-output layer"
            )
        per_token = attributions.detach().float().sum(dim=-1) * attention_mask
        return BatchAttribution(
            attributions=per_token,
            scores=self.explained_scores(input_ids, attention_mask, output_index, variant_index),
            baseline_scores=None,
            convergence_delta=None,
        )
