"""The training history: every export the flow took in, merged into one listings file.

One row per MLSNumber; a later export's row replaces an earlier one (files are taken in name
order, so name them by date). Every merge is reproducible: the same history and the same files
give the same bytes, and `manifest.json` records each file merged (name, SHA-256, rows added and
updated) with the SHA-256 of the history it produced. Nothing here moves files or talks to
MLflow: the flow (homevision.flow.pipeline) decides when a staged history is committed.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from homevision.config import project_root
from homevision.data.fields import normalise_id
from homevision.data.listings import is_labelled, read_export
from homevision.data.schema import MLS_ID

EXPORT_SUFFIXES = (".csv", ".parquet")
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class MergeCounts:
    """What one export changed in the history."""

    added: int  # MLSNumbers the history did not hold
    updated: int  # MLSNumbers it held, with a different row now
    unchanged: int  # MLSNumbers it held with the very same row
    new_sales: int  # rows Sold with a ClosePrice that were absent or not sold before
    without_id: int  # rows with no usable MLSNumber: not merged

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def history_dir(root: Path | None = None) -> Path:
    """Return data/history/ of the project: the history, its manifest and the staging folders."""
    return (root or project_root()) / "data" / "history"


def history_path(root: Path | None = None) -> Path:
    """Return the training history's path (an export-format CSV that `train` reads)."""
    return history_dir(root) / "listings.csv"


def manifest_path(root: Path | None = None) -> Path:
    """Return the manifest's path (what was merged, in order, with every history SHA-256)."""
    return history_dir(root) / "manifest.json"


def pending_exports(folder: Path) -> list[Path]:
    """Return the exports waiting in a drop folder (*.csv, *.parquet, not hidden), by name:
    the order they are merged in, so a later name's rows win."""
    if not folder.is_dir():
        return []
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in EXPORT_SUFFIXES and not p.name.startswith(".")
        ),
        key=lambda p: p.name,
    )


def load_history(path: Path) -> pd.DataFrame:
    """Return the history as a frame of strings (empty when there is none yet)."""
    if not path.exists():
        return pd.DataFrame()
    return read_export(path)


def _keys(frame: pd.DataFrame) -> pd.Series:
    """Return each row's normalised MLSNumber (an int, or None when missing or invalid)."""
    if MLS_ID not in frame.columns:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return pd.Series([normalise_id(v) for v in frame[MLS_ID]], index=frame.index, dtype=object)


def _keyed(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Return the rows with an MLSNumber, indexed by it, one per number (the last row wins)."""
    keys = _keys(frame)
    out = frame.loc[keys.notna()].reindex(columns=columns)
    out.index = pd.Index(keys[keys.notna()].astype("int64"), name=None)
    return out[~out.index.duplicated(keep="last")]


def _same_rows(old: pd.DataFrame, new: pd.DataFrame) -> pd.Series:
    """Return, per MLSNumber, whether two aligned frames hold the same values (NaN == NaN)."""
    a, b = old.astype(object), new.astype(object)
    equal = (a == b) | (a.isna() & b.isna())
    return equal.all(axis=1)


def merge_export(history: pd.DataFrame, export: pd.DataFrame) -> tuple[pd.DataFrame, MergeCounts]:
    """Return the history with an export's rows merged in, and what changed.

    One row per MLSNumber: the export's row replaces the history's whole row (its status,
    price and every other column), and within the export the last row of a number wins. Columns
    are the history's followed by any new ones; rows are sorted by MLSNumber, so the result
    depends only on its inputs' contents. Rows without a usable MLSNumber are left out.
    """
    columns = list(history.columns) + [c for c in export.columns if c not in history.columns]
    old = _keyed(history, columns)
    new = _keyed(export, columns)
    held = new.index.isin(old.index)
    common = new.index[held]
    same = _same_rows(old.loc[common], new.loc[common])
    sold_now = is_labelled(new)
    sold_before = is_labelled(old).reindex(new.index, fill_value=False)
    counts = MergeCounts(
        added=int((~held).sum()),
        updated=int((~same).sum()),
        unchanged=int(same.sum()),
        new_sales=int((sold_now & ~sold_before).sum()),
        without_id=int(_keys(export).isna().sum()),
    )
    merged = pd.concat([old.drop(index=common), new]).sort_index(kind="stable")
    return merged.reset_index(drop=True), counts


def empty_manifest() -> dict[str, Any]:
    """Return the manifest of a history that has taken in nothing yet."""
    return {"version": MANIFEST_VERSION, "history_sha256": None, "rows": 0, "merges": []}


def load_manifest(path: Path) -> dict[str, Any]:
    """Return the manifest (an empty one when there is no history yet)."""
    if not path.exists():
        return empty_manifest()
    return json.loads(path.read_text(encoding="utf-8"))


def processed_hashes(manifest: dict[str, Any]) -> set[str]:
    """Return the SHA-256 of every file already merged: a file seen again is skipped."""
    return {entry["sha256"] for entry in manifest.get("merges", [])}


def with_merges(
    manifest: dict[str, Any], entries: list[dict[str, Any]], history_sha256: str, rows: int
) -> dict[str, Any]:
    """Return a new manifest: `manifest` plus this run's merge entries and the history they
    produced (the input is not modified)."""
    return {
        **manifest,
        "version": MANIFEST_VERSION,
        "history_sha256": history_sha256,
        "rows": rows,
        "merges": [*manifest.get("merges", []), *entries],
    }


def manifest_text(manifest: dict[str, Any]) -> str:
    """Return the manifest as stable JSON text (sorted keys), so equal manifests are equal
    bytes."""
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def atomic_replace(source: Path, target: Path) -> None:
    """Move `source` onto `target` in one step (os.replace), creating the folder; a reader sees
    the old file or the new one, never half of one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def free_name(folder: Path, name: str, sha256: str) -> Path:
    """Return `folder/name`, or `folder/STEM.SHA8.SUFFIX` when that name is taken (a file of
    the same name was archived before), so no archived file is ever overwritten."""
    target = folder / name
    if not target.exists():
        return target
    path = Path(name)
    return folder / f"{path.stem}.{sha256[:8]}{path.suffix}"
