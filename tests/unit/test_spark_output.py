"""predict --engine spark never deletes what it did not write (issue 22, defect 10): Spark's
overwrite mode empties the whole output path, so a path that holds anything but an earlier
valuation is refused before Spark starts, unless --overwrite."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from homevision.valuation.spark import check_output


def test_a_new_path_and_an_earlier_valuation_may_be_written(tmp_path):
    check_output(tmp_path / "new.parquet", overwrite=False)
    earlier = tmp_path / "valuations.parquet"
    earlier.mkdir()
    for name in ("_SUCCESS", "._SUCCESS.crc", "part-00000-a.snappy.parquet"):
        (earlier / name).write_bytes(b"")
    (earlier / ".part-00000-a.snappy.parquet.crc").write_bytes(b"")
    check_output(earlier, overwrite=False)


def test_a_folder_with_other_files_or_a_file_is_refused_unless_overwrite(tmp_path):
    (tmp_path / "listings.csv").write_text("the export")
    with pytest.raises(ValueError, match=r"holds other files than an earlier valuation"):
        check_output(tmp_path, overwrite=False)
    with pytest.raises(ValueError, match="is a file"):
        check_output(tmp_path / "listings.csv", overwrite=False)
    check_output(tmp_path, overwrite=True)


def test_the_cli_refuses_before_spark_starts_and_deletes_nothing(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "export.csv").write_text("MLSNumber\n1\n")
    command = ["predict", "--engine", "spark", "--data", str(data / "export.csv")]
    proc = subprocess.run(
        [sys.executable, "-m", "homevision.cli", *command, "--output", str(data)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOMEVISION_HOME": str(tmp_path)},
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "holds other files than an earlier valuation (export.csv)" in proc.stdout
    assert (data / "export.csv").read_text() == "MLSNumber\n1\n"


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ('a,b\r\n1,"x\r\ny"\r\n', True),  # a quoted CRLF
        ('a,b\n1,"x\ny"', True),
        ('a,b\r1,"x\ry"\r', True),  # old Mac line ends, a quoted CR
        ('a,b\n1,"say ""hi"""\n2,3\n', False),  # doubled quotes toggle twice
        ('a,b\n1,"x,y"\n2,""\n', False),
        ("a,b\n1,2\n", False),
    ],
)
def test_a_value_spanning_lines_is_found_at_any_block_size(tmp_path, text, spans):
    from homevision.valuation.spark import has_quoted_line_break

    path = tmp_path / "export.csv"
    path.write_text(text, newline="")
    assert all(has_quoted_line_break(path, block) is spans for block in (1, 2, 3, 7, 1 << 20))
