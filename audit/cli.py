"""The `audit` command: thin typer commands over the library.

User mistakes raise UserError; one handler prints them in red and exits 2. Tracebacks only with
PROBELENS_DEBUG=1.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table
from typer.core import TyperCommand, TyperGroup
from typer.exceptions import TyperException

from audit.errors import ProbeFileError, UserError


class CommandBuiltWhenCalled(TyperCommand):
    """A command listed by its help alone and built when it is called. `audit run`'s options come from
    AuditConfig's fields: importing pydantic for them would double the start-up of `audit --help` and of
    every other command."""

    def __init__(self, name: str, help: str, build: Callable[[], Any]) -> None:
        super().__init__(name=name, help=help)
        self.build = build

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        return self.build().make_context(info_name, args, parent=parent, **extra)


class AuditCommands(TyperGroup):
    """`audit`'s commands: `run` first, then those typer builds from the functions below."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        listed = CommandBuiltWhenCalled("run", help=str(inspect.getdoc(run)), build=run_command)
        self.commands = {"run": listed, **self.commands}


app = typer.Typer(
    cls=AuditCommands,
    help="Audit transformer language models for bias: counterfactual probes, statistics, attributions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
probes_app = typer.Typer(help="List, show and validate probe sets.", no_args_is_help=True)
runs_app = typer.Typer(help="List and inspect stored runs.", no_args_is_help=True)
models_app = typer.Typer(help="The bundled models.", no_args_is_help=True)
app.add_typer(probes_app, name="probes")
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")

# logs and pipes get wide tables instead of 80 truncated columns
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

EXIT_FINDINGS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


def run(
    settings: dict[str, Any],
    config_file: Annotated[
        Path | None, typer.Option("--config", help="Read settings from an audit.yaml; flags given here win.")
    ] = None,
    fail_on: Annotated[
        str, typer.Option(help="none | significant: exit 1 when significant findings exist.")
    ] = "none",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a machine-readable summary on stdout.", metavar="")
    ] = False,
) -> None:
    """Audit models with probe sets; with no arguments, the main job (bundled models, built-in sets)."""
    from audit.config import AuditConfig
    from audit.models import resolve_model
    from audit.runner import run_audit

    if fail_on not in ("none", "significant"):
        raise UserError(f"--fail-on takes 'none' or 'significant', not {fail_on!r}")
    config = AuditConfig.from_yaml(config_file, **settings) if config_file else AuditConfig.build(settings)
    if config.name and len(config.models) > 1:
        raise UserError("--name names one run folder; with several --model values, leave it out")
    for model_name in config.models:  # a typo in the last model fails before the first one runs
        resolve_model(model_name)
    summaries = []
    for model_name in config.models:
        err.print(f"[bold]Auditing[/bold] {model_name}")
        result = run_audit(config, model_name, console=err)
        summaries.append(run_summary(result.run_dir, result.manifest, result.findings))
        if not as_json:
            print_findings(result.findings, result.run_dir, result.manifest)
    if as_json:
        out.print_json(json_text({"runs": summaries}))
    n_significant = sum(s["n_significant"] for s in summaries)
    if fail_on == "significant" and n_significant:
        raise typer.Exit(EXIT_FINDINGS)


def run_command() -> Any:
    """`audit run` as a click command: an option per AuditConfig setting (audit/cli_settings.py), then
    `run`'s own options."""
    from audit.cli_settings import file_only_settings_help, with_settings
    from audit.config import AuditConfig

    command = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    command.command("run", epilog=file_only_settings_help(AuditConfig))(with_settings(AuditConfig, run))
    return typer.main.get_command(command)


def run_summary(run_dir: Path, manifest: dict[str, Any], findings: Any) -> dict[str, Any]:
    from audit.stages.compare import problem_findings

    significant = findings[problem_findings(findings)]  # problems; key sentences that work are counted apart
    return {
        "run_dir": str(run_dir),
        "run_id": manifest["run_id"],
        "model": manifest["model"]["name"],
        "task": manifest["model"]["task"],
        "n_examples": manifest["summary"]["n_examples"],
        "n_findings": manifest["summary"]["n_findings"],
        "n_tests": manifest["summary"]["n_tests"],
        "n_significant": manifest["summary"]["n_significant"],
        "instances_left_out": manifest["summary"]["instances_left_out"],
        "n_underpowered_tests": manifest["summary"]["n_underpowered_tests"],
        "warnings": manifest.get("warnings", []),
        "timings": manifest["timings"],
        "significant_findings": finding_records(
            significant, float(manifest.get("config", {}).get("confidence", 0.95))
        ),
        "n_key_effects_significant": manifest["summary"].get("n_key_effects_significant", 0),
        "unreadable_languages": manifest["summary"].get("unreadable_languages", {}),
        "reference_languages": {
            e["name"]: e["reference_lang"] for e in manifest.get("probe_sets", []) if e.get("reference_lang")
        },
    }


def finding_records(findings: Any, confidence: float) -> list[dict[str, Any]]:
    """Findings rows for ``--json``: every column, numbers that JSON cannot hold (NaN, an unbounded
    interval's +-inf) as null, and ``interval``: the interval as the table prints it ("unbounded (n = 4:
    ...)" where ``ci_low`` / ``ci_high`` are null because the test cannot bound it)."""
    from audit.tables import interval_text

    records = []
    for record in findings.astype(object).to_dict(orient="records"):
        text = interval_text(record["ci_low"], record["ci_high"], record["n"], confidence)
        records.append({**json_safe(record), "interval": text})
    return records


def json_safe(value: Any) -> Any:
    """``value`` with every float JSON cannot hold (NaN, +-inf) as None, in dicts and lists too, and
    pandas' missing values as None, so ``json.dumps(..., allow_nan=False)`` writes valid JSON."""
    import math

    import pandas as pd

    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalars
        return json_safe(value.item())
    return value


def json_text(value: Any) -> str:
    """Valid (RFC 8259) JSON of ``value``: no NaN / Infinity tokens (``json_safe``)."""
    return json.dumps(json_safe(value), default=str, allow_nan=False)


def print_findings(findings: Any, run_dir: Path, manifest: dict[str, Any], limit: int = 25) -> None:
    """The significant findings that report a problem, strongest first (relative to their threshold),
    a line per long-document set, and where the run is."""
    from audit.stages.compare import problem_findings
    from audit.tables import confidence_text, interval_text

    significant = findings[problem_findings(findings)]
    model = manifest.get("model", {}).get("name", "?")
    confidence = float(manifest.get("config", {}).get("confidence", 0.95))
    n_tests = int(findings["q_value"].notna().sum()) if len(findings) else 0
    if n_tests == 0:
        out.print(
            f"[yellow]No statistical test ran[/yellow] for {model}: nothing can be called significant or fair."
        )
    elif len(significant) == 0:
        out.print(f"[green]No significant findings[/green] for {model} ({n_tests} tests).")
    else:
        table = Table(title=f"Significant findings: {model} ({len(significant)} of {n_tests} tests)")
        table.add_column("probe set", no_wrap=True)
        table.add_column("a vs b")
        table.add_column("metric", no_wrap=True)
        table.add_column("output", no_wrap=True)
        table.add_column(f"effect [{confidence_text(confidence)} CI]", no_wrap=True, justify="right")
        table.add_column("q", no_wrap=True)
        table.add_column("severity", no_wrap=True)
        ordered = significant.assign(strength=(significant["effect"] / significant["threshold"]).abs())
        for row in ordered.sort_values("strength", ascending=False).head(limit).itertuples():
            where = row.probe_set if row.attribute == row.probe_set else f"{row.probe_set} ({row.attribute})"
            table.add_row(
                str(where),
                f"{row.group_a} vs {row.group_b}"
                + (f" ({row.subset})" if isinstance(row.subset, str) else ""),
                str(row.metric),
                str(row.output),
                f"{row.effect:+.3f} {interval_text(row.ci_low, row.ci_high, row.n, confidence)}",
                f"{row.q_value:.1e}",
                str(row.severity),
            )
        out.print(table)
        if len(significant) > limit:
            out.print(f"... {len(significant) - limit} more in {run_dir / 'findings.parquet'}")
    from audit.kinds.registry import summary_lines

    for line in summary_lines(findings, manifest):
        out.print(line, highlight=False)
    out.print(f"Run stored in [bold]{run_dir}[/bold]")


# --- probes ------------------------------------------------------------------------------------


@probes_app.command("list")
def probes_list() -> None:
    """The built-in probe sets: which model tasks each is for, and whether `audit run` without
    --probes uses it (for a model of one of those tasks) or it is asked for by name."""
    from audit.stages.prepare import default_probe_sets
    from probes import list_builtin, load_builtin

    in_default_run = set(default_probe_sets())
    table = Table(
        "name",
        "kind",
        "tasks",
        "in audit run",
        "attributes",
        "instances",
        "variants",
        "groups",
        "associations",
        "description",
    )
    for set_name in list_builtin():
        probe_set = load_builtin(set_name)
        spec = probe_set.long_document
        kind = (
            probe_set.kind if probe_set.reference_lang is None else f"parallel ({probe_set.reference_lang})"
        )
        default = "yes" if set_name in in_default_run else "by name"
        if spec is not None:  # built per model: no instances until a model's tokenizer counts them
            table.add_row(
                set_name,
                kind,
                ", ".join(probe_set.tasks),
                default,
                ", ".join(sorted({"position", *(s.attribute for s in spec.swaps)})),
                "per model",
                "per model",
                f"{len(spec.keys)} keys, {len(spec.swaps)} swaps, {len(spec.positions)} positions",
                "0",
                probe_set.description,
            )
            continue
        groups = sorted({v.variant for v in probe_set.variants})
        table.add_row(
            set_name,
            kind,
            ", ".join(probe_set.tasks),
            default,
            ", ".join(probe_set.attributes),
            str(len(probe_set.instances)),
            str(len(probe_set.variants)),
            ", ".join(groups[:8]) + (" ..." if len(groups) > 8 else ""),
            str(len(probe_set.associations)),
            probe_set.description,
        )
    out.print(table)


@probes_app.command("show")
def probes_show(
    spec: Annotated[str, typer.Argument(help="Built-in name or probe file.")],
    limit: Annotated[int, typer.Option(help="Instances to show.")] = 10,
) -> None:
    """A probe set's card and its first instances."""
    from probes import load_probe_set

    probe_set = load_probe_set(spec)
    out.print(f"[bold]{probe_set.name}[/bold]: {probe_set.description}")
    if probe_set.card:
        out.print(probe_set.card)
    if probe_set.long_document is not None:
        show_long_document(probe_set, limit)
        return
    table = Table("instance", "variant", "attribute", "text", "label")
    for instance in probe_set.instances[:limit]:
        for variant in instance.variants:
            table.add_row(
                instance.instance_id, variant.variant, variant.attribute, variant.text, variant.label or ""
            )
    out.print(table)
    for association in probe_set.associations:
        out.print(
            f"association [bold]{association.name}[/bold]: {association.a_name} ({len(association.a)} words) "
            f"vs {association.b_name} ({len(association.b)} words)"
        )
    out.print(f"{len(probe_set.instances)} instances, {len(probe_set.variants)} variants")


def show_long_document(probe_set: Any, limit: int) -> None:
    """A long-document set: how its documents are built, and its key and swap sentences."""
    from probes.long_document import summary_lines

    spec = probe_set.long_document
    for line in summary_lines(probe_set):
        out.print(line, highlight=False)
    table = Table("id", "kind", "sentence", "label", "query")
    for key in spec.keys[:limit]:
        table.add_row(key.id, "key", key.text, key.label or "", key.query or "")
    for swap in spec.swaps[:limit]:
        for group, text in swap.variants.items():
            table.add_row(swap.id, f"swap: {group}", text, swap.label or "", swap.query or "")
    out.print(table)


@probes_app.command("validate")
def probes_validate(
    files: Annotated[list[Path], typer.Argument(help="Probe files to check.")],
    probe_map: Annotated[list[str] | None, typer.Option(help="OUR_COLUMN=FILE_COLUMN; repeat.")] = None,
    probe_default: Annotated[list[str] | None, typer.Option(help="COLUMN=VALUE; repeat.")] = None,
    probe_split: Annotated[str | None, typer.Option(help="Split of a probe dataset.")] = None,
) -> None:
    """Check probe files; print every problem as FILE:LINE: message; exit 2 if any."""
    from audit.cli_settings import parse_pairs
    from probes import validate_file

    options: dict[str, Any] = {
        "mapping": parse_pairs(probe_map, "--probe-map") or None,
        "defaults": parse_pairs(probe_default, "--probe-default") or None,
        "split": probe_split,
    }
    problems = [p for f in files for p in validate_file(f, **options)]
    if problems:
        raise ProbeFileError(problems)
    for path in files:
        out.print(f"[green]ok[/green] {path}")


# --- runs --------------------------------------------------------------------------------------


@runs_app.command("list")
def runs_list(
    runs_dir: Annotated[Path, typer.Option("--runs", help="Folder that holds runs.")] = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifests as JSON.")] = False,
) -> None:
    """Runs in a folder, newest first."""
    from audit.store import iter_runs

    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir} does not exist; pass --runs FOLDER (where `audit run --out` wrote runs)")
    manifests = []
    for store in iter_runs(runs_dir):
        try:
            manifests.append((store, store.read_manifest()))
        except UserError as error:
            err.print(f"skipping {store.path}: {error}", style="yellow", markup=False)
    if as_json:
        out.print_json(json_text([{"run_dir": str(s.path), **m} for s, m in manifests]))
        return
    table = Table("model", "task", "created", "probe sets", "significant", "status")
    table.columns.insert(0, Column("run", no_wrap=True))
    for store, m in manifests:
        table.add_row(
            store.id,
            m.get("model", {}).get("name", "?"),
            m.get("model", {}).get("task", "?"),
            str(m.get("created_at", "")),
            ", ".join(p["name"] for p in m.get("probe_sets", [])),
            f"{m.get('summary', {}).get('n_significant', '?')} / {m.get('summary', {}).get('n_findings', '?')}",
            m.get("status", "?"),
        )
    out.print(table)


@runs_app.command("show")
def runs_show(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="Run id or folder.")],
    runs_dir: Annotated[Path, typer.Option("--runs", help="Folder that holds runs.")] = Path("runs"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """A run's manifest and its significant findings."""
    from audit.store import find_run

    store = find_run(run_ref, runs_dir)
    manifest = store.read_manifest()
    if as_json:
        out.print_json(json_text(manifest))
        return
    model = manifest.get("model", {})
    status = manifest.get("status")
    out.print(f"[bold]{store.id}[/bold] ({status}) {store.path}")
    if status != "complete":
        out.print(
            f"[yellow]This run is {status}, not complete[/yellow]: {manifest.get('error', 'no tables to trust')}"
        )
        return
    if not store.has_table("findings"):
        raise UserError(f"{store.path} has no findings.parquet; the run is incomplete")
    out.print(f"model {model.get('name')} ({model.get('task')}), source {model.get('source')}")
    out.print(f"timings (s): {manifest.get('timings')}")
    print_findings(store.read_table("findings"), store.path, manifest)


# --- models ------------------------------------------------------------------------------------


@models_app.command("list")
def models_list() -> None:
    """The bundled models and whether they are ready."""
    from audit.bundled.registry import BUNDLED, bundled_status

    table = Table("name", "task", "ready", "folder", "about")
    for short_name, info in BUNDLED.items():
        ready, folder = bundled_status(short_name)
        table.add_row(short_name, info.task, "yes" if ready else "no", str(folder), info.description)
    out.print(table)


@models_app.command("build")
def models_build(
    names: Annotated[list[str] | None, typer.Argument(help="Bundled models to build. [default: all]")] = None,
    rebuild: Annotated[bool, typer.Option(help="Build again even when ready.")] = False,
) -> None:
    """Build (or find) the bundled models; fast when they are ready."""
    from audit.bundled.registry import BUNDLED, ensure_bundled

    for short_name in names or list(BUNDLED):
        folder = ensure_bundled(short_name, rebuild=rebuild)
        out.print(f"[green]ready[/green] {short_name}: {folder}")


# --- dashboard ---------------------------------------------------------------------------------


@app.command()
def dashboard(
    runs_dir: Annotated[Path, typer.Option("--runs", help="Folder that holds runs.")] = Path("runs"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.", min=1, max=65535)] = 8501,
) -> None:
    """Start the Streamlit dashboard on 127.0.0.1."""
    from dashboard.launch import streamlit_command

    if not runs_dir.is_dir():
        raise UserError(f"{runs_dir} does not exist; run `audit run` first or pass --runs FOLDER")
    command = streamlit_command(runs_dir, port)
    err.print(f"Dashboard on http://127.0.0.1:{port} (runs from {runs_dir}); Ctrl+C to stop")
    os.execvp(command[0], command)


def main() -> None:
    """Entry point: run the app; user mistakes exit 2 without a traceback."""
    try:
        # standalone_mode=False makes click return the code of typer.Exit instead of exiting
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except UserError as error:
        if isinstance(error, ProbeFileError):
            for problem in error.problems:
                err.print(str(problem), markup=False, highlight=False, soft_wrap=True)
            err.print(f"{len(error.problems)} problem(s); nothing was run.", style="red")
        else:
            err.print("error: " + str(error), style="red", markup=False, highlight=False, soft_wrap=True)
        if os.environ.get("PROBELENS_DEBUG"):
            raise
        sys.exit(EXIT_BAD_INPUT)
    except typer.Exit as exit_:
        sys.exit(exit_.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except TyperException as error:  # click's usage errors (typer ships its own click)
        usage_error: Any = error
        usage_error.show()
        sys.exit(usage_error.exit_code)
    except Exception as error:  # unexpected failures
        if os.environ.get("PROBELENS_DEBUG"):
            raise
        err.print(f"[red]internal error:[/red] {type(error).__name__}: {error}", highlight=False)
        err.print("Run again with PROBELENS_DEBUG=1 for the traceback, and report it.")
        sys.exit(EXIT_INTERNAL)
