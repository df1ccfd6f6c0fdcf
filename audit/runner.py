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
from collections.abc import Iterator
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
from audit.batching import Encoded, collate, encode_texts, run_with_backoff, token_budget_batches
from audit.config import AuditConfig
from audit.errors import UserError
from audit.metrics.paired import build_effects, build_findings
from audit.models import LoadedModel, describe_model, load_model
from audit.store import RunStore
from audit.tables import SCHEMA_VERSION, TABLES
from audit.targets import ScoreHead, Target, build_target
from probes import list_builtin, load_probe_set
from probes.associations import load_associations
from probes.schema import ProbeSet

T = TypeVar("T")


@dataclass
class ProbeInputs:
    """One probe set's variants, encoded for the model, with its score head."""

    probe_set: ProbeSet
    head: ScoreHead
    example_ids: list[str]
    encoded: list[Encoded]
    focus_lost: list[bool]
    """Per variant: it has focus spans, but truncation cut every focus token off."""
    inputs_identical: list[bool]
    """Per variant: every variant of its instance has the same input ids."""
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


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


def load_probe_sets(config: AuditConfig) -> list[ProbeSet]:
    """Every probe set the run needs, fully validated before any model is loaded.

    Column mapping, defaults and split apply to probe files and datasets, not to built-in sets.
    """
    file_options: dict[str, Any] = {
        "mapping": config.probe_mapping or None,
        "defaults": config.probe_defaults or None,
        "split": config.probe_split,
    }
    sets = [
        load_probe_set(spec, **file_options) if Path(spec).exists() else load_probe_set(spec)
        for spec in config.probes or list_builtin()
    ]
    if config.associations:
        extra = tuple(a for spec in config.associations for a in load_associations(spec))
        sets = [s if s.associations else s.model_copy(update={"associations": extra}) for s in sets]
    max_instances = config.max_instances
    if max_instances is not None:
        sets = [s.model_copy(update={"instances": spread_sample(s.instances, max_instances)}) for s in sets]
    seen: set[str] = set()
    for probe_set in sets:
        if probe_set.name in seen:
            raise UserError(f"two probe sets are named {probe_set.name!r}; give each a distinct name")
        seen.add(probe_set.name)
    return sets


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
        probe_sets = load_probe_sets(config)
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
    problems = [p for s in probe_sets for p in probe_set_problems(s, target)]
    if problems:
        raise UserError("\n".join(problems))
    with timer.stage("encode"):
        inputs = [encode_probe_set(s, target) for s in probe_sets]
        examples = examples_table(inputs)

    store = RunStore.create(
        config.out / (config.name or default_run_name(model_name)),
        overwrite=config.overwrite,
        unique=config.name is None,
    )
    manifest = start_manifest(config, loaded, probe_sets, store, device)
    store.write_manifest(manifest)
    try:
        findings = analyse_and_write(
            inputs, examples, target, config, store, manifest, timer, console, list(loaded.warnings)
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
) -> pd.DataFrame:
    """Score, compare, test, explain, and write every table; returns the findings.

    ``warnings`` (from loading, so far) grows with what the analysis finds; all go to the manifest.
    """
    with progress(console) as bars, timer.stage("score"):
        predictions = score_all(inputs, target, config, bars)
    with timer.stage("findings"):
        tested = {output for item in inputs for output in item.head.tested_outputs}
        comparable, left_out, notes = comparable_examples(examples)
        warnings += notes
        compared = predictions["output"].isin(tested) & predictions["example_id"].isin(
            comparable["example_id"]
        )
        effects = build_effects(comparable, predictions[compared])
        findings = build_findings(
            effects,
            alpha=config.alpha,
            min_effect=config.min_effect,
            confidence=config.confidence,
            n_resamples=config.n_resamples,
            n_permutations=config.n_permutations,
            seed=config.seed,
        )
    n_underpowered, notes = underpowered_tests(findings, config.alpha)
    warnings += notes
    if findings["p_value"].notna().sum() == 0:
        warnings.append(
            "no statistical test could be run: nothing in this run can be called significant or fair"
        )
    for warning in warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)

    attributions = pd.DataFrame(columns=TABLES["attributions"])
    attribution_pairs = pd.DataFrame(columns=TABLES["attribution_pairs"])
    if config.attributions:
        with progress(console) as bars, timer.stage("attributions"):
            attributions, attribution_pairs = attribute_top_instances(
                inputs, examples, effects, target, config, bars
            )
    attention = pd.DataFrame(columns=TABLES["attention"])
    if config.attention:
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
        }
        for name, frame in tables.items():
            store.write_table(name, frame)
    tested_rows = findings["p_value"].notna()
    manifest.update(
        timings=timer.seconds,
        warnings=warnings,
        summary={
            "n_examples": len(examples),
            "n_findings": len(findings),
            "n_tests": int(tested_rows.sum()),
            "n_significant": int(findings["significant"].sum()) if len(findings) else 0,
            "n_attributed_examples": int(attributions["example_id"].nunique()) if len(attributions) else 0,
            "n_truncated_examples": int(examples["truncated"].sum()),
            "instances_left_out": left_out,
            "n_underpowered_tests": n_underpowered,
        },
    )
    store.mark(manifest, "complete")
    return findings


# --- steps -------------------------------------------------------------------------------------


def probe_set_problems(probe_set: ProbeSet, target: Target) -> list[str]:
    """Why a probe set cannot run on this target (empty when it can)."""
    problems = []
    if target.task not in probe_set.tasks:
        problems.append(
            f"probe set {probe_set.name!r} is meant for {', '.join(probe_set.tasks)}, not {target.task}; "
            "pick another probe set or model, or list the task under 'tasks:' in the probe file"
        )
    return problems + target.check_probe_set(probe_set)


def encode_probe_set(probe_set: ProbeSet, target: Target) -> ProbeInputs:
    variants = probe_set.variants
    encoded = encode_texts(target.tokenizer, [v.text for v in variants], target.max_length)
    ids = [f"{probe_set.name}/{v.instance_id}/{v.variant}" for v in variants]
    focus_lost = [
        any(s.end > s.start for s in v.focus)
        and not any(focus_token_mask(e, [(s.start, s.end) for s in v.focus]))
        for v, e in zip(variants, encoded, strict=True)
    ]
    ids_by_instance: dict[str, set[tuple[int, ...]]] = {}
    for v, e in zip(variants, encoded, strict=True):
        ids_by_instance.setdefault(v.instance_id, set()).add(tuple(e.input_ids))
    identical = [len(ids_by_instance[v.instance_id]) == 1 for v in variants]
    return ProbeInputs(probe_set, target.head(probe_set), ids, encoded, focus_lost, identical)


def examples_table(inputs: list[ProbeInputs]) -> pd.DataFrame:
    rows = []
    for item in inputs:
        for example_id, variant, enc, lost, identical in zip(
            item.example_ids,
            item.probe_set.variants,
            item.encoded,
            item.focus_lost,
            item.inputs_identical,
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
                    "n_tokens": enc.n_tokens,
                    "truncated": enc.truncated,
                    "focus_truncated": lost,
                    "inputs_identical": identical,
                }
            )
    frame = pd.DataFrame(rows, columns=[*TABLES["examples"], "focus_truncated", "inputs_identical"])
    duplicated = frame.loc[frame["example_id"].duplicated(), "example_id"]
    if not duplicated.empty:
        raise UserError(
            f"example id {duplicated.iloc[0]!r} stands for two variants; '/' inside instance ids or "
            "variant names can make ids collide: rename them"
        )
    return frame


def underpowered_tests(findings: pd.DataFrame, alpha: float) -> tuple[int, list[str]]:
    """Tested mean_delta rows with too few instances for any sign pattern to reach p < alpha
    (the exact test's smallest p is 2**(1-n)); they can never be significant, whatever the data."""
    tested = findings[findings["p_value"].notna() & (findings["metric"] == "mean_delta")]
    underpowered = tested[np.power(2.0, 1 - tested["n"].astype(float)) >= alpha]
    if underpowered.empty:
        return 0, []
    return len(underpowered), [
        f"{len(underpowered)} test(s) have {int(underpowered['n'].max())} or fewer instances and cannot reach "
        f"p < {alpha}: 'not significant' there says nothing; add instances"
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
    """Run every variant through its probe set's score head; long-format predictions."""
    pad_id = target.tokenizer.pad_token_id
    frames = []
    for item in inputs:
        task = bars.add_task(f"score {item.probe_set.name}", total=len(item.encoded))
        scores = np.zeros((len(item.encoded), len(item.head.outputs)), dtype=np.float64)

        @torch.no_grad()
        def step(batch: list[int], item: ProbeInputs = item) -> np.ndarray:
            ids, mask = collate([item.encoded[i] for i in batch], pad_id, target.device)
            return item.head.forward(ids, mask).detach().cpu().double().numpy()

        for batch in token_budget_batches([e.n_tokens for e in item.encoded], config.batch_tokens):
            for done, values in run_with_backoff(batch, step):
                scores[done] = values
                bars.advance(task, len(done))
        item.scores = scores
        labels = item.head.predict_labels(scores)
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
        task = bars.add_task(
            f"attribute {item.probe_set.name}", total=len(selected) * len(config.attribution_methods)
        )
        tokens = attribution_rows(
            forward=item.head.forward,
            embedding_layer=target.embedding_layer(),
            examples=[item.encoded[i] for i in selected],
            example_ids=[item.example_ids[i] for i in selected],
            texts=[item.probe_set.variants[i].text for i in selected],
            focus=[[(s.start, s.end) for s in item.probe_set.variants[i].focus] for i in selected],
            outputs=output_names,
            output_names=item.head.outputs,
            methods=config.attribution_methods,
            tokenizer=target.tokenizer,
            device=target.device,
            n_steps=config.ig_steps,
            batch_tokens=config.batch_tokens,
            on_done=partial(bars.advance, task),
        )
        token_frames.append(tokens)
        pair_frames.append(focus_attribution_pairs(tokens, examples, effects, item.probe_set.name))
    if not token_frames:
        return pd.DataFrame(columns=TABLES["attributions"]), pd.DataFrame(columns=TABLES["attribution_pairs"])
    return pd.concat(token_frames, ignore_index=True), pd.concat(pair_frames, ignore_index=True)


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


def attention_all(
    inputs: list[ProbeInputs], target: Target, config: AuditConfig, bars: Progress
) -> pd.DataFrame:
    frames = []
    for item in inputs:
        task = bars.add_task(f"attention {item.probe_set.name}", total=len(item.encoded))
        frames.append(
            attention_rows(
                model=target.transformer(),
                examples=item.encoded,
                example_ids=item.example_ids,
                focus=[[(s.start, s.end) for s in v.focus] for v in item.probe_set.variants],
                pad_id=target.tokenizer.pad_token_id,
                device=target.device,
                batch_tokens=config.batch_tokens,
                on_done=partial(bars.advance, task),
            )
        )
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
        "probe_sets": [
            {
                "name": s.name,
                "source": s.source,
                "hash": s.content_hash(),
                "n_instances": len(s.instances),
                "n_variants": len(s.variants),
            }
            for s in probe_sets
        ],
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
