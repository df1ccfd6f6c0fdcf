"""One adapter per task; ``build_target`` picks it for a loaded model.

The adapter of each task is named in its row of ``audit.tasks.TASKS`` and imported here only when
a target is built; its ``from_loaded(loaded, device)`` makes it.
"""

from __future__ import annotations

import importlib

import torch

from audit.errors import UserError
from audit.loaded_model import LoadedModel
from audit.targets.base import ScoreHead, Target
from audit.tasks import TASKS

__all__ = ["ScoreHead", "Target", "adapter_class", "build_target"]


def adapter_class(task: str) -> type[Target]:
    """The ``Target`` subclass that serves a task (its row's ``target``, imported)."""
    info = TASKS.get(task)
    if info is None:
        raise UserError(f"task {task!r} is not supported yet; choose one of {list(TASKS)}")
    module_name, _, class_name = info.target.partition(":")
    adapter = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(adapter, type) and issubclass(adapter, Target)):
        raise TypeError(f"audit.tasks.TASKS[{task!r}].target = {info.target!r} is not a Target subclass")
    return adapter


def build_target(loaded: LoadedModel, device: torch.device) -> Target:
    return adapter_class(loaded.task).from_loaded(loaded, device)
