"""Plain PyTorch modules (task "module"): a classifier built by the user's callable.

Scores are a classifier's: the softmax of the module's logits as ``prob:<label>`` (a sigmoid per
label when the callable says ``multi_label``), with ClassificationTarget's head (tested outputs,
attribution output, key outputs). What differs is how the model is called (audit/module_models.py:
with or without the mask, logits in a tensor, tuple or ``.logits``), the embedding layer Captum
attributes through (the one the callable names), and attention: a plain module has no
transformers attention to read, so the attention step is skipped with a note.
"""

from __future__ import annotations

import torch
from torch import nn

from audit.loaded_model import LoadedModel
from audit.module_spec import ModuleSpec
from audit.targets.base import Target
from audit.targets.classification import ClassificationTarget


class ModuleTarget(ClassificationTarget):
    task = "module"

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, device: torch.device) -> Target:
        return cls(loaded, device)

    def __init__(self, loaded: LoadedModel, device: torch.device) -> None:
        if loaded.module_spec is None:
            raise ValueError("a module target needs a model loaded from a callable (audit/module_models.py)")
        super().__init__(loaded.model, loaded.tokenizer, device, loaded.max_length, loaded.labels)
        self.spec: ModuleSpec = loaded.module_spec

    @property
    def multi_label(self) -> bool:
        return self.spec.multi_label

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.spec.logits(self.model, input_ids, attention_mask)

    def embedding_layer(self) -> nn.Module:
        return self.model.get_submodule(self.spec.embedding_layer)

    def attention_unavailable(self) -> str | None:
        return self.spec.attention_note()
