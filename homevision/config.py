"""Paths and settings. Nothing here touches the disk at import time.

Every path is derived from the project root, which is `HOMEVISION_HOME` when set, else the current
working directory: commands run from a checkout find data/, params.yaml and reports/ beside them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

REAL_SAMPLE_NAME = "home-listings-example.csv"
SYNTHETIC_SAMPLE_NAME = "synthetic-listings.csv"
# Rows read, valued and written at a time by `predict --data` (and the flow, unless params.yaml
# flow.chunk_rows says otherwise). Memory grows with it: on 2M Parquet rows, `--workers 2`'s
# processes peaked at 1,650-1,690 MiB with 100,000 and 1,000-1,020 MiB with 25,000, a few
# percent slower (the data contract's checks cost about 55 ms a chunk).
DEFAULT_CHUNK_ROWS = 25_000
# Rows per Arrow batch of `predict --engine spark`: Spark pays a round trip between the JVM and
# Python per batch, so its batches stay larger (2M rows on local[2]: 67 s at 100,000, 73 s at
# 25,000).
SPARK_BATCH_ROWS = 100_000
# Rows generated and written at a time by sample-data: a generated file's row groups, and the
# unit its seeds are drawn per, so the same options keep giving the same file.
SAMPLE_CHUNK_ROWS = 100_000
PACKAGE_DIR = Path(__file__).resolve().parent


def project_root() -> Path:
    """Return the directory that holds data/, params.yaml and reports/ for this run."""
    return Path(os.environ.get("HOMEVISION_HOME", Path.cwd())).resolve()


@dataclass(frozen=True)
class Paths:
    """The project's folders, following the cookiecutter-data-science layout."""

    root: Path

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def interim(self) -> Path:
        return self.root / "data" / "interim"

    @property
    def processed(self) -> Path:
        return self.root / "data" / "processed"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def rejected(self) -> Path:
        return self.interim / "rejected.csv"


def paths() -> Paths:
    """Return the Paths of the current project root."""
    return Paths(project_root())


def params_file() -> Path:
    """Return the params.yaml in force: HOMEVISION_PARAMS, ./params.yaml, else the one shipped
    inside the package (so a plain `pip install .` works from any folder)."""
    if env := os.environ.get("HOMEVISION_PARAMS"):
        return Path(env)
    local = project_root() / "params.yaml"
    if local.exists():
        return local
    return PACKAGE_DIR / "params.yaml"


@cache
def _load_params(path: Path) -> dict[str, Any]:
    import yaml  # not at import time: the CLI's --help reads no params

    with path.open(encoding="utf-8") as fh:
        given = yaml.safe_load(fh) or {}
    shipped = (PACKAGE_DIR / "params.yaml").resolve()
    if path.resolve() == shipped:
        return given
    return merge_params(_load_params(shipped), given)


def merge_params(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Return `given` over `defaults`, mappings merged key by key (lists and values replaced):
    a params file written for an older version keeps working, new settings at their default."""
    out = dict(defaults)
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_params(out[key], value)
        else:
            out[key] = value
    return out


def load_params() -> dict[str, Any]:
    """Return the parsed params.yaml over the shipped defaults (cached per file; callers must
    not mutate it)."""
    path = params_file()
    if not path.exists():
        raise FileNotFoundError(f"params.yaml not found at {path}; set HOMEVISION_PARAMS")
    return _load_params(path)
