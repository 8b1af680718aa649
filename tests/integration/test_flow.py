"""The continuous-training flow end to end, through `homevision flow run` in subprocesses, each in
its own project folder: a drifted export with new sales retrains and promotes once and a second
run does nothing; a failing step leaves the champion, history, manifest and drop folder as they
were; files that are not exports go to failed/; the schedule's definitions load."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from homevision.data.synthetic import MarketDrift, generate_listings, write_listings
from homevision.flow.history import history_path, manifest_path

from .conftest import cli, free_port, tiny_params, train_in

FLOW_BUDGET = "25"
DRIFT = MarketDrift(month=12, price_trend=0.02, mix_shift=0.5, new_school="Cedar")


def flow(
    home: Path, *args: str, params: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `homevision flow ARGS` in its own project folder; return the finished process. A
    `run` takes files at once (--settle-seconds 0) unless the test says otherwise."""
    env = dict(env or {})
    if params is not None:
        env["HOMEVISION_PARAMS"] = str(params)
    if args[:1] == ("run",) and "--settle-seconds" not in args:
        args = (*args, "--settle-seconds", "0")
    return cli(home, "flow", *args, env=env, unset=("HOMEVISION_API_URL",))


def flow_json(home: Path, *args: str, params: Path | None = None) -> dict:
    """Run `homevision flow run ARGS --json`, require exit 0, return its JSON object."""
    proc = flow(home, "run", *args, "--json", params=params)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)


def client(home: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{home / 'mlflow.db'}")


def champion_version(home: Path) -> str | None:
    try:
        return str(client(home).get_model_version_by_alias("homevision-price", "champion").version)
    except Exception:
        return None


def versions(home: Path) -> list[str]:
    try:
        found = client(home).search_model_versions("name = 'homevision-price'")
    except Exception:
        return []
    return sorted(str(v.version) for v in found)


def flow_runs(home: Path) -> list:
    """Return the flow's MLflow runs, newest first."""
    experiment = client(home).get_experiment_by_name("homevision")
    return client(home).search_runs(
        [experiment.experiment_id],
        "tags.`homevision.stage` = 'flow'",
        order_by=["attributes.start_time DESC"],
    )


def snapshot(home: Path, incoming: Path) -> dict[str, bytes | list[str] | None]:
    """Return everything a failed run must leave alone: history, manifest, drop folder."""
    history, manifest = history_path(home), manifest_path(home)
    return {
        "history": history.read_bytes() if history.exists() else None,
        "manifest": manifest.read_bytes() if manifest.exists() else None,
        "incoming": sorted(str(p.relative_to(incoming)) for p in incoming.rglob("*")),
    }


def drifted_export(path: Path, rows: int, seed: int, bad_prices: int = 0) -> Path:
    """Write an export from a moved market (a year on, +2%/month, bigger homes, a new school);
    the first `bad_prices` sales get a negative ClosePrice (rejected rows)."""
    frame = generate_listings(rows, seed=seed, market_seed=3, drift=DRIFT)
    sold = frame.index[frame["Status"] == "Sold"][:bad_prices]
    frame["ClosePrice"] = frame["ClosePrice"].astype(object)
    frame.loc[sold, "ClosePrice"] = -5
    return write_listings(frame, path)


@pytest.fixture(scope="module")
def champion_home(tmp_path_factory) -> Path:
    """A project whose champion is a weak baseline (median price per square foot) trained on the
    base market: a ridge challenger trained on newer data beats it beyond noise."""
    home = tmp_path_factory.mktemp("flow")
    base = write_listings(generate_listings(500, seed=3), home / "data" / "raw" / "base.csv")
    train_in(home, base, ["median_ppsf"], "--budget", "20")
    assert champion_version(home) == "1"
    return home


@pytest.mark.slow
def test_drifted_export_retrains_and_promotes_once_then_nothing_to_do(champion_home):
    home = champion_home
    incoming = home / "incoming"
    drifted_export(incoming / "2021-06.csv", 500, seed=4, bad_prices=3)
    params = tiny_params(home, ["median_ppsf", "ridge"])
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: the reload fails, not the run

    first = flow_json(
        home, "--incoming", str(incoming), "--budget", FLOW_BUDGET, "--api", closed, params=params
    )
    assert first["files_processed"] == ["2021-06.csv"]
    assert (first["rows_added"], first["rows_rejected"], first["history_rows"]) == (497, 3, 497)
    assert first["new_sales"] >= 30
    assert first["drift_checked"] and first["drift_detected"] and first["drifted_columns"]
    assert first["retrained"] and any("drift" in r for r in first["retrain_reasons"])
    assert (first["version"], first["promoted"]) == ("2", True)
    assert first["champion_note"].startswith("promoted over v1")
    assert first["reload_attempted"] and first["reloaded"] is False
    assert champion_version(home) == "2"

    # Committed: the history, its manifest, the archive (with the rejected rows beside it).
    history = pd.read_csv(history_path(home), dtype=str)
    assert len(history) == 497 and history["MLSNumber"].is_unique
    assert not (pd.to_numeric(history["ClosePrice"]) < 0).any()
    manifest = json.loads(manifest_path(home).read_text())
    assert [m["file"] for m in manifest["merges"]] == ["2021-06.csv"]
    from homevision.tracking import file_hash

    assert manifest["history_sha256"] == file_hash(history_path(home)) == first["history_sha256"]
    assert manifest["merges"][0]["rows_added"] == 497
    assert sorted(p.name for p in incoming.rglob("*") if p.is_file()) == [
        "2021-06.csv",
        "2021-06.csv.rejected.csv",
    ]
    rejected = pd.read_csv(incoming / "archive" / "2021-06.csv.rejected.csv", dtype=str)
    assert len(rejected) == 3 and "rejection_reason" in rejected.columns
    assert not list(history_path(home).parent.glob(".staging-*"))
    assert all(Path(p).exists() for p in first["drift_reports"])

    # The same drop folder again: nothing to do, nothing registered, nothing changed.
    before = snapshot(home, incoming)
    second = flow_json(home, "--incoming", str(incoming), params=params)
    assert second["nothing_to_do"] and not second["retrained"] and second["version"] is None
    assert versions(home) == ["1", "2"] and champion_version(home) == "2"
    assert snapshot(home, incoming) == before

    # One MLflow run per flow run, with the decisions; both in Dagster's own run history.
    latest, earlier = flow_runs(home)[:2]
    assert earlier.info.run_name == "flow" and earlier.info.status == "FINISHED"
    assert earlier.data.params["files_processed"] == "1"
    assert earlier.data.params["drift_detected"] == "True"
    assert earlier.data.params["promoted"] == "True"
    assert earlier.data.params["reloaded"] == "False"
    assert earlier.data.tags["champion_note"].startswith("promoted over v1")
    artifacts = [a.path for a in client(home).list_artifacts(earlier.info.run_id, "drift")]
    assert "drift/drift_report.html" in artifacts
    assert latest.data.params["files_processed"] == "0"
    assert latest.data.tags["nothing_to_do"] == "True"

    from dagster import DagsterInstance, DagsterRunStatus

    with DagsterInstance.from_config(str(home / ".dagster")) as instance:
        runs = instance.get_runs()
        assert [r.status for r in runs[:2]] == [DagsterRunStatus.SUCCESS] * 2
        assert {r.run_id for r in runs[:2]} == {first["dagster_run_id"], second["dagster_run_id"]}


@pytest.mark.slow
def test_failed_training_leaves_champion_history_manifest_and_file_alone(champion_home):
    home = champion_home
    incoming = home / "incoming-failing"  # its own drop folder: the other test's stays as it is
    drifted_export(incoming / "2021-07.csv", 200, seed=5)
    before, champion, registered = snapshot(home, incoming), champion_version(home), versions(home)

    proc = flow(home, "run", "--incoming", str(incoming), "--features", "nosuch")
    assert proc.returncode == 1
    assert "retrain failed" in proc.stdout and "unknown feature set 'nosuch'" in proc.stdout
    assert len(proc.stdout.strip().splitlines()) <= 2  # one sentence (wrapped by the console)
    assert snapshot(home, incoming) == before
    assert champion_version(home) == champion and versions(home) == registered
    assert not list(history_path(home).parent.glob(".staging-*"))
    failed = flow_runs(home)[0]
    assert failed.info.status == "FAILED" and "unknown feature set" in failed.data.tags["error"]


@pytest.mark.slow
def test_too_few_sales_to_train_commits_the_merge_and_skips_the_retrain(tmp_path):
    """Review (ops) D3: a retrain called for (no champion yet, or drift) on a history of fewer
    than 30 sales raised in `train`: the run failed (exit 1), merged nothing and left the file
    in the drop folder, so every later run failed the same way."""
    home = tmp_path / "project"
    incoming = home / "incoming"
    write_listings(generate_listings(40, seed=1), incoming / "2020-01.csv")  # ~15 sales

    summary = flow_json(home, "--incoming", str(incoming))
    assert summary["files_processed"] == ["2020-01.csv"] and summary["history_rows"] == 40
    assert summary["retrain_reasons"] == ["no champion yet"] and not summary["retrained"]
    sales = summary["new_sales"]
    assert summary["retrain_skipped"] == f"too few sales to retrain: {sales} of 50"
    assert summary["version"] is None and champion_version(home) is None
    assert len(pd.read_csv(history_path(home), dtype=str)) == 40
    assert [m["file"] for m in json.loads(manifest_path(home).read_text())["merges"]] == [
        "2020-01.csv"
    ]
    assert (incoming / "archive" / "2020-01.csv").exists()
    assert not (incoming / "2020-01.csv").exists()
    assert not list(history_path(home).parent.glob(".staging-*"))
    assert flow_runs(home)[0].data.params["retrain_skipped"].startswith("too few sales")

    table = flow(home, "run", "--incoming", str(incoming))  # the next run: nothing to do
    assert table.returncode == 0 and "nothing to do" in table.stdout


@pytest.mark.slow
def test_files_that_are_not_exports_go_to_failed_and_nothing_is_trained(tmp_path):
    home = tmp_path / "project"
    incoming = home / "incoming"
    incoming.mkdir(parents=True)
    (incoming / "notes.csv").write_text("hello,world\n1,2\n")
    (incoming / "readme.txt").write_text("not picked up: not *.csv or *.parquet")

    summary = flow_json(home, "--incoming", str(incoming))
    assert summary["nothing_to_do"] and not summary["retrained"]
    assert [r["file"] for r in summary["files_refused"]] == ["notes.csv"]
    assert (incoming / "failed" / "notes.csv").exists()
    reason = (incoming / "failed" / "notes.csv.reason.txt").read_text()
    assert "required column(s) missing" in reason
    assert (incoming / "readme.txt").exists()
    assert not history_path(home).exists()
    manifest = json.loads(manifest_path(home).read_text())  # the refusal is on record
    assert manifest["merges"] == [] and [r["file"] for r in manifest["refused"]] == ["notes.csv"]
    assert "required column(s) missing" in manifest["refused"][0]["reason"]

    table = flow(home, "run", "--incoming", str(incoming))
    assert table.returncode == 0 and "nothing to do" in table.stdout
    assert "readme.txt: not an export name" in " ".join(table.stdout.split())


@pytest.mark.slow
def test_a_second_run_on_the_same_history_fails_at_once(tmp_path):
    home = tmp_path / "project"
    incoming = home / "incoming"
    write_listings(generate_listings(40, seed=1), incoming / "2020-01.csv")
    lock = history_path(home).parent / ".lock"
    lock.parent.mkdir(parents=True)
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a run in progress holds it
        proc = flow(home, "run", "--incoming", str(incoming))
    assert proc.returncode == 1
    assert "another flow run is working on" in " ".join(proc.stdout.split())
    assert (incoming / "2020-01.csv").exists() and not history_path(home).exists()


def test_definitions_load_with_the_schedule_and_its_run_config(tmp_path):
    from dagster import build_schedule_context

    from homevision.flow import pipeline

    defs = pipeline.build_definitions(
        "*/15 * * * *", incoming=tmp_path, features="offmarket", budget=60.0, api_url="http://x"
    )
    schedule = defs.resolve_schedule_def(pipeline.SCHEDULE_NAME)
    assert schedule.cron_schedule == "*/15 * * * *"
    assert schedule.job_name == pipeline.JOB_NAME
    (request,) = schedule.evaluate_tick(build_schedule_context()).run_requests
    config = request.run_config["resources"]["settings"]["config"]
    assert config == {
        "incoming": str(tmp_path.resolve()),
        "features": "offmarket",
        "budget": 60.0,
        "min_new_sales": 30,
        "api_url": "http://x",
    }
    job = defs.resolve_job_def(pipeline.JOB_NAME)
    assert [n.name for n in job.nodes_in_topological_order] == [
        "pick_up",
        "merge_history",
        "check_drift",
        "retrain",
        "commit",
    ]


def test_dagster_validates_the_definitions_serve_loads(tmp_path):
    from homevision.flow.cli import serve_command

    command, env = serve_command(tmp_path / "drop", "0 5 * * 1", 3999, budget=90)
    assert command[command.index("-h") + 1] == "127.0.0.1"
    assert command[2:6] == ["dagster", "dev", "-m", "homevision.flow.pipeline"]
    assert env["HOMEVISION_FLOW_CRON"] == "0 5 * * 1" and env["HOMEVISION_FLOW_BUDGET"] == "90"
    validate = [sys.executable, "-m", "dagster", "definitions", "validate"]
    proc = subprocess.run(
        validate + command[command.index("-m", 3) : command.index("-m", 3) + 2],
        env={**os.environ, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    probe = (
        "from dagster import build_schedule_context as b; "
        "from homevision.flow import pipeline as p; "
        "s = p.defs.resolve_schedule_def(p.SCHEDULE_NAME); "
        "print(s.cron_schedule, s.evaluate_tick(b()).run_requests[0].run_config)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert out.startswith("0 5 * * 1") and str(tmp_path / "drop") in out


def test_serve_refuses_a_bad_cron_in_one_sentence_before_starting_dagster(tmp_path):
    """Review (ops) D6: `flow serve --cron "every day"` started `dagster dev`, whose code
    location then failed to load ("Error loading repository location"): the UI kept serving
    and no run was ever scheduled. (Before the fix this started dagster dev: the timeout.)"""
    command = [sys.executable, "-m", "homevision.cli", "flow", "serve", "--incoming", "drop"]
    proc = subprocess.Popen(
        [*command, "--cron", "every day", "--port", str(free_port())],
        env={**os.environ, "HOMEVISION_HOME": str(tmp_path)},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a dagster dev started by mistake is stopped with its children
    )
    try:
        stdout, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    assert proc.returncode == 2, stdout[-2000:] + stderr[-2000:]
    out = " ".join(stdout.split())
    assert "error: --cron 'every day' is not a cron schedule" in out
    assert "Dagster UI" not in out and "Traceback" not in stdout + stderr


@pytest.mark.parametrize(
    ("change", "sentence"),
    [
        ({"HOMEVISION_FLOW_CRON": "0 25 * * *"}, "--cron '0 25 * * *' is not a cron schedule"),
        ({"HOMEVISION_FLOW_FEATURES": "nosuch"}, "--features: unknown feature set 'nosuch'"),
        ({"HOMEVISION_FLOW_BUDGET": "30s"}, "must be a positive number of seconds, not '30s'"),
        ({"HOMEVISION_FLOW_BUDGET": "0"}, "must be a positive number of seconds, not '0'"),
    ],
)
def test_serve_names_what_would_break_the_code_location(tmp_path, change, sentence):
    from homevision.flow.cli import serve_command, serve_problem

    _, env = serve_command(tmp_path / "drop", "0 6 * * *", 3999, budget=90)
    assert serve_problem(env) is None
    problem = serve_problem({**env, **change})
    assert problem is not None and sentence in problem and problem.endswith(".")
