"""How the CLI starts the dashboard: the exact ``streamlit run`` command line."""

from __future__ import annotations

import sys
from pathlib import Path

APP_PATH = Path(__file__).resolve().parent / "app.py"


def streamlit_command(runs_dir: str | Path, port: int) -> list[str]:
    """The command that serves the dashboard for ``runs_dir`` on http://127.0.0.1:<port>.

    It uses this interpreter's Streamlit, binds to 127.0.0.1 only, opens no browser and sends no
    usage statistics. Raises ValueError for a port outside 1..65535.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port must be an integer from 1 to 65535, not {port!r}")
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--",
        "--runs",
        str(Path(runs_dir).expanduser().resolve()),
    ]
