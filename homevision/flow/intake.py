"""What the flow takes from its drop folder, and what it leaves: every entry gets a verdict.

An export is taken only when complete: its size and modification time have been still for
`settle_seconds`, and its name does not end in `.part` (the producers' convention: write
`name.csv.part`, rename to `name.csv` when done). It is then copied into the run's staging
folder in one pass that also hashes it, and the copy is what gets parsed, chunk by chunk (memory
bounded by the chunk, whatever the file's size), merged and archived: rows written after the
copy are never half-taken. Anything else gets one sentence: a symlink, an unreadable or non-
export file goes to failed/, a folder, a file still being written or a non-export name stays
where it is, and a file that vanished is reported.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from homevision.config import DEFAULT_CHUNK_ROWS
from homevision.data.errors import NotAnExportError
from homevision.data.listings import (
    REASON_COLUMN,
    ValidationResult,
    numbered,
    read_export,
    read_export_chunks,
    validate_listings,
)
from homevision.data.synthetic import write_listings
from homevision.flow.history import (
    EXPORT_SUFFIXES,
    STATUS_TIME,
    merge_export,
    newest_status_time,
    snapshot_time,
    unreadable_times,
)
from homevision.hashing import file_hash

PART_SUFFIX = ".part"
DUPLICATE = "duplicate"  # the contract's rule for an MLSNumber an earlier row used
KEPT_FOLDERS = {"archive", "failed"}  # the flow's own folders inside the drop folder
TAKE, WAIT, FAIL, LEAVE, GONE = "take", "wait", "fail", "leave", "gone"


@dataclass(frozen=True)
class Verdict:
    """One drop-folder entry and what the flow does with it: take (an export to merge), wait
    (still being written: left in place), fail (moved to failed/ with the reason), leave (not
    the flow's: left in place), gone (vanished before it could be read)."""

    name: str
    path: str
    action: str
    reason: str = ""


class ChangedWhileReadError(OSError):
    """A file whose size or modification time changed while it was being copied."""


def survey(folder: Path, settle_seconds: float, now: float | None = None) -> list[Verdict]:
    """Return a verdict for every entry of the drop folder (hidden names and the flow's own
    archive/ and failed/ aside), in name order: the order exports are taken in. Raises
    NotADirectoryError for a drop folder that does not exist (a typo in --incoming would
    otherwise read as an empty drop, every run)."""
    if not folder.is_dir():
        raise NotADirectoryError(f"the drop folder {folder} does not exist or is not a folder")
    now = time.time() if now is None else now
    verdicts = []
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or (entry.name in KEPT_FOLDERS and entry.is_dir()):
            continue
        verdicts.append(_verdict(entry, settle_seconds, now))
    return verdicts


def _verdict(path: Path, settle_seconds: float, now: float) -> Verdict:
    name = path.name
    try:
        info = path.lstat()
    except FileNotFoundError:
        return Verdict(name, str(path), GONE, "removed before it could be read")
    if stat.S_ISLNK(info.st_mode):
        return Verdict(
            name,
            str(path),
            FAIL,
            "a symbolic link: the flow takes regular files only (copy the export in instead)",
        )
    if stat.S_ISDIR(info.st_mode):
        return Verdict(name, str(path), LEAVE, "a folder: exports are files in the drop folder")
    if not stat.S_ISREG(info.st_mode):
        return Verdict(name, str(path), LEAVE, "not a regular file")
    if name.endswith(PART_SUFFIX):
        return Verdict(
            name,
            str(path),
            WAIT,
            f"still being written (a {PART_SUFFIX} file: taken once renamed without it)",
        )
    if path.suffix.lower() not in EXPORT_SUFFIXES:
        return Verdict(name, str(path), LEAVE, "not an export name (*.csv or *.parquet)")
    age = now - info.st_mtime
    if age < settle_seconds:
        return Verdict(
            name,
            str(path),
            WAIT,
            f"still being written: changed {max(age, 0):.0f} s ago, taken once still for "
            f"{settle_seconds:g} s (flow.settle_seconds)",
        )
    if not os.access(path, os.R_OK):
        return Verdict(name, str(path), FAIL, _unreadable())
    return Verdict(name, str(path), TAKE)


def _unreadable() -> str:
    return "cannot be read: permission denied (give the flow's user read access, drop it again)"


class StagingWriteError(OSError):
    """Writing the flow's own copy of an export failed (disk full, a file size limit): the
    flow's trouble, not the export's, so the run fails and the file waits in the drop folder."""


def copy_and_hash(source: Path, target: Path) -> str:
    """Copy `source` to `target` in one pass and return the copy's SHA-256. Raises
    ChangedWhileReadError when the source's size or modification time moved meanwhile (a
    writer is still at it), StagingWriteError when the copy cannot be written, FileNotFoundError
    or PermissionError as the OS says about the source. A failed copy is removed."""
    before = source.stat()
    digest = hashlib.sha256()
    try:
        with source.open("rb") as src, _open_copy(target) as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                digest.update(block)
                _write_all(dst, block, target)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    after = source.stat()
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        target.unlink(missing_ok=True)
        raise ChangedWhileReadError(f"{source.name} changed while it was being read")
    shutil.copystat(source, target)
    return digest.hexdigest()


def _open_copy(target: Path) -> BinaryIO:
    """Return the staging copy opened for writing, unbuffered (so a write error surfaces at
    the write that failed); a failure to create it is a StagingWriteError."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return target.open("wb", buffering=0)
    except OSError as err:
        raise _staging_error(err, target) from None


def _write_all(dst: BinaryIO, block: bytes, target: Path) -> None:
    """Write the whole block to the copy; an OS error is a StagingWriteError."""
    view = memoryview(block)
    try:
        while view:
            view = view[dst.write(view) :]
    except OSError as err:
        raise _staging_error(err, target) from None


def _staging_error(err: OSError, target: Path) -> StagingWriteError:
    return StagingWriteError(
        err.errno, f"could not write the flow's copy {target}: {err.strerror or err}"
    )


@dataclass(frozen=True)
class StagedExport:
    """An export's rows, validated chunk by chunk and written to the staging folder."""

    rows: int
    accepted: int
    rejected: int
    accepted_path: Path | None  # export format, the accepted rows
    rejected_path: Path | None  # the rejected rows with their reason
    snapshot: str  # the export's snapshot time (history.snapshot_time)


def stage_rows(copy: Path, folder: Path, chunk_rows: int) -> StagedExport:
    """Validate the copied export chunk by chunk and append its accepted and rejected rows to
    `folder/accepted.csv` and `folder/rejected.csv` (written only when there are some). A
    repeated MLSNumber is no fault here (the merge keeps each number's newest row); a row whose
    StatusChangeTimestamp is given but unreadable is.
    Raises NotAnExportError for a file that is not a listings export, or one that stops
    parsing part-way."""
    folder.mkdir(parents=True, exist_ok=True)
    accepted_path, rejected_path = folder / "accepted.csv", folder / "rejected.csv"
    rows = accepted = rejected = 0
    newest = None
    for chunk in _chunks(copy, chunk_rows):
        result = _reject_unreadable_times(_keep_repeated_numbers(validate_listings(chunk)))
        result.accepted.index = result.accepted.index + rows + 1
        result.rejected.index = result.rejected.index + rows + 1
        _append(result.accepted, accepted_path, quoted=True)  # the export's own format
        _append(numbered(result.rejected, 0), rejected_path, quoted=False)  # as write_rejected
        rows, accepted, rejected = (
            rows + result.rows,
            accepted + len(result.accepted),
            rejected + len(result.rejected),
        )
        stamp = newest_status_time(result.accepted)
        if stamp and (newest is None or stamp > newest):
            newest = stamp
    modified = copy.stat().st_mtime
    return StagedExport(
        rows,
        accepted,
        rejected,
        accepted_path if accepted else None,
        rejected_path if rejected else None,
        newest or snapshot_time(pd.DataFrame(), modified),
    )


def _keep_repeated_numbers(result: ValidationResult) -> ValidationResult:
    """Return the validation with the rows rejected only for repeating an MLSNumber accepted
    again: an export may list a listing twice (Active, then Sold), and the history keeps the
    newest row of each number (history.merge_changes), where the contract's duplicate rule
    would keep the first. The contract itself (validate, predict) is unchanged."""
    fatal = result.violations[result.violations["fatal"]]
    if not len(fatal):
        return result
    only_repeated = fatal.groupby("row")["rule"].agg(lambda rules: set(rules) == {DUPLICATE})
    back = result.rejected.index.isin(only_repeated.index[only_repeated.to_numpy()] - 1)
    if not back.any():
        return result
    again = result.rejected[back].drop(columns=[REASON_COLUMN])
    accepted = pd.concat([result.accepted, again]).sort_index(kind="stable")
    return replace(result, accepted=accepted, rejected=result.rejected[~back])


def _reject_unreadable_times(result: ValidationResult) -> ValidationResult:
    """Return the validation with the accepted rows whose StatusChangeTimestamp is given but
    unreadable moved to the rejected ones, with the reason: the history orders a listing's
    rows by that time, so such a row cannot be merged."""
    if STATUS_TIME not in result.accepted or not len(result.accepted):
        return result
    values = result.accepted[STATUS_TIME]
    bad = unreadable_times(values).to_numpy()
    if not bad.any():
        return result
    moved = result.accepted[bad].copy()
    moved[REASON_COLUMN] = [
        f"{STATUS_TIME}: not a date and time the flow can order (ISO 8601, e.g. "
        f"2020-02-22 17:03:34, years 1678 to 2261) (got {value})"
        for value in values[bad]
    ]
    rejected = pd.concat([result.rejected, moved]).sort_index(kind="stable")
    return replace(result, accepted=result.accepted[~bad], rejected=rejected)


def _chunks(copy: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The copy's rows in chunks; any parsing failure is a NotAnExportError with one sentence."""
    try:
        yield from read_export_chunks(copy, chunk_rows)
    except NotAnExportError:
        raise
    except (ValueError, OSError, UnicodeError) as err:  # pandas, pyarrow and codec errors
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise NotAnExportError(f"could not be read as an export: {first}") from None


def _append(frame: pd.DataFrame, path: Path, quoted: bool) -> None:
    """Append rows to a CSV, the header only once: `quoted` in the export's format (every
    value quoted, CRLF), else pandas' default (the rejected-rows report)."""
    if not len(frame):
        return
    options = {"quoting": csv.QUOTE_ALL, "lineterminator": "\r\n"} if quoted else {}
    frame.to_csv(path, mode="a", header=not path.exists(), index=False, **options)


def replay_history(
    manifest: dict[str, Any], archive: Path, work: Path, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> tuple[pd.DataFrame, str]:
    """Return the history the manifest's merges make from the archived exports, and its
    SHA-256: what the manifest's `history_sha256` is checked against. Each file is found in
    `archive` by its SHA-256 (an archived name may carry one), validated as the flow validates
    it (stage_rows, in `work`), and only its accepted rows are merged, with the entry's
    snapshot. Raises FileNotFoundError naming a merged file the archive lacks."""
    by_hash = {
        file_hash(path): path
        for path in sorted(archive.iterdir())
        if path.is_file() and not path.name.endswith((".rejected.csv", ".reason.txt"))
    }
    history = pd.DataFrame()
    for number, entry in enumerate(manifest.get("merges", [])):
        if entry["sha256"] not in by_hash:
            raise FileNotFoundError(
                f"{entry['file']} (SHA-256 {entry['sha256'][:12]}…) is not in {archive}"
            )
        staged = stage_rows(by_hash[entry["sha256"]], work / f"replay-{number}", chunk_rows)
        rows = read_export(staged.accepted_path) if staged.accepted_path else history.iloc[0:0]
        history, _ = merge_export(history, rows, entry["snapshot"])
    return history, file_hash(write_listings(history, work / "listings.csv"))
