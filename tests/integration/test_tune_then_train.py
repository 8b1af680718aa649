"""`homevision tune` feeds `train` (review 3, defect 6): a tune study is the one the selection
continues, for a feature set ranked by MAPE as for one ranked by RMSE."""

from __future__ import annotations

import shutil

import yaml

from homevision.config import load_params
from homevision.data.listings import load_listings
from homevision.data.synthetic import generate_listings, write_listings
from homevision.feature_sets import with_evidence
from homevision.features import get_feature_set
from homevision.training import selection as sel
from homevision.training.evaluation import CVPlan
from homevision.training.metrics import select_by
from homevision.training.tune_job import run_tuning

from .conftest import empty_store


def test_a_train_on_the_same_data_continues_the_tune_study_of_a_mape_ranked_set(
    tmp_path, monkeypatch
):
    features = "offmarket"  # ranked by train.select_by: mape
    home = tmp_path / "project"
    home.mkdir()
    shutil.copyfile(empty_store(), home / "mlflow.db")
    monkeypatch.setenv("HOMEVISION_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"train": {"folds": 3, "repeats": 1, "seed": 0}}))
    monkeypatch.setenv("HOMEVISION_PARAMS", str(params))
    listings = load_listings(write_listings(generate_listings(300, seed=4), tmp_path / "a.csv"))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"

    tuned = run_tuning(listings, "ridge", features, 2, None, storage, None)

    X = listings.labelled.reset_index(drop=True)
    y = X["ClosePrice"].astype(float)
    fs = with_evidence(get_feature_set(features), listings.to_value, X)
    metric = select_by(load_params()["train"], fs)
    assert tuned.metric == metric
    settings = sel.SelectionSettings(
        plan=CVPlan(folds=3, repeats=1, seed=0),
        candidates=("ridge",),
        tune_top=1,
        tuning_trials=1,
        tuning_timeout=None,
        blend_top=1,
        storage=storage,
        metric=metric,
    )
    chosen = sel.select_and_tune(X, y, fs, settings)
    assert chosen.studies["ridge"] == tuned.study_name
    assert chosen.tuned["ridge"] == 3  # the tune's 2 trials and its own 1
