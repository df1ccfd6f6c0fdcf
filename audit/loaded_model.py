"""LoadedModel: a model ready to score, with what the run manifest records about it.

``audit.models.load_model`` makes one from a transformers model, ``audit.module_models`` from a
user's plain PyTorch module; ``audit.targets.build_target`` wraps it in its task's adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from audit.module_spec import ModuleSpec
from audit.start_token import StartToken


@dataclass
class LoadedModel:
    """A model ready to score: eval mode, on its device, with what the manifest must record."""

    model: nn.Module
    tokenizer: Any
    """A fast (Rust-backed) tokenizer: ``return_offsets_mapping=True`` works."""
    task: str
    """One of ``audit.tasks.TASKS``."""
    name: str
    """The name as the user gave it ("minilm", "./folder", "org/model")."""
    source: str
    """The resolved local folder, or the hub id."""
    revision: str | None
    """The hub commit hash when known, else the revision asked for, else None (local folders)."""
    weight_hash: str
    """sha256 of the weight file (several shards: sha256 over 'name sha256' lines, sorted by name)."""
    labels: list[str]
    """Label names in id order for classifiers; [] for embedding models."""
    max_length: int
    """Most tokens (special tokens included) the model can use; longer inputs are truncated."""
    pooling: str
    """"mean" or "cls": how an embedding model pools token vectors (classifiers: unused, "mean")."""
    normalize: bool
    """True when the embedding model L2-normalises its sentence embeddings (sentence-transformers)."""
    problem_type: str = "single_label_classification"
    """One of ``audit.models.PROBLEM_TYPES``: softmax over labels, or an independent sigmoid per label for
    "multi_label_classification" ("regression" heads are refused). Embedding models: unused."""
    remote_code_ignored: bool = False
    """True when the model ships custom code (``auto_map``) that was NOT run: the stock class was used."""
    warnings: list[str] = field(default_factory=list)
    """Problems found while loading that did not stop it (also logged): the manifest records them."""
    module_spec: ModuleSpec | None = None
    """Task "module" only: how the user's plain PyTorch module is called, and its manifest record
    (audit/module_models.py)."""
    start_token: StartToken | None = None
    """Task "causal-lm" only: the token every text starts with, written into the tokenizer
    (audit/start_token.py); None for other tasks."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device
