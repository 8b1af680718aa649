"""The DVC pipeline (dvc.yaml: ingest -> validate -> train -> predict -> monitor): its
declarations match the project, `homevision ingest` copies the export DVC tracks, and, end to
end in a fresh copy of the checkout, `dvc repro` runs every stage once, then nothing, then only
what a changed param needs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from homevision.cli import app
from homevision.training.card import metrics_summary, model_reference
from homevision.training.interval_choice import IntervalScore

from .conftest import tiny_params

ROOT = Path(__file__).resolve().parents[2]
STAGES = ["ingest", "validate", "train", "predict", "monitor"]
runner = CliRunner()


def _dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())


def _has_key(params: dict, dotted: str) -> bool:
    node = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_stages_are_homevision_commands_on_paths_and_params_that_exist():
    stages = _dvc_yaml()["stages"]
    assert list(stages) == STAGES
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    produced = {
        next(iter(o)) if isinstance(o, dict) else o
        for stage in stages.values()
        for o in stage.get("outs", []) + stage.get("metrics", [])
    }
    for name, stage in stages.items():
        words = stage["cmd"].split()
        assert "homevision" in words[:2], name  # an env assignment may come first
        assert words[words.index("homevision") + 1] == name
        for dep in stage.get("deps", []):
            assert dep in produced or (ROOT / dep).exists(), f"{name}: {dep} does not exist"
        for key in stage.get("params", []):
            assert _has_key(params, key), f"{name}: params.yaml has no {key}"
    # The order the issue names: each stage depends on what the one before produced.
    assert "data/raw/listings.csv" in stages["validate"]["deps"]
    assert "data/interim/rejected.csv" in stages["train"]["deps"]
    assert "reports/model.json" in stages["predict"]["deps"]
    assert "reports/model.json" in stages["monitor"]["deps"]
    assert stages["train"]["metrics"] == ["reports/metrics.json"]


def test_the_docs_name_every_stage():
    """docs/how-to/dvc.md described four stages (no monitor) and 'train.folds reruns train and
    predict only', the Makefile's help and README 'ingest -> validate -> train -> predict'."""
    chain = " -> ".join(STAGES)
    page = (ROOT / "docs" / "how-to" / "dvc.md").read_text()
    assert "chains five stages" in page
    assert all(f"| `{stage}` | `homevision {stage}" in page for stage in STAGES)
    assert "reruns train, predict and monitor" in page
    for path in ("Makefile", "README.md", "dvc.yaml"):
        assert chain in (ROOT / path).read_text(), path


def test_params_yaml_at_the_root_is_a_file_dvc_can_read_from_git():
    # DVC reads params.yaml of a git revision as the blob itself: a committed symlink reads as
    # its target's name, and `dvc params diff` / `dvc metrics diff` then fail for that revision.
    assert not (ROOT / "params.yaml").is_symlink()
    assert (ROOT / "homevision" / "params.yaml").resolve() == (ROOT / "params.yaml").resolve()


def test_ingest_copies_the_export_byte_for_byte(synthetic_csv, tmp_path):
    target = tmp_path / "data" / "raw" / "listings.csv"
    result = runner.invoke(app, ["ingest", "--data", str(synthetic_csv), "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == synthetic_csv.read_bytes()
    assert [p.name for p in target.parent.iterdir()] == ["listings.csv"]  # no temporary left


def test_ingest_defaults_to_the_default_data(synthetic_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("HOMEVISION_DATA", str(synthetic_csv))
    result = runner.invoke(app, ["ingest"])
    assert result.exit_code == 0, result.output
    copied = tmp_path / "data" / "raw" / "listings.csv"  # HOMEVISION_HOME is tmp_path
    assert copied.read_bytes() == synthetic_csv.read_bytes()


def test_ingest_of_a_missing_export_is_one_sentence_and_exit_2(tmp_path):
    result = runner.invoke(app, ["ingest", "--data", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "no such export file" in result.output


def test_metrics_json_holds_numbers_only_and_names_the_champion():
    scores = [IntervalScore("cv_plus", level, level + 0.01, 0.4) for level in (0.8, 0.9)]
    ctx = {
        "cv": {"rmse": 60000.0, "rmse_std": 900.0, "fit_seconds": 0.3},
        "honest": {"rmse": 64000.0, "mdape": 0.07, "method": "nested CV", "winners": ["ridge"]},
        "intervals": {
            "default": 0.9,
            "chosen_scores": scores,
            "time_ordered": [IntervalScore("cv_plus", 0.9, 0.87, 0.4)],
        },
        "model_name": "homevision-price",
        "version": "3",
        "run_id": "abc",
        "feature_set": "task6",
        "promoted": False,
        "champion_version": "2",
    }
    assert metrics_summary(ctx) == {
        "cv": {"rmse": 60000.0, "rmse_std": 900.0},  # no timings: they differ run to run
        "honest": {"rmse": 64000.0, "mdape": 0.07},
        "range": {
            "level": 0.9,
            "coverage": 0.91,
            "median_width": 0.4,
            "coverage_time_ordered": 0.87,
        },
    }
    timed = {"rmse": 70000.0, "mape": 0.08, "cut": "2020-03-01", "method": "time-ordered"}
    assert metrics_summary({**ctx, "time_ordered": {**timed, "later": 40}})["time_ordered"] == {
        "rmse": 70000.0,
        "mape": 0.08,
        "later": 40.0,
    }
    reference = model_reference(ctx)
    assert reference["uri"] == "models:/homevision-price/3"
    assert reference["champion_version"] == "2" and reference["promoted"] is False


# --- end to end, in a fresh copy of the checkout ---------------------------------------------


def _copy_checkout(target: Path) -> Path:
    """Copy the checkout as a fresh clone would hold it (tracked files, and untracked ones git
    does not ignore, as they are in the working tree, so uncommitted changes are tested too),
    then make it a git repository of its own: DVC compares params and metrics with HEAD."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if name == "dvc.lock" or not (source.exists() or source.is_symlink()):
            continue  # a run recorded in this checkout, or a file deleted in the working tree
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            (target / name).symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target / name)
    return target


def _git(repo: Path, *args: str) -> str:
    who = ["-c", "user.name=homevision-test", "-c", "user.email=test@homevision.invalid"]
    done = subprocess.run(
        ["git", *who, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout


def _tiny_params(repo: Path, folds: int) -> None:
    """Train in seconds (the integration tests' tiny settings, `folds` CV folds, a 30 s budget)
    on a 400-row synthetic sample, through the copy's own params.yaml."""
    params = yaml.safe_load(tiny_params(repo.parent, ["median_ppsf", "ridge"]).read_text())
    params["train"].update(budget_seconds=30, folds=folds)
    params["promotion"].update(folds=3, repeats=1)
    params["synthetic"].update(default_rows=400)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _env(repo: Path) -> dict[str, str]:
    """This interpreter's scripts first on PATH (the stages run `homevision`), the copy's package
    first on the import path, and nothing of this session's project, data or tracking store."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HOMEVISION_", "MLFLOW_", "PYTHONDONTWRITEBYTECODE"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(repo)  # bytecode lands in the copy: .dvcignore must keep it out
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def _dvc(repo: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=repo,
        env=_env(repo),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, (
        f"dvc {' '.join(args)}:\n{done.stdout[-4000:]}{done.stderr[-4000:]}"
    )
    return done.stdout


def _ran(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


@pytest.mark.slow
def test_dvc_repro_runs_every_stage_once_then_only_what_a_param_change_needs(tmp_path):
    pytest.importorskip("dvc")
    repo = _copy_checkout(tmp_path / "repo")
    _tiny_params(repo, folds=3)
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "fresh clone")

    assert _ran(_dvc(repo, "repro")) == STAGES
    again = _dvc(repo, "repro")
    assert _ran(again) == []
    assert all(f"Stage '{name}' didn't change, skipping" in again for name in STAGES)
    assert "up to date" in _dvc(repo, "status")

    # The export is DVC's, never git's: ignored by git, hashed in dvc.lock, sent to the remote.
    assert _git(repo, "check-ignore", "data/raw/listings.csv").strip() == "data/raw/listings.csv"
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    export = lock["stages"]["ingest"]["outs"][0]
    assert export["path"] == "data/raw/listings.csv" and export["md5"]
    model = json.loads((repo / "reports" / "model.json").read_text())
    assert model["promoted"] and model["champion_version"] == model["version"] == "1"
    valued = (repo / "data" / "processed" / "valuations.csv").read_text().splitlines()
    assert valued[0].startswith("MLSNumber,predicted_close_price")

    # Record this run (dvc.lock in git), then change the CV folds: train and predict rerun.
    _git(repo, "add", "dvc.lock")
    _git(repo, "commit", "-q", "-m", "pipeline run")
    _tiny_params(repo, folds=4)
    diff = json.loads(_dvc(repo, "params", "diff", "--json"))
    assert (
        diff["params.yaml"]["train.folds"]["old"],
        diff["params.yaml"]["train.folds"]["new"],
    ) == (3, 4)
    assert "train" in _dvc(repo, "status")
    assert sorted(_ran(_dvc(repo, "repro"))) == ["monitor", "predict", "train"]
    assert json.loads((repo / "reports" / "model.json").read_text())["version"] == "2"

    shown = json.loads(_dvc(repo, "metrics", "show", "--json"))
    metrics = shown[""]["data"]["reports/metrics.json"]["data"]
    assert {"cv", "honest", "range"} <= set(metrics) and metrics["honest"]["rmse"] > 0
    # The champion against the export it was trained on: nothing drifted.
    drift = shown[""]["data"]["reports/monitoring/drift_summary.json"]["data"]
    assert drift["detected"] is False and drift["input_drift_share"] == 0
    changed = json.loads(_dvc(repo, "metrics", "diff", "--json"))["reports/metrics.json"]
    assert changed["cv.rmse"]["old"] > 0 and changed["cv.rmse"]["new"] > 0  # HEAD's from cache

    # The default remote (a folder beside the checkout) takes the export and gives it back.
    _dvc(repo, "push")
    assert any((tmp_path / "homevision-dvc-storage").rglob("*"))
    original = (repo / "data" / "raw" / "listings.csv").read_bytes()
    shutil.rmtree(repo / ".dvc" / "cache")
    (repo / "data" / "raw" / "listings.csv").unlink()
    _dvc(repo, "pull", "ingest")
    assert (repo / "data" / "raw" / "listings.csv").read_bytes() == original
