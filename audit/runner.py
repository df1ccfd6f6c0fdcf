"""run_audit: the pipeline, one step after another.

    load probe sets -> load the model -> check they fit -> encode -> score -> effects
    -> findings -> attributions -> attention statistics -> write the run

Each step is timed; the timings, versions and hashes go into the run's manifest.
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from audit.attention import attention_rows
from audit.attribution import attribution_rows, focus_token_mask
from audit.attribution.segments import segment_attribution_rows
from audit.batching import Encoded, collate, run_with_backoff, token_budget_batches
from audit.config import AuditConfig
from audit.errors import UserError
from audit.generation import GenerationPlan, GenerationResult, generate_all, plan_generation
from audit.loaded_model import LoadedModel
from audit.metrics.entity_recall import build_entity_recall_findings
from audit.metrics.long_context import build_long_effects, build_long_findings
from audit.metrics.multilingual import (
    REFERENCE_SIMILARITY,
    build_language_findings,
    build_parallel_effects,
    build_parallel_findings,
    content_share_findings,
    mark_unreadable,
)
from audit.metrics.multiple_choice import (
    answer_table,
    build_choice_effects,
    build_choice_findings,
    choice_table,
)
from audit.metrics.paired import build_effects, build_findings
from audit.metrics.preference import with_preference_findings
from audit.metrics.translation import (
    TranslationPlan,
    TranslationResult,
    build_translation_findings,
    join_family,
    plan_translations,
    translate_all,
)
from audit.models import describe_model, load_model, task_before_loading
from audit.store import RunStore
from audit.tables import SCHEMA_VERSION, TABLES, flags
from audit.targets import ScoreHead, Target, build_target
from audit.tasks import probe_set_tasks
from audit.tokenization import TokenCounts, token_counts
from audit.windows import (
    EncodedText,
    LongInputPolicy,
    combine_attention,
    combine_scores,
    combine_token_attributions,
    default_stride,
    encode_long,
)
from probes import list_builtin, load_builtin, load_probe_set
from probes.associations import load_associations
from probes.long_document import materialize
from probes.schema import ProbeSet, Span

T = TypeVar("T")

LONG_ATTRIBUTION_METHODS = ("segment_ablation",)
"""Long documents are explained by sentence: each segment replaced by padding, one forward pass
each (no backward pass, so memory stays that of scoring), recorded in the manifest."""
MAX_SEGMENTS = 32


@dataclass
class ProbeInputs:
    """One probe set's variants, encoded for the model, with its score head."""

    probe_set: ProbeSet
    head: ScoreHead
    example_ids: list[str]
    texts: list[EncodedText]
    """Per variant: its model input, or its sliding windows (audit/windows.py)."""
    focus_lost: list[bool]
    """Per variant: it has focus spans, but truncation cut every focus token off."""
    inputs_identical: list[bool]
    """Per variant: every variant of its instance has the same input ids."""
    focus_partly_lost: list[bool]
    """Per variant: truncation cut off part of its focus span (some of it reached the model)."""
    coverage: list[TokenCounts]
    """Per variant: how the tokenizer covers its whole text (audit/tokenization.py)."""
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    window_scores: list[np.ndarray] = field(default_factory=list)
    """Per variant: (windows, outputs) scores before they were combined."""

    @property
    def is_long_document(self) -> bool:
        return self.probe_set.kind == "long_document"

    @property
    def is_parallel(self) -> bool:
        return self.probe_set.kind == "parallel"

    @property
    def is_multiple_choice(self) -> bool:
        return self.probe_set.kind == "multiple_choice"

    def windows(self, indices: list[int]) -> tuple[list[Encoded], list[int]]:
        """The model inputs of these variants (a text's one input, or its windows) and which
        variant each belongs to."""
        inputs: list[Encoded] = []
        owners: list[int] = []
        for i in indices:
            inputs.extend(self.texts[i].windows)
            owners.extend([i] * len(self.texts[i].windows))
        return inputs, owners


@dataclass
class RunResult:
    run_dir: Path
    manifest: dict[str, Any]
    findings: pd.DataFrame


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
    """The built-in sets an audit runs when none are named: the counterfactual sets, the
    multilingual parallel set and the multiple-choice sets (bbq-mini), less those marked
    ``in_default_run: false`` (the French, Spanish and German gender sets); long-context is asked
    for by name (minutes per model on a CPU). With a task, only the sets meant for it (their
    ``tasks:``)."""
    return [
        name
        for kind in ("counterfactual", "parallel", "multiple_choice")
        for name in list_builtin(kind=kind, default_run_only=True)  # type: ignore[arg-type]
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


def default_run_name(model_name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in model_name.strip("/").split("/")[-1])
    return f"{stamp}-{safe}"


class Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


def run_audit(config: AuditConfig, model_name: str, console: Console | None = None) -> RunResult:
    """Audit one model with the configured probe sets and write the run folder.

    Everything that can fail on the user's input (probe files, the model, their fit, encoding)
    happens before the run folder exists; a run that fails or is interrupted later is marked so
    in its manifest ("failed" / "interrupted"), never left looking like it is still running.
    """
    console = console or Console(stderr=True)
    timer = Timer()
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
    with timer.stage("encode"):
        inputs = [encode_probe_set(s, target, policy) for s in probe_sets]
        examples = examples_table(inputs)
    with timer.stage("load"):  # --generate: refused for models that do not generate; the scorer loads here
        # seq2seq models translate every variant instead (audit/metrics/translation.py)
        translations = plan_translations(config, target)
        generation = plan_generation(config, target, probe_sets, device) if translations is None else None

    store = RunStore.create(
        config.out / (config.name or default_run_name(model_name)),
        overwrite=config.overwrite,
        unique=config.name is None,
    )
    manifest = start_manifest(config, loaded, probe_sets, store, device)
    manifest["long_inputs"] = policy.describe(target.max_length)
    store.write_manifest(manifest)
    try:
        findings = analyse_and_write(
            inputs,
            examples,
            target,
            config,
            store,
            manifest,
            timer,
            console,
            list(loaded.warnings),
            generation=generation,
            translations=translations,
        )
    except KeyboardInterrupt:
        store.mark(manifest, "interrupted")
        raise
    except BaseException as error:
        store.mark(manifest, "failed", f"{type(error).__name__}: {error}")
        raise
    return RunResult(store.path, manifest, findings)


def analyse_and_write(
    inputs: list[ProbeInputs],
    examples: pd.DataFrame,
    target: Target,
    config: AuditConfig,
    store: RunStore,
    manifest: dict[str, Any],
    timer: Timer,
    console: Console,
    warnings: list[str],
    generation: GenerationPlan | None = None,
    translations: TranslationPlan | None = None,
) -> pd.DataFrame:
    """Score, compare, test, explain, and write every table; returns the findings.

    ``warnings`` (from loading, so far) grows with what the analysis finds; all go to the manifest.
    ``generation`` (--generate): continuations of the counterfactual variants, scored by the plan's
    scorer into per-variant ``gen:*`` outputs that are compared like the others (audit/generation.py).
    """
    with progress(console) as bars, timer.stage("score"):
        predictions = score_all(inputs, target, config, bars)
    generated: GenerationResult | None = None
    if generation is not None:
        with progress(console) as bars, timer.stage("generate"):
            generated = generate_continuations(inputs, target, config, generation, bars)
        predictions = pd.concat([predictions, generated.predictions], ignore_index=True)
        warnings += generated.warnings
        manifest["generation"] = generated.manifest
    translated: TranslationResult | None = None
    if translations is not None:  # seq2seq: the model's own translations and the forms they use
        with progress(console) as bars, timer.stage("generate"):
            translated = translate_all(
                inputs,
                target,  # type: ignore[arg-type]  # plan_translations made a plan for Seq2SeqTarget only
                translations,
                config.batch_tokens,
                lambda name, total: partial(bars.advance, bars.add_task(name, total=total)),
            )
        warnings += translated.warnings
        manifest["generation"] = translated.manifest
    with timer.stage("findings"):
        counterfactual = [
            item
            for item in inputs
            if not item.is_long_document and not item.is_parallel and not item.is_multiple_choice
        ]
        multiple_choice = [item for item in inputs if item.is_multiple_choice]
        long_documents = [item for item in inputs if item.is_long_document]
        parallel = [item for item in inputs if item.is_parallel]
        effects, findings, left_out, notes = compare_counterfactuals(
            counterfactual,
            examples,
            predictions,
            config,
            extra_outputs=generated.tested_outputs if generated is not None else (),
        )
        warnings += notes
        if translated is not None:  # generation findings join the counterfactual BH family
            findings = join_family(
                findings,
                build_translation_findings(translated.table, examples, **config.test_options),
                {i.probe_set.name: i.head.notes.get("expected_effects", []) for i in counterfactual},
                config.alpha,
            )
        unreadable: dict[str, dict[str, float]] = {}
        if parallel:
            parallel_effects, parallel_findings, unreadable, truncated, notes = compare_languages(
                parallel, examples, predictions, target, config
            )
            if truncated:
                left_out["parallel_truncated"] = truncated
            warnings += notes
            effects = pd.concat([effects, parallel_effects], ignore_index=True)
            findings = pd.concat([findings, parallel_findings], ignore_index=True)
        if long_documents:
            long_effects, long_findings, notes = compare_long_documents(
                long_documents, examples, predictions, target, config
            )
            warnings += notes
            effects = pd.concat([effects, long_effects], ignore_index=True)
            findings = pd.concat([findings, long_findings], ignore_index=True)
        if multiple_choice:
            choice_effects, choice_findings, notes = compare_choices(
                multiple_choice, examples, predictions, config
            )
            warnings += notes
            effects = pd.concat([effects, choice_effects], ignore_index=True)
            findings = pd.concat([findings, choice_findings], ignore_index=True)
    findings = note_underpowered(findings, config.alpha)
    n_underpowered, notes = underpowered_tests(findings, config.alpha)
    warnings += notes
    if findings["p_value"].notna().sum() == 0:
        warnings.append(
            "no statistical test could be run: nothing in this run can be called significant or fair"
        )
    no_attention = target.attention_unavailable() if config.attention else None
    if no_attention:
        warnings.append(no_attention)
    for warning in warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)

    attributions = pd.DataFrame(columns=TABLES["attributions"])
    attribution_pairs = pd.DataFrame(columns=TABLES["attribution_pairs"])
    segments = pd.DataFrame(columns=TABLES["segment_attributions"])
    if config.attributions:
        with progress(console) as bars, timer.stage("attributions"):
            attributions, attribution_pairs = attribute_top_instances(
                counterfactual + parallel + multiple_choice, examples, effects, target, config, bars
            )
            if parallel:
                findings = pd.concat(
                    [findings, content_shares(parallel, attributions, examples, target, config, unreadable)],
                    ignore_index=True,
                )
            if long_documents:
                segments, long_tokens = attribute_long_documents(
                    long_documents, effects, target, config, bars
                )
                attributions = pd.concat([attributions, long_tokens], ignore_index=True)
        for note in unconverged_attributions(attributions, examples):
            console.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
            warnings.append(note)
    attention = pd.DataFrame(columns=TABLES["attention"])
    if config.attention and not no_attention:
        with progress(console) as bars, timer.stage("attention"):
            attention = attention_all(inputs, target, config, bars)

    with timer.stage("write"):
        tables = {
            "examples": examples,
            "predictions": predictions,
            "effects": effects,
            "findings": findings,
            "attributions": attributions,
            "attribution_pairs": attribution_pairs,
            "attention": attention,
            "segment_attributions": segments,
            "generations": generated.table
            if generated is not None
            else translated.table
            if translated is not None
            else pd.DataFrame(columns=TABLES["generations"]),
        }
        for name, frame in tables.items():
            store.write_table(name, frame)
    tested_rows = findings["q_value"].notna()  # in a BH family (unreadable languages' rows are not)
    manifest.update(
        timings=timer.seconds,
        warnings=warnings,
        summary={
            "n_examples": len(examples),
            "n_findings": len(findings),
            "n_tests": int(tested_rows.sum()),
            # problems: a key sentence that moves the output (key_effect) is significant but no problem
            "n_significant": int(problem_findings(findings).sum()),
            "n_key_effects_significant": int(
                (flags(findings["significant"]) & (findings["metric"] == "key_effect")).sum()
            ),
            "n_attributed_examples": int(attributions["example_id"].nunique()) if len(attributions) else 0,
            "n_segment_attributed_examples": int(segments["example_id"].nunique()) if len(segments) else 0,
            "n_truncated_examples": int(examples["truncated"].sum()),
            "instances_left_out": left_out,
            "n_underpowered_tests": n_underpowered,
            "unreadable_languages": unreadable,
        },
    )
    store.mark(manifest, "complete")
    return findings


# --- steps -------------------------------------------------------------------------------------


def probe_set_problems(probe_set: ProbeSet, target: Target) -> list[str]:
    """Why a probe set cannot run on this target (empty when it can)."""
    mismatch = task_mismatch(probe_set, target.task)
    return ([mismatch] if mismatch else []) + target.check_probe_set(probe_set)


def task_mismatch(probe_set: ProbeSet, task: str) -> str | None:
    """Why a probe set is not meant for a model of this task (None when it is)."""
    if set(probe_set_tasks(task)) & set(probe_set.tasks):
        return None
    return (
        f"probe set {probe_set.name!r} is meant for {', '.join(probe_set.tasks)}, not {task}; "
        "pick another probe set or model, or list the task under 'tasks:' in the probe file"
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
    (counterfactual sets pass through)."""
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


def encode_probe_set(probe_set: ProbeSet, target: Target, policy: LongInputPolicy) -> ProbeInputs:
    variants = probe_set.variants
    texts = encode_long(target.tokenizer, [v.text for v in variants], target.max_length, policy)
    ids = [f"{probe_set.name}/{v.instance_id}/{v.variant}" for v in variants]
    focus_lost = [
        any(s.end > s.start for s in v.focus)
        and not any(
            any(focus_token_mask(window, [(s.start, s.end) for s in v.focus])) for window in text.windows
        )
        for v, text in zip(variants, texts, strict=True)
    ]
    partly_lost = [
        not lost and text.truncated and any(s.end > seen_until(text) for s in v.focus)
        for v, text, lost in zip(variants, texts, focus_lost, strict=True)
    ]
    ids_by_instance: dict[str, set[tuple[tuple[int, ...], ...]]] = {}
    for v, text in zip(variants, texts, strict=True):
        ids_by_instance.setdefault(v.instance_id, set()).add(tuple(tuple(w.input_ids) for w in text.windows))
    identical = [len(ids_by_instance[v.instance_id]) == 1 for v in variants]
    coverage = token_counts(target.tokenizer, [v.text for v in variants], [v.lang for v in variants])
    return ProbeInputs(
        probe_set, target.head(probe_set), ids, texts, focus_lost, identical, partly_lost, coverage
    )


def examples_table(inputs: list[ProbeInputs]) -> pd.DataFrame:
    rows = []
    for item in inputs:
        for example_id, variant, text, lost, identical, partly, coverage in zip(
            item.example_ids,
            item.probe_set.variants,
            item.texts,
            item.focus_lost,
            item.inputs_identical,
            item.focus_partly_lost,
            item.coverage,
            strict=True,
        ):
            rows.append(
                {
                    "example_id": example_id,
                    "probe_set": item.probe_set.name,
                    "instance_id": variant.instance_id,
                    "variant": variant.variant,
                    "attribute": variant.attribute,
                    "lang": variant.lang,
                    "text": variant.text,
                    "label": variant.label,
                    "focus": json.dumps([[s.start, s.end] for s in variant.focus]),
                    # tokens that reached the model: the cut input, or every token of a windowed text
                    "n_tokens": text.first.n_tokens if len(text.windows) == 1 else text.n_tokens,
                    "truncated": text.truncated,
                    "n_windows": len(text.windows),
                    "doc_length": variant.doc_length,
                    "position": variant.position,
                    "swap_group": variant.swap_group,
                    "n_text_tokens": coverage.n_text_tokens,
                    "n_words": coverage.n_words,
                    "n_chars": coverage.n_chars,
                    "n_unknown": coverage.n_unknown,
                    "n_unknown_chars": coverage.n_unknown_chars,
                    "n_byte_fallback": coverage.n_byte_fallback,
                    "focus_truncated": lost,
                    "inputs_identical": identical,
                    "focus_partly_truncated": partly,
                }
            )
    frame = pd.DataFrame(
        rows, columns=[*TABLES["examples"], "focus_truncated", "inputs_identical", "focus_partly_truncated"]
    )
    frame = frame.astype(
        {
            "doc_length": "Int64",
            "position": "float64",
            "swap_group": "string",
            "n_words": "Int64",
            "n_unknown_chars": "Int64",
        }
    )
    duplicated = frame.loc[frame["example_id"].duplicated(), "example_id"]
    if not duplicated.empty:
        raise UserError(
            f"example id {duplicated.iloc[0]!r} stands for two variants; '/' inside instance ids or "
            "variant names can make ids collide: rename them"
        )
    return frame


def compare_counterfactuals(
    inputs: list[ProbeInputs],
    examples: pd.DataFrame,
    predictions: pd.DataFrame,
    config: AuditConfig,
    extra_outputs: Sequence[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, int]], list[str]]:
    """Effects and findings of the counterfactual sets (audit/metrics/paired.py); ``extra_outputs``
    are tested too (the ``gen:*`` scores of generated continuations)."""
    names = {item.probe_set.name for item in inputs}
    tested = {output for item in inputs for output in item.head.tested_outputs} | set(extra_outputs)
    comparable, left_out, notes = comparable_examples(examples[examples["probe_set"].isin(names)])
    compared = predictions["output"].isin(tested) & predictions["example_id"].isin(comparable["example_id"])
    effects = build_effects(comparable, predictions[compared])
    findings = build_findings(
        effects,
        **config.test_options,
    )
    preferences = {item.probe_set.name: item.head.preference_outputs for item in inputs}
    if any(preferences.values()):  # stereotype vs anti-stereotype sets (audit/metrics/preference.py)
        findings = with_preference_findings(findings, effects, preferences, **config.test_options)
    recall = build_entity_recall_findings(comparable, predictions[compared], confidence=config.confidence)
    if not recall.empty:  # token-classification runs: each group's share of names tagged as a person
        findings = pd.concat([findings, recall], ignore_index=True)
    return effects, findings, left_out, notes


def compare_choices(
    inputs: list[ProbeInputs], examples: pd.DataFrame, predictions: pd.DataFrame, config: AuditConfig
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Effects and findings of the multiple-choice (BBQ-style) sets (audit/metrics/multiple_choice.py):
    the bias score in ambiguous contexts, the accuracy gap in disambiguated ones."""
    names = {item.probe_set.name for item in inputs}
    rows = examples[examples["probe_set"].isin(names)]
    cut = rows.groupby(["probe_set", "instance_id"])["truncated"].transform("any")
    lost = set(zip(rows.loc[cut, "probe_set"], rows.loc[cut, "instance_id"], strict=True))
    choices = choice_table([item.probe_set for item in inputs])
    kept = choices[
        [key not in lost for key in zip(choices["probe_set"], choices["instance_id"], strict=True)]
    ]
    notes = [
        f"{n} instance(s) of {probe_set} left out: their text was cut to the model's maximum length"
        for probe_set, n in pd.Series([p for p, _ in lost], dtype=object).value_counts().items()
    ]
    answers = answer_table(kept, rows, predictions[predictions["example_id"].isin(rows["example_id"])])
    return build_choice_effects(answers), build_choice_findings(answers, **config.test_options), notes


def generate_continuations(
    inputs: list[ProbeInputs], target: Target, config: AuditConfig, plan: GenerationPlan, bars: Progress
) -> GenerationResult:
    """--generate: continuations of every variant of the counterfactual sets, scored by the plan's scorer."""
    chosen = [item for item in inputs if item.probe_set.kind == "counterfactual"]
    n_rows = sum(len(item.example_ids) for item in chosen) * plan.settings.n_samples
    task = bars.add_task(f"generate x{plan.settings.n_samples}", total=n_rows)
    return generate_all(
        plan,
        [(item.probe_set, item.example_ids) for item in chosen],
        target,
        batch_tokens=config.batch_tokens,
        on_done=partial(bars.advance, task),
    )


def compare_long_documents(
    inputs: list[ProbeInputs],
    examples: pd.DataFrame,
    predictions: pd.DataFrame,
    target: Target,
    config: AuditConfig,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Effects and findings of the long-document sets (audit/metrics/long_context.py): the key
    sentence's effect by length and position, effective context, middle dip, identity swaps."""
    names = {item.probe_set.name for item in inputs}
    rows = examples[examples["probe_set"].isin(names)]
    instance_outputs = pd.DataFrame(
        [
            {"probe_set": item.probe_set.name, "instance_id": instance.instance_id, "output": output}
            for item in inputs
            for instance in item.probe_set.instances
            for output in item.head.outputs_of(instance)
        ],
        columns=["probe_set", "instance_id", "output"],
    )
    effects = build_long_effects(
        rows, predictions[predictions["example_id"].isin(rows["example_id"])], instance_outputs
    )
    findings = build_long_findings(
        effects,
        rows,
        model_max_length=target.max_length,
        strategy=config.long_inputs,
        **config.test_options,
    )
    findings = note_partial_cuts(findings, rows)
    notes = []
    keyed = rows[rows["position"].notna()]
    for probe_set, group in keyed.groupby("probe_set"):
        lost = int(group["focus_truncated"].sum())
        if lost:
            notes.append(
                f"{lost} of {len(group)} documents of {probe_set} lost their key sentence to truncation at the "
                f"model's {target.max_length}-token limit: its effect there is 0 by construction (see the findings' "
                "notes); --long-inputs window scores whole documents"
            )
    return effects, findings, notes


def compare_languages(
    inputs: list[ProbeInputs],
    examples: pd.DataFrame,
    predictions: pd.DataFrame,
    target: Target,
    config: AuditConfig,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, float]], dict[str, int], list[str]]:
    """Effects and findings of the parallel sets (audit/metrics/multilingual.py): each language
    against the reference, the tokenizer's coverage of each language, and which languages the
    model cannot read. Returns effects, findings, the unreadable languages and warnings."""
    names = {item.probe_set.name for item in inputs}
    rows = examples[examples["probe_set"].isin(names)]
    compared = {output for item in inputs for output in item.head.tested_outputs}
    compared.add(REFERENCE_SIMILARITY)
    scored = predictions[
        predictions["example_id"].isin(rows["example_id"]) & predictions["output"].isin(compared)
    ]
    references = {item.probe_set.name: str(item.probe_set.reference_lang) for item in inputs}
    # a text cut to the model's maximum compares a part with a whole: leave its instance out
    cut = rows.groupby(["probe_set", "instance_id"])["truncated"].transform("any")
    left_out = {str(k): int(v) for k, v in rows[cut].groupby("probe_set")["instance_id"].nunique().items()}
    notes = [
        f"{n} instance(s) of {probe_set} left out of the comparisons between languages: a text of theirs was "
        "cut to the model's maximum length (truncation_rate says which languages)"
        for probe_set, n in left_out.items()
    ]
    kept = rows[~cut]
    effects = build_parallel_effects(kept, scored[scored["example_id"].isin(kept["example_id"])], references)
    findings = build_parallel_findings(
        effects,
        kept,
        **config.test_options,
    )
    labels = getattr(target, "labels", None)
    descriptions = build_language_findings(
        rows,
        scored,
        model_labels=labels,
        confidence=config.confidence,
        n_resamples=config.n_resamples,
        seed=config.seed,
    )
    findings, unreadable = mark_unreadable(
        pd.concat([findings, descriptions], ignore_index=True), config.unknown_rate_limit, config.alpha
    )
    notes += [
        f"{probe_set}: {', '.join(f'{lang} ({rate:.0%} unknown tokens)' for lang, rate in languages.items())} "
        f"unknown to the tokenizer (limit {config.unknown_rate_limit:.0%}): the model cannot read "
        f"{'it' if len(languages) == 1 else 'them'}, so differences there are not bias findings"
        for probe_set, languages in unreadable.items()
    ]
    stated = {str(label) for label in rows["label"].dropna()}
    if labels is not None and stated - set(labels):
        unknown = rows[rows["label"].isin(stated - set(labels))].groupby("probe_set")["instance_id"].nunique()
        notes += [
            f"{n} instance(s) of {probe_set} expect a label the model does not have "
            f"({', '.join(sorted(stated - set(labels)))}; its labels: {', '.join(labels)}): label_accuracy "
            "leaves them out"
            for probe_set, n in unknown.items()
        ]
    return effects, findings, unreadable, left_out, notes


def content_shares(
    inputs: list[ProbeInputs],
    attributions: pd.DataFrame,
    examples: pd.DataFrame,
    target: Target,
    config: AuditConfig,
    unreadable: dict[str, dict[str, float]],
) -> pd.DataFrame:
    """content_attribution_share rows of the parallel sets, from their token attributions (unknown
    tokens stay in: they stand for words the model could not read)."""
    names = {item.probe_set.name for item in inputs}
    rows = examples[examples["probe_set"].isin(names)]
    tokens = attributions[attributions["example_id"].isin(rows["example_id"])]
    special = set(target.tokenizer.all_special_tokens) - {target.tokenizer.unk_token}
    shares = content_share_findings(
        tokens, rows, special, confidence=config.confidence, n_resamples=config.n_resamples, seed=config.seed
    )
    for index, row in shares.iterrows():
        rate = unreadable.get(str(row["probe_set"]), {}).get(str(row["group_a"]))
        if rate is not None:
            shares.at[index, "note"] = f"{row['note']}; {rate:.0%} of its tokens are unknown to the model"
    return shares


IG_TOLERANCE = 0.1
"""An integrated-gradients attribution whose convergence delta exceeds this share of the score
difference it explains (f(x) - f(baseline)) is reported as not converged."""


def unconverged_attributions(attributions: pd.DataFrame, examples: pd.DataFrame) -> list[str]:
    """Per probe set, a warning when integrated gradients did not converge for some of its
    attributed examples: their token attributions do not add up to the explained difference (deep
    decoders, whose interpolated embeddings pass through sharp regions, are the usual case)."""
    ig = attributions[attributions["method"] == "integrated_gradients"]
    if ig.empty or ig["convergence_delta"].isna().all():
        return []
    per_example = ig.groupby("example_id").agg(
        total=("attribution", "sum"), delta=("convergence_delta", "first")
    )
    explained = (per_example["total"] - per_example["delta"]).abs()
    relative = per_example["delta"].abs() / explained.clip(lower=1e-12)
    sets = examples.set_index("example_id")["probe_set"]
    notes = []
    for probe_set, values in relative.groupby(relative.index.map(lambda e: sets.get(e, "?"))):
        off = values[values > IG_TOLERANCE]
        if len(off):
            notes.append(
                f"integrated gradients did not converge for {len(off)} of {len(values)} attributed examples of "
                f"{probe_set} (convergence delta above {IG_TOLERANCE:.0%} of the difference explained; median "
                f"{values.median():.0%}): their token attributions are indicative only; raise --ig-steps, or "
                "compare with gradient_x_input"
            )
    return notes


def problem_findings(findings: pd.DataFrame) -> pd.Series:
    """Significant rows that report a problem (severity above "none"): what --fail-on counts."""
    if findings.empty:
        return pd.Series(False, index=findings.index)
    return flags(findings["significant"]) & (findings["severity"] != "none")


def note_partial_cuts(findings: pd.DataFrame, examples: pd.DataFrame) -> pd.DataFrame:
    """key_effect / swap_effect cells where truncation cut the sentence in half say so: the model
    read only part of it there, so the effect is neither the whole sentence's nor 0."""
    partly = examples[examples["focus_partly_truncated"] & examples["position"].notna()]
    if partly.empty or findings.empty:
        return findings
    counts = partly.groupby(["probe_set", "doc_length", "position"])["instance_id"].nunique()
    findings = findings.copy()
    for index, row in findings[findings["metric"].isin(["key_effect", "swap_effect"])].iterrows():
        n = counts.get((row["probe_set"], row["doc_length"], row["position"]))
        if n:
            text = f"sentence partly cut off by truncation in {int(n)} instance(s): only its start reached the model"
            findings.at[index, "note"] = text if pd.isna(row["note"]) else f"{row['note']}; {text}"
    return findings


def underpowered_mask(findings: pd.DataFrame, alpha: float) -> pd.Series:
    """Tested paired rows with too few instances for any sign pattern to reach p < alpha (the
    exact test's smallest p is 2**(1-n)); they can never be significant, whatever the data."""
    tested = findings["p_value"].notna() & (findings["metric"] != "seat_effect_size")
    return tested & (np.power(2.0, 1 - findings["n"].astype(float)) >= alpha)


def note_underpowered(findings: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Say so in each underpowered row's note, so 'not significant' there is not read as 'fair'."""
    mask = underpowered_mask(findings, alpha) & findings["note"].isna()
    if mask.any():
        findings = findings.copy()
        findings.loc[mask, "note"] = findings.loc[mask, "n"].map(
            lambda n: f"only {int(n)} instance(s): no result could reach p < {alpha}; add instances"
        )
    return findings


def underpowered_tests(findings: pd.DataFrame, alpha: float) -> tuple[int, list[str]]:
    """How many rows ``underpowered_mask`` finds, and the warning to show."""
    underpowered = findings[underpowered_mask(findings, alpha)]
    if underpowered.empty:
        return 0, []
    return len(underpowered), [
        f"{len(underpowered)} test(s) have {int(underpowered['n'].max())} or fewer instances and cannot reach "
        f"p < {alpha}: 'not significant' there says nothing; add instances (for long documents: keys or swaps)"
    ]


LEFT_OUT_REASONS = {
    "focus_truncated": "truncation to the model's maximum length cut off the words that differ between variants",
    "inputs_identical": "all its variants tokenize to the same input ids, so the model cannot tell them apart",
}


def comparable_examples(examples: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[str, int]], list[str]]:
    """Drop instances whose variants cannot be compared (their deltas would read as 'no bias'):
    the swapped words were truncated away, or the variants tokenize identically. Returns the kept
    rows, per reason and probe set how many instances were left out, and warnings to show."""
    keep = pd.Series(True, index=examples.index)
    left_out: dict[str, dict[str, int]] = {}
    notes = []
    for reason, explanation in LEFT_OUT_REASONS.items():
        bad = examples.groupby(["probe_set", "instance_id"])[reason].transform("any") & keep
        counts = examples[bad].groupby("probe_set")["instance_id"].nunique()
        if counts.empty:
            continue
        left_out[reason] = {str(k): int(v) for k, v in counts.items()}
        notes += [
            f"{n} instance(s) of {probe_set} left out of effects and findings: {explanation}"
            for probe_set, n in left_out[reason].items()
        ]
        keep &= ~bad
    return examples[keep], left_out, notes


def score_all(inputs: list[ProbeInputs], target: Target, config: AuditConfig, bars: Progress) -> pd.DataFrame:
    """Run every model input through its probe set's score head; a text's score combines its
    windows' (audit/windows.py). Long-format predictions."""
    pad_id = target.tokenizer.pad_token_id
    frames = []
    for item in inputs:
        windows, owners = item.windows(list(range(len(item.texts))))
        task = bars.add_task(f"score {item.probe_set.name}", total=len(windows))
        window_scores = np.zeros((len(windows), len(item.head.outputs)), dtype=np.float64)

        @torch.no_grad()
        def step(
            batch: list[int],
            windows: list[Encoded] = windows,
            owners: list[int] = owners,
            item: ProbeInputs = item,
        ) -> np.ndarray:
            ids, mask = collate([windows[i] for i in batch], pad_id, target.device)
            variant_index = torch.tensor([owners[i] for i in batch], dtype=torch.long, device=target.device)
            return item.head.forward(ids, mask, variant_index).detach().cpu().double().numpy()

        for batch in token_budget_batches([w.n_tokens for w in windows], config.batch_tokens):
            for done, values in run_with_backoff(batch, step):
                window_scores[done] = values
                bars.advance(task, len(done))
        owner_of = np.asarray(owners)
        item.window_scores = [window_scores[owner_of == i] for i in range(len(item.texts))]
        item.scores = combine_scores(item.window_scores, config.aggregate)
        scores = item.scores
        labels = item.head.predict_labels(scores)
        if item.head.notes.get("reference_similarity"):
            frames.append(reference_similarity_predictions(item, labels))
            continue
        n_out = len(item.head.outputs)
        frames.append(
            pd.DataFrame(
                {
                    "example_id": np.repeat(item.example_ids, n_out),
                    "output": np.tile(item.head.outputs, len(item.example_ids)),
                    "score": scores.reshape(-1),
                    "label": np.repeat(np.array(labels, dtype=object), n_out),
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TABLES["predictions"])


def reference_similarity_predictions(item: ProbeInputs, labels: list[str | None]) -> pd.DataFrame:
    """Parallel sets under an embedding model: one prediction per text, its similarity to its own
    instance's reference text (output "sim:reference"); the label is the instance whose reference
    text is nearest (see EmbeddingTarget.reference_head)."""
    column = {name: k for k, name in enumerate(item.head.outputs)}
    own = [column[f"sim:{v.instance_id}"] for v in item.probe_set.variants]
    return pd.DataFrame(
        {
            "example_id": item.example_ids,
            "output": REFERENCE_SIMILARITY,
            "score": item.scores[np.arange(len(own)), own],
            "label": np.array(labels, dtype=object),
        }
    )


def top_instances(effects: pd.DataFrame, probe_set: str, top: int | str) -> list[str]:
    """Instances of a probe set ordered by their largest |delta| (all of them for 'all')."""
    rows = effects[(effects["probe_set"] == probe_set) & (effects["group_b"] != "rest")]
    if rows.empty:
        return []
    ranked = (
        rows.assign(size=rows["delta"].abs())
        .groupby("instance_id")["size"]
        .max()
        .sort_values(ascending=False)
    )
    ids = [str(i) for i in ranked.index]
    return ids if top == "all" else ids[: int(top)]


def attribute_top_instances(
    inputs: list[ProbeInputs],
    examples: pd.DataFrame,
    effects: pd.DataFrame,
    target: Target,
    config: AuditConfig,
    bars: Progress,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Token attributions for the variants of the instances with the largest effects."""
    token_frames, pair_frames = [], []
    for item in inputs:
        chosen = top_instances(effects, item.probe_set.name, config.attribute_top)
        if not chosen:
            continue
        index_of = {eid: i for i, eid in enumerate(item.example_ids)}
        selected, output_names = [], []
        for instance in (i for i in item.probe_set.instances if i.instance_id in set(chosen)):
            ids = [f"{item.probe_set.name}/{instance.instance_id}/{v.variant}" for v in instance.variants]
            rows = [index_of[e] for e in ids]
            output = item.head.attribution_output([v.label for v in instance.variants], item.scores[rows])
            selected.extend(rows)
            output_names.extend([output] * len(rows))
        tokens = token_attributions(item, selected, output_names, target, config, bars)
        token_frames.append(tokens)
        if not item.is_parallel:  # languages have no swapped words to weigh against each other
            pair_frames.append(focus_attribution_pairs(tokens, examples, effects, item.probe_set.name))
    if not token_frames:
        return pd.DataFrame(columns=TABLES["attributions"]), pd.DataFrame(columns=TABLES["attribution_pairs"])
    pairs = (
        pd.concat(pair_frames, ignore_index=True)
        if pair_frames
        else pd.DataFrame(columns=TABLES["attribution_pairs"])
    )
    return pd.concat(token_frames, ignore_index=True), pairs


def token_attributions(
    item: ProbeInputs,
    selected: list[int],
    output_names: list[str],
    target: Target,
    config: AuditConfig,
    bars: Progress,
) -> pd.DataFrame:
    """Token attributions of these variants (``output_names[i]`` explained for ``selected[i]``);
    a text scored as several windows is attributed window by window and combined (audit/windows.py)."""
    windows, owners = item.windows(selected)
    if len(windows) == len(selected):  # one input per text: the rows are the text's
        window_ids = [item.example_ids[i] for i in selected]
    else:  # windows are named by their position, then combined into their texts
        window_ids = [str(k) for k in range(len(windows))]
    position = {variant: k for k, variant in enumerate(selected)}
    variants = item.probe_set.variants
    task = bars.add_task(
        f"attribute {item.probe_set.name}", total=len(windows) * len(config.attribution_methods)
    )
    tokens = attribution_rows(
        forward=item.head.forward,
        embedding_layer=target.embedding_layer(),
        examples=windows,
        example_ids=window_ids,
        texts=[variants[i].text for i in owners],
        focus=[[(s.start, s.end) for s in variants[i].focus] for i in owners],
        outputs=[output_names[position[i]] for i in owners],
        output_names=item.head.outputs,
        methods=config.attribution_methods,
        tokenizer=target.tokenizer,
        device=target.device,
        n_steps=config.ig_steps,
        batch_tokens=config.batch_tokens,
        on_done=partial(bars.advance, task),
        variant_indices=owners,
    )
    if len(windows) == len(selected):
        return tokens
    return combine_token_attributions(
        tokens,
        windows,
        [position[i] for i in owners],
        [item.example_ids[i] for i in selected],
        config.aggregate,
        [item.window_scores[i] for i in selected],
        [item.head.outputs.index(name) for name in output_names],
    )


def long_document_variants(item: ProbeInputs, effects: pd.DataFrame, top: int) -> list[int]:
    """Variants given segment attributions: the ``top`` keys and the ``top`` swaps whose documents
    moved the output most (ranked apart: a swap's effect is a difference between groups, far smaller
    than a key's), at every length, at the first, middle and last position; documents whose key
    was cut away entirely are left out (nothing of it reached the model)."""
    rows = effects[effects["probe_set"] == item.probe_set.name]
    if rows.empty or top == 0:
        return []
    roles = {i.instance_id: i.role for i in item.probe_set.instances}
    ranked = rows.assign(
        size=rows["delta"].abs(),
        key=rows["instance_id"].str.rsplit("-", n=1).str[0],
        role=rows["instance_id"].map(roles),
    )
    keys: set[str] = set()
    for _, group in ranked.groupby("role"):
        keys |= set(group.groupby("key")["size"].max().sort_values(ascending=False).index[:top])
    positions = sorted({v.position for v in item.probe_set.variants if v.position is not None})
    chosen_positions = {positions[0], positions[len(positions) // 2], positions[-1]} if positions else set()
    return [
        index
        for index, variant in enumerate(item.probe_set.variants)
        if variant.instance_id.rsplit("-", 1)[0] in keys
        and variant.position in chosen_positions
        and not item.focus_lost[index]
    ]


def seen_until(encoded: EncodedText) -> int:
    """The character where what reached the model ends."""
    return max(end for window in encoded.windows for _, end in window.offsets)


def seen_text(text: str, encoded: EncodedText, focus: Sequence[Span]) -> tuple[str, list[tuple[int, int]]]:
    """The part of a text the model saw, and the key spans inside it: a truncated document is
    segmented where it was read, not over characters that never reached the model."""
    if not encoded.truncated:
        return text, [(s.start, s.end) for s in focus]
    reach = seen_until(encoded)
    return text[:reach], [(s.start, min(s.end, reach)) for s in focus if s.start < reach]


def attribute_long_documents(
    inputs: list[ProbeInputs], effects: pd.DataFrame, target: Target, config: AuditConfig, bars: Progress
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Segment attributions (sentences; forward passes only, so memory stays that of one forward)
    for a few documents of each long-document set; token rows only when asked for."""
    segment_frames, token_frames = [], []
    for item in inputs:
        selected = long_document_variants(item, effects, config.long_attribute_top)
        if not selected:
            continue
        instances = {i.instance_id: i for i in item.probe_set.instances}
        variants = item.probe_set.variants
        output_names = [item.head.outputs_of(instances[variants[i].instance_id])[0] for i in selected]
        n_windows = sum(len(item.texts[i].windows) for i in selected)
        task = bars.add_task(
            f"segments {item.probe_set.name}", total=n_windows * len(LONG_ATTRIBUTION_METHODS)
        )
        seen = [seen_text(variants[i].text, item.texts[i], variants[i].focus) for i in selected]
        segment_frames.append(
            segment_attribution_rows(
                forward=item.head.forward,
                windows=[list(item.texts[i].windows) for i in selected],
                example_ids=[item.example_ids[i] for i in selected],
                texts=[text for text, _ in seen],
                key_spans=[spans for _, spans in seen],
                output_indices=[item.head.outputs.index(name) for name in output_names],
                output_names=item.head.outputs,
                methods=LONG_ATTRIBUTION_METHODS,
                aggregate=config.aggregate,
                pad_id=target.tokenizer.pad_token_id,
                device=target.device,
                max_segments=MAX_SEGMENTS,
                batch_tokens=config.batch_tokens,
                on_done=partial(bars.advance, task),
            )
        )
        if config.long_token_attributions:
            token_frames.append(token_attributions(item, selected, output_names, target, config, bars))
    segments = (
        pd.concat(segment_frames, ignore_index=True)
        if segment_frames
        else pd.DataFrame(columns=TABLES["segment_attributions"])
    )
    tokens = (
        pd.concat(token_frames, ignore_index=True)
        if token_frames
        else pd.DataFrame(columns=TABLES["attributions"])
    )
    return segments, tokens


def focus_attribution_pairs(
    tokens: pd.DataFrame, examples: pd.DataFrame, effects: pd.DataFrame, probe_set: str
) -> pd.DataFrame:
    """Per attributed pair of variants: attribution mass on the focus tokens of a and of b."""
    if tokens.empty:
        return pd.DataFrame(columns=TABLES["attribution_pairs"])
    focus = (
        tokens[tokens["is_focus"]]
        .groupby(["example_id", "method", "output"])["attribution"]
        .sum()
        .rename("focus_attribution")
        .reset_index()
    )
    attributed = (
        tokens[["example_id", "method", "output"]]
        .drop_duplicates()
        .merge(focus, on=["example_id", "method", "output"], how="left")
    )
    attributed = attributed.merge(
        examples[["example_id", "instance_id", "variant", "focus"]], on="example_id"
    )
    # no focus tokens (e.g. the shorter text of an insertion pair): nothing measured, so NaN, not 0
    has_focus = attributed["focus"] != "[]"
    attributed["focus_attribution"] = attributed["focus_attribution"].where(
        ~has_focus, attributed["focus_attribution"].fillna(0.0)
    )
    attributed = attributed.drop(columns="focus")
    pairs = effects[(effects["probe_set"] == probe_set) & (effects["group_b"] != "rest")][
        ["probe_set", "instance_id", "group_a", "group_b"]
    ].drop_duplicates()
    left = attributed.rename(columns={"variant": "group_a", "focus_attribution": "focus_attribution_a"})
    right = attributed.rename(columns={"variant": "group_b", "focus_attribution": "focus_attribution_b"})
    merged = pairs.merge(left.drop(columns="example_id"), on=["instance_id", "group_a"]).merge(
        right.drop(columns="example_id"), on=["instance_id", "group_b", "method", "output"]
    )
    merged["delta"] = merged["focus_attribution_a"] - merged["focus_attribution_b"]
    return merged[TABLES["attribution_pairs"]]


def attention_variants(item: ProbeInputs) -> list[int]:
    """Variants whose attention is measured: all of them; for long-document sets the key-sentence
    documents (where the key sentence's attention mass is the question), not the identity swaps."""
    if not item.is_long_document:
        return list(range(len(item.texts)))
    keyed = {i.instance_id for i in item.probe_set.instances if i.role == "key_sentence"}
    return [index for index, v in enumerate(item.probe_set.variants) if v.instance_id in keyed]


def attention_all(
    inputs: list[ProbeInputs], target: Target, config: AuditConfig, bars: Progress
) -> pd.DataFrame:
    """Attention statistics of every model input; a text's windows combine into its row (audit/windows.py)."""
    frames = []
    for item in inputs:
        chosen = attention_variants(item)
        windows, owners = item.windows(chosen)
        whole = len(windows) == len(chosen)  # one input per text: its rows are the text's
        ids = [item.example_ids[i] for i in owners] if whole else [str(k) for k in range(len(windows))]
        variants = item.probe_set.variants
        task = bars.add_task(f"attention {item.probe_set.name}", total=len(windows))
        rows = attention_rows(
            model=target.transformer(),
            examples=windows,
            example_ids=ids,
            focus=[[(s.start, s.end) for s in variants[i].focus] for i in owners],
            pad_id=target.tokenizer.pad_token_id,
            device=target.device,
            batch_tokens=config.batch_tokens,
            on_done=partial(bars.advance, task),
        )
        if not whole:
            position = {variant: k for k, variant in enumerate(chosen)}
            rows = combine_attention(
                rows, windows, [position[i] for i in owners], [item.example_ids[i] for i in chosen]
            )
        frames.append(rows)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TABLES["attention"])


# --- manifest ----------------------------------------------------------------------------------


def package_versions() -> dict[str, str]:
    names = ["probelens", "torch", "transformers", "captum", "pandas", "pyarrow", "scipy", "numpy"]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_state() -> tuple[str | None, bool | None]:
    """The commit this code runs from, and whether its tree had uncommitted changes (None: not a
    git checkout, e.g. an installed wheel)."""
    folder = Path(__file__).parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=folder
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=folder,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    if head.returncode != 0:
        return None, None
    return head.stdout.strip() or None, bool(status.stdout.strip())


def probe_set_entry(probe_set: ProbeSet, config: AuditConfig) -> dict[str, Any]:
    """What the manifest records of one probe set; long-document sets add how they were built
    for this model and how they were explained."""
    entry: dict[str, Any] = {
        "name": probe_set.name,
        "kind": probe_set.kind,
        "source": probe_set.source,
        "hash": probe_set.content_hash(),
        "n_instances": len(probe_set.instances),
        "n_variants": len(probe_set.variants),
    }
    if probe_set.reference_lang is not None:
        entry["reference_lang"] = probe_set.reference_lang
        entry["languages"] = sorted({v.lang for v in probe_set.variants})
    if probe_set.long_document is not None:
        variants = probe_set.variants
        entry["long_document"] = {
            "doc_lengths": sorted({v.doc_length for v in variants if v.doc_length is not None}),
            "positions": sorted({v.position for v in variants if v.position is not None}),
            "filler_source": probe_set.long_document.filler_source,
            "attributions": {
                "methods": list(LONG_ATTRIBUTION_METHODS),
                "max_segments": MAX_SEGMENTS,
                "instances": config.long_attribute_top,
                "token_level": config.long_token_attributions,
            },
        }
    return entry


def start_manifest(
    config: AuditConfig,
    loaded: LoadedModel,
    probe_sets: list[ProbeSet],
    store: RunStore,
    device: torch.device,
) -> dict[str, Any]:
    commit, dirty = git_state()
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": store.id,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": "running",
        "model": describe_model(loaded),
        "probe_sets": [probe_set_entry(s, config) for s in probe_sets],
        "config": json.loads(config.model_dump_json()),
        "versions": package_versions(),
        "git_hash": commit,
        "git_dirty": dirty,
        "seed": config.seed,
        "device": str(device),
        "host": {"platform": platform.platform(), "cpus": torch.get_num_threads()},
    }


@contextmanager
def progress(console: Console) -> Iterator[Progress]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bars:
        yield bars
