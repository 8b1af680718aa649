"""The training history: every export the flow took in, merged into one listings file.

One row per MLSNumber, holding the newest fact about that listing by the export's own clock:
its StatusChangeTimestamp, else the time of the snapshot it came from (SnapshotTimestamp, kept
as a column of the history: the newest timestamp the file carries, else its modification
time); of two rows with the same fact time, the later snapshot's. A late, older export never
turns a sale back into an active listing nor undoes a correction: a row older than the one held
is left out and counted as stale. Every merge is reproducible: the same history
and the same files give the same bytes, and `manifest.json` records each file merged (name,
SHA-256, rows and sales added, updated and removed) with the SHA-256 of the history it
produced. Nothing here moves files or talks to MLflow: the flow (homevision.flow.pipeline)
decides when a staged history is committed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Collection
from dataclasses import asdict, dataclass
from itertools import chain, count
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from homevision.config import project_root
from homevision.data.fields import check_ids, parse_dates
from homevision.data.listings import is_labelled, read_export
from homevision.data.schema import MLS_ID

EXPORT_SUFFIXES = (".csv", ".parquet")
MANIFEST_VERSION = 2
STATUS_TIME = "StatusChangeTimestamp"  # the MLS's own time of a listing's last status change
SNAPSHOT_TIME = "SnapshotTimestamp"  # the time of the export a history row came from


@dataclass(frozen=True)
class MergeCounts:
    """What one export changed in the history."""

    added: int  # MLSNumbers the history did not hold
    updated: int  # MLSNumbers it held, with a different (newer) row now
    unchanged: int  # MLSNumbers it held with the very same row
    stale: int  # rows older than the history's row for their number: left out
    new_sales: int  # rows Sold with a ClosePrice that were absent or not sold before
    sales_updated: int  # sales held that a newer sale row replaced (a corrected price...)
    sales_removed: int  # sales held that a newer non-sale replaced (a sale taken back)
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


def load_history(path: Path) -> pd.DataFrame:
    """Return the history as a frame of strings (empty when there is none yet)."""
    if not path.exists():
        return pd.DataFrame()
    return read_export(path)


def _keys(frame: pd.DataFrame) -> pd.Series:
    """Return each row's normalised MLSNumber (an int, or None when missing or invalid)."""
    if MLS_ID not in frame.columns:
        return pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return pd.Series(check_ids(frame[MLS_ID].to_numpy())[0], index=frame.index, dtype=object)


def _keyed(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Return the rows with an MLSNumber, indexed by it, one per number: the newest by
    fact_times, then by snapshot_times, the last in file order among equals."""
    keys = _keys(frame)
    out = frame.loc[keys.notna()].reindex(columns=columns)
    out.index = pd.Index(keys[keys.notna()].astype("int64"), name=None)
    order = np.lexsort(
        (
            np.arange(len(out)),
            _order_key(snapshot_times(out)),
            _order_key(fact_times(out)),
            out.index.to_numpy(),
        )
    )
    out = out.iloc[order]
    return out[~out.index.duplicated(keep="last")]


def parse_times(values: pd.Series) -> pd.Series:
    """Return export timestamps (ISO 8601, e.g. '2020-02-22 17:03:34') as naive datetimes
    (datetime64[ns]): one with an offset ('Z', '+02:00') in UTC, one without taken as is, so
    rows of mixed forms still order; NaT where missing, unreadable or out of range (before
    1678 or after 2261)."""
    return parse_dates(values)


def unreadable_times(values: pd.Series) -> pd.Series:
    """Return True where a timestamp is given but parse_times cannot read it: such a row cannot
    be ordered against others, so the flow sets it aside."""
    given = values.astype("string").str.strip().fillna("").ne("")
    return given & parse_times(values).isna()


def fact_times(frame: pd.DataFrame) -> pd.Series:
    """Return when each row's fact was true: its StatusChangeTimestamp, else its snapshot's
    time (NaT when neither is known: such a row is older than any dated one)."""
    none = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    status = parse_times(frame[STATUS_TIME]) if STATUS_TIME in frame else none
    snapshot = parse_times(frame[SNAPSHOT_TIME]) if SNAPSHOT_TIME in frame else none
    return status.fillna(snapshot).astype("datetime64[ns]")


def snapshot_times(frame: pd.DataFrame) -> pd.Series:
    """Return the time of the snapshot each row came from (NaT when unknown): between two rows
    of the same fact time, the later snapshot's row is the newer word (a corrected price)."""
    if SNAPSHOT_TIME not in frame:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    return parse_times(frame[SNAPSHOT_TIME])


def _order_key(times: pd.Series) -> np.ndarray:
    """Return sortable integers for fact times, NaT first (the oldest)."""
    values = times.to_numpy(dtype="datetime64[ns]").astype("int64")
    return np.where(times.isna().to_numpy(), np.iinfo(np.int64).min, values)


def newest_status_time(frame: pd.DataFrame) -> str | None:
    """Return the newest StatusChangeTimestamp of an export (ISO text), None without one."""
    if STATUS_TIME not in frame or not len(frame):
        return None
    newest = parse_times(frame[STATUS_TIME]).max()
    return None if pd.isna(newest) else newest.strftime("%Y-%m-%d %H:%M:%S")


def snapshot_time(frame: pd.DataFrame, modified: float) -> str:
    """Return the time of an export as a snapshot: the newest StatusChangeTimestamp it
    carries, else its file's modification time (`modified`, seconds since the epoch); ISO
    text, the history's SnapshotTimestamp for its rows."""
    newest = newest_status_time(frame)
    return newest or pd.Timestamp(modified, unit="s").strftime("%Y-%m-%d %H:%M:%S")


def _same_rows(old: pd.DataFrame, new: pd.DataFrame) -> pd.Series:
    """Return, per MLSNumber, whether two aligned frames hold the same values (NaN == NaN)."""
    a, b = old.astype(object), new.astype(object)
    equal = (a == b) | (a.isna() & b.isna())
    return equal.all(axis=1)


def merge_export(
    history: pd.DataFrame, export: pd.DataFrame, snapshot: str | None = None
) -> tuple[pd.DataFrame, MergeCounts]:
    """Return the history with an export's rows merged in, and what changed (merge_changes
    without the changed rows)."""
    merged, counts, _ = merge_changes(history, export, snapshot)
    return merged, counts


def merge_changes(
    history: pd.DataFrame, export: pd.DataFrame, snapshot: str | None = None
) -> tuple[pd.DataFrame, MergeCounts, pd.DataFrame]:
    """Return the history with an export's rows merged in, and what changed.

    One row per MLSNumber, the newest fact winning (fact_times, then snapshot_times: of two
    rows with the same fact time, the later snapshot's, so a late, older export cannot undo a
    correction; an export row as new as the history's on both wins, so a re-export of the same
    moment updates it): the export's row replaces the history's whole row, and a row older than
    the history's is left out (stale). Within
    the export the newest row of a number wins, the last among equals. `snapshot` (the
    export's snapshot_time) fills SnapshotTimestamp where the export has none. Columns are the
    history's followed by any new ones; rows are sorted by MLSNumber, so the result depends
    only on its inputs' contents. Rows without a usable MLSNumber are left out. Also returns
    the export's rows that changed the history (added or updated): what drift is checked on.
    """
    export = export.copy()
    if snapshot is not None:
        stamped = export.get(SNAPSHOT_TIME)
        export[SNAPSHOT_TIME] = snapshot if stamped is None else stamped.fillna(snapshot)
    columns = list(history.columns) + [c for c in export.columns if c not in history.columns]
    old = _keyed(history, columns)
    new = _keyed(export, columns)
    held = new.index.isin(old.index)
    common = new.index[held]
    older = pd.Series(False, index=new.index)
    if len(common):
        t_old, t_new = (
            _order_key(fact_times(old.loc[common])),
            _order_key(fact_times(new.loc[common])),
        )
        s_old, s_new = (
            _order_key(snapshot_times(old.loc[common])),
            _order_key(snapshot_times(new.loc[common])),
        )
        older.loc[common] = (t_new < t_old) | ((t_new == t_old) & (s_new < s_old))
    new = new.loc[~older.to_numpy()]
    common = new.index[new.index.isin(old.index)]
    facts = [c for c in columns if c != SNAPSHOT_TIME]  # the same facts seen again: unchanged
    same = _same_rows(old.loc[common, facts], new.loc[common, facts])
    sold_now = is_labelled(new)
    sold_before = is_labelled(old).reindex(new.index, fill_value=False)
    replaced = pd.Series(new.index.isin(common), index=new.index) & ~same.reindex(
        new.index, fill_value=False
    )
    counts = MergeCounts(
        added=int((~new.index.isin(old.index)).sum()),
        updated=int((~same).sum()),
        unchanged=int(same.sum()),
        stale=int(older.sum()),
        new_sales=int((sold_now & ~sold_before).sum()),
        sales_updated=int((replaced & sold_now & sold_before).sum()),
        sales_removed=int((replaced & ~sold_now & sold_before).sum()),
        without_id=int(_keys(export).isna().sum()),
    )
    # An unchanged row keeps the history's copy (its first snapshot): re-merging a file that
    # holds nothing new leaves the history's bytes as they were.
    taken = new.drop(index=same.index[same.to_numpy()])
    merged = pd.concat([old.drop(index=taken.index, errors="ignore"), taken])
    changed = taken.sort_index(kind="stable").reset_index(drop=True)
    return merged.sort_index(kind="stable").reset_index(drop=True), counts, changed


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


def free_name(folder: Path, name: str, sha256: str, taken: Collection[str] = ()) -> Path:
    """Return `folder/name`, else `folder/STEM.SHA8.SUFFIX`, else `STEM.SHA8-2.SUFFIX`, `-3`...:
    the first name no entry of the folder holds (a dangling link counts) and not in `taken`
    (the paths this run already gave out), so no archived or failed file is ever overwritten,
    however often the same bytes come back."""
    path = Path(name)
    hashed = f"{path.stem}.{sha256[:8]}"
    names = chain((name, hashed + path.suffix), (f"{hashed}-{n}{path.suffix}" for n in count(2)))
    free = (folder / c for c in names if not os.path.lexists(folder / c))
    return next(target for target in free if str(target) not in taken)
