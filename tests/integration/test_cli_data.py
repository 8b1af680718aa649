"""The data commands as a user drives them: through Typer's runner and once as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
from typer.testing import CliRunner

from homevision.cli import app

runner = CliRunner()


def test_validate_clean_synthetic_export_exits_0(synthetic_csv):
    result = runner.invoke(app, ["validate", "--data", str(synthetic_csv)])
    assert result.exit_code == 0, result.output
    assert "Rows by Status" in result.stdout
    assert "Every row was accepted" in result.stdout


def test_validate_json_reports_counts_and_violations(synthetic_csv, tmp_path):
    result = runner.invoke(app, ["validate", "--data", str(synthetic_csv), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows"] == 600 == report["accepted"] + report["rejected"]
    assert set(report) >= {"rows", "accepted", "rejected", "repaired", "violations", "by_status"}
    assert sum(report["by_status"].values()) == 600
    for violation in report["violations"]:
        assert set(violation) == {"MLSNumber", "row", "column", "value", "rule", "fatal"}


def test_validate_damaged_export_exits_1_and_sets_rows_aside(synthetic_csv, tmp_path):
    frame = pd.read_csv(synthetic_csv, dtype=str)
    frame.loc[4, "SqFtTotal"] = "huge"
    frame.loc[9, "BathsTotal"] = "2-1"
    damaged = tmp_path / "damaged.csv"
    frame.to_csv(damaged, index=False)
    rejected = tmp_path / "rejected.csv"
    result = runner.invoke(
        app, ["validate", "--data", str(damaged), "--json", "--rejected", str(rejected)]
    )
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["rejected"] == 2 and report["accepted"] == 598
    fatal = {(v["row"], v["column"], v["value"]) for v in report["violations"] if v["fatal"]}
    assert fatal == {(5, "SqFtTotal", "huge"), (10, "BathsTotal", "2-1")}
    kept = pd.read_csv(rejected, dtype=str)
    assert kept["MLSNumber"].tolist() == [frame.loc[4, "MLSNumber"], frame.loc[9, "MLSNumber"]]
    assert kept["row"].tolist() == ["5", "10"]  # the violations' rows: back to the export
    assert kept["rejection_reason"].str.contains("SqFtTotal|BathsTotal").all()


def test_validate_not_an_export_exits_2_with_one_sentence(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("name,age\nann,3\n")
    result = runner.invoke(app, ["validate", "--data", str(path)])
    assert result.exit_code == 2
    assert "required column(s) missing" in result.output
    assert "Traceback" not in result.output


def test_sample_data_writes_a_valid_deterministic_export(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    for path in (first, second):
        result = runner.invoke(
            app, ["sample-data", "--rows", "150", "--seed", "9", "--output", str(path)]
        )
        assert result.exit_code == 0, result.output
    assert first.read_bytes() == second.read_bytes()
    assert runner.invoke(app, ["validate", "--data", str(first)]).exit_code == 0


def test_default_data_is_generated_on_first_use_when_nothing_is_configured(tmp_path):
    result = runner.invoke(app, ["validate", "--json"])
    assert result.exit_code == 0, result.output
    generated = tmp_path / "data" / "raw" / "synthetic-listings.csv"
    assert generated.exists()
    assert json.loads(result.stdout)["rows"] == 2000


def test_homevision_data_env_selects_the_export(synthetic_csv, monkeypatch):
    monkeypatch.setenv("HOMEVISION_DATA", str(synthetic_csv))
    result = runner.invoke(app, ["validate", "--json"])
    assert json.loads(result.stdout)["rows"] == 600


def test_validate_as_a_subprocess(synthetic_csv, tmp_path):
    env = {**os.environ, "HOMEVISION_HOME": str(tmp_path)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "homevision.cli",
            "validate",
            "--data",
            str(synthetic_csv),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["accepted"] == 600
    assert (tmp_path / "data" / "interim" / "rejected.csv").exists()


def test_validate_json_is_strict_json_when_a_number_is_infinite(synthetic_csv, tmp_path):
    """BedsTotal "inf" and CDOM "-inf" (rows validation rejects): the report held
    `"max": Infinity` and `"min": -Infinity`, which no strict JSON parser reads. The ranges are
    those of the finite values."""
    frame = pd.read_csv(synthetic_csv, dtype=str)
    frame.loc[1, "BedsTotal"], frame.loc[2, "CDOM"] = "inf", "-inf"
    frame.to_csv(path := tmp_path / "inf.csv", index=False)
    result = runner.invoke(app, ["validate", "--data", str(path), "--json"])
    assert result.exit_code == 1, result.output

    def refuse(constant: str):
        raise ValueError(f"not JSON: {constant}")

    report = json.loads(result.stdout, parse_constant=refuse)
    beds = pd.to_numeric(frame["BedsTotal"].drop(index=1))
    assert report["columns"]["BedsTotal"]["max"] == beds.max()
    assert report["columns"]["CDOM"]["min"] == pd.to_numeric(frame["CDOM"].drop(index=2)).min()
