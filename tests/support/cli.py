"""The real ``audit`` entry point, called in-process as a user's shell would call it."""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def invoke_main(*args: object) -> int:
    """Run the real `audit` entry point in-process with these arguments; its exit code."""
    from audit.cli import main

    old_argv = sys.argv
    sys.argv = ["audit", *[str(a) for a in args]]
    try:
        main()
    except SystemExit as stop:
        return int(stop.code or 0)
    finally:
        sys.argv = old_argv
    return 0
