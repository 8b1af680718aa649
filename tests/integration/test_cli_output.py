"""What a person reads from the CLI: fast help, one-line errors, no third-party noise.

Run as a user meets it off a terminal (a log file, CI): a subprocess with captured output."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import cli

# The libraries a command loads only when it needs them (`homevision --help` needs none).
HEAVY = ("mlflow", "sklearn", "pyspark", "evidently", "dagster", "optuna", "pandas", "pandera")
# A Python warning as the warnings module prints it, a progress bar redrawn in place, or a
# third-party library's logged warning (homevision.console.PlainFormatter names its logger).
NOISE = re.compile(r"\w+Warning: |\r|WARNING +\[")


def _python(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return proc.stdout.strip()


def test_importing_the_cli_loads_no_heavy_library():
    loaded = _python(
        "import sys, homevision.cli; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    )
    assert loaded == "[]"


def test_every_commands_help_loads_no_heavy_library():
    code = """
import sys
import typer.main
from homevision.cli import app

command = typer.main.get_command(app)
names = [[]] + [[name] for name in command.commands]
names += [["flow", sub] for sub in command.commands["flow"].commands]
for name in names:
    try:
        command.main([*name, "--help"], prog_name="homevision", standalone_mode=False)
    except SystemExit:
        pass
print("LOADED", sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY)), len(names))
""".replace("HEAVY", repr(HEAVY))
    out = _python(code)
    assert "Usage: homevision train" in out and "Usage: homevision flow run" in out
    last = out.splitlines()[-1]
    assert last.startswith("LOADED [] "), last
    assert int(last.split()[-1]) >= 12  # every command was asked


def test_an_error_naming_a_path_longer_than_80_characters_is_one_line(tmp_path):
    folder = tmp_path / ("a-folder-with-a-long-name-" * 4)
    folder.mkdir()
    missing = folder / "nope.csv"
    assert len(str(missing)) > 80
    proc = cli(tmp_path, "ingest", "--data", str(missing))
    assert proc.returncode == 2
    assert proc.stdout == f"error: {missing}: no such export file\n"
    assert NOISE.search(proc.stderr) is None, proc.stderr


def test_validate_prints_the_report_and_nothing_from_other_libraries(served_home):
    proc = cli(served_home, "validate")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Rows by Status" in proc.stdout
    assert NOISE.search(proc.stdout + proc.stderr) is None, proc.stderr


def test_train_logs_plain_lines_and_nothing_from_other_libraries(trained_home):
    log = (trained_home / "train.log").read_text()
    assert "Leaderboard" in log and "Registered homevision-price version" in log
    assert NOISE.search(log) is None, log
    # A leaderboard row keeps a candidate's whole name, whatever the width of a terminal.
    assert re.search(r"│ median_ppsf +│", log), log


@pytest.mark.parametrize(
    ("command", "exit_code"),
    [(("predict",), 0), (("monitor",), 0)],
    ids=["predict", "monitor"],
)
def test_valuing_and_monitoring_print_nothing_from_other_libraries(
    served_home: Path, command: tuple[str, ...], exit_code: int
):
    env = {"HOMEVISION_PARAMS": str(served_home / "params-median_ppsf-ridge.yaml")}
    proc = cli(served_home, *command, env=env)
    assert proc.returncode == exit_code, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert NOISE.search(proc.stdout + proc.stderr) is None, proc.stdout + proc.stderr
