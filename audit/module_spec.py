"""How a user's plain PyTorch module is called, and what the manifest records about it (task "module").

``audit.module_models`` builds a ``ModuleSpec`` when it loads the user's callable; the loaded model
carries it (``LoadedModel.module_spec``) and the module target calls the model through it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from audit.errors import UserError

NO_ATTENTION_NOTE = "the model has no attention layers: attention statistics skipped"


def logits_of(output: Any) -> torch.Tensor:
    """The logits in what a forward returned: a tensor, ``.logits``, ``["logits"]`` or the first item of a tuple."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, Mapping):
        logits = output.get("logits")
    if logits is None and isinstance(output, (tuple, list)) and output:
        logits = output[0]
    if isinstance(logits, torch.Tensor):
        return logits
    raise UserError(
        f"the module's forward returned a {type(output).__name__}; expected logits of shape (batch, labels): "
        "a tensor, a tuple whose first item is that tensor, or an object with .logits"
    )


@dataclass
class ModuleSpec:
    """How to call a user's module, and what the manifest records about it."""

    reference: str
    """The ``--model`` value: package.module:callable or path/to/file.py:callable."""
    source_file: str
    embedding_layer: str
    mask_style: str | None
    multi_label: bool
    has_rnn: bool
    attention_modules: list[str] = field(default_factory=list)
    """Submodules that compute attention outside transformers (nn.MultiheadAttention, ...)."""
    display_name: str | None = None
    version: str | None = None
    state_dict_sha256: str = ""

    def logits(
        self, module: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """The module's logits (batch, labels) for right-padded ids and their mask."""
        # cuDNN's RNN backward refuses eval mode; Captum needs that backward on a GPU
        rnn_guard = (
            torch.backends.cudnn.flags(enabled=False)
            if self.has_rnn and input_ids.is_cuda
            else contextlib.nullcontext()
        )
        with rnn_guard:
            if self.mask_style == "keyword":
                output = module(input_ids, attention_mask=attention_mask)
            elif self.mask_style == "positional":
                output = module(input_ids, attention_mask)
            else:
                output = module(input_ids)
        return logits_of(output)

    def probabilities(
        self, module: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        logits = self.logits(module, input_ids, attention_mask).float()
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)

    def attention_note(self) -> str:
        if not self.attention_modules:
            return NO_ATTENTION_NOTE
        return (
            f"the module's attention layers ({', '.join(self.attention_modules[:3])}) are not transformers "
            "attention, whose calls the statistics are read from: attention statistics skipped"
        )

    def describe(self) -> dict[str, Any]:
        """The manifest's record (``model.module``)."""
        return {
            "callable": self.reference,
            "file": self.source_file,
            "display_name": self.display_name,
            "version": self.version,
            "state_dict_sha256": self.state_dict_sha256,
            "config": None,
            "revision": None,
            "note": "a plain PyTorch module built by the callable: no config.json and no revision exist; "
            "its weights are identified by the sha256 of its state_dict",
            "embedding_layer": self.embedding_layer,
            "forward_takes_attention_mask": self.mask_style is not None,
            "multi_label": self.multi_label,
        }
