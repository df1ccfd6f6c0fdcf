"""Sentence embeddings scored against a probe set's associations (SEAT/WEAT style).

For an association with attribute sets A and B, a text's score is
``s(w, A, B) = mean cos(w, a) - mean cos(w, b)``: how much closer it sits to A than to B.
Comparing that score across the variants of an instance gives the counterfactual similarity
shift; comparing its distribution across groups gives the SEAT effect size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audit.batching import collate, encode_texts, token_budget_batches
from audit.loaded_model import LoadedModel
from audit.targets.base import ScoreHead, Target
from probes.schema import Instance, ProbeSet


class EmbeddingTarget(Target):
    task = "embedding"

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, device: torch.device) -> Target:
        return cls(loaded.model, loaded.tokenizer, device, loaded.max_length, loaded.pooling)

    def __init__(
        self, model: nn.Module, tokenizer: Any, device: torch.device, max_length: int, pooling: str = "mean"
    ) -> None:
        super().__init__(model, tokenizer, device, max_length)
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', not {pooling!r}")
        self.pooling = pooling

    def check_probe_set(self, probe_set: ProbeSet) -> list[str]:
        if probe_set.kind == "long_document":
            missing = sorted({i.instance_id for i in probe_set.instances if not i.query})
            if missing:
                return [
                    f"probe set {probe_set.name!r}: embedding audits of long documents compare each document "
                    f"with its key sentence's query, and {len(missing)} instance(s) have none (first: "
                    f"{missing[0]!r}); give every key and swap a 'query:'"
                ]
            return []
        if probe_set.kind == "parallel":
            return []  # scored by similarity to each instance's reference text, or by its associations
        if not probe_set.associations:
            return [
                f"probe set {probe_set.name!r} has no associations, which embedding audits compare against; "
                "add an 'associations:' block (two attribute word sets, SEAT style) to a YAML probe file, or "
                "pass --associations FILE (a YAML 'associations:' list) or --associations gender (a built-in "
                "set's)"
            ]
        return []

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unit-length sentence embeddings, pooled as the model was trained (mean or [CLS])."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return F.normalize(pooled, dim=-1)

    @torch.no_grad()
    def embed_texts(self, texts: list[str], batch_tokens: int = 8192) -> torch.Tensor:
        encoded = encode_texts(self.tokenizer, texts, self.max_length)
        rows: dict[int, torch.Tensor] = {}
        for batch in token_budget_batches([e.n_tokens for e in encoded], batch_tokens):
            ids, mask = collate([encoded[i] for i in batch], self.tokenizer.pad_token_id, self.device)
            for i, vector in zip(batch, self.embed(ids, mask), strict=True):
                rows[i] = vector
        return torch.stack([rows[i] for i in range(len(texts))])

    def head(self, probe_set: ProbeSet) -> ScoreHead:
        if probe_set.kind == "long_document":
            return self.similarity_head(probe_set)
        if probe_set.kind == "parallel" and not probe_set.associations:
            return self.reference_head(probe_set)
        associations = probe_set.associations
        anchors = [(self.embed_texts(list(a.a)), self.embed_texts(list(a.b))) for a in associations]
        outputs = [f"assoc:{a.name}" for a in associations]

        def forward(
            input_ids: torch.Tensor, attention_mask: torch.Tensor, variant_index: torch.Tensor | None = None
        ) -> torch.Tensor:
            vectors = self.embed(input_ids, attention_mask)
            columns = [(vectors @ a.T).mean(dim=1) - (vectors @ b.T).mean(dim=1) for a, b in anchors]
            return torch.stack(columns, dim=1)

        def predict_labels(scores: np.ndarray) -> list[str | None]:
            return [None] * len(scores)

        def attribution_output(expected: list[str | None], scores: np.ndarray) -> str:
            """The association on which the instance's variants differ most."""
            return outputs[int(np.ptp(scores, axis=0).argmax())]

        return ScoreHead(outputs, forward, predict_labels, attribution_output)

    def similarity_head(self, probe_set: ProbeSet) -> ScoreHead:
        """Long documents: each output is the cosine similarity to one key's query ("sim:<key id>")."""
        queries: dict[str, str] = {}
        for instance in probe_set.instances:
            if instance.query:
                queries.setdefault(key_id(instance), instance.query)
        outputs = [f"sim:{name}" for name in queries]
        anchors = self.embed_texts(list(queries.values()))

        def forward(
            input_ids: torch.Tensor, attention_mask: torch.Tensor, variant_index: torch.Tensor | None = None
        ) -> torch.Tensor:
            return self.embed(input_ids, attention_mask) @ anchors.T

        def predict_labels(scores: np.ndarray) -> list[str | None]:
            return [None] * len(scores)

        def attribution_output(expected: list[str | None], scores: np.ndarray) -> str:
            return outputs[int(scores.mean(axis=0).argmax())]

        def key_outputs(instance: Instance) -> list[str]:
            return [f"sim:{key_id(instance)}"]

        return ScoreHead(outputs, forward, predict_labels, attribution_output, key_outputs=key_outputs)

    def reference_head(self, probe_set: ProbeSet) -> ScoreHead:
        """Parallel sets: each output is the cosine similarity to one instance's reference-language
        text ("sim:<instance id>"); a text's predicted label is the instance whose reference text is
        nearest (its own, when the model aligns the translation with the reference)."""
        reference = probe_set.reference_lang
        texts = {
            instance.instance_id: next(v.text for v in instance.variants if v.lang == reference)
            for instance in probe_set.instances
        }
        ids = list(texts)
        outputs = [f"sim:{name}" for name in ids]
        anchors = self.embed_texts(list(texts.values()))

        def forward(
            input_ids: torch.Tensor, attention_mask: torch.Tensor, variant_index: torch.Tensor | None = None
        ) -> torch.Tensor:
            return self.embed(input_ids, attention_mask) @ anchors.T

        def predict_labels(scores: np.ndarray) -> list[str | None]:
            return [ids[int(i)] for i in scores.argmax(axis=1)]

        def attribution_output(expected: list[str | None], scores: np.ndarray) -> str:
            """The instance's own reference text: the reference scores 1.0 against it."""
            return outputs[int(scores.max(axis=0).argmax())]

        def key_outputs(instance: Instance) -> list[str]:
            return [f"sim:{instance.instance_id}"]

        return ScoreHead(
            outputs,
            forward,
            predict_labels,
            attribution_output,
            key_outputs=key_outputs,
            notes={"reference_similarity": True},
        )


def key_id(instance: Instance) -> str:
    """The key (or swap) sentence an instance of a long-document set was built from: its id
    without the "-<length>" suffix."""
    base, _, length = instance.instance_id.rpartition("-")
    return base if base and length.isdigit() else instance.instance_id
