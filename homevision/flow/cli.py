"""`homevision flow`: run the continuous-training flow once, or serve it on a schedule."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from homevision.console import make_console

flow_app = typer.Typer(
    help="The continuous-training flow (Dagster): take in new exports, merge them into the "
    "training history, check drift, retrain when it is worth it, reload the API.",
    no_args_is_help=True,
)
console = make_console()
log = logging.getLogger("homevision")
SERVE_HOST = "127.0.0.1"  # the Dagster UI has no authentication: never bind another interface

IncomingOption = Annotated[
    Path,
    typer.Option(
        "--incoming",
        file_okay=False,
        help="Drop folder of new exports (*.csv, *.parquet, merged in name order); processed "
        "files go to its archive/, files that are not exports to its failed/.",
    ),
]
ExistingIncomingOption = Annotated[
    Path,
    typer.Option(
        "--incoming",
        exists=True,
        file_okay=False,
        help="Drop folder of new exports (*.csv, *.parquet, merged in name order); it must "
        "exist. Processed files go to its archive/, files that are not exports to its failed/.",
    ),
]
FeaturesOption = Annotated[
    str, typer.Option("--features", help="Feature set to train: task6, offmarket, onmarket.")
]
BudgetOption = Annotated[
    float | None,
    typer.Option(help="Seconds for a retraining (default: train.budget_seconds of params.yaml)."),
]
MinSalesOption = Annotated[
    int,
    typer.Option(
        "--min-new-sales", min=1, help="Retrain when at least this many new sales arrived."
    ),
]
ApiOption = Annotated[
    str | None,
    typer.Option(
        "--api",
        envvar="HOMEVISION_API_URL",
        help="API base URL to POST /model/reload to when a new champion is promoted.",
    ),
]


SettleOption = Annotated[
    float | None,
    typer.Option(
        "--settle-seconds",
        min=0,
        help="Take a file only once its size and time have been still this long (default: "
        "flow.settle_seconds of params.yaml). Producers may instead write NAME.csv.part and "
        "rename it when done.",
    ),
]


@flow_app.command("run")
def run(
    incoming: ExistingIncomingOption,
    features: FeaturesOption = "task6",
    budget: BudgetOption = None,
    min_new_sales: MinSalesOption = 30,
    api: ApiOption = None,
    settle_seconds: SettleOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run the flow once (a Dagster run in this process, kept in .dagster/'s run history).

    Exit 0 when it committed (or had nothing to do), 1 when a step failed: then the history,
    the manifest, the drop folder and the champion are as they were, unless the last line says
    a commit could not be wholly undone (the next run completes it). The last line says what
    changed.
    """
    from homevision.flow.pipeline import FlowError, run_flow

    verbose = log.isEnabledFor(logging.DEBUG)
    try:
        summary = run_flow(
            log_level="DEBUG" if verbose else "INFO",
            incoming=incoming,
            features=features,
            budget=budget,
            min_new_sales=min_new_sales,
            api_url=api,
            settle_seconds=settle_seconds,
        )
    except FlowError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False)
        console.print(failure_sentence(err.unfinished), highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(summary, default=str))
    else:
        console.print(decision_table(summary))
        console.print(summary["changed"], highlight=False)


def failure_sentence(unfinished: bool) -> str:
    """Return the last line of a failed run: nothing changed, or a commit is left half done
    (only the journal then says what changed; the next run completes it)."""
    if unfinished:
        return (
            "Not wholly undone: data/history/commit.json names the commit's changes, and the "
            "next run completes it before anything else."
        )
    return "Nothing changed: the history, manifest, drop folder and champion are as they were."


def decision_table(summary: dict[str, Any]) -> Table:
    """Return the run's decisions as a two-column table."""
    table = Table(title="Continuous training: this run's decisions", show_header=False)
    if summary["nothing_to_do"]:
        table.add_row("new exports", "none: nothing to do")
    else:
        table.add_row("new exports", ", ".join(summary["files_processed"]))
        table.add_row(
            "rows",
            f"{summary['rows_added']:,} added, {summary['rows_updated']:,} updated, "
            f"{summary['rows_rejected']:,} rejected, {summary['rows_stale']:,} older than the "
            f"history (left out) -> {summary['history_rows']:,} in the history",
        )
        table.add_row(
            "sales",
            f"{summary['new_sales']:,} new, {summary['sales_updated']:,} updated, "
            f"{summary['sales_removed']:,} removed",
        )
        if summary["drift_checked"]:
            drift = "detected in " + ", ".join(summary["drifted_columns"] or ["the data"])
            table.add_row("drift", drift if summary["drift_detected"] else "none")
        else:
            table.add_row("drift", f"not checked: {summary['drift_note']}")
        reasons = "; ".join(summary["retrain_reasons"])
        retrained = f"yes: {reasons}" if summary["retrained"] else "no"
        if summary.get("retrain_skipped"):
            retrained = f"no: {summary['retrain_skipped']} (called for by {reasons})"
        table.add_row("retrained", retrained)
        if summary["retrained"]:
            table.add_row("model", f"{summary['model_name']} v{summary['version']}")
            table.add_row("champion", summary["champion_note"])
            table.add_row("API reload", summary["reload_detail"])
    if summary.get("recovered"):
        table.add_row("recovery", summary["recovered"])
    for warning in summary.get("warnings", []):
        table.add_row("warning", warning)
    if summary["files_skipped"]:
        table.add_row("already merged", ", ".join(summary["files_skipped"]) + " (archived)")
    for refused in summary["files_refused"]:
        table.add_row("refused", f"{refused['file']}: {refused['reason']} (moved to failed/)")
    for label, key in (("waiting", "files_waiting"), ("left alone", "files_left")):
        for entry in summary.get(key, []):
            table.add_row(label, f"{entry['file']}: {entry['reason']}")
    for entry in summary.get("files_vanished", []):
        table.add_row("vanished", f"{entry['file']}: {entry['reason']}")
    table.add_row("runs", f"Dagster {summary['dagster_run_id']}, MLflow {summary['mlflow_run_id']}")
    return table


def serve_command(
    incoming: Path,
    cron: str,
    port: int,
    features: str = "task6",
    budget: float | None = None,
    min_new_sales: int = 30,
    api: str | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Return the `dagster dev` command (UI on 127.0.0.1 only, the schedule's daemon) and the
    environment variables that hand it the project and the flow's options."""
    from homevision.config import project_root
    from homevision.flow import pipeline

    env = {
        "HOMEVISION_HOME": str(project_root()),
        "DAGSTER_HOME": str(pipeline.dagster_home()),
        pipeline.ENV_INCOMING: str(incoming.resolve()),
        pipeline.ENV_CRON: cron,
        pipeline.ENV_FEATURES: features,
        pipeline.ENV_MIN_NEW_SALES: str(min_new_sales),
    }
    if budget is not None:
        env[pipeline.ENV_BUDGET] = str(budget)
    if api:
        env[pipeline.ENV_API_URL] = api
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-m",
        "homevision.flow.pipeline",
        "-d",
        str(project_root()),
        "-h",
        SERVE_HOST,
        "-p",
        str(port),
    ]
    return command, env


def serve_problem(env: dict[str, str]) -> str | None:
    """Return why `dagster dev` would load the flow's code location broken under `env` (the
    environment serve_command hands it), in one sentence, or None. Dagster checks the cron,
    the budget and the feature set only inside its code server: the UI then keeps serving
    "Error loading repository location" and no run is ever scheduled."""
    from dagster import DagsterInvalidDefinitionError

    from homevision.features import get_feature_set
    from homevision.flow import pipeline

    try:
        get_feature_set(env.get(pipeline.ENV_FEATURES) or "task6")
        settings = pipeline.settings_from_env(env)
    except KeyError as err:
        return f"--features: {err.args[0]}."
    except ValueError as err:
        return f"{err}."
    cron = env.get(pipeline.ENV_CRON) or pipeline.DEFAULT_CRON
    try:
        pipeline.build_definitions(cron, **settings)
    except DagsterInvalidDefinitionError:
        return (
            f"--cron {cron!r} is not a cron schedule: five fields, minute hour day month "
            "weekday, e.g. '0 6 * * *' (06:00 UTC daily)."
        )
    return None


@flow_app.command("serve")
def serve(
    incoming: IncomingOption,
    cron: Annotated[
        str, typer.Option(help="When the schedule runs the flow (cron, UTC).")
    ] = "0 6 * * *",
    features: FeaturesOption = "task6",
    budget: BudgetOption = None,
    min_new_sales: MinSalesOption = 30,
    api: ApiOption = None,
    port: Annotated[int, typer.Option(help="Port of the Dagster UI (on 127.0.0.1).")] = 3000,
) -> None:
    """Serve the flow on a schedule: `dagster dev` (UI on 127.0.0.1 with the run history, and
    the daemon that starts a run at every --cron tick)."""
    from dagster import DagsterInvalidDefinitionError

    try:  # importing the pipeline builds its definitions from the shell's HOMEVISION_FLOW_*
        command, env = serve_command(incoming, cron, port, features, budget, min_new_sales, api)
        problem = serve_problem({**os.environ, **env})
    except (ValueError, DagsterInvalidDefinitionError) as err:
        problem = f"the flow's settings in the environment do not load: {err}."
    if problem:
        console.print(f"[bold red]error:[/] {problem}", highlight=False)
        raise typer.Exit(2)
    console.print(f"Dagster UI on http://{SERVE_HOST}:{port}, schedule '{cron}' (UTC)")
    sys.stdout.flush()
    # exec: dagster dev becomes this process, so Ctrl-C and SIGTERM reach it directly.
    os.execve(command[0], command, {**os.environ, **env})
