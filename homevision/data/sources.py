"""Where the default data comes from: the configured file, the real sample, or a synthetic one."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from homevision.config import REAL_SAMPLE_NAME, SYNTHETIC_SAMPLE_NAME, load_params, paths

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
        from homevision.data.synthetic import generate_listings, write_listings

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


def is_parquet(path: Path) -> bool:
    """True when `path` is a Parquet file: a .parquet name, or a file that starts with Parquet's
    magic bytes (False for one that cannot be read). Without pyarrow, so a command can choose
    Arrow's allocator before pyarrow is imported."""
    if path.suffix.lower() == ".parquet":
        return True
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"PAR1"
    except OSError:
        return False


def ingest(output: str | Path, source: str | Path | None = None) -> Path:
    """Copy an export, byte for byte, to `output` (the pipeline's data/raw/listings.csv, which
    DVC tracks: its hash in dvc.lock, its bytes in the DVC cache and remote) and return where it
    came from: `source`, else the default data as `resolve_data_path` finds it. The copy is
    written beside `output` and renamed into place, so a reader never sees half a file."""
    src = resolve_data_path(source)
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such export file")
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and target.resolve() == src.resolve():
        return src  # already there (the same file)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)
    finally:  # a copy that cannot be placed (a folder there, a full disk) is not left behind
        tmp.unlink(missing_ok=True)
    return src
