"""run_audit: the pipeline, one named stage after another over one RunState.

    prepare -> encode -> plan_outputs -> [the run folder] -> score -> generate -> compare
    -> explain -> patch -> attention -> write

prepare, encode and plan_outputs (what --generate / a seq2seq translation will produce) run
before the run folder exists: every problem with the user's input stops the run there. Each stage
(audit/stages/) takes and returns the typed results of audit/stages/state.py (a probe set's
encoded inputs and scores: audit/probe_inputs.py); the kinds of probe set (audit/kinds/) plug into
compare, explain and attention. Each stage is timed; timings, versions and hashes go into the
run's manifest (audit/provenance.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from audit.config import AuditConfig
from audit.provenance import start_manifest
from audit.stages.attention import attend
from audit.stages.compare import compare
from audit.stages.encode import encode
from audit.stages.explain import explain
from audit.stages.generate import generate, plan_outputs
from audit.stages.patch import patch
from audit.stages.prepare import prepare
from audit.stages.progress import Timer, progress, warn
from audit.stages.score import score
from audit.stages.state import RunState, ready
from audit.stages.write import write
from audit.store import RunStore


@dataclass
class RunResult:
    run_dir: Path
    manifest: dict[str, Any]
    findings: pd.DataFrame


def run_audit(config: AuditConfig, model_name: str, console: Console | None = None) -> RunResult:
    """Audit one model with the configured probe sets and write the run folder.

    Everything that can fail on the user's input (probe files, the model, their fit, encoding)
    happens before the run folder exists; a run that fails or is interrupted later is marked so
    in its manifest ("failed" / "interrupted"), never left looking like it is still running.
    """
    console = console or Console(stderr=True)
    timer = Timer()
    prepared = prepare(config, model_name, timer)
    encoding = encode(prepared, timer)
    plans = plan_outputs(config, prepared, timer)
    state = RunState(config, prepared, encoding, plans)

    store = RunStore.create(
        config.out / (config.name or default_run_name(model_name)),
        overwrite=config.overwrite,
        unique=config.name is None,
    )
    manifest = start_manifest(config, prepared.loaded, prepared.probe_sets, store, prepared.device)
    manifest["long_inputs"] = prepared.policy.describe(prepared.target.max_length)
    store.write_manifest(manifest)
    try:
        run_stages(state, store, manifest, console, timer)
    except KeyboardInterrupt:
        store.mark(manifest, "interrupted")
        raise
    except BaseException as error:
        store.mark(manifest, "failed", f"{type(error).__name__}: {error}")
        raise
    return RunResult(store.path, manifest, ready(state.explained, "explain").findings)


def run_stages(
    state: RunState, store: RunStore, manifest: dict[str, Any], console: Console, timer: Timer
) -> None:
    """The stages after the run folder exists; each result is kept on ``state`` as it completes.
    Every warning (from loading on) is shown once the comparison is done and goes to the manifest."""
    config, prepared, encoding, target = state.config, state.prepared, state.encoding, state.prepared.target
    with progress(console) as bars, timer.stage("score"):
        scored = state.scored = score(encoding, target, config, bars)
    generated = state.generated = generate(state.plans, encoding, scored, prepared, config, console, timer)
    if generated.manifest is not None:
        manifest["generation"] = generated.manifest
    compared = state.compared = compare(encoding, generated, target, config, timer)
    warnings = [*prepared.loaded.warnings, *generated.warnings, *compared.warnings]
    if prepared.attention_unavailable:
        warnings.append(prepared.attention_unavailable)
    warn(console, warnings)
    explained = state.explained = explain(encoding, scored, compared, target, config, console, timer)
    patched = state.patched = patch(encoding, scored, compared, target, config, console, timer)
    state.attention = attend(encoding, prepared, config, console, timer)
    write(state, store, manifest, [*warnings, *explained.warnings, *patched.warnings], timer)


def default_run_name(model_name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in model_name.strip("/").split("/")[-1])
    return f"{stamp}-{safe}"
