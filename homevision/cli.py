"""The `homevision` command line: one thin command per stage; the logic lives in the package."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from homevision.config import paths
from homevision.data.listings import (
    Listings,
    NotAnExportError,
    data_report,
    load_listings,
    write_rejected,
)
from homevision.data.schema import RULES
from homevision.data.sources import resolve_data_path
from homevision.data.synthetic import generate_listings, write_listings
from homevision.features import feature_set_names, get_feature_set
from homevision.logging_setup import setup_logging

app = typer.Typer(
    help="homevision: value homes from an MLS listings export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = Console()
log = logging.getLogger("homevision")
MAX_VIOLATIONS_SHOWN = 100
_LABELS = {"labelled": "labelled (Sold with ClosePrice)", "to_value": "to value"}

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Listings export (CSV or Parquet). Default: HOMEVISION_DATA, "
        "data/raw/home-listings-example.csv, else the synthetic sample.",
    ),
]


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False):
    """Set up logging for every command."""
    setup_logging(verbose)


def _load(data: Path | None) -> Listings:
    """Load and validate an export, turning 'not an export' into one sentence and exit 2."""
    source = resolve_data_path(data)
    try:
        return load_listings(source)
    except NotAnExportError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False)
        raise typer.Exit(2) from None


def _used_columns() -> list[str]:
    columns: list[str] = ["MLSNumber", "Status", "ClosePrice"]
    for name in feature_set_names():
        columns += [c for c in get_feature_set(name).raw_columns if c not in columns]
    return columns


@app.command()
def validate(
    data: DataOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    rejected: Annotated[Path | None, typer.Option(help="Where rejected rows go.")] = None,
) -> None:
    """Validate an export and print the data report.

    Exit 0 when every row was accepted or repaired, 1 when some were rejected, 2 when the file
    is not a listings export.
    """
    listings = _load(data)
    result = listings.validation
    rejected_path = write_rejected(result, rejected or paths().rejected)
    report = data_report(listings, _used_columns())
    report["rejected_file"] = str(rejected_path)
    if as_json:
        typer.echo(json.dumps(report, default=str))
    else:
        _print_report(report)
    raise typer.Exit(result.exit_code)


def _print_report(report: dict) -> None:
    summary = Table(title=f"Listings export: {report['source']}", show_header=False)
    for key in ("rows", "accepted", "rejected", "labelled", "to_value"):
        summary.add_row(_LABELS.get(key, key), f"{report[key]:,}")
    console.print(summary)

    status = Table(title="Rows by Status")
    status.add_column("Status")
    status.add_column("rows", justify="right")
    for name, count in report["by_status"].items():
        status.add_row(name, f"{count:,}")
    console.print(status)

    cols = Table(title="Columns used by the models")
    for head in ("column", "missing", "min", "median", "max", "distinct"):
        cols.add_column(head, justify="left" if head == "column" else "right")
    for name, info in report["columns"].items():
        if not info["present"]:
            cols.add_row(name, "absent", "", "", "", "")
            continue
        cols.add_row(
            name,
            f"{info['missing']:,}",
            *(_fmt(info.get(k)) for k in ("min", "median", "max", "distinct")),
        )
    console.print(cols)

    if report["repaired"]:
        rep = Table(title="Repaired in the feature pipeline (rows kept)")
        rep.add_column("rule")
        rep.add_column("rows", justify="right")
        rep.add_column("meaning")
        for rule, count in report["repaired"].items():
            rep.add_row(rule, str(count), RULES.get(rule, ""))
        console.print(rep)

    violations = report["violations"]
    fatal = [v for v in violations if v["fatal"]]
    if fatal:
        table = Table(title=f"Rejected: {len(fatal)} violation(s) in {report['rejected']} row(s)")
        for head in ("row", "MLSNumber", "column", "value", "rule"):
            table.add_column(head)
        for v in fatal[:MAX_VIOLATIONS_SHOWN]:
            table.add_row(
                str(v["row"]),
                str(v["MLSNumber"]),
                v["column"],
                repr(v["value"]),
                f"{v['rule']}: {RULES.get(v['rule'], '')}",
            )
        console.print(table)
        if len(fatal) > MAX_VIOLATIONS_SHOWN:
            console.print(f"... {len(fatal) - MAX_VIOLATIONS_SHOWN} more: see --json.")
        console.print(f"Rejected rows and reasons written to {report['rejected_file']}")
    else:
        console.print("[green]Every row was accepted.[/]")


def _fmt(value: float | int | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.4g}"


@app.command("sample-data")
def sample_data(
    rows: Annotated[int, typer.Option(min=1, help="Number of listings.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed: same seed, same file.")] = 0,
    output: Annotated[Path | None, typer.Option(help="CSV to write.")] = None,
) -> None:
    """Write synthetic listings with a known price model, in the real export's format."""
    target = output or paths().raw / "synthetic-listings.csv"
    start = time.perf_counter()
    with console.status(f"Generating {rows:,} listings..."):
        write_listings(generate_listings(rows, seed), target)
    console.print(f"Wrote {rows:,} listings to {target} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    app()
