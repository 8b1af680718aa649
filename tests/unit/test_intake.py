"""What the flow takes from its drop folder and what it leaves, each with a sentence (issue 23,
defects 1 and 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from homevision.data.listings import read_export, validate_listings
from homevision.data.synthetic import generate_listings, write_listings
from homevision.flow import intake as drop
from homevision.flow.pipeline import Intake, _sort


def _old(path: Path, seconds: float = 120) -> Path:
    """Backdate a file's time: written long enough ago to have settled."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    _old(write_listings(generate_listings(30, seed=1), incoming / "2020-01.csv"))
    (incoming / "2020-02.csv.part").write_text("MLSNumber\n1\n")
    write_listings(generate_listings(30, seed=2), incoming / "2020-03.csv")  # just written
    (incoming / "folder.csv").mkdir()
    (incoming / "notes.txt").write_text("hello")
    os.symlink(incoming / "2020-01.csv", incoming / "link.csv")
    (incoming / ".hidden.csv").write_text("x")
    (incoming / "archive").mkdir()
    return incoming


def test_every_entry_gets_a_verdict(folder):
    verdicts = {v.name: v for v in drop.survey(folder, settle_seconds=30)}
    assert set(verdicts) == {
        "2020-01.csv",
        "2020-02.csv.part",
        "2020-03.csv",
        "folder.csv",
        "notes.txt",
        "link.csv",
    }
    assert verdicts["2020-01.csv"].action == drop.TAKE
    assert verdicts["2020-02.csv.part"].action == drop.WAIT
    assert "renamed without it" in verdicts["2020-02.csv.part"].reason
    assert verdicts["2020-03.csv"].action == drop.WAIT
    assert "still for 30 s (flow.settle_seconds)" in verdicts["2020-03.csv"].reason
    assert verdicts["folder.csv"].action == drop.LEAVE
    assert verdicts["notes.txt"].action == drop.LEAVE
    assert verdicts["link.csv"].action == drop.FAIL
    assert "symbolic link" in verdicts["link.csv"].reason
    settled = {v.name: v.action for v in drop.survey(folder, settle_seconds=0)}
    assert settled["2020-03.csv"] == drop.TAKE


def test_the_copy_is_what_was_hashed(tmp_path):
    source = write_listings(generate_listings(20, seed=1), tmp_path / "a.csv")
    from homevision.tracking import file_hash

    sha = drop.copy_and_hash(source, tmp_path / "copy" / "a.csv")
    assert sha == file_hash(source) == file_hash(tmp_path / "copy" / "a.csv")


def test_a_file_that_grows_while_it_is_copied_is_left_for_later(tmp_path, monkeypatch):
    source = write_listings(generate_listings(20, seed=1), tmp_path / "a.csv")
    real_open = Path.open

    def open_and_append(self, mode="r", *args, **kwargs):
        handle = real_open(self, mode, *args, **kwargs)
        if self == source and "r" in mode:
            with real_open(source, "ab") as writer:  # the producer writes on meanwhile
                writer.write(b'"1","2"\r\n')
        return handle

    monkeypatch.setattr(Path, "open", open_and_append)
    with pytest.raises(drop.ChangedWhileReadError, match="changed while it was being read"):
        drop.copy_and_hash(source, tmp_path / "copy.csv")
    assert not (tmp_path / "copy.csv").exists()


def test_a_large_export_is_read_chunk_by_chunk_with_the_same_result(tmp_path):
    frame = generate_listings(400, seed=5)
    frame.loc[10, "MLSNumber"] = frame.loc[300, "MLSNumber"]  # a duplicate across chunks
    frame["SqFtTotal"] = frame["SqFtTotal"].astype(object)
    frame.loc[50, "SqFtTotal"] = "-5"
    path = write_listings(frame, tmp_path / "big.csv")
    staged = drop.stage_rows(path, tmp_path / "rows", chunk_rows=64)
    whole = validate_listings(read_export(path))
    whole.accepted = pd.concat([whole.accepted, whole.rejected.loc[[300]]]).sort_index()
    whole.rejected = whole.rejected.drop(index=300)  # the flow keeps a repeated number's rows
    assert (staged.rows, staged.accepted, staged.rejected) == (
        400,
        len(whole.accepted),
        len(whole.rejected),
    )
    accepted = read_export(staged.accepted_path)
    expected = whole.accepted.drop(columns="rejection_reason").reset_index(drop=True)
    pd.testing.assert_frame_equal(accepted, expected[accepted.columns], check_dtype=False)
    rejected = pd.read_csv(staged.rejected_path, dtype=str)
    assert set(rejected["MLSNumber"]) == set(whole.rejected["MLSNumber"])
    assert rejected["row"].astype(int).tolist() == (whole.rejected.index + 1).tolist()


def test_binary_and_broken_files_are_refused_in_one_sentence(tmp_path):
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(drop.NotAnExportError):
        drop.stage_rows(garbage, tmp_path / "rows", chunk_rows=100)


class _Log:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(text)

    warning = info


@pytest.mark.parametrize(
    ("error", "bucket", "reason"),
    [
        (PermissionError(13, "Permission denied"), "refused", "cannot be read: Permission denied"),
        (FileNotFoundError(2, "No such file"), "gone", "removed while it was being read"),
        (drop.ChangedWhileReadError("x"), "waiting", "changed while it was being read"),
    ],
)
def test_a_file_that_cannot_be_copied_gets_a_sentence_and_the_rest_goes_on(
    tmp_path, monkeypatch, error, bucket, reason
):
    """Issue 23, defect 1: an unreadable, vanishing or growing file is reported, not fatal."""
    good = _old(write_listings(generate_listings(30, seed=1), tmp_path / "good.csv"))
    bad = _old(write_listings(generate_listings(30, seed=2), tmp_path / "bad.csv"))
    real = drop.copy_and_hash

    def copy(source, target):
        if source == bad:
            raise error
        return real(source, target)

    monkeypatch.setattr(drop, "copy_and_hash", copy)
    intake = Intake(str(tmp_path / "staging"), "run")
    context = SimpleNamespace(log=_Log())
    for verdict in drop.survey(tmp_path, settle_seconds=0):
        _sort(context, verdict, tmp_path / "staging", set(), intake)
    assert [e.name for e in intake.new] == ["good.csv"]
    entries = getattr(intake, bucket)
    found = [e.reason if hasattr(e, "reason") else e["reason"] for e in entries]
    assert len(found) == 1 and reason in found[0]
    assert good.exists() and bad.exists()


def test_odd_status_times_are_read_in_utc_or_set_aside_with_a_reason(tmp_path):
    """Defect 1: one StatusChangeTimestamp with an offset, in 'Z' or out of range stopped every
    run (mixed time zones, out-of-bounds datetimes, tz-aware casts), holding back every export."""
    frame = generate_listings(6, seed=1)
    frame["StatusChangeTimestamp"] = [
        "2020-04-01 10:00:00",
        "2020-04-01T10:00:00+02:00",
        "2020-04-02T10:00:00Z",
        "9999-12-31 00:00:00",
        "not a time",
        "",
    ]
    path = write_listings(frame, tmp_path / "2020-04.csv")
    staged = drop.stage_rows(path, tmp_path / "rows", chunk_rows=4)
    assert (staged.rows, staged.accepted, staged.rejected) == (6, 4, 2)
    assert staged.snapshot == "2020-04-02 10:00:00"  # the 'Z' row, in UTC; not year 9999
    rejected = pd.read_csv(staged.rejected_path, dtype=str)
    assert list(rejected["MLSNumber"]) == list(frame["MLSNumber"].astype(str)[3:5])
    assert rejected["rejection_reason"].str.startswith("StatusChangeTimestamp: ").all()
    assert "(got 9999-12-31 00:00:00)" in rejected["rejection_reason"].iloc[0]

    from homevision.flow.history import merge_changes

    history, counts, _ = merge_changes(pd.DataFrame(), read_export(staged.accepted_path))
    assert (len(history), counts.added) == (4, 4)


def test_a_file_that_breaks_staging_unforeseen_is_refused_and_the_rest_goes_on(
    tmp_path, monkeypatch
):
    """Defect 1: an error no rule foresaw while staging one file failed the whole run."""
    good = _old(write_listings(generate_listings(30, seed=1), tmp_path / "good.csv"))
    bad = _old(write_listings(generate_listings(30, seed=2), tmp_path / "odd.csv"))
    real = drop.stage_rows

    def stage(copy, folder, chunk_rows):
        if copy.name == bad.name:
            raise TypeError("Cannot use .astype to convert from timezone-aware dtype")
        return real(copy, folder, chunk_rows)

    monkeypatch.setattr(drop, "stage_rows", stage)
    intake = Intake(str(tmp_path / "staging"), "run")
    for verdict in drop.survey(tmp_path, settle_seconds=0):
        _sort(SimpleNamespace(log=_Log()), verdict, tmp_path / "staging", set(), intake)
    assert [e.name for e in intake.new] == ["good.csv"]
    (refused,) = intake.refused
    assert refused.name == "odd.csv" and refused.reason.startswith(
        "could not be read as an export: TypeError: Cannot use .astype"
    )
    assert good.exists() and bad.exists()


def test_the_newer_row_of_a_listing_listed_twice_in_one_export_wins(tmp_path):
    """Defect 5: Active (April 1st) then Sold (April 20th) for one MLSNumber in one export: the
    contract's duplicate rule set the sale aside and the history kept Active."""
    frame = generate_listings(3, seed=1).astype(object)
    frame["MLSNumber"] = ["30000001", "30000002", "30000001"]
    frame["StatusChangeTimestamp"] = ["2020-04-01 09:00:00", "2020-04-02 09:00:00", "2020-04-20"]
    frame.loc[[0, 2], "Status"] = ["Active", "Sold"]
    frame.loc[0, ["ClosePrice", "CloseDate"]] = None
    frame.loc[2, ["ClosePrice", "CloseDate"]] = ["333000", "2020-04-20"]
    frame.loc[1, "SqFtTotal"] = "-5"  # rejected for its own reason: still set aside
    staged = drop.stage_rows(write_listings(frame, tmp_path / "2020-04.csv"), tmp_path, 2)
    assert (staged.accepted, staged.rejected) == (2, 1)

    from homevision.flow.history import merge_changes

    history, counts, _ = merge_changes(pd.DataFrame(), read_export(staged.accepted_path))
    assert list(history["Status"]) == ["Sold"] and list(history["ClosePrice"]) == ["333000"]
    assert counts.new_sales == 1


def test_a_copy_the_flow_cannot_write_fails_the_run_and_the_export_waits(tmp_path):
    """Defect 8: a write error on the flow's side (a file size limit, a full disk) blamed the
    export ('cannot be read: File too large'), sent it to failed/ and left a partial copy."""
    source = write_listings(generate_listings(200, seed=1), tmp_path / "2020-04.csv")
    target = tmp_path / "staging" / "2020-04.csv"
    probe = "\n".join(
        [
            "import resource, sys",
            "from pathlib import Path",
            "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))",
            "from homevision.flow import intake",
            "try:",
            "    intake.copy_and_hash(Path(sys.argv[1]), Path(sys.argv[2]))",
            "except intake.StagingWriteError as err:",
            "    print('staging', err)",
            "    sys.exit(3)",
        ]
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(source), str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr[-2000:]
    assert "File too large" in proc.stdout and not target.exists()

    def full_disk(source, target):
        raise drop.StagingWriteError(28, "could not write the flow's copy: No space left")

    intake = Intake(str(tmp_path / "staging"), "run")
    verdict = drop.Verdict(source.name, str(source), drop.TAKE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(drop, "copy_and_hash", full_disk)
        with pytest.raises(drop.StagingWriteError):
            _sort(SimpleNamespace(log=_Log()), verdict, tmp_path / "staging", set(), intake)
    assert not intake.refused and source.exists()


def test_a_drop_folder_that_does_not_exist_is_an_error_not_an_empty_drop(tmp_path):
    """Defect 9: `flow run --incoming typo` exited 0 'Nothing changed.', every run."""
    from typer.testing import CliRunner

    from homevision.cli import app

    typo = tmp_path / "typo-incomming"
    result = CliRunner().invoke(app, ["flow", "run", "--incoming", str(typo)])
    assert result.exit_code == 2
    assert "does not exist" in " ".join(result.output.split())
    assert not (tmp_path / "data" / "history").exists()  # no run was started
