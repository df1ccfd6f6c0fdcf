"""Text classification: each label's probability is an output; the predicted label is the argmax."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from audit.loaded_model import LoadedModel
from audit.targets.base import ScoreHead, Target
from probes.schema import Instance, ProbeSet


class ClassificationTarget(Target):
    task = "text-classification"

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, device: torch.device) -> Target:
        return cls(loaded.model, loaded.tokenizer, device, loaded.max_length, loaded.labels)

    def __init__(
        self, model: nn.Module, tokenizer: Any, device: torch.device, max_length: int, labels: list[str]
    ) -> None:
        super().__init__(model, tokenizer, device, max_length)
        if not labels:
            raise ValueError("a classification target needs the model's label names")
        self.labels = labels

    def check_probe_set(self, probe_set: ProbeSet) -> list[str]:
        if probe_set.kind == "parallel":
            return []  # expected labels only feed label_accuracy, where the model has them
        expected = {v.label for v in probe_set.variants if v.label is not None}
        unknown = sorted(expected - set(self.labels))
        if unknown:
            return [
                f"probe set {probe_set.name!r} expects label(s) {unknown}, which the model does not have "
                f"(its labels: {self.labels})"
            ]
        return []

    @property
    def multi_label(self) -> bool:
        """Each label scored by its own sigmoid (multi-label head) rather than one softmax."""
        return getattr(self.model.config, "problem_type", None) == "multi_label_classification"

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The model's logits (batch, labels); subclasses that call their model otherwise override it."""
        logits: torch.Tensor = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits

    def head(self, probe_set: ProbeSet) -> ScoreHead:
        labels = self.labels
        outputs = [f"prob:{label}" for label in labels]

        multi_label = self.multi_label

        def forward(
            input_ids: torch.Tensor, attention_mask: torch.Tensor, variant_index: torch.Tensor | None = None
        ) -> torch.Tensor:
            logits = self.logits(input_ids, attention_mask).float()
            # multi-label heads score each label on its own; single-label heads share one softmax
            return torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)

        def predict_labels(scores: np.ndarray) -> list[str | None]:
            return [labels[int(i)] for i in scores.argmax(axis=1)]

        compared = [outputs[1]] if len(outputs) == 2 and not multi_label else outputs

        def attribution_output(expected: list[str | None], scores: np.ndarray) -> str:
            """Binary: the tested probability. Otherwise the expected label when the probe states
            one, else the label the variants favour."""
            if len(compared) == 1:
                return compared[0]
            stated = {label for label in expected if label is not None}
            if len(stated) == 1:
                return f"prob:{stated.pop()}"
            return outputs[int(scores.mean(axis=0).argmax())]

        def key_outputs(instance: Instance) -> list[str]:
            """A key sentence is judged on the probability of the label it should decide."""
            stated = {v.label for v in instance.variants if v.label is not None}
            if instance.role == "key_sentence" and len(stated) == 1:
                return [f"prob:{stated.pop()}"]
            if instance.role == "identity_swap" and len(stated) == 1 and len(compared) > 1:
                return [f"prob:{stated.pop()}"]  # a multi-class model: the label the swap sentence states
            return compared

        return ScoreHead(
            outputs,
            forward,
            predict_labels,
            attribution_output,
            compared_outputs=compared,
            key_outputs=key_outputs,
        )
