"""One adapter per task; ``build_target`` picks it for a loaded model.

Each task registers a factory ``(loaded, device) -> Target`` in ``TARGET_FACTORIES``; a task the
model loader knows (``audit.models.TASKS``) but no adapter serves yet is refused here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from audit.errors import UserError
from audit.models import LoadedModel
from audit.targets.base import ScoreHead, Target
from audit.targets.classification import ClassificationTarget
from audit.targets.embedding import EmbeddingTarget

TargetFactory = Callable[[LoadedModel, torch.device], Target]

TARGET_FACTORIES: dict[str, TargetFactory] = {
    "text-classification": lambda loaded, device: ClassificationTarget(
        loaded.model, loaded.tokenizer, device, loaded.max_length, loaded.labels
    ),
    "embedding": lambda loaded, device: EmbeddingTarget(
        loaded.model, loaded.tokenizer, device, loaded.max_length, loaded.pooling
    ),
}

TASKS = tuple(TARGET_FACTORIES)

__all__ = [
    "TARGET_FACTORIES",
    "TASKS",
    "ClassificationTarget",
    "EmbeddingTarget",
    "ScoreHead",
    "Target",
    "build_target",
]


def build_target(loaded: LoadedModel, device: torch.device) -> Target:
    factory = TARGET_FACTORIES.get(loaded.task)
    if factory is None:
        raise UserError(f"task {loaded.task!r} is not supported yet; choose one of {list(TASKS)}")
    return factory(loaded, device)
