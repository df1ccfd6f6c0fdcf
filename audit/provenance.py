"""Provenance: what a run's manifest records of where its results came from (model, probe sets,
settings, package versions, the code's commit, the machine)."""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from audit.config import AuditConfig
from audit.kinds.registry import kind_of
from audit.loaded_model import LoadedModel
from audit.models import describe_model
from audit.store import RunStore
from audit.tables import SCHEMA_VERSION
from probes.schema import ProbeSet


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
    """What the manifest records of one probe set; its kind adds what it needs (a parallel set's
    languages, how a long-document set was built for this model and explained)."""
    return {
        "name": probe_set.name,
        "kind": probe_set.kind,
        "source": probe_set.source,
        "hash": probe_set.content_hash(),
        "n_instances": len(probe_set.instances),
        "n_variants": len(probe_set.variants),
        **kind_of(probe_set).manifest_entry(probe_set, config),
    }


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
