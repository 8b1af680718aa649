"""The Streamlit app (predictor.py) and how to launch it."""

from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "predictor.py"


def streamlit_command(port: int, model: str | None = None) -> list[str]:
    """Return the command that serves the app headless on 127.0.0.1:`port`, without usage
    statistics or the developer toolbar (model: a reference passed through to the app, default
    the champion). `streamlit run homevision/ui/predictor.py` from the repository root gets
    the same settings from .streamlit/config.toml."""
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
        "--client.toolbarMode",
        "viewer",
    ]
    return [*command, "--", model] if model else command
