"""The flow's commit is all or nothing (issue 23, defect 4): a failing step undoes the earlier
ones, and a journal a killed run left is completed by the next."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from homevision.flow import commit as journal
from homevision.flow.history import history_path, manifest_path


@pytest.fixture
def project(tmp_path) -> dict[str, Path]:
    """A committed history and manifest, a staged new history, and a file in the drop folder
    with the copy the run read."""
    history_path(tmp_path).parent.mkdir(parents=True)
    history_path(tmp_path).write_text("old history\n")
    manifest_path(tmp_path).write_text('{"merges": []}\n')
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "listings.csv").write_text("new history\n")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "2020-01.csv").write_text("export bytes\n")
    shutil.copy2(incoming / "2020-01.csv", staging / "2020-01.csv")  # as the run copies it
    (incoming / "link.csv").symlink_to(incoming / "nowhere.csv")
    return {"root": tmp_path, "staging": staging, "incoming": incoming}


def _plan(
    project, run_id: str = "r1", report: bool = False, alias: journal.AliasMove | None = None
) -> journal.Journal:
    """The journal of a commit: the new history and manifest, the export archived (with its
    rejected rows' report when `report`), the symlink sent to failed/."""
    incoming = project["incoming"]
    info = (incoming / "2020-01.csv").stat()
    moves = [
        journal.Move(
            str(incoming / "2020-01.csv"),
            str(incoming / "archive" / "2020-01.csv"),
            str(project["staging"] / "2020-01.csv"),
            [info.st_size, info.st_mtime_ns],
        ),
        journal.Move(
            str(incoming / "link.csv"),
            str(incoming / "failed" / "link.csv"),
            reason="a symbolic link",
        ),
    ]
    if report:
        (project["staging"] / "rejected.csv").write_text("rejected rows\n")
        target = str(incoming / "archive" / "2020-01.csv.rejected.csv")
        moves.insert(1, journal.Move(None, target, str(project["staging"] / "rejected.csv")))
    return journal.prepare(
        run_id,
        project["staging"] / "listings.csv",
        None,
        '{"merges": ["2020-01.csv"]}\n',
        moves,
        alias,
    )


def test_a_commit_changes_everything_it_names(project):
    plan = _plan(project)
    assert journal.journal_path().exists()
    journal.apply(plan)
    incoming = project["incoming"]
    assert history_path().read_text() == "new history\n"
    assert json.loads(manifest_path().read_text()) == {"merges": ["2020-01.csv"]}
    assert (incoming / "archive" / "2020-01.csv").read_text() == "export bytes\n"
    assert not (incoming / "2020-01.csv").exists()
    assert (incoming / "failed" / "link.csv").is_symlink()
    assert (incoming / "failed" / "link.csv.reason.txt").read_text() == "a symbolic link\n"
    assert not journal.journal_path().exists() and not journal.commit_dir("r1").exists()


def test_a_failing_step_undoes_the_earlier_ones(project, monkeypatch):
    plan = _plan(project)
    plan.alias = journal.AliasMove("homevision-price", "2", "1")

    def registry_down(alias, notes):
        raise ConnectionError("the registry is down")

    monkeypatch.setattr(journal, "_move_alias", registry_down)
    with pytest.raises(ConnectionError):
        journal.apply(plan)
    incoming = project["incoming"]
    assert history_path().read_text() == "old history\n"
    assert manifest_path().read_text() == '{"merges": []}\n'
    assert (incoming / "2020-01.csv").read_text() == "export bytes\n"
    assert (incoming / "link.csv").is_symlink()
    assert not (incoming / "archive" / "2020-01.csv").exists()
    assert not (incoming / "failed" / "link.csv").exists()
    assert not journal.journal_path().exists()


def test_a_journal_left_by_a_killed_run_is_completed(project):
    plan = _plan(project)
    journal._replace_history(Path(plan.history), None)  # killed after the history step
    assert journal.recover() == "completed the commit of run r1, interrupted before"
    assert history_path().read_text() == "new history\n"
    assert json.loads(manifest_path().read_text()) == {"merges": ["2020-01.csv"]}
    assert (project["incoming"] / "archive" / "2020-01.csv").exists()
    assert journal.recover() is None


def test_a_journal_killed_after_its_files_step_is_completed_without_leftovers(project):
    plan = _plan(project)
    for move in plan.moves:  # killed after the files step: the archive linked to the copy
        journal._move(move, plan.notes)
    assert journal.recover() == "completed the commit of run r1, interrupted before"
    archive = project["incoming"] / "archive"
    assert [p.name for p in archive.iterdir()] == ["2020-01.csv"]
    assert (archive / "2020-01.csv").read_text() == "export bytes\n"


def test_a_file_changed_after_it_was_read_stays_for_the_next_run(project):
    plan = _plan(project)
    (project["incoming"] / "2020-01.csv").write_text("export bytes, and more rows\n")
    journal.apply(plan)
    incoming = project["incoming"]
    assert (incoming / "archive" / "2020-01.csv").read_text() == "export bytes\n"  # as merged
    assert (incoming / "2020-01.csv").read_text() == "export bytes, and more rows\n"
    assert plan.notes == ["2020-01.csv changed after it was read: left for the next run"]


@pytest.mark.parametrize("other_filesystem", [False, True])
def test_a_run_killed_while_archiving_loses_no_export(project, monkeypatch, other_filesystem):
    """Defect 3: a kill in the middle of the copy into archive/ (another filesystem) left a
    truncated archive file that the next run took for done, deleting the original."""
    _plan(project)
    if other_filesystem:  # no hard links from data/history/ to the drop folder: copies

        def cross_device(source, target):
            raise OSError(18, "Invalid cross-device link")

        monkeypatch.setattr(journal.os, "link", cross_device)
    incoming = project["incoming"]
    (incoming / "archive").mkdir()
    (incoming / "archive" / "2020-01.csv").write_text("expo")  # the copy, cut short
    assert journal.recover() == "completed the commit of run r1, interrupted before"
    assert (incoming / "archive" / "2020-01.csv").read_text() == "export bytes\n"
    assert not (incoming / "2020-01.csv").exists()
    assert not [p.name for p in (incoming / "archive").iterdir() if p.name.startswith(".")]


def test_a_rollback_the_store_stops_keeps_the_journal_and_the_next_run_completes_it(
    project, monkeypatch
):
    """Defect 4: the tracking store down during the commit: restoring the alias failed first
    and stopped the rollback (history, manifest and files stayed changed while the run said
    nothing changed), and the next run removed the journal's folder, the rejected rows' report
    with it."""
    plan = _plan(project, report=True, alias=journal.AliasMove("homevision-price", "2", "1"))
    moved = []

    def store_down(*args):
        raise ConnectionError("the tracking server refused the connection")

    monkeypatch.setattr(journal, "_move_alias", store_down)
    monkeypatch.setattr(journal, "_restore_alias", store_down)
    with pytest.raises(journal.RollbackIncompleteError, match="could not undo the champion"):
        journal.apply(plan)
    incoming = project["incoming"]
    assert history_path().read_text() == "old history\n"  # all but the alias undone
    assert manifest_path().read_text() == '{"merges": []}\n'
    assert (incoming / "2020-01.csv").read_text() == "export bytes\n"
    assert not (incoming / "archive" / "2020-01.csv.rejected.csv").exists()
    assert journal.journal_path().exists() and journal.commit_dir("r1").exists()

    with pytest.raises(journal.RollbackIncompleteError, match="neither completed nor wholly"):
        journal.recover()  # still down: the run stops at once, the journal and folder stay
    assert journal.journal_path().exists() and journal.commit_dir("r1").exists()
    assert history_path().read_text() == "old history\n"

    monkeypatch.setattr(journal, "_move_alias", lambda alias, notes: moved.append(alias.version))
    assert journal.recover() == "completed the commit of run r1, interrupted before"
    assert moved == ["2"]
    assert history_path().read_text() == "new history\n"
    assert json.loads(manifest_path().read_text()) == {"merges": ["2020-01.csv"]}
    assert (incoming / "archive" / "2020-01.csv").read_text() == "export bytes\n"
    assert (incoming / "archive" / "2020-01.csv.rejected.csv").read_text() == "rejected rows\n"
    assert not (incoming / "2020-01.csv").exists()
    assert not journal.journal_path().exists() and not journal.commit_dir("r1").exists()
