"""One adapter per task; ``build_target`` picks it for a loaded model."""

from __future__ import annotations

import torch

from audit.errors import UserError
from audit.models import LoadedModel
from audit.targets.base import ScoreHead, Target
from audit.targets.classification import ClassificationTarget
from audit.targets.embedding import EmbeddingTarget

TASKS = ("text-classification", "embedding")

__all__ = ["TASKS", "ClassificationTarget", "EmbeddingTarget", "ScoreHead", "Target", "build_target"]


def build_target(loaded: LoadedModel, device: torch.device) -> Target:
    if loaded.task == "text-classification":
        return ClassificationTarget(loaded.model, loaded.tokenizer, device, loaded.max_length, loaded.labels)
    if loaded.task == "embedding":
        return EmbeddingTarget(loaded.model, loaded.tokenizer, device, loaded.max_length, loaded.pooling)
    raise UserError(f"task {loaded.task!r} is not supported yet; choose one of {list(TASKS)}")
