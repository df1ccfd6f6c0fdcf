"""prepare: everything that can fail on the user's input, before the run folder exists.

The probe sets (read in one place, ``load_probe_sets``: named sets before the model loads, so a bad
file fails fast; with none named, the built-ins meant for the model's task once it is known), the
model and its target, whether each set fits the target, and the strategy for long inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from audit.config import AuditConfig
from audit.errors import UserError
from audit.kinds.registry import KINDS
from audit.models import load_model, task_before_loading
from audit.stages.progress import Timer
from audit.stages.state import Prepared
from audit.targets import Target, build_target
from audit.tasks import probe_set_tasks
from audit.windows import LongInputPolicy, default_stride
from probes import list_builtin, load_builtin, load_probe_set
from probes.associations import load_associations
from probes.long_document import materialize
from probes.schema import ProbeSet, default_tasks

T = TypeVar("T")


def prepare(config: AuditConfig, model_name: str, timer: Timer) -> Prepared:
    """The probe sets, the model and its target, checked against each other (UserError on any
    problem, before anything is written)."""
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    with timer.stage("probes"):
        probe_sets = load_probe_sets(config) if config.probes else []
    expected_task = task_before_loading(model_name, config.task)
    if expected_task is not None:
        problems = [p for s in probe_sets if (p := task_mismatch(s, expected_task))]
        if problems:
            raise UserError("\n".join(problems))
    with timer.stage("load"):
        loaded = load_model(
            model_name,
            task=config.task,
            revision=config.revision,
            allow_pickle=config.allow_pickle,
            device=str(device),
            start_token=config.start_token,
        )
        target = build_target(loaded, device)
        if config.max_length is not None:
            target.max_length = min(target.max_length, config.max_length)
    if not config.probes:
        with timer.stage("probes"):
            probe_sets = load_probe_sets(config, task=target.task)
        if not probe_sets:
            raise UserError(
                f"no built-in probe set is meant for {target.task} models; name probe files with --probes"
            )
    with timer.stage("build long documents"):
        probe_sets = [build_long_documents(s, target, config) for s in probe_sets]
    probe_sets = [target.prepare(s) for s in probe_sets]  # e.g. a QA model's [SEP] in multiple-choice texts
    problems = [p for s in probe_sets for p in probe_set_problems(s, target)]
    if problems:
        raise UserError("\n".join(problems))
    policy = long_input_policy(config, target)
    no_attention = target.attention_unavailable() if config.attention else None
    return Prepared(device, loaded, target, probe_sets, policy, no_attention)


def resolve_device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError(
            "--device cuda was asked for, but torch sees no CUDA device; use --device auto or cpu"
        )
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def load_probe_sets(config: AuditConfig, task: str | None = None) -> list[ProbeSet]:
    """Every probe set the run needs, fully validated (named sets: before any model is loaded).

    Column mapping, defaults and split apply to probe files and datasets, not to built-in sets.
    With no probes named, ``default_probe_sets(task)``: the built-ins meant for the model's task.
    """
    file_options: dict[str, Any] = {
        "mapping": config.probe_mapping or None,
        "defaults": config.probe_defaults or None,
        "split": config.probe_split,
    }
    sets = [
        load_probe_set(spec, **file_options) if Path(spec).exists() else load_probe_set(spec)
        for spec in config.probes or default_probe_sets(task)
    ]
    if config.associations:
        extra = tuple(a for spec in config.associations for a in load_associations(spec))
        sets = [s if s.associations else s.model_copy(update={"associations": extra}) for s in sets]
    max_instances = config.max_instances
    if max_instances is not None:
        sets = [sample_instances(s, max_instances) for s in sets]
    seen: set[str] = set()
    for probe_set in sets:
        if probe_set.name in seen:
            raise UserError(f"two probe sets are named {probe_set.name!r}; give each a distinct name")
        seen.add(probe_set.name)
    return sets


def default_probe_sets(task: str | None = None) -> list[str]:
    """The built-in sets an audit runs when none are named: those of every kind run by default
    (counterfactual, parallel and multiple-choice sets), less those marked ``in_default_run:
    false`` (the French, Spanish and German gender sets); long-context is asked for by name
    (minutes per model on a CPU). With a task, only the sets meant for it (their ``tasks:``)."""
    return [
        name
        for kind in KINDS.values()
        if kind.in_default_run
        for name in list_builtin(kind=kind.name, default_run_only=True)
        if task is None or set(probe_set_tasks(task)) & set(load_builtin(name).tasks)
    ]


def sample_instances(probe_set: ProbeSet, k: int) -> ProbeSet:
    """At most k instances; for a long-document set, at most k keys and k swaps (each is built at
    every length)."""
    spec = probe_set.long_document
    if spec is None:
        return probe_set.model_copy(update={"instances": spread_sample(probe_set.instances, k)})
    smaller = spec.model_copy(
        update={"keys": spread_sample(spec.keys, k), "swaps": spread_sample(spec.swaps, k)}
    )
    return probe_set.model_copy(update={"long_document": smaller})


def spread_sample(items: tuple[T, ...], k: int) -> tuple[T, ...]:
    """k items spread evenly over the sequence (so every template of a set is represented)."""
    if k >= len(items):
        return items
    return tuple(items[(i * len(items)) // k] for i in range(k))


def probe_set_problems(probe_set: ProbeSet, target: Target) -> list[str]:
    """Why a probe set cannot run on this target (empty when it can)."""
    mismatch = task_mismatch(probe_set, target.task)
    return ([mismatch] if mismatch else []) + target.check_probe_set(probe_set)


def task_mismatch(probe_set: ProbeSet, task: str) -> str | None:
    """Why a probe set is not meant for a model of this task (None when it is)."""
    if set(probe_set_tasks(task)) & set(probe_set.tasks):
        return None
    meant = f"probe set {probe_set.name!r} is meant for {', '.join(probe_set.tasks)}, not {task}"
    if probe_set.tasks != default_tasks(probe_set.kind):
        return f"{meant}; pick another probe set or model, or list the task under 'tasks:' in the probe file"
    return (
        f"{meant}: those are the tasks that can score a {probe_set.kind.replace('_', '-')} set that lists "
        f"no 'tasks:' (a CSV/JSONL file, a dataset, a YAML file without 'tasks:'); pick a probe set made "
        f"for {task} models, or write a YAML probe file whose 'tasks:' lists {task} if it can score this set"
    )


def long_input_policy(config: AuditConfig, target: Target) -> LongInputPolicy:
    """The strategy for texts longer than the model's maximum, with the stride it will really use."""
    if config.long_inputs == "truncate":
        if config.window_stride is not None:
            raise UserError(
                "--window-stride applies to --long-inputs window; add that, or leave the stride out"
            )
        return LongInputPolicy("truncate")
    if not target.windows_supported:
        raise UserError(
            f"--long-inputs window does not apply to {target.task} models: their scores are computed on each "
            "whole text (a masked LM masks tokens of the whole variant), so texts longer than the model are "
            "cut and flagged instead; leave --long-inputs out"
        )
    capacity = target.max_length - target.tokenizer.num_special_tokens_to_add(pair=False)
    stride = config.window_stride if config.window_stride is not None else default_stride(capacity)
    return LongInputPolicy("window", stride, config.aggregate)


def build_long_documents(probe_set: ProbeSet, target: Target, config: AuditConfig) -> ProbeSet:
    """A long-document set's instances, built for this model's tokenizer and maximum length
    (sets of other kinds pass through)."""
    if probe_set.long_document is None:
        return probe_set

    def count_tokens(texts: Sequence[str]) -> list[int]:
        return [
            len(ids)
            for ids in target.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        ]

    # "the model's maximum" for a document is what fits beside the special tokens of one input
    room = target.max_length - target.tokenizer.num_special_tokens_to_add(pair=False)
    return materialize(probe_set, count_tokens, room, config.max_doc_tokens)
