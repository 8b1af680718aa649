"""The flow's commit: history, manifest, drop folder and champion alias change together.

A commit is first written down as a journal (`data/history/commit.json`, replaced atomically:
the point of no return) that names every change, with what it needs kept in
`data/history/.commit-<run>/` (the new history, the previous one, the manifests, the copies of
the exports taken). Then each step runs, each one idempotent:

1. history   <- the staged history (copied beside it, then renamed over it)
2. manifest  <- the new manifest
3. files     <- each export archived (from the copy that was merged, kept in the commit folder
               until the commit ends: linked or copied beside the target, synced, renamed over
               it, so an archive file is whole or absent; the original leaves the drop folder
               only once its copy is archived, and only if unchanged since it was read), each
               refused file moved to failed/ with its reason beside it
4. alias     <- the champion moves from the version the training compared against to the new
               one (compare-and-set, tracking.set_champion): only after the history it was
               trained on is in place

A step that raises undoes the ones before it (the previous history and manifest come back, files
return to the drop folder, the alias to where it was, last and at best) and the run reports that
nothing changed. When some step cannot be undone (a disk error; the tracking store down, for the
alias) the journal and its folder stay, the run says so, and the next run completes the commit
before anything else (it fails at once while that is not possible yet).
A process killed midway leaves the journal: the next run completes it before anything else and
undoes it only if completing fails. The API reload and MLflow bookkeeping come after the commit:
they change nothing a later run relies on.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

from homevision.flow.faults import failpoint
from homevision.flow.history import atomic_write_text, history_dir, history_path, manifest_path
from homevision.hashing import file_hash
from homevision.model_errors import first_line

log = logging.getLogger(__name__)
JOURNAL = "commit.json"


@dataclass
class Move:
    """One drop-folder file's way out: to archive/ (from `copy`, the bytes merged) or to
    failed/ (the file itself, with `reason` written beside it)."""

    source: str | None  # None: a file of the run's own (the rejected rows' report)
    target: str
    copy: str | None = None  # the staged copy that goes to the archive
    signature: list[int] | None = None  # [size, mtime_ns] of the source when it was read
    reason: str | None = None


@dataclass
class AliasMove:
    name: str
    version: str
    expected: str | None  # the champion the training compared against (None: no champion)


@dataclass
class Journal:
    """Everything one commit changes (see the module docstring)."""

    run_id: str
    history: str | None  # the new history in the commit folder (None: unchanged)
    history_sha256: str | None
    previous_history: str | None  # a link to the history it replaces (None: there was none)
    manifest: str | None  # the new manifest's text, in the commit folder
    previous_manifest: str | None
    moves: list[Move] = field(default_factory=list)
    alias: AliasMove | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Journal:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["moves"] = [Move(**m) for m in data["moves"]]
        data["alias"] = AliasMove(**data["alias"]) if data["alias"] else None
        return cls(**data)


def journal_path(root: Path | None = None) -> Path:
    return history_dir(root) / JOURNAL


def commit_dir(run_id: str) -> Path:
    return history_dir() / f".commit-{run_id}"


def prepare(
    run_id: str,
    staged_history: Path | None,
    history_sha256: str | None,
    manifest_text: str | None,
    moves: list[Move],
    alias: AliasMove | None,
) -> Journal:
    """Keep what the commit needs in its folder and write the journal (atomically: from here
    the commit completes, now or on the next run). Returns it."""
    folder = commit_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    journal = Journal(run_id, None, history_sha256, None, None, None, [], alias)
    if staged_history is not None:
        journal.history = str(shutil.move(staged_history, folder / "listings.csv"))
        current = history_path()
        if current.exists():
            journal.previous_history = str(_link_or_copy(current, folder / "previous.csv"))
    if manifest_text is not None:
        target = folder / "manifest.json"
        target.write_text(manifest_text, encoding="utf-8")
        journal.manifest = str(target)
        if manifest_path().exists():
            journal.previous_manifest = str(
                _link_or_copy(manifest_path(), folder / "previous-manifest.json")
            )
    for move in moves:
        if move.copy is not None:  # the staged copy travels with the journal
            kept = folder / "files" / Path(move.target).name
            kept.parent.mkdir(parents=True, exist_ok=True)
            move.copy = str(shutil.move(move.copy, kept))
        journal.moves.append(move)
    atomic_write_text(journal_path(), json.dumps(asdict(journal), indent=2) + "\n")
    failpoint("commit:journal")
    return journal


def _link_or_copy(source: Path, target: Path) -> Path:
    """Keep the current file under `target`: a hard link (free), across filesystems a copy
    synced to disk (a crash leaves it whole or not renamed into place, see _put)."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
        with target.open("rb+") as copied:
            os.fsync(copied.fileno())
    return target


class RollbackIncompleteError(RuntimeError):
    """A commit that failed and could not be wholly undone: its journal and folder stay, and the
    next run completes the commit (or undoes it) before anything else."""


def apply(journal: Journal) -> list[str]:
    """Carry out every step of the journal (each idempotent), then remove it; return what was
    changed, one short phrase per change. A step that raises undoes the earlier ones (rollback)
    and re-raises; RollbackIncompleteError when some could not be undone (the journal stays)."""
    done: list[str] = []
    try:
        if journal.history is not None:
            _replace_history(Path(journal.history), journal.history_sha256)
            done.append("history")
        failpoint("commit:history")
        if journal.manifest is not None:
            atomic_write_text(manifest_path(), Path(journal.manifest).read_text("utf-8"))
            done.append("manifest")
        failpoint("commit:manifest")
        for move in journal.moves:
            _move(move, journal.notes)
        failpoint("commit:files")
        if journal.alias is not None:
            _move_alias(journal.alias, journal.notes)
        failpoint("commit:alias")
    except Exception as err:
        log.exception("Commit %s failed: undoing it", journal.run_id)
        left = rollback(journal)
        if left:
            raise RollbackIncompleteError(
                f"{first_line(err, 300)}; could not undo {', '.join(left)}: {journal_path()} "
                "stays and the next run completes the commit before anything else"
            ) from err
        raise
    _forget(journal)
    return done


def _replace_history(staged: Path, sha256: str | None) -> None:
    """Put the new history in place: copied beside the current one, then renamed over it (a
    reader, or a crash, sees the old bytes or the new ones)."""
    target = history_path()
    if sha256 and target.exists() and file_hash(target) == sha256:
        return  # done before a crash
    tmp = target.with_name(f".{target.name}.incoming")
    size = staged.stat().st_size
    with staged.open("rb") as src, tmp.open("wb") as dst:
        written = 0
        for block in iter(lambda: src.read(1 << 16), b""):
            dst.write(block)
            written += len(block)
            if written >= size // 2:
                failpoint("commit:history-half")
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, target)


def _unchanged(path: Path, signature: list[int] | None) -> bool:
    try:
        info = path.stat()
    except FileNotFoundError:
        return False
    return signature is None or [info.st_size, info.st_mtime_ns] == list(signature)


def _put(source: Path, target: Path) -> None:
    """Make `target` a whole copy of `source`, or leave it as it was: a hard link (or, across
    filesystems, a copy synced to disk) beside the target, renamed over it. `source` stays, so a
    step cut short by a kill is done again from it."""
    if target.exists() and os.path.samefile(source, target):
        return  # linked before a crash (renaming a link over its twin would do nothing)
    tmp = target.with_name(f".{target.name}.incoming")
    os.replace(_link_or_copy(source, tmp), target)


def _move(move: Move, notes: list[str]) -> None:
    target = Path(move.target)
    source = Path(move.source) if move.source is not None else None
    target.parent.mkdir(parents=True, exist_ok=True)
    if move.copy is not None:
        # Placed from the kept copy every time: a target that exists may be one a kill cut short.
        if Path(move.copy).exists():
            _put(Path(move.copy), target)
        elif not target.exists():
            raise FileNotFoundError(f"the copy of {target.name} kept for the commit is missing")
        if source is not None and _unchanged(source, move.signature):
            source.unlink()
        elif source is not None and source.exists():
            notes.append(f"{source.name} changed after it was read: left for the next run")
    elif source is not None and os.path.lexists(source):
        if os.path.lexists(target):  # never overwrite: say so rather than skip it quietly
            notes.append(f"{source.name} not moved: {target} is taken; it stays where it is")
        else:
            os.replace(source, target)
    if move.reason is not None:
        reason = target.with_name(target.name + ".reason.txt")
        if not reason.exists():
            reason.write_text(move.reason + "\n", encoding="utf-8")


def _move_alias(alias: AliasMove, notes: list[str]) -> None:
    from homevision import tracking

    current = tracking.champion(alias.name)
    now = None if current is None else str(current.version)
    if now == alias.version:
        return  # moved before a crash
    if not tracking.set_champion(alias.version, alias.name, expected=alias.expected):
        notes.append(
            f"the champion of {alias.name} changed during this run: v{alias.version} not promoted"
        )


def rollback(journal: Journal) -> list[str]:
    """Undo whatever of the journal was done, in reverse order, each step on its own (one that
    fails does not stop the others) and the champion alias last, at best (a tracking store that
    is down must not keep the history and files from coming back). Remove the journal only when
    every step was undone, so a later run can finish what is left; return the steps that were
    not undone, one phrase each (empty: all undone)."""
    steps: list[tuple[str, Callable[[], None]]] = [
        (Path(move.target).name, partial(_undo_move, move)) for move in reversed(journal.moves)
    ]
    if journal.manifest is not None:
        steps.append(
            ("the manifest", partial(_restore, journal.previous_manifest, manifest_path()))
        )
    if journal.history is not None:
        steps.append(("the history", partial(_restore, journal.previous_history, history_path())))
    if journal.alias is not None:
        steps.append(("the champion alias", partial(_restore_alias, journal.alias)))
    left = []
    for what, step in steps:
        try:
            step()
        except Exception as err:
            log.exception("Could not undo %s of commit %s", what, journal.run_id)
            left.append(f"{what} ({first_line(err, 300)})")
    if not left:
        _forget(journal)
    return left


def _undo_move(move: Move) -> None:
    """Put one file back where the commit found it (the archived export back in the drop
    folder, a refused one back from failed/); a report of the run's own is removed (its copy
    stays in the commit folder)."""
    target = Path(move.target)
    if move.reason is not None:
        target.with_name(target.name + ".reason.txt").unlink(missing_ok=True)
    if move.source is not None and not os.path.lexists(move.source):
        if os.path.lexists(target):
            os.replace(target, move.source)  # back where it was found
    elif move.copy is not None:
        target.unlink(missing_ok=True)  # the source is still there: drop the copy


def _restore(previous: str | None, target: Path) -> None:
    """Put back the file a commit replaced (from its link in the commit folder, which stays,
    so the step can be done again); remove the target when there was none."""
    if previous is None:
        target.unlink(missing_ok=True)
    else:
        _put(Path(previous), target)


def _restore_alias(alias: AliasMove) -> None:
    from mlflow.tracking import MlflowClient

    from homevision import tracking

    current = tracking.champion(alias.name)
    if current is None or str(current.version) != alias.version:
        return
    client = MlflowClient(tracking.tracking_uri())
    if alias.expected is None:
        client.delete_registered_model_alias(alias.name, tracking.CHAMPION)
    else:
        client.set_registered_model_alias(alias.name, tracking.CHAMPION, alias.expected)


def _forget(journal: Journal) -> None:
    """Remove the journal, then its folder (a crash between leaves a folder without a journal,
    which the next run removes)."""
    journal_path().unlink(missing_ok=True)
    shutil.rmtree(commit_dir(journal.run_id), ignore_errors=True)


def recover() -> str | None:
    """Complete a commit a killed run left (or undo it, when completing fails) and remove the
    folders of commits that ended; return a sentence saying what was done, None when there was
    nothing to do. Raises RollbackIncompleteError when the commit could be neither completed
    nor wholly undone (the journal and its folder stay for the next run). Call with the
    history lock held."""
    path = journal_path()
    sentence = None
    if path.exists():
        journal = Journal.load(path)
        try:
            apply(journal)
            sentence = f"completed the commit of run {journal.run_id}, interrupted before"
        except RollbackIncompleteError as err:
            raise RollbackIncompleteError(
                f"the commit of run {journal.run_id}, interrupted before, could be neither "
                f"completed nor wholly undone: {err}"
            ) from err
        except Exception as err:  # apply rolled it back
            sentence = (
                f"undid the interrupted commit of run {journal.run_id}: {first_line(err, 300)}"
            )
        log.warning("Recovery: %s", sentence)
    if not path.exists():  # a journal that stays keeps its folder: it is all the next run has
        for stale in history_dir().glob(".commit-*"):
            shutil.rmtree(stale, ignore_errors=True)
    return sentence
