"""The CLI's console and log lines: rich in a terminal, never wrapped anywhere else."""

from __future__ import annotations

import io
import logging

from rich.table import Table

from homevision.console import UNWRAPPED_WIDTH, PlainFormatter, log_handler, make_console

LONG_PATH = "/tmp/" + "a" * 120 + "/nope.csv"


def _printed(console, *things) -> str:
    console.file = io.StringIO()
    for thing in things:
        console.print(thing, highlight=False)
    return console.file.getvalue()


def test_an_error_sentence_longer_than_80_columns_stays_on_one_line(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    out = _printed(make_console(), f"[bold red]error:[/] {LONG_PATH}: no such export file")
    assert out == f"error: {LONG_PATH}: no such export file\n"


def test_a_table_never_truncates_a_candidate_name(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    table = Table(title="Leaderboard")
    for head in ("candidate", "RMSE", "MAE", "R2", "MAPE", "MdAPE", "within 10%", "later"):
        table.add_column(head)
    name = "school_median_ppsf_with_a_name_far_longer_than_any_terminal_would_show"
    table.add_row(name, *["$123,456,789"] * 7)
    out = _printed(make_console(), table)
    assert name in out and "…" not in out
    assert max(len(line) for line in out.splitlines()) < UNWRAPPED_WIDTH


def test_columns_is_honoured_when_set(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    out = _printed(make_console(), f"error: {LONG_PATH}: no such export file")
    lines = out.splitlines()
    assert len(lines) > 1 and max(len(line) for line in lines) <= 40


def test_log_records_off_a_terminal_are_one_plain_line_each(capsys):
    handler = log_handler()  # pytest's captured stderr is not a terminal
    assert isinstance(handler.formatter, PlainFormatter)
    logger = logging.getLogger("homevision.test_console")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("could not read %s: permission denied", LONG_PATH)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.rstrip("\n").endswith(f"WARNING could not read {LONG_PATH}: permission denied")
    assert not err.rstrip("\n").endswith(" ")


def test_a_record_from_another_library_names_its_logger():
    record = logging.LogRecord("mlflow.store", logging.WARNING, __file__, 1, "slow", None, None)
    assert PlainFormatter().format(record).endswith("WARNING [mlflow.store] slow")
    ours = logging.LogRecord("homevision.flow", logging.INFO, __file__, 1, "merged", None, None)
    assert PlainFormatter().format(ours).endswith("INFO    merged")
