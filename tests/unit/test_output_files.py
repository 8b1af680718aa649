"""Valuation outputs appear whole or not at all, and two runs writing one output never mix."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from homevision.valuation.stream import write_chunks, write_frame


def valued(start: int, chunks: int, rows: int = 3):
    """Chunks of valuations as stream.value_chunks yields them: (frame, range level)."""
    for c in range(chunks):
        ids = range(start + c * rows, start + (c + 1) * rows)
        ids = [str(i) for i in ids]
        yield pd.DataFrame({"MLSNumber": ids, "error": "", "warning": ""}), 0.8


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_an_interrupted_write_keeps_the_earlier_output_and_leaves_nothing(
    tmp_path, monkeypatch, suffix
):
    """Before, write_frame wrote straight to the target: a crash part way left half an output
    under its name, and the complete earlier one was gone."""
    target = tmp_path / f"valuations{suffix}"
    frame = next(valued(0, 1))[0]
    write_frame(frame, target)
    before = target.read_bytes()

    def broken(self, out, *args, **kwargs):
        if isinstance(out, Path):
            out.write_bytes(b"half a file")
        else:
            out.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        write_frame(frame, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_two_runs_writing_one_output_each_write_their_own_whole_file(tmp_path):
    """A second run starts writing the same output while the first is part way: before, both
    wrote into one partial file (the second truncated the first's), the first then crashed
    and the output mixed both runs' rows."""
    target = tmp_path / "valuations.csv"
    second: list[bytes] = []

    def first():
        for i, chunk in enumerate(valued(0, 4)):
            if i == 2:  # the second run comes and goes while the first is half way
                write_chunks(valued(1000, 2), target)
                second.append(target.read_bytes())
            yield chunk

    write_chunks(first(), target)
    one = pd.concat([f for f, _ in valued(0, 4)], ignore_index=True)
    two = pd.concat([f for f, _ in valued(1000, 2)], ignore_index=True)
    assert second == [two.to_csv(index=False).encode()]
    assert target.read_bytes() == one.to_csv(index=False).encode()  # the last to finish
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
