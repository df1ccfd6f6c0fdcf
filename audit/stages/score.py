"""score: every model input through its probe set's score head, in token-budget batches with
OOM back-off; a text's score combines its windows' (audit/windows.py). Long-format predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from rich.progress import Progress

from audit.batching import collate, run_with_backoff, token_budget_batches
from audit.config import AuditConfig
from audit.metrics.multilingual import REFERENCE_SIMILARITY
from audit.probe_inputs import ProbeInputs, SetScores
from audit.stages.state import Encoding, Scored
from audit.tables import TABLES
from audit.targets import Target
from audit.windows import combine_scores


def score(encoding: Encoding, target: Target, config: AuditConfig, bars: Progress) -> Scored:
    frames = []
    scores: dict[str, SetScores] = {}
    for item in encoding.sets:
        scored = score_set(item, target, config, bars)
        scores[item.name] = scored
        labels = item.head.predict_labels(scored.scores)
        if item.head.notes.get("reference_similarity"):
            frames.append(reference_similarity_predictions(item, scored.scores, labels))
            continue
        n_out = len(item.head.outputs)
        frames.append(
            pd.DataFrame(
                {
                    "example_id": np.repeat(item.example_ids, n_out),
                    "output": np.tile(item.head.outputs, len(item.example_ids)),
                    "score": scored.scores.reshape(-1),
                    "label": np.repeat(np.array(labels, dtype=object), n_out),
                }
            )
        )
    predictions = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TABLES["predictions"])
    )
    return Scored(predictions, scores)


def score_set(item: ProbeInputs, target: Target, config: AuditConfig, bars: Progress) -> SetScores:
    """One probe set's scores: each window's, then each variant's (its windows combined)."""
    pad_id = target.tokenizer.pad_token_id
    windows, owners = item.windows(list(range(len(item.texts))))
    task = bars.add_task(f"score {item.probe_set.name}", total=len(windows))
    window_scores = np.zeros((len(windows), len(item.head.outputs)), dtype=np.float64)

    @torch.no_grad()
    def step(batch: list[int]) -> np.ndarray:
        ids, mask = collate([windows[i] for i in batch], pad_id, target.device)
        variant_index = torch.tensor([owners[i] for i in batch], dtype=torch.long, device=target.device)
        return item.head.forward(ids, mask, variant_index).detach().cpu().double().numpy()

    for batch in token_budget_batches([w.n_tokens for w in windows], config.batch_tokens):
        for done, values in run_with_backoff(batch, step):
            window_scores[done] = values
            bars.advance(task, len(done))
    owner_of = np.asarray(owners)
    per_variant = [window_scores[owner_of == i] for i in range(len(item.texts))]
    return SetScores(combine_scores(per_variant, config.aggregate), per_variant)


def reference_similarity_predictions(
    item: ProbeInputs, scores: np.ndarray, labels: list[str | None]
) -> pd.DataFrame:
    """Parallel sets under an embedding model: one prediction per text, its similarity to its own
    instance's reference text (output "sim:reference"); the label is the instance whose reference
    text is nearest (see EmbeddingTarget.reference_head)."""
    column = {name: k for k, name in enumerate(item.head.outputs)}
    own = [column[f"sim:{v.instance_id}"] for v in item.probe_set.variants]
    return pd.DataFrame(
        {
            "example_id": item.example_ids,
            "output": REFERENCE_SIMILARITY,
            "score": scores[np.arange(len(own)), own],
            "label": np.array(labels, dtype=object),
        }
    )
