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
from audit.targets.causal_lm import CausalLMTarget
from audit.targets.classification import ClassificationTarget
from audit.targets.embedding import EmbeddingTarget
from audit.targets.masked_lm import MaskedLMTarget
from audit.targets.module import ModuleTarget
from audit.targets.question_answering import QuestionAnsweringTarget
from audit.targets.seq2seq import Seq2SeqTarget
from audit.targets.token_classification import TokenClassificationTarget

TargetFactory = Callable[[LoadedModel, torch.device], Target]

TARGET_FACTORIES: dict[str, TargetFactory] = {
    "text-classification": lambda loaded, device: ClassificationTarget(
        loaded.model, loaded.tokenizer, device, loaded.max_length, loaded.labels
    ),
    "embedding": lambda loaded, device: EmbeddingTarget(
        loaded.model, loaded.tokenizer, device, loaded.max_length, loaded.pooling
    ),
    "masked-lm": lambda loaded, device: MaskedLMTarget(
        loaded.model, loaded.tokenizer, device, loaded.max_length
    ),
    "module": lambda loaded, device: ModuleTarget(loaded, device),
    "token-classification": lambda loaded, device: TokenClassificationTarget(
        loaded.model, loaded.tokenizer, device, loaded.max_length, loaded.labels
    ),
    "question-answering": lambda loaded, device: QuestionAnsweringTarget(
        loaded.model, loaded.tokenizer, device, loaded.max_length
    ),
    "causal-lm": lambda loaded, device: CausalLMTarget(
        loaded.model, loaded.tokenizer, device, loaded.max_length
    ),
    "seq2seq": lambda loaded, device: Seq2SeqTarget(
        loaded.model, loaded.tokenizer, device, loaded.max_length
    ),
}

TASKS = tuple(TARGET_FACTORIES)

PROBE_SET_TASKS: dict[str, tuple[str, ...]] = {"module": ("module", "text-classification")}
"""The probe-set ``tasks:`` a model of each task runs, when not only its own: a plain PyTorch
module is a classifier, so it also runs the sets written for text classifiers."""


def probe_set_tasks(task: str) -> tuple[str, ...]:
    """The ``tasks:`` values of the probe sets a model of this task can run."""
    return PROBE_SET_TASKS.get(task, (task,))


__all__ = [
    "TARGET_FACTORIES",
    "TASKS",
    "CausalLMTarget",
    "ClassificationTarget",
    "EmbeddingTarget",
    "MaskedLMTarget",
    "ModuleTarget",
    "QuestionAnsweringTarget",
    "ScoreHead",
    "Seq2SeqTarget",
    "Target",
    "TokenClassificationTarget",
    "build_target",
    "probe_set_tasks",
]


def build_target(loaded: LoadedModel, device: torch.device) -> Target:
    factory = TARGET_FACTORIES.get(loaded.task)
    if factory is None:
        raise UserError(f"task {loaded.task!r} is not supported yet; choose one of {list(TASKS)}")
    return factory(loaded, device)
