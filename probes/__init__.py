"""Probe sets: the data model, the loaders for every format and the built-in sets."""

from probes.loaders import list_builtin, load_builtin, load_hf_dataset, load_probe_set
from probes.long_document import auto_lengths, materialize, summary_lines
from probes.schema import (
    Association,
    Instance,
    KeySentence,
    LongDocumentSpec,
    ProbeSet,
    Span,
    SwapSentence,
    Variant,
)
from probes.validate import validate_file

__all__ = [
    "Association",
    "Instance",
    "KeySentence",
    "LongDocumentSpec",
    "ProbeSet",
    "Span",
    "SwapSentence",
    "Variant",
    "auto_lengths",
    "list_builtin",
    "load_builtin",
    "load_hf_dataset",
    "load_probe_set",
    "materialize",
    "summary_lines",
    "validate_file",
]
