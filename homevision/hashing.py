"""File digests (light: no MLflow import), for the dataset identity, signed model files and the
flow's commit."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_hash(path: str | Path) -> str:
    """Return the SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
