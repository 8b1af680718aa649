"""`homevision tune` orchestration: tune one candidate on the labelled rows, tracked in MLflow."""

from __future__ import annotations

import mlflow

from homevision import tracking
from homevision.config import load_params, paths
from homevision.data.listings import Listings
from homevision.features import get_feature_set
from homevision.training.evaluation import CVPlan
from homevision.training.tuning import TuningResult, tune


def run_tuning(
    listings: Listings,
    candidate: str,
    feature_set_name: str,
    trials: int | None,
    timeout: float | None,
    storage: str | None,
    study: str | None,
) -> TuningResult:
    """Tune `candidate` with repeated CV on the labelled rows; each trial is an MLflow run."""
    fs = get_feature_set(feature_set_name)
    cfg = load_params()["train"]
    plan = CVPlan(folds=int(cfg["folds"]), repeats=int(cfg["repeats"]), seed=int(cfg["seed"]))
    X = listings.labelled.reset_index(drop=True)
    y = X["ClosePrice"].astype(float)
    tracking.configure()
    with mlflow.start_run(run_name=f"tune-{candidate}-{fs.name}"):
        mlflow.set_tags(
            {
                "homevision.stage": "tune",
                "candidate": candidate,
                "data_hash": tracking.file_hash(listings.source),
            }
        )

        def log_trial(trial, params, result) -> None:
            with mlflow.start_run(run_name=f"{candidate}-trial-{trial.number}", nested=True):
                mlflow.log_params({k: str(v)[:250] for k, v in params.items()})
                if result is not None and len(result.per_repeat):
                    mlflow.log_metrics(result.summary())

        result = tune(
            candidate,
            fs,
            X,
            y,
            plan.splits(y),
            n_trials=trials,
            timeout=timeout,
            storage=storage or f"sqlite:///{paths().root / 'optuna.db'}",
            study_name=study,
            seed=plan.seed,
            show_progress=True,
            on_trial=log_trial,
        )
        mlflow.log_metric("best_rmse", result.rmse)
        mlflow.log_params({f"best_{k}": str(v)[:250] for k, v in result.params.items()})
    return result
