"""Probe sets: the data model, the loaders for every format and the built-in sets."""

from probes.loaders import list_builtin, load_builtin, load_hf_dataset, load_probe_set
from probes.schema import Association, Instance, ProbeSet, Span, Variant
from probes.validate import validate_file

__all__ = [
    "Association",
    "Instance",
    "ProbeSet",
    "Span",
    "Variant",
    "list_builtin",
    "load_builtin",
    "load_hf_dataset",
    "load_probe_set",
    "validate_file",
]
