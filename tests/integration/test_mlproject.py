"""The MLflow project: `mlflow run . -e <entry point> --env-manager local` runs homevision's
commands as MLflow runs, with the project's defaults or the parameters given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from homevision.data.synthetic import generate_listings, write_listings

ROOT = Path(__file__).resolve().parents[2]
MLFLOW_RUN = [sys.executable, "-m", "mlflow", "run", str(ROOT)]


def _env(home: Path) -> dict[str, str]:
    """This interpreter's scripts first on PATH (what --env-manager local runs), a store and a
    home of the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOMEVISION_HOME"] = str(home)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    return env


def _mlflow_run(entry: str, params: dict[str, object], home: Path, *extra: str):
    """Run `mlflow run <repo> -e entry -P k=v ... --env-manager local` in `home`; return the
    finished process (its output captured) after asserting it succeeded."""
    pairs = [arg for k, v in params.items() for arg in ("-P", f"{k}={v}")]
    result = subprocess.run(
        [*MLFLOW_RUN, "-e", entry, *pairs, "--env-manager", "local", *extra],
        env=_env(home),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=600,
    )
    # The command's own log and traceback go to stdout or stderr: show the end of both.
    assert result.returncode == 0, result.stdout[-3000:] + "\n" + result.stderr[-3000:]
    return result


def test_project_declares_the_four_entry_points():
    project = yaml.safe_load((ROOT / "MLproject").read_text())
    assert set(project["entry_points"]) == {"validate", "train", "predict", "tune"}
    for entry in project["entry_points"].values():
        assert "python -m homevision.cli" in entry["command"]


@pytest.mark.slow
def test_mlflow_run_validates_an_export_as_a_run(tmp_path):
    export = write_listings(generate_listings(300, seed=3), tmp_path / "listings.csv")
    env = _env(tmp_path)
    result = _mlflow_run("validate", {"data": export}, tmp_path)
    assert "300" in result.stdout  # the data report counts the export's rows
    runs = MlflowClient(env["MLFLOW_TRACKING_URI"]).search_runs(
        [e.experiment_id for e in MlflowClient(env["MLFLOW_TRACKING_URI"]).search_experiments()]
    )
    finished = [r for r in runs if r.data.tags.get("mlflow.project.entryPoint") == "validate"]
    assert finished and finished[0].info.status == "FINISHED"


@pytest.mark.slow
def test_mlflow_run_trains_registers_and_values(tmp_path):
    export = write_listings(generate_listings(400, seed=4), tmp_path / "listings.csv")
    env = _env(tmp_path)
    experiment = ("--experiment-name", "homevision-project")
    _mlflow_run("train", {"data": export, "budget": 45}, tmp_path, *experiment)
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias("homevision-price", "champion")
    project = client.get_experiment_by_name("homevision-project")
    run = client.get_run(champion.run_id)
    assert run.info.experiment_id == project.experiment_id  # logged into the project's run
    assert run.data.tags.get("mlflow.project.entryPoint") == "train"
    out = tmp_path / "valued.csv"
    _mlflow_run("predict", {"data": export, "output": out}, tmp_path, *experiment)
    assert out.exists() and out.read_text().count("\n") == 401  # header + every listing
