"""`homevision train` then `homevision predict`, end to end through the CLI, on synthetic data
with a tiny budget (a small params file keeps it to seconds)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import mlflow
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from homevision.cli import app
from homevision.data.synthetic import generate_listings, write_listings
from homevision.tracking import CHAMPION, MODEL_NAME, load_model, tracking_uri
from homevision.training.checks import sqft_monotonicity_violations
from homevision.valuation.predict import PRICE_COLUMNS

from .conftest import empty_store, tiny_params

runner = CliRunner()


def _params(tmp_path, candidates: list[str]) -> str:
    return str(tiny_params(tmp_path, candidates))


@pytest.fixture
def export(tmp_path):
    return write_listings(generate_listings(500, seed=3), tmp_path / "listings.csv")


def _train(monkeypatch, tmp_path, export, candidates, *extra):
    monkeypatch.setenv("HOMEVISION_PARAMS", _params(tmp_path, candidates))
    if not (tmp_path / "mlflow.db").exists():  # a fresh project starts from an empty store
        shutil.copyfile(empty_store(), tmp_path / "mlflow.db")
    result = runner.invoke(app, ["train", "--data", str(export), "--budget", "60", *extra])
    assert result.exit_code == 0, result.output
    return result


def _champion_version() -> str:
    return str(
        MlflowClient(tracking_uri()).get_model_version_by_alias(MODEL_NAME, CHAMPION).version
    )


def test_train_registers_a_champion_that_predict_uses(monkeypatch, tmp_path, export):
    result = _train(monkeypatch, tmp_path, export, ["median_ppsf", "ridge", "extra_trees"])
    assert "Honest estimate (nested CV" in result.stdout
    assert "promoted to champion" in result.stdout
    assert (tmp_path / "reports" / "model_card.md").exists()
    assert (tmp_path / "reports" / "leaderboard.png").exists()
    card = (tmp_path / "reports" / "model_card.md").read_text()
    assert "honest (nested)" in card and "## Leaderboard" in card
    # The export's listings under contract were fitted beside its sales, and the card says so.
    frame = pd.read_csv(export, dtype=str)
    pending = frame["Status"].isin(["Pending", "Active Option Contract", "Active Contingent"])
    found = re.search(r"- Evidence: (\d+) listings under contract \(Pending", card)
    assert found and 0 < int(found.group(1)) <= int(pending.sum())
    # Time-ordered beside the random folds: the procedure on the earlier sales, scored later.
    assert "Time-ordered (time-ordered: the procedure run on the" in result.stdout
    assert "| metric | time-ordered (honest) | 90% interval |" in card and "later RMSE" in card
    assert "| metric | honest (nested) | 90% interval |" in card
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert metrics["time_ordered"]["later"] >= 10 and metrics["time_ordered"]["rmse"] > 0
    # Each honest figure comes with its bootstrap interval over the sales it scored.
    for part in ("honest", "time_ordered"):
        found = metrics[part]
        assert found["mdape_low"] <= found["mdape"] <= found["mdape_high"], part
        assert found["rmse_low"] <= found["rmse"] <= found["rmse_high"], part
    assert metrics["honest"]["rows_scored"] > metrics["time_ordered"]["later"]

    # The champion is ONE model from raw export columns to dollars, and it is monotone.
    model = load_model()
    frame = pd.read_csv(export, dtype=str)
    from homevision.data.listings import coerce_types

    sold = coerce_types(frame[frame["Status"] == "Sold"])
    assert sqft_monotonicity_violations(model, sold) == 0.0

    # Predict: damaged rows get their reason, the others are still valued; rows in = rows out.
    frame.loc[3, "SqFtTotal"] = "abc"
    frame.loc[8, "BathsTotal"] = "lots"
    damaged = tmp_path / "damaged.csv"
    frame.to_csv(damaged, index=False)
    out = tmp_path / "valuations.csv"
    result = runner.invoke(app, ["predict", "--data", str(damaged), "--output", str(out)])
    assert result.exit_code == 0, result.output
    valued = pd.read_csv(out, keep_default_na=False)
    assert list(valued.columns) == [
        "MLSNumber",
        "predicted_close_price",
        "close_price_low",
        "close_price_high",
        "error",
        "warning",
    ]
    assert len(valued) == len(frame)
    assert valued["MLSNumber"].astype(str).tolist() == frame["MLSNumber"].tolist()
    assert "SqFtTotal" in valued.loc[3, "error"] and "BathsTotal" in valued.loc[8, "error"]
    assert valued.loc[3, "predicted_close_price"] == ""
    good = valued.drop(index=[3, 8])
    assert (good["error"] == "").all()
    assert (good["predicted_close_price"].astype(float) > 10_000).all()
    low, point, high = (
        good[c].astype(float)
        for c in ("close_price_low", "predicted_close_price", "close_price_high")
    )
    assert ((low <= point) & (point <= high)).all()

    # --explain adds the reasons and the comps; a lower confidence gives a narrower range.
    few = tmp_path / "few.csv"
    frame.drop(index=[3, 8]).head(4).to_csv(few, index=False)
    explained = tmp_path / "explained.csv"
    result = runner.invoke(
        app,
        [
            "predict",
            "--data",
            str(few),
            "--output",
            str(explained),
            "--explain",
            "--confidence",
            "0.8",
        ],
    )
    assert result.exit_code == 0, result.output
    rich = pd.read_csv(explained)
    assert {"base_value", "top_contributions", "comparables"} <= set(rich.columns)
    assert rich["top_contributions"].str.contains("SqFtTotal").all()
    narrow = (rich["close_price_high"] - rich["close_price_low"]).to_numpy()
    wide = good["close_price_high"].astype(float) - good["close_price_low"].astype(float)
    assert (narrow < wide.head(4).to_numpy()).all()
    result = runner.invoke(app, ["predict", "--data", str(few), "--confidence", "0.99"])
    assert result.exit_code == 2 and "carries ranges at" in result.output


def test_python_api_and_pyfunc_give_ranges_and_reasons(monkeypatch, tmp_path, export):
    import homevision

    _train(monkeypatch, tmp_path, export, ["median_ppsf", "ridge"])
    listings = pd.read_csv(export, dtype=str).head(5)
    valuations = homevision.value(listings, explain=True)
    assert list(valuations.frame.columns) == [
        "MLSNumber",
        "predicted_close_price",
        "close_price_low",
        "close_price_high",
        "error",
        "warning",
    ]
    for i, explanation in enumerate(valuations.explanations):
        total = explanation.base_value + sum(explanation.contributions.values())
        assert abs(total - valuations.frame.loc[i, "predicted_close_price"]) <= 1.0
        comps = explanation.comparables
        assert len(comps) == 5
        assert str(listings.loc[i, "MLSNumber"]) not in set(comps["MLSNumber"].astype(str))

    mlflow.set_tracking_uri(tracking_uri())
    served = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{CHAMPION}")
    from homevision.data.listings import coerce_types

    typed = coerce_types(listings)
    rows = typed[load_model().raw_columns_].reset_index(drop=True)
    out = served.predict(rows)
    assert list(out.columns) == [*PRICE_COLUMNS, "error", "warning"]
    assert (out["close_price_low"] <= out["close_price_high"]).all()
    # The registered model keeps the API's rules (issue 22, defect 9): no price for a home of
    # -5 square feet, and the reason.
    rows.loc[0, "SqFtTotal"] = -5.0
    refused = served.predict(rows.head(1))
    assert refused["predicted_close_price"].isna().all()
    assert refused["error"].iloc[0].startswith("SqFtTotal: must be greater than 0")
    checked = served.predict(rows.tail(2), params={"checked": True})
    assert list(checked.columns) == PRICE_COLUMNS


def test_predict_defaults_to_the_unsold_listings(monkeypatch, tmp_path, export):
    _train(monkeypatch, tmp_path, export, ["median_ppsf", "ridge"])
    monkeypatch.setenv("HOMEVISION_DATA", str(export))
    result = runner.invoke(app, ["predict"])
    assert result.exit_code == 0, result.output
    valued = pd.read_csv(tmp_path / "data" / "processed" / "valuations.csv")
    frame = pd.read_csv(export)
    assert len(valued) == int((frame["Status"] != "Sold").sum())


def test_alias_moves_only_on_improvement(monkeypatch, tmp_path, export):
    _train(monkeypatch, tmp_path, export, ["median_ppsf"])
    assert _champion_version() == "1"
    better = _train(monkeypatch, tmp_path, export, ["median_ppsf", "ridge"])
    assert "promoted over v1" in better.stdout
    assert _champion_version() == "2"
    worse = _train(monkeypatch, tmp_path, export, ["median_ppsf"])
    assert "kept champion v2" in worse.stdout
    assert _champion_version() == "2"
    _train(monkeypatch, tmp_path, export, ["median_ppsf"], "--promote")
    assert _champion_version() == "4"

    # Two trains at once: the alias moves only if it still holds what the decision compared
    # against, so the second of two racing runs cannot overwrite the first's promotion.
    from homevision.tracking import register, set_champion

    client = MlflowClient(tracking_uri())
    v4 = client.get_model_version(MODEL_NAME, "4")
    extra = register(v4.source, v4.run_id, {}, MODEL_NAME)
    assert not set_champion(extra, MODEL_NAME, expected="2")  # it moved to 4 meanwhile
    assert _champion_version() == "4"
    assert set_champion(extra, MODEL_NAME, expected="4")
    assert _champion_version() == extra


def test_each_feature_set_has_its_own_champion(monkeypatch, tmp_path, export):
    _train(monkeypatch, tmp_path, export, ["median_ppsf", "ridge"])
    assert _champion_version() == "1"
    onmarket = _train(
        monkeypatch, tmp_path, export, ["median_ppsf", "ridge"], "--features", "onmarket"
    )
    assert "homevision-price-onmarket v1" in onmarket.stdout
    assert _champion_version() == "1"  # the task6 champion is untouched
    client = MlflowClient(tracking_uri())
    assert str(client.get_model_version_by_alias(f"{MODEL_NAME}-onmarket", CHAMPION).version) == "1"
    assert "ListPrice" in load_model(f"models:/{MODEL_NAME}-onmarket@{CHAMPION}").raw_columns_
    assert "ListPrice" not in load_model().raw_columns_


def test_model_references_resolve_and_a_missing_one_is_a_clear_error(monkeypatch, tmp_path, export):
    _train(monkeypatch, tmp_path, export, ["median_ppsf"])
    run_id = MlflowClient(tracking_uri()).get_model_version(MODEL_NAME, "1").run_id
    for ref in (f"models:/{MODEL_NAME}/1", f"runs:/{run_id}/model", run_id):
        out = tmp_path / "v.csv"
        result = runner.invoke(
            app, ["predict", "--model", ref, "--data", str(export), "--output", str(out)]
        )
        assert result.exit_code == 0, (ref, result.output)
    result = runner.invoke(
        app, ["predict", "--model", "models:/nope@champion", "--data", str(export)]
    )
    assert result.exit_code == 2
    assert "no model at models:/nope@champion" in result.output
    assert "Traceback" not in result.output


def test_no_candidate_passing_the_living_area_check_is_one_sentence(monkeypatch, tmp_path, export):
    """Every ranked candidate fails the gate (kNN alone on the real sample did): an error line
    naming each one's share and what to add, exit 2, and no traceback."""
    from homevision.training import selection

    monkeypatch.setattr(selection, "sqft_monotonicity_violations", lambda model, X: 0.25)
    monkeypatch.setenv("HOMEVISION_PARAMS", _params(tmp_path, ["ridge"]))
    shutil.copyfile(empty_store(), tmp_path / "mlflow.db")
    result = runner.invoke(app, ["train", "--data", str(export), "--budget", "60"])
    said = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "error: no candidate passed the living-area monotonicity check" in said
    assert "ridge 25%" in said and "such as ridge or svr" in said
    assert "Traceback" not in result.output


def test_predict_without_any_trained_model_says_so(tmp_path, export):
    result = runner.invoke(app, ["predict", "--data", str(export)])
    assert result.exit_code == 2
    assert "homevision train" in result.output


def test_tune_processes_share_one_study(monkeypatch, tmp_path, export):
    monkeypatch.setenv("HOMEVISION_PARAMS", _params(tmp_path, ["ridge"]))
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    for _ in range(2):
        result = runner.invoke(
            app,
            [
                "tune",
                "--candidate",
                "ridge",
                "--data",
                str(export),
                "--trials",
                "2",
                "--storage",
                storage,
                "--study",
                "s",
            ],
        )
        assert result.exit_code == 0, result.output
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 4
    mlflow.set_tracking_uri(tracking_uri())
    runs = mlflow.search_runs(experiment_names=["homevision"])
    assert (runs["tags.homevision.stage"] == "tune").sum() == 2


def test_take_home_entry_points_still_work(monkeypatch, tmp_path, export):
    env = {
        **os.environ,
        "HOMEVISION_HOME": str(tmp_path),
        "HOMEVISION_DATA": str(export),
        "HOMEVISION_PARAMS": _params(tmp_path, ["median_ppsf", "ridge", "xgboost"]),
    }
    for module, extra in (
        ("homevision.experiments.model_v1", []),
        ("homevision.experiments.model_v1_tune_xgb", ["--trials", "2"]),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", module, *extra],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["homevision"])
    assert {"selection", "tune"} <= set(runs["tags.homevision.stage"].dropna())
