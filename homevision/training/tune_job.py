"""`homevision tune` orchestration: tune one candidate on the labelled rows, tracked in MLflow."""

from __future__ import annotations

import mlflow

from homevision import tracking
from homevision.config import load_params, paths
from homevision.data.listings import Listings
from homevision.features import get_feature_set
from homevision.training.evaluation import CVPlan
from homevision.training.train import trial_logger
from homevision.training.tuning import TuningResult, rows_key, study_name, tune


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

        splits = plan.splits(y)
        result = tune(
            candidate,
            fs,
            X,
            y,
            splits,
            n_trials=trials,
            timeout=timeout,
            storage=storage or f"sqlite:///{paths().root / 'optuna.db'}",
            # Default: a study of its own for these rows, folds and search space; --study NAME
            # continues a named one (refused when it was made for other data or another space).
            study_name=study
            or study_name("homevision", fs.name, candidate, rows_key(X, y, splits)),
            seed=plan.seed,
            show_progress=True,
            on_trial=trial_logger(candidate),
        )
        mlflow.log_metric("best_rmse", result.rmse)
        mlflow.log_params({f"best_{k}": str(v)[:250] for k, v in result.params.items()})
    return result
