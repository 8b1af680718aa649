"""The `homevision` command line: one thin command per stage; the logic lives in the package."""

from __future__ import annotations

import json
import logging
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from homevision.config import (
    DEFAULT_CHUNK_ROWS,
    SAMPLE_CHUNK_ROWS,
    SPARK_BATCH_ROWS,
    load_params,
    paths,
    project_root,
)
from homevision.console import make_console
from homevision.data.errors import NotAnExportError
from homevision.data.sources import is_parquet, resolve_data_path
from homevision.logging_setup import setup_logging
from homevision.service_secrets import SecretFileError

if TYPE_CHECKING:  # pragma: no cover
    from homevision.data.listings import Listings

# Commands import what they need when they run: `homevision --help` loads neither pandas nor
# scikit-learn nor MLflow (tests/unit/test_cli_imports.py holds it to that).
# `make services` prints this export: the PostgreSQL database for Optuna studies.
OPTUNA_STORAGE_ENV = "HOMEVISION_OPTUNA_STORAGE"


class _App(typer.Typer):
    """The CLI; a services secret that others can read (service_secrets.SecretFileError),
    wherever a command meets it, stops it in one sentence with exit code 2, no traceback."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except SecretFileError as err:
            console.print(f"[bold red]error:[/] {err}", highlight=False)
            raise SystemExit(2) from None


app = _App(
    help="homevision: value homes from an MLS listings export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
console = make_console()
log = logging.getLogger("homevision")
MAX_VIOLATIONS_SHOWN = 100
# predict --data's default worker processes: one per core, at most this many. Each holds a chunk
# (config.DEFAULT_CHUNK_ROWS); the calling process reads, checks ids and writes a chunk in
# about an eighth of the time a worker takes to value it, so a few workers keep it busy.
PREDICT_WORKERS = 4
# `predict --explain --data`: rows explained per chunk (about 13 s of work on two cores with the
# offmarket blend; memory grows with it, about 3.6 KB a row: each carries its reasons and
# comparables). Smaller chunks cost more calls: 2,500 took 0.5-1 s longer on 10,000 homes.
EXPLAIN_CHUNK_ROWS = 10_000
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


def _unwritable(path: Path, folder: bool = False) -> str | None:
    """Return why `path` cannot take the output (a file; a folder when `folder`), else None:
    an existing directory (a file), or an existing file (a folder), or a path under a file.
    Checked before a command works: the write would fail only at its end."""
    if path.is_dir() and not folder:
        return f"{path}: is a directory"
    if path.exists() and folder and not path.is_dir():
        return f"{path}: is a file"
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        return f"{path}: {parent} is a file, not a folder"
    return None


def _check_output(path: Path, option: str, folder: bool = False) -> Path:
    """Return `path`, or stop in one sentence with exit 2 when the output cannot go there."""
    reason = _unwritable(path, folder)
    if reason is not None:
        what = "a folder" if folder else "a file"
        console.print(f"[bold red]error:[/] {reason}; {option} must be {what}", highlight=False)
        raise typer.Exit(2)
    return path


def _cannot_write(path: Path, err: OSError) -> typer.Exit:
    """Print that `path` could not be written (the system's reason) and return exit 2 to raise."""
    console.print(
        f"[bold red]error:[/] cannot write {path}: {err.strerror or err}", highlight=False
    )
    return typer.Exit(2)


def _json(value: object) -> str:
    """Return `value` as strict JSON: NaN and infinities (which json writes as NaN and Infinity,
    not JSON) become null; other values json cannot write become text."""
    import math

    def finite(item: object) -> object:
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {k: finite(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [finite(v) for v in item]
        return item

    return json.dumps(finite(value), default=str, allow_nan=False)


def _reason(err: Exception) -> str:
    """Return the error's sentence: a KeyError's own message, without the quotes str() adds."""
    return str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)


def _load(data: Path | None) -> Listings:
    """Load and validate an export, turning 'not an export' into one sentence and exit 2."""
    from homevision.data.listings import load_listings

    source = resolve_data_path(data)
    try:
        return load_listings(source)
    except NotAnExportError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False)
        raise typer.Exit(2) from None


def _used_columns() -> list[str]:
    from homevision.feature_sets import feature_set_names, get_feature_set

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
    from homevision.data.listings import data_report, write_rejected

    target = _check_output(rejected or paths().rejected, "--rejected")
    listings = _load(data)
    result = listings.validation
    try:
        rejected_path = write_rejected(result, target)
    except OSError as err:
        raise _cannot_write(target, err) from None
    report = data_report(listings, _used_columns())
    report["rejected_file"] = str(rejected_path)
    if as_json:
        typer.echo(_json(report))
    else:
        _print_report(report)
    raise typer.Exit(result.exit_code)


def _print_report(report: dict) -> None:
    from homevision.data.schema import RULES

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
    output: Annotated[
        Path | None, typer.Option(help="File to write: Parquet for a .parquet name, else CSV.")
    ] = None,
    market_seed: Annotated[
        int | None,
        typer.Option(help="Seed of the market (school and subdivision effects). Default: --seed."),
    ] = None,
    month: Annotated[
        int,
        typer.Option(
            min=0, help="Months after the base year: sales close in that month (2020-06 + N)."
        ),
    ] = 0,
    price_trend: Annotated[
        float, typer.Option(help="Price trend per month, compounding (0.01: +1%/month).")
    ] = 0.0,
    mix_shift: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Shift of the mix towards bigger, newer, attached homes."
        ),
    ] = 0.0,
    new_school: Annotated[
        str | None, typer.Option(help="Open a school with this name (its own price effect).")
    ] = None,
    new_school_share: Annotated[
        float, typer.Option(help="Share of the listings in the new school.")
    ] = 0.15,
    chunk_rows: Annotated[
        int,
        typer.Option(
            min=1, help="Listings generated and written at a time (memory grows with this only)."
        ),
    ] = SAMPLE_CHUNK_ROWS,
) -> None:
    """Write synthetic listings with a known price model, in the real export's format (or
    Parquet), chunk by chunk; the drift options simulate a market moving (for monitoring tests
    and demos)."""
    from rich.progress import Progress

    from homevision.data.synthetic import MarketDrift, write_listings_chunked

    target = _check_output(output or paths().raw / "synthetic-listings.csv", "--output")
    try:
        drift = MarketDrift(month, price_trend, mix_shift, new_school, new_school_share)
    except ValueError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False)
        raise typer.Exit(2) from None
    start = time.perf_counter()
    with Progress(*Progress.get_default_columns(), console=console, transient=True) as progress:
        task = progress.add_task(f"Generating {rows:,} listings", total=rows)
        try:
            write_listings_chunked(
                rows,
                target,
                seed,
                market_seed,
                drift,
                chunk_rows,
                on_chunk=lambda done: progress.update(task, completed=done),
            )
        except OSError as err:
            raise _cannot_write(target, err) from None
    console.print(f"Wrote {rows:,} listings to {target} in {time.perf_counter() - start:.1f} s")


@app.command()
def ingest(
    data: DataOption = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Where the copy goes. Default: data/raw/listings.csv."),
    ] = None,
) -> None:
    """Copy the export the pipeline works on into data/raw/listings.csv (DVC tracks the copy)."""
    from homevision.data.sources import ingest as copy_export

    target = _check_output(output or paths().raw / "listings.csv", "--output")
    try:
        source = copy_export(target, data)
    except FileNotFoundError as err:  # the export, not the copy
        console.print(f"[bold red]error:[/] {err}", highlight=False)
        raise typer.Exit(2) from None
    except OSError as err:
        raise _cannot_write(target, err) from None
    console.print(f"Copied {source} ({target.stat().st_size:,} bytes) to {target}", highlight=False)


FeaturesOption = Annotated[
    str,
    typer.Option("--features", help="Feature set from params.yaml: task6, offmarket, onmarket."),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/model or a "
        "run id. Default: models:/homevision-price@champion.",
    ),
]


def _training_plan(path: Path | None, run_id: str | None):
    """Return the plan to replay: --plan FILE, the plan of run --replay, else params.yaml's
    train.plan (a path), else None. Raises PlanError in one sentence."""
    from homevision.training.plan import FILE_NAME, PlanError, load_plan

    if path is not None and run_id is not None:
        raise PlanError("give --plan or --replay, not both")
    if run_id is not None:
        import mlflow

        from homevision.tracking import tracking_uri

        mlflow.set_tracking_uri(tracking_uri())
        try:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=FILE_NAME)
        except Exception:  # MLflow raises several types for a run or file that is not there
            raise PlanError(f"run {run_id} has no recorded plan ({FILE_NAME})") from None
        return load_plan(local)
    if path is None:
        pinned = (load_params().get("train") or {}).get("plan")
        if not pinned:
            return None
        path = Path(pinned)
        if not path.is_absolute():
            path = project_root() / path
    return load_plan(path)


@app.command()
def train(
    data: DataOption = None,
    features: FeaturesOption = "task6",
    budget: Annotated[
        float | None, typer.Option(help="Seconds for the whole job (default from params.yaml).")
    ] = None,
    promote: Annotated[
        bool, typer.Option(help="Make the new model champion even if it is not better.")
    ] = False,
    storage: Annotated[
        str | None,
        typer.Option(
            envvar=OPTUNA_STORAGE_ENV,
            help="Optuna storage URL to keep the studies in (default: in memory). Studies are "
            "named by data, folds and search space: a run on other data never reuses another's "
            "trials, and one on the same data continues the study (the honest estimate and the "
            "plan then tune with all its trials).",
        ),
    ] = None,
    plan: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            help="Replay this plan.json exactly (no timing-based decision; --budget is not "
            "enforced): the same data, plan and code give the same model. Default: "
            "train.plan of params.yaml, when set.",
        ),
    ] = None,
    replay: Annotated[
        str | None,
        typer.Option("--replay", help="Replay the plan a training run recorded (its run id)."),
    ] = None,
) -> None:
    """Select, tune, honestly evaluate, refit, log and register a model, within --budget (or
    exactly as a recorded plan says: --plan, --replay)."""
    from homevision.training.card import fmt_metric, spread_text
    from homevision.training.plan import PlanError
    from homevision.training.train import train as run_training

    source = resolve_data_path(data)
    _load(source)  # fail early, with one sentence, on a file that is not an export
    try:
        recorded = _training_plan(plan, replay)
        if recorded is not None:
            features = recorded.feature_set if features == "task6" else features
        outcome = run_training(
            source, features, budget=budget, promote=promote, storage=storage, plan=recorded
        )
    except (KeyError, ValueError, PlanError) as err:
        console.print(f"[bold red]error:[/] {_reason(err)}", highlight=False)
        raise typer.Exit(2) from None
    table = Table(title=f"Leaderboard ({outcome.selection.plan.describe()})")
    for head in ("candidate", "RMSE", "± std", "MAE", "R2", "MAPE", "MdAPE", "within 10%"):
        table.add_column(head, justify="left" if head == "candidate" else "right")
    repeats = outcome.selection.repeats_run
    for name, row in outcome.selection.table.iterrows():
        table.add_row(
            str(name),
            fmt_metric("rmse", row["rmse"]),
            spread_text("rmse", row, repeats.get(str(name))),
            fmt_metric("mae", row["mae"]),
            fmt_metric("r2", row["r2"]),
            fmt_metric("mape", row["mape"]),
            fmt_metric("mdape", row["mdape"]),
            fmt_metric("within_10", row["within_10"]),
        )
    console.print(table)
    honest = outcome.honest
    console.print(
        f"Honest estimate ({honest['method']}):\n  RMSE {fmt_metric('rmse', honest['rmse'])}, "
        f"MAE {fmt_metric('mae', honest['mae'])}, MAPE {fmt_metric('mape', honest['mape'])}, "
        f"MdAPE {fmt_metric('mdape', honest['mdape'])}, "
        f"within 10% {fmt_metric('within_10', honest['within_10'])}",
        highlight=False,
    )
    later = outcome.time_ordered
    if later:
        console.print(
            f"Time-ordered ({later['method']}):\n  RMSE {fmt_metric('rmse', later['rmse'])}, "
            f"MAPE {fmt_metric('mape', later['mape'])}, "
            f"MdAPE {fmt_metric('mdape', later['mdape'])}",
            highlight=False,
        )
    if outcome.budget_notes:
        console.print("Trimmed to the budget: " + "; ".join(outcome.budget_notes), highlight=False)
    console.print(
        f"Model {outcome.selection.winner}: {outcome.model_name} v{outcome.version} "
        f"(run {outcome.run_id}); {outcome.champion_note}.\n"
        f"Model card: {outcome.card_path}  ({outcome.seconds:.0f} s)",
        highlight=False,
    )


class Engine(StrEnum):
    """Where `predict` values: this process (pandas) or a Spark job."""

    pandas = "pandas"
    spark = "spark"


@app.command()
def predict(
    model: ModelOption = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Export to value (every row). Default: the configured data's unsold listings.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="File to write: Parquet for a .parquet name, else CSV. "
            "Default: data/processed/valuations.csv."
        ),
    ] = None,
    confidence: Annotated[
        float | None, typer.Option(help="Range confidence, one the model carries (default 0.9).")
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Add top SHAP contributions ($) and comparables (a --data export is "
            f"streamed {EXPLAIN_CHUNK_ROWS:,} rows at a time).",
        ),
    ] = False,
    chunk_rows: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="With --data: listings read, valued and written at a time (memory grows with "
            f"this, not with the file). Default: {DEFAULT_CHUNK_ROWS:,}; with --explain, "
            f"{EXPLAIN_CHUNK_ROWS:,}; with --engine spark, the rows of an Arrow batch, "
            f"{SPARK_BATCH_ROWS:,}.",
            show_default=False,
        ),
    ] = None,
    engine: Annotated[
        Engine,
        typer.Option(
            help="pandas: this process. spark: a Spark job (needs Java 17+ and the `spark` "
            "extra), output as a Parquet folder.",
        ),
    ] = Engine.pandas,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="With --data: processes valuing chunks side by side (default: one per CPU "
            "core, at most 4: each holds a chunk, and this process feeds about that many). "
            "A file of one chunk is valued in this process. With --explain the default is 1: "
            "this process explains on one thread per core.",
        ),
    ] = None,
    spark_master: Annotated[
        str, typer.Option(help="With --engine spark: the Spark master, e.g. spark://host:7077.")
    ] = "local[*]",
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="With --engine spark: replace an --output path that holds other files than "
            "an earlier valuation (Spark deletes everything in it).",
        ),
    ] = False,
) -> None:
    """Value every row of an export: MLSNumber, price, range, error (and reasons). A --data
    export is streamed chunk by chunk."""
    if engine is Engine.pandas:  # Spark's output is a folder, which it checks (check_output)
        target = _check_output(output or paths().processed / "valuations.csv", "--output")
    source = resolve_data_path(data)
    if data is not None and engine is Engine.pandas and is_parquet(source):
        from homevision.valuation.parallel import return_freed_memory

        return_freed_memory()  # first: before anything imports pyarrow
    if engine is Engine.spark:
        _predict_on_spark(
            model,
            source,
            output,
            confidence,
            explain,
            spark_master,
            data is None,
            overwrite,
            chunk_rows,
        )
        return
    from homevision import model_fetch
    from homevision.model_errors import ModelNotFoundError

    # MLflow resolves, downloads and checks the model in a second process meanwhile.
    with model_fetch.start_fetch(model) as fetch:
        from homevision.data.listings import check_columns, read_export, read_export_chunks
        from homevision.data.schema import ROW_REQUIRED_COLUMNS
        from homevision.valuation.predict import export_columns, required_columns

        streamed = data is not None
        try:
            if streamed:  # the model first: only the columns it and the contract read are read
                fitted = fetch.model()
                raw = read_export_chunks(
                    source,
                    chunk_rows or (EXPLAIN_CHUNK_ROWS if explain else DEFAULT_CHUNK_ROWS),
                    export_columns(fitted),
                    numbers=True,
                    lazy=True,
                    required=required_columns(fitted),
                )
            else:  # the header needs only what the model reads (checked once it is here)
                raw = read_export(source, required=ROW_REQUIRED_COLUMNS)
                fitted = fetch.model()
                check_columns(source, raw.columns, required_columns(fitted))
        except (NotAnExportError, ModelNotFoundError) as err:
            console.print(f"[bold red]error:[/] {err}", highlight=False)
            raise typer.Exit(2) from None
    from homevision.config import load_params
    from homevision.serving.app import default_workers
    from homevision.valuation.predict import explanation_columns, unsold_rows, value_listings
    from homevision.valuation.stream import stream_valuations, summarize, write_frame

    if confidence is not None and confidence not in fitted.levels:
        levels = ", ".join(str(v) for v in fitted.levels)
        console.print(f"[bold red]error:[/] this model carries ranges at {levels} only")
        raise typer.Exit(2)
    top = int(load_params()["explain"]["top"]) if explain else None
    if streamed:
        doing = "Valued and explained" if explain else "Valued"
        with console.status(f"{doing} 0 listings...") as status:
            try:
                summary = stream_valuations(
                    fitted,
                    raw,
                    target,
                    confidence,
                    on_chunk=lambda done: status.update(f"{doing} {done:,} listings..."),
                    workers=workers or (1 if explain else min(default_workers(), PREDICT_WORKERS)),
                    top=top,
                )
            except NotAnExportError as err:  # a CSV that stops parsing part way
                console.print(f"[bold red]error:[/] {err}", highlight=False)
                raise typer.Exit(2) from None
            except OSError as err:  # the output: a full disk, a folder made meanwhile...
                raise _cannot_write(target, err) from None
    else:
        rows = raw if data is not None else unsold_rows(raw)
        with console.status(f"Valuing {len(rows):,} listings..."):
            valued = value_listings(fitted, rows, confidence=confidence, explain=explain)
        frame = valued.frame
        if top is not None:
            frame = explanation_columns(valued, top)
        try:
            write_frame(frame, target)
        except OSError as err:
            raise _cannot_write(target, err) from None
        summary = summarize(frame, valued.confidence)
    console.print(
        f"Valued {summary.rows - summary.failed:,} of {summary.rows:,} listings "
        f"({summary.failed:,} with an error, {summary.warned:,} with a warning: outside the "
        f"training data), {100 * summary.confidence:.0f}% ranges -> {target}",
        highlight=False,
    )


def _predict_on_spark(
    model: str | None,
    source: Path,
    output: Path | None,
    confidence: float | None,
    explain: bool,
    master: str,
    unsold_only: bool,
    overwrite: bool = False,
    chunk_rows: int | None = None,
) -> None:
    """`predict --engine spark`: value on Spark (homevision.valuation.spark), `chunk_rows` a
    batch; print the summary."""
    from homevision.tracking import ModelNotFoundError
    from homevision.valuation.spark import value_on_spark

    if explain:
        console.print("[bold red]error:[/] --explain is not available with --engine spark")
        raise typer.Exit(2)
    target = output or paths().processed / "valuations.parquet"
    try:
        with console.status(f"Valuing on Spark ({master})..."):
            summary = value_on_spark(
                source,
                target,
                model,
                master,
                confidence,
                unsold_only,
                overwrite=overwrite,
                batch_rows=chunk_rows,
            )
    except (NotAnExportError, ModelNotFoundError, ValueError) as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False)
        raise typer.Exit(2) from None
    console.print(
        f"Valued {summary.rows - summary.failed:,} of {summary.rows:,} listings "
        f"({summary.failed:,} with an error, {summary.warned:,} with a warning: outside the "
        f"training data), {100 * summary.confidence:.0f}% ranges -> {target}",
        highlight=False,
    )


@app.command()
def tune(
    candidate: Annotated[str, typer.Option(help="Candidate to tune, e.g. xgboost.")] = "xgboost",
    data: DataOption = None,
    features: FeaturesOption = "task6",
    trials: Annotated[
        int | None, typer.Option(help="Trials for this command (all its workers together).")
    ] = 20,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds for this command (no trial starts after).")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            envvar=OPTUNA_STORAGE_ENV,
            help="Optuna storage URL shared by processes, e.g. "
            "postgresql://USER@HOST:PORT/DB (default: optuna.db, SQLite, in the project).",
        ),
    ] = None,
    study: Annotated[
        str | None,
        typer.Option(
            help="Continue this study (shared by processes). Default: a study named by the "
            "data, folds and search space; one made for other data or another space is refused."
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes running the trials on one study (CV in each on one core). "
            "More than 1 needs a PostgreSQL or MySQL --storage: SQLite and memory are refused.",
        ),
    ] = 1,
) -> None:
    """Tune one candidate with Optuna on the labelled rows; studies can be shared."""
    from homevision.training.candidates import tunable_candidate
    from homevision.training.tune_job import run_tuning

    try:
        tunable_candidate(candidate)  # before the export is read
    except ValueError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False)
        raise typer.Exit(2) from None
    listings = _load(data)
    try:
        result = run_tuning(
            listings, candidate, features, trials, timeout, storage, study, workers=workers
        )
    except (KeyError, ValueError) as err:
        console.print(f"[bold red]error:[/] {_reason(err)}", highlight=False)
        raise typer.Exit(2) from None
    from homevision.training.card import fmt_metric

    console.print(
        f"Study {result.study_name}: {result.trials} completed trial(s); best CV "
        f"{result.metric.upper()} {fmt_metric(result.metric, result.value)} with {result.params}",
        highlight=False,
    )


@app.command()
def monitor(
    model: ModelOption = None,
    current: Annotated[
        Path | None,
        typer.Option(help="The new export to check. Default: the configured data."),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="An export to compare with instead of the model's own training data "
            "(logged with it)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Folder for the reports. Default: reports/monitoring/."),
    ] = None,
    pushgateway: Annotated[
        str | None,
        typer.Option(help="Also push the drift gauges to this Prometheus Pushgateway (host:port)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON summary.")] = False,
) -> None:
    """Check a new export for drift against the model's training data (Evidently).

    Tests the model's input columns, its valuations, the sale prices and valuation errors of
    the export's sales, and data quality (missing values, values out of the training range,
    unseen categories). Writes HTML reports, a JSON summary and a Prometheus textfile under
    reports/monitoring/ and logs them to MLflow. Exit 0 when nothing drifted, 3 when drift was
    found, 2 when the file is not an export or the model (or its reference) cannot be found.
    """
    if output is not None:
        _check_output(output, "--output", folder=True)
    from homevision.config import load_params
    from homevision.monitoring.drift import push, run_monitor
    from homevision.tracking import ModelNotFoundError

    source = resolve_data_path(current)
    try:
        with console.status(f"Checking {source.name} for drift..."):
            report = run_monitor(source, model, reference, output)
    except (NotAnExportError, ModelNotFoundError, LookupError) as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(_json(report.summary))
    else:
        _print_drift(report, load_params()["monitoring"]["triggers"])
    if pushgateway:
        try:
            push(report.summary, pushgateway)
        except OSError as err:  # URLError included: the verdict and its exit code still hold
            reason = getattr(err, "reason", None) or err.strerror or err
            make_console(stderr=True).print(
                f"[bold yellow]warning:[/] the drift gauges were not pushed to {pushgateway}: "
                f"{reason}",
                highlight=False,
            )
    raise typer.Exit(3 if report.detected else 0)


def _print_drift(report, triggers: list[str]) -> None:
    table = Table(title=f"Drift of {report.summary['current']['path']}")
    for head in ("group", "column", "test", "score", "threshold", "drifted"):
        table.add_column(head, justify="right" if head in ("score", "threshold") else "left")
    for c in report.checks:
        flag = "[bold red]yes[/]" if c.drifted else "no"
        table.add_row(c.group, c.column, c.method, f"{c.score:.4g}", f"{c.threshold:.4g}", flag)
    console.print(table)
    errors = report.summary["errors"]
    if errors["current"].get("sales"):
        console.print(
            f"MdAPE on the export's {errors['current']['sales']} sales: "
            f"{100 * errors['current']['mdape']:.1f}% (reference, "
            f"{errors['reference_valuations']}: {100 * errors['reference'].get('mdape', 0):.1f}%)",
            highlight=False,
        )
    if report.summary["sales_note"]:
        console.print(report.summary["sales_note"], highlight=False)
    rows = report.summary["current"]
    if rows["rejected"] or rows["refused"]:
        console.print(
            f"{rows['rejected']:,} rows rejected by validation (`homevision validate` says why), "
            f"{rows['refused']:,} of the {rows['rows']:,} accepted refused by the model",
            highlight=False,
        )
    found = [g for g, flag in report.groups.items() if flag]
    if report.detected:
        console.print(
            f"[bold red]Drift found[/] in {', '.join(g for g in found if g in triggers)}: "
            f"{', '.join(report.drifted_columns)}",
            highlight=False,
        )
    else:
        reported = [g for g in found if g not in triggers]
        extra = f" (reported, not a trigger: {', '.join(reported)})" if reported else ""
        console.print(f"[green]No drift found[/]{extra}.", highlight=False)
    console.print(f"Reports: {report.html_path.parent}", highlight=False)


WORKER_START_SECONDS = 60  # a worker has this long to answer uvicorn's first health ping
GRACEFUL_SHUTDOWN_SECONDS = 30  # in-flight requests get this long to finish on SIGTERM


@app.command()
def serve(
    model: ModelOption = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Worker processes, each loading the model once at start-up. "
            "Default: the number of CPU cores; 1 serves from this process.",
        ),
    ] = None,
    access_log: Annotated[
        bool,
        typer.Option("--access-log", help="Log every request (off by default: it costs time)."),
    ] = False,
) -> None:
    """Serve valuations over HTTP (FastAPI; OpenAPI docs at /docs), one worker per core."""
    import os

    import uvicorn

    from homevision.api_keys import keys_file, read_keys
    from homevision.config import project_root
    from homevision.serving.app import (
        APP_FACTORY,
        MODEL_REF_ENV,
        THREADS_ENV,
        VERBOSE_ENV,
        default_workers,
        multiprocess_metrics,
        native_threads,
    )
    from homevision.serving.auth import is_loopback

    try:
        keys = read_keys()
    except (OSError, ValueError) as err:
        console.print(f"[bold red]error:[/] API key file: {err}", highlight=False)
        raise typer.Exit(2) from None
    if not keys and not is_loopback(host):
        console.print(
            f"[bold red]error:[/] refusing to listen on {host} without API keys: anyone who can "
            "reach it could value with the model; create a key (homevision keys create "
            f"--scope value, stored in {keys_file()}) or listen on 127.0.0.1",
            highlight=False,
        )
        raise typer.Exit(2)
    verbose = log.isEnabledFor(logging.DEBUG)
    # Workers are spawned processes: they learn the model, the verbosity and the project root
    # (hence params.yaml and the tracking store; MLFLOW_TRACKING_URI passes as it is) from the
    # environment they inherit.
    os.environ[MODEL_REF_ENV] = model or ""
    os.environ[VERBOSE_ENV] = "1" if verbose else ""
    os.environ["HOMEVISION_HOME"] = str(project_root())
    workers = workers or default_workers()
    os.environ[THREADS_ENV] = str(native_threads(workers))
    # Several workers count in one folder, set up before they start, so /metrics adds them up.
    with multiprocess_metrics(workers):
        uvicorn.run(
            APP_FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="debug" if verbose else "info",
            access_log=access_log,
            # Importing the package takes seconds on a busy machine: uvicorn's default 5 s would
            # take a starting worker for a hung one and restart it, again and again.
            timeout_worker_healthcheck=WORKER_START_SECONDS,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )


@app.command()
def ui(
    model: ModelOption = None,
    port: Annotated[int, typer.Option(help="Port.")] = 8501,
) -> None:
    """Open the Streamlit app: listings, a valuation form with reasons, the model's figures."""
    import subprocess

    from homevision.ui import streamlit_command

    command = streamlit_command(port, model)
    raise typer.Exit(subprocess.call(command))


keys_app = typer.Typer(
    help="API keys for `homevision serve`: `value` (valuations, model info), `metrics` "
    "(GET /metrics, for Prometheus) and `admin` (reload, and all the others). Stored hashed, "
    "mode 0600, in .homevision/api-keys.json (or HOMEVISION_API_KEYS).",
    no_args_is_help=True,
)


class KeyScopeChoice(StrEnum):
    """The scopes a key can have (homevision.api_keys.Scope)."""

    value = "value"
    metrics = "metrics"
    admin = "admin"


@keys_app.command("create")
def keys_create(
    scope: Annotated[
        KeyScopeChoice,
        typer.Option(help="value: valuations; metrics: GET /metrics; admin: reload and all."),
    ],
    name: Annotated[str, typer.Option(help="Who or what holds the key (shown by list).")] = "",
) -> None:
    """Create a key and print it once on stdout (only its hash is stored): keep it secret."""
    from homevision.api_keys import Scope, create_key, keys_file

    key, record = create_key(Scope(scope.value), name)
    typer.echo(key)
    err = make_console(stderr=True)
    err.print(
        f"Created API key {record.id} (scope {record.scope}) in {keys_file()}; it is shown this "
        "once: send it as `Authorization: Bearer <key>`.",
        highlight=False,
    )


@keys_app.command("list")
def keys_list() -> None:
    """List the keys: id, scope, name and creation time (never the keys themselves)."""
    from homevision.api_keys import keys_file, read_keys

    keys = read_keys()
    table = Table(title=f"API keys in {keys_file()}")
    for head in ("id", "scope", "name", "created"):
        table.add_column(head)
    for record in keys.values():
        table.add_row(record.id, record.scope, record.name, record.created)
    console.print(table)
    if not keys:
        console.print("No keys: valuations are open to this machine only, reload is off.")


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (see list).")]) -> None:
    """Revoke a key: a running server refuses it from its next request."""
    from homevision.api_keys import revoke_key

    try:
        record = revoke_key(key_id)
    except KeyError as err:
        console.print(f"[bold red]error:[/] {err.args[0]}", highlight=False)
        raise typer.Exit(2) from None
    console.print(f"Revoked API key {record.id} (scope {record.scope}).", highlight=False)


app.add_typer(keys_app, name="keys")

from homevision.flow.cli import flow_app  # noqa: E402

app.add_typer(flow_app, name="flow")

if __name__ == "__main__":
    app()
