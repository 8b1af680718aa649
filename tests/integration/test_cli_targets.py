"""An output the CLI cannot write (a folder, a path under a file) stops the command in one
sentence with exit code 2 before any work, and leaves nothing behind."""

from __future__ import annotations

import errno

import pytest
from typer.testing import CliRunner

from homevision.cli import app

runner = CliRunner()


def _one_sentence(result, *parts: str) -> None:
    """Exit 2, one line naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2
    text = " ".join(result.output.split())
    assert text.startswith("error:") and all(p in text for p in parts), result.output


@pytest.mark.parametrize(
    "args",
    [
        ["validate", "--data", "{data}", "--rejected", "{dir}"],
        ["predict", "--data", "{data}", "--output", "{dir}"],
        ["ingest", "--data", "{data}", "--output", "{dir}"],
        ["sample-data", "--rows", "5", "--output", "{dir}"],
        ["validate", "--data", "{data}", "--rejected", "{file}/rejected.csv"],
        ["predict", "--data", "{data}", "--output", "{file}/out.csv"],
        ["monitor", "--current", "{data}", "--output", "{file}"],
    ],
)
def test_an_output_that_cannot_be_a_file_is_refused_first(tmp_path, synthetic_csv, args):
    """Before: a 20-70-line traceback and exit 1 (validate's "rows rejected"), predict after
    valuing every row, monitor after the whole Evidently run, ingest leaving a hidden copy of the
    export behind. No model is registered here: predict and monitor stop before fetching one."""
    work = tmp_path / "work"
    folder, afile = work / "outdir", work / "afile"
    folder.mkdir(parents=True)
    afile.write_text("x")
    args = [a.format(dir=folder, file=afile, data=synthetic_csv) for a in args]
    result = runner.invoke(app, args)
    if args[-1] == str(folder):
        _one_sentence(result, f"{folder}: is a directory", "must be a file")
    elif args[0] == "monitor":
        _one_sentence(result, f"{afile}: is a file", "must be a folder")
    else:
        _one_sentence(result, f"{afile} is a file, not a folder")
    assert sorted(p.name for p in work.iterdir()) == ["afile", "outdir"]
    assert list(folder.iterdir()) == []


def test_a_plan_that_is_a_folder_is_one_sentence(tmp_path, synthetic_csv):
    result = runner.invoke(app, ["train", "--data", str(synthetic_csv), "--plan", str(tmp_path)])
    _one_sentence(result, f"{tmp_path}: is a directory, not a plan file")


def test_a_failed_final_write_is_one_sentence(tmp_path, synthetic_csv, monkeypatch):
    """A disk that fills (or any OSError) at the rejected-rows write: one sentence, exit 2 (not
    validate's exit 1, which means "some rows rejected")."""
    from homevision.data import listings

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(listings, "write_rejected", full)
    target = tmp_path / "rejected.csv"
    result = runner.invoke(
        app, ["validate", "--data", str(synthetic_csv), "--rejected", str(target)]
    )
    _one_sentence(result, f"cannot write {target}: No space left on device")


def test_ingest_leaves_no_copy_behind_when_the_copy_cannot_be_placed(tmp_path, synthetic_csv):
    """The library call itself: the copy beside the target is removed when renaming it fails."""
    from homevision.data.sources import ingest

    work = tmp_path / "work"
    (work / "outdir").mkdir(parents=True)
    with pytest.raises(OSError):
        ingest(work / "outdir", synthetic_csv)
    assert [p.name for p in work.iterdir()] == ["outdir"]
