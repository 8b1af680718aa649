"""The Streamlit app (predictor.py) and how to launch it."""

from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "predictor.py"


def streamlit_command(port: int, model: str | None = None) -> list[str]:
    """Return the command that serves the app headless on 127.0.0.1:`port` (model: a reference
    passed through to the app, default the champion)."""
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    return [*command, "--", model] if model else command
