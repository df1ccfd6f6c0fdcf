"""One error type for mistakes a user can fix. The CLI prints them without a traceback and exits 2."""

from __future__ import annotations

from dataclasses import dataclass


class UserError(Exception):
    """A mistake in the user's input (a flag, a file, a model name) with what to do about it."""


@dataclass(frozen=True)
class Problem:
    """One problem in an input file, located by line (or record number for datasets)."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


class ProbeFileError(UserError):
    """A probe file with one or more problems; nothing from it is run."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
