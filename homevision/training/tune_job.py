"""`homevision tune` orchestration: tune one candidate on the labelled rows, tracked in MLflow.

One process by default; with `workers` > 1 the trials run in that many processes on one study in
a PostgreSQL (or MySQL) storage, and every trial is still an MLflow run, a child of this tune run.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow

from homevision import tracking
from homevision.config import load_params, paths
from homevision.data.listings import Listings
from homevision.feature_sets import with_evidence
from homevision.features import get_feature_set
from homevision.training.candidates import tunable_candidate
from homevision.training.evaluation import CVPlan, CVResult
from homevision.training.metrics import select_by
from homevision.training.tuning import TuningResult, rows_key, study_name, study_prefix, tune
from homevision.training.workers import check_storage, tune_in_workers


@dataclass(frozen=True)
class TrialRunLogger:
    """Log each trial as an MLflow run, a child of `parent_run_id`, from any process: it
    pickles, so worker processes log their own trials under the parent's tune run."""

    candidate: str
    parent_run_id: str
    tracking_uri: str
    experiment_id: str

    def __call__(self, trial, params, result: CVResult | None) -> None:
        if mlflow.get_tracking_uri() != self.tracking_uri:
            mlflow.set_tracking_uri(self.tracking_uri)
        with mlflow.start_run(
            run_name=f"{self.candidate}-trial-{trial.number}",
            experiment_id=self.experiment_id,
            parent_run_id=self.parent_run_id,
            nested=True,  # in the parent process its run is active; in a worker none is
        ):
            mlflow.set_tags(
                {
                    "homevision.stage": "trial",
                    "candidate": self.candidate,
                    "pruned": str(result is None or len(result.per_repeat) == 0),
                }
            )
            mlflow.log_params({k: str(v)[:250] for k, v in params.items()})
            if result is not None and len(result.per_repeat):
                mlflow.log_metrics(result.summary())


def run_tuning(
    listings: Listings,
    candidate: str,
    feature_set_name: str,
    trials: int | None,
    timeout: float | None,
    storage: str | None,
    study: str | None,
    workers: int = 1,
) -> TuningResult:
    """Tune `candidate` with repeated CV on the labelled rows to the metric `train` ranks this
    feature set by (its `select_by`), in the study `train` would continue (the same name rule);
    each trial is an MLflow run. `workers` > 1 runs the trials (`trials` in all) in that many
    processes on one study, which needs a PostgreSQL or MySQL `storage`. An unknown or
    untunable `candidate` is refused (ValueError) before any MLflow run is opened."""
    tunable_candidate(candidate)
    check_storage(storage, workers)
    fs = get_feature_set(feature_set_name)
    cfg = load_params()["train"]
    metric = select_by(cfg, fs)
    plan = CVPlan(folds=int(cfg["folds"]), repeats=int(cfg["repeats"]), seed=int(cfg["seed"]))
    X = listings.labelled.reset_index(drop=True)
    y = X["ClosePrice"].astype(float)
    fs = with_evidence(fs, listings.to_value, X)
    tracking.configure()
    with mlflow.start_run(run_name=f"tune-{candidate}-{fs.name}") as run:
        mlflow.set_tags(
            {
                "homevision.stage": "tune",
                "candidate": candidate,
                "data_hash": tracking.file_hash(listings.source),
                "workers": str(workers),
            }
        )
        splits = plan.splits(y)
        key = rows_key(X, y, splits, fs)  # as the selection keys it: train continues it
        # Default: a study of its own for these rows, folds and search space; --study NAME
        # continues a named one (refused when it was made for other data or another space).
        name = study or study_name(study_prefix(metric), fs.name, candidate, key)
        mlflow.set_tag("optuna_study", name)
        on_trial = TrialRunLogger(
            candidate, run.info.run_id, mlflow.get_tracking_uri(), run.info.experiment_id
        )
        if workers > 1:
            assert storage is not None  # check_storage refused anything else
            result = tune_in_workers(
                candidate,
                fs,
                X,
                y,
                splits,
                storage=storage,
                study_name=name,
                workers=workers,
                n_trials=trials,
                timeout=timeout,
                seed=plan.seed,
                n_jobs=1,  # the workers already use the cores
                on_trial=on_trial,
                data_key=key,
                metric=metric,
            )
        else:
            result = tune(
                candidate,
                fs,
                X,
                y,
                splits,
                n_trials=trials,
                timeout=timeout,
                storage=storage or f"sqlite:///{paths().root / 'optuna.db'}",
                study_name=name,
                seed=plan.seed,
                show_progress=True,
                on_trial=on_trial,
                data_key=key,
                metric=metric,
            )
        mlflow.log_metric(f"best_{metric}", result.value)
        mlflow.log_params({f"best_{k}": str(v)[:250] for k, v in result.params.items()})
    return result
