"""Console logging for the CLI (library modules only ever call logging.getLogger)."""

from __future__ import annotations

import logging
import os

from homevision.console import log_handler, stderr_is_terminal


def setup_logging(verbose: bool = False) -> None:
    """Send log records to stderr, INFO by default and DEBUG when verbose: through rich in a
    terminal, one plain unwrapped line each elsewhere (homevision.console.log_handler)."""
    # MLflow installs its own handler and INFO level on import unless told not to; its records
    # then come through this handler at the level set below (worker processes inherit it).
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    if not stderr_is_terminal():  # MLflow's download bars redraw in place: noise in a log
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[log_handler()],
        force=True,
    )
    for noisy in ("alembic", "mlflow", "optuna", "urllib3", "matplotlib", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
