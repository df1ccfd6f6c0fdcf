"""Token classification (NER): does a name get tagged as a person equally often for every group?

Probe sets are name swaps: one sentence filled with first names of several groups, the focus span
being the name (the built-in ``names-ner``). For each variant the head scores its focus span:

- ``prob:PER``: the probability that the span is a person, the mean over the span's tokens of the
  summed probability of every person label (``B-PER`` + ``I-PER``; which labels count is read from
  the model's id2label: ``PER``, ``PERSON``, ``PERS`` with or without a ``B-``/``I-``/``E-``/``S-``
  prefix);
- ``recalled:PER``: 1.0 when the first span token's most probable label is a person label (the span
  is recognised as a person), else 0.0;
- ``first_token:<label>``: the first span token's probability of each of the model's labels; the
  predicted label of the variant is their argmax (so ``flip_rate`` counts a name whose label
  changes between groups).

The findings compare ``prob:PER`` and ``recalled:PER`` between groups (paired mean deltas, the
latter being a paired recall gap), and ``entity_recall`` gives each group's share of recognised
names (audit/metrics/entity_recall.py). Attributions explain ``prob:PER``.

The span's tokens are found once per variant in ``head()`` (the encoding the runner makes with the
same tokenizer and maximum length) and looked up by ``variant_index`` in ``forward``. Texts must
fit the model's maximum length (a span of a sliding window would be another token index).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from torch import nn

from audit.attribution.batches import focus_token_mask
from audit.batching import encode_texts
from audit.errors import UserError
from audit.loaded_model import LoadedModel
from audit.metrics.entity_recall import RECALLED_PERSON
from audit.targets.base import ScoreHead, Target
from probes.schema import ProbeSet

PERSON_TYPES = frozenset({"PER", "PERSON", "PERS"})
"""Entity types read as a person (case-insensitive), after the BIOES prefix is removed."""
_PREFIX = re.compile(r"^[BIESLU][-_]", re.IGNORECASE)
PROB_PERSON = "prob:PER"
FIRST_TOKEN_PREFIX = "first_token:"


def entity_type(label: str) -> str:
    """``B-PER`` -> ``PER``; ``O`` -> ``O``."""
    return _PREFIX.sub("", label)


def person_label_ids(labels: list[str]) -> list[int]:
    """Indices of the labels that tag a person."""
    return [i for i, label in enumerate(labels) if entity_type(label).upper() in PERSON_TYPES]


class TokenClassificationTarget(Target):
    task = "token-classification"
    windows_supported = False  # the span is found once per variant, in its one input

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, device: torch.device) -> Target:
        return cls(loaded.model, loaded.tokenizer, device, loaded.max_length, loaded.labels)

    def __init__(
        self, model: nn.Module, tokenizer: Any, device: torch.device, max_length: int, labels: list[str]
    ) -> None:
        super().__init__(model, tokenizer, device, max_length)
        self.labels = list(labels)
        self.person_ids = person_label_ids(self.labels)
        if not self.person_ids:
            raise UserError(
                "this token-classification model has no person label (its labels: "
                f"{', '.join(self.labels) or 'none'}); the name-swap audit needs one named PER or PERSON "
                "(with or without a B-/I- prefix) in the model's id2label"
            )

    def check_probe_set(self, probe_set: ProbeSet) -> list[str]:
        if probe_set.kind != "counterfactual":
            return [
                f"probe set {probe_set.name!r} is a {probe_set.kind} set; token-classification audits use "
                "counterfactual name swaps (e.g. the built-in names-ner)"
            ]
        problems = []
        texts = [v.text for v in probe_set.variants]
        lengths = [
            len(ids) for ids in self.tokenizer(texts, add_special_tokens=True, verbose=False)["input_ids"]
        ]
        for variant, n_tokens in zip(probe_set.variants, lengths, strict=True):
            where = f"probe set {probe_set.name!r}, {variant.instance_id}/{variant.variant}"
            if not any(span.end > span.start for span in variant.focus):
                problems.append(f"{where}: no focus span; the span to tag (the name) must be marked")
            elif n_tokens > self.max_length:
                problems.append(
                    f"{where}: {n_tokens} tokens, more than the model's {self.max_length}; token-classification "
                    "probes score a span of one input, so shorten the text"
                )
            if len(problems) >= 10:
                problems.append("(more problems of the same kind left out)")
                break
        return problems

    def head(self, probe_set: ProbeSet) -> ScoreHead:
        labels = self.labels
        variants = probe_set.variants
        encoded = encode_texts(self.tokenizer, [v.text for v in variants], self.max_length)
        width = max((e.n_tokens for e in encoded), default=1)
        span_masks = torch.zeros((len(variants), width), dtype=torch.float32)
        first_tokens = torch.zeros(len(variants), dtype=torch.long)
        for row, (variant, example) in enumerate(zip(variants, encoded, strict=True)):
            mask = focus_token_mask(example, [(s.start, s.end) for s in variant.focus])
            if any(mask):  # the runner leaves out instances whose span was cut off (never here: see check)
                span_masks[row, : len(mask)] = torch.tensor(mask, dtype=torch.float32)
                first_tokens[row] = mask.index(True)
        span_masks = span_masks.to(self.device)
        first_tokens = first_tokens.to(self.device)
        person = torch.tensor(self.person_ids, dtype=torch.long, device=self.device)
        is_person = torch.zeros(len(labels), dtype=torch.bool, device=self.device)
        is_person[person] = True
        outputs = [PROB_PERSON, RECALLED_PERSON, *[f"{FIRST_TOKEN_PREFIX}{label}" for label in labels]]

        def forward(
            input_ids: torch.Tensor, attention_mask: torch.Tensor, variant_index: torch.Tensor | None = None
        ) -> torch.Tensor:
            if variant_index is None:
                raise ValueError("token-classification scores need each row's variant_index")
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
            probabilities = torch.softmax(logits, dim=-1)  # (batch, tokens, labels)
            person_probability = probabilities[..., person].sum(dim=-1)  # (batch, tokens)
            tokens = input_ids.shape[1]
            masks = span_masks[variant_index]
            if tokens > width:
                masks = torch.nn.functional.pad(masks, (0, tokens - width))
            masks = masks[:, :tokens]
            prob_person = (person_probability * masks).sum(dim=1) / masks.sum(dim=1).clamp(min=1.0)
            rows = torch.arange(input_ids.shape[0], device=input_ids.device)
            first = probabilities[rows, first_tokens[variant_index]]  # (batch, labels)
            recalled = is_person[first.argmax(dim=-1)].to(first.dtype)
            return torch.cat([prob_person[:, None], recalled[:, None], first], dim=1)

        def predict_labels(scores: np.ndarray) -> list[str | None]:
            return [labels[int(i)] for i in scores[:, 2:].argmax(axis=1)]

        def attribution_output(expected: list[str | None], scores: np.ndarray) -> str:
            return PROB_PERSON

        return ScoreHead(
            outputs,
            forward,
            predict_labels,
            attribution_output,
            compared_outputs=[PROB_PERSON, RECALLED_PERSON],
            notes={"person_labels": [labels[i] for i in self.person_ids]},
        )
