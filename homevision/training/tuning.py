"""Optuna tuning of one candidate: objective = repeated-CV RMSE on the rows it is given.

The study lives in any SQLAlchemy storage (SQLite by default), so several processes can share it;
trials are pruned on per-repeat results; each trial can be reported (e.g. as an MLflow run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd

from homevision.features import FeatureSet
from homevision.training.candidates import CANDIDATES, Params, build_model
from homevision.training.evaluation import CVResult, Split, cross_validate_model

log = logging.getLogger(__name__)
TrialCallback = Callable[[optuna.trial.FrozenTrial, Params, CVResult | None], None]


@dataclass
class TuningResult:
    """The best parameters found and their CV RMSE (on the tuning rows: not an honest estimate)."""

    candidate: str
    params: Params
    rmse: float
    trials: int
    study_name: str


def tune(
    candidate: str,
    feature_set: FeatureSet,
    X: pd.DataFrame,
    y: pd.Series,
    splits: list[list[Split]],
    n_trials: int | None = 20,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    seed: int = 0,
    n_jobs: int = 2,
    show_progress: bool = False,
    on_trial: TrialCallback | None = None,
    enqueue_defaults: bool = True,
) -> TuningResult:
    """Tune `candidate` with TPE and median pruning; return the best params found.

    `storage` is any Optuna/SQLAlchemy URL (None: in memory); with a name the study is resumed
    when it exists, which is how several `homevision tune` processes share one study.
    """
    spec = CANDIDATES[candidate]
    if not spec.tunable:
        raise ValueError(f"{candidate} has no search space")
    name = study_name or f"homevision-{feature_set.name}-{candidate}"
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        load_if_exists=storage is not None,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
    )
    if enqueue_defaults and not study.trials:
        study.enqueue_trial(_default_trial_params(candidate), skip_if_exists=True)

    def objective(trial: optuna.Trial) -> float:
        params = spec.space(trial)  # type: ignore[misc]
        model = build_model(candidate, feature_set, params)

        def report(step: int, rmse: float) -> None:
            trial.report(rmse, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        result = None
        try:
            result = cross_validate_model(model, X, y, splits, n_jobs=n_jobs, on_repeat=report)
        finally:
            if on_trial is not None:
                on_trial(trial, params, result)
        return float(result.summary()["rmse"])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=n_trials, timeout=timeout, show_progress_bar=show_progress)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise RuntimeError(f"no {candidate} trial completed within the budget")
    best = study.best_trial
    return TuningResult(
        candidate=candidate,
        params=CANDIDATES[candidate].space(optuna.trial.FixedTrial(best.params)),  # type: ignore[misc]
        rmse=float(best.value),
        trials=len(done),
        study_name=name,
    )


def _default_trial_params(candidate: str) -> dict[str, Any]:
    """Map a candidate's defaults onto its search-space names (so trial 0 is the default)."""
    defaults = dict(CANDIDATES[candidate].defaults)
    if candidate == "mlp" and "hidden_layer_sizes" in defaults:
        defaults["width"] = defaults.pop("hidden_layer_sizes")[0]
    return defaults
