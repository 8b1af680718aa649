"""Where the default data comes from: the configured file, the real sample, or a synthetic one."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from homevision.config import REAL_SAMPLE_NAME, SYNTHETIC_SAMPLE_NAME, load_params, paths
from homevision.data.synthetic import generate_listings, write_listings

log = logging.getLogger(__name__)


def resolve_data_path(path: str | Path | None = None) -> Path:
    """Return the export to use: `path`, else `HOMEVISION_DATA`, else data/raw's real sample,
    else data/raw's synthetic sample, generated (and announced) on first use."""
    if path is not None:
        return Path(path)
    if env := os.environ.get("HOMEVISION_DATA"):
        return Path(env)
    raw = paths().raw
    real = raw / REAL_SAMPLE_NAME
    if real.exists():
        return real
    synthetic = raw / SYNTHETIC_SAMPLE_NAME
    if not synthetic.exists():
        cfg = load_params()["synthetic"]
        rows, seed = int(cfg["default_rows"]), int(cfg["default_seed"])
        log.warning(
            "No data configured and no %s: generating the synthetic sample %s (%d rows, seed %d).",
            real,
            synthetic,
            rows,
            seed,
        )
        write_listings(generate_listings(rows, seed), synthetic)
    return synthetic
