"""Optuna tuning of one candidate: objective = repeated-CV RMSE on the rows it is given.

Studies live in memory unless a storage URL is given (then any SQLAlchemy storage, shared by
processes, with heartbeats: a trial whose process died is failed after a grace period and run
again once, never left RUNNING). A study records the search space and the data it was scored on;
continuing a study with another space or other data is refused with one sentence instead of
mixing their trials. Trials are pruned on per-repeat results; each trial can be reported (e.g. as
an MLflow run). Several worker processes on one study: homevision.training.workers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import optuna
import pandas as pd
from sqlalchemy.exc import IntegrityError

from homevision.config import load_params
from homevision.features import FeatureSet
from homevision.training.candidates import CANDIDATES, Params, build_model
from homevision.training.evaluation import CVResult, Split, cross_validate_model

log = logging.getLogger(__name__)
TrialCallback = Callable[[optuna.trial.FrozenTrial, Params, CVResult | None], None]
Evaluate = Callable[[Params, Callable[[int, float], None]], CVResult]
WORKER_ATTR = "worker"  # trial user attr: "host:pid" of the process that ran it


@dataclass(frozen=True)
class Heartbeat:
    """Optuna heartbeats of a stored study: every `interval` s a running trial says it is alive;
    one silent for `grace` s is failed (by the next trial any process starts) and queued again
    up to `retries` times. Too short an interval fails live trials on a busy machine."""

    interval: int = 30
    grace: int = 120
    retries: int = 1


HEARTBEAT = Heartbeat()


@dataclass
class TuningResult:
    """The best parameters found and their CV score in `metric` (on the tuning rows: not an
    honest estimate)."""

    candidate: str
    params: Params
    value: float
    trials: int  # the study's completed trials (every process's, for a shared study)
    study_name: str
    metric: str = "rmse"
    # Trials this call ran, pruned ones included: Optuna's n_trials, what a replay must run.
    ran: int = 0
    # Trials the study held before this call (a study in storage, continued by a later run on
    # the same data and folds): the best is chosen among them too.
    earlier: int = 0

    @property
    def rmse(self) -> float:
        """The best CV RMSE, for a study that minimised it."""
        if self.metric != "rmse":
            raise AttributeError(f"this study minimised {self.metric}, not rmse")
        return self.value


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


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
    data_key: str | None = None,
    evaluate: Evaluate | None = None,
    metric: str = "rmse",
) -> TuningResult:
    """Tune `candidate` with TPE and median pruning to the lowest CV `metric`; return the best
    params found.

    `storage` is any Optuna/SQLAlchemy URL (None: in memory); with a name the study is resumed
    when it exists, which is how several `homevision tune` processes share one study.
    `show_progress` draws Optuna's bar when stderr is a terminal. `evaluate(params, on_repeat)`
    scores a trial instead of cross-validating the whole model (the selection passes its fold
    cache: the same predictions, the feature pipeline fitted once per fold).
    """
    name = study_name or f"homevision-{feature_set.name}-{candidate}"
    study = prepare_study(
        candidate,
        storage,
        name,
        seed=seed,
        data_key=data_key or rows_key(X, y, splits, feature_set),
        enqueue_defaults=enqueue_defaults,
    )
    objective = make_objective(
        candidate, feature_set, X, y, splits, n_jobs, on_trial, evaluate, metric
    )
    # Optuna's bar redraws in place: in a log file or CI it is a line of carriage returns.
    bar = show_progress and _stderr_is_terminal()
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ran, earlier = 0, len(study.get_trials(deepcopy=False, states=finished))

    def counted(trial: optuna.Trial) -> float:
        nonlocal ran
        ran += 1
        return objective(trial)

    study.optimize(counted, n_trials=n_trials, timeout=timeout, show_progress_bar=bar)
    return replace(tuning_result(study, candidate, metric), ran=ran, earlier=earlier)


def open_storage(
    url: str | None, heartbeat: Heartbeat = HEARTBEAT
) -> optuna.storages.BaseStorage | None:
    """Return the Optuna storage for `url`: None (memory) stays None; an SQLAlchemy URL gets an
    RDBStorage with `heartbeat` (so a killed process's trial is failed, then retried)."""
    if url is None:
        return None
    with warnings.catch_warnings():  # heartbeats are experimental in Optuna (stable since 2.9)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=heartbeat.interval,
            grace_period=heartbeat.grace,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=heartbeat.retries
            ),
        )


def open_study(
    storage: str | None,
    name: str,
    seed: int,
    *,
    create: bool = True,
    heartbeat: Heartbeat = HEARTBEAT,
    constant_liar: bool = False,
) -> optuna.Study:
    """Create (or continue) the study `name`, or with `create=False` load one that exists, with
    TPE (seeded; `constant_liar` when other processes run trials at the same time) and median
    pruning."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    options: dict[str, Any] = {
        "study_name": name,
        "storage": open_storage(storage, heartbeat),
        "sampler": optuna.samplers.TPESampler(seed=seed, constant_liar=constant_liar),
        "pruner": optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
    }
    if not create:
        return optuna.load_study(**options)
    try:
        return optuna.create_study(
            load_if_exists=storage is not None, direction="minimize", **options
        )
    except IntegrityError:  # another process created the tables or the study meanwhile
        return optuna.create_study(load_if_exists=True, direction="minimize", **options)


def prepare_study(
    candidate: str,
    storage: str | None,
    name: str,
    seed: int,
    data_key: str,
    enqueue_defaults: bool = True,
    heartbeat: Heartbeat = HEARTBEAT,
) -> optuna.Study:
    """Create or continue the study for `candidate`, claim it for its search space and data
    (refusing one made for others) and queue the defaults as the first trial of a new one."""
    if not CANDIDATES[candidate].tunable:
        raise ValueError(f"{candidate} has no search space")
    study = open_study(storage, name, seed, heartbeat=heartbeat)
    _claim(study, space_fingerprint(candidate), data_key)
    if enqueue_defaults and not study.trials:
        study.enqueue_trial(_default_trial_params(candidate), skip_if_exists=True)
    return study


def make_objective(
    candidate: str,
    feature_set: FeatureSet,
    X: pd.DataFrame,
    y: pd.Series,
    splits: list[list[Split]],
    n_jobs: int,
    on_trial: TrialCallback | None = None,
    evaluate: Evaluate | None = None,
    metric: str = "rmse",
) -> Callable[[optuna.Trial], float]:
    """Return the objective: CV `metric` of the trial's params, pruned per repeat; each trial
    records the process that ran it (user attr `worker`) and is reported to `on_trial`."""
    spec = CANDIDATES[candidate]
    worker = worker_tag()

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, worker)
        params = spec.space(trial)  # type: ignore[misc]

        def report(step: int, running: float) -> None:
            trial.report(running, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        result = None
        try:
            if evaluate is not None:
                result = evaluate(params, report)
            else:
                model = build_model(candidate, feature_set, params)
                result = cross_validate_model(
                    model, X, y, splits, n_jobs=n_jobs, on_repeat=report, metric=metric
                )
        finally:
            if on_trial is not None:
                on_trial(trial, params, result)
        return float(result.summary()[metric])

    return objective


def tuning_result(study: optuna.Study, candidate: str, metric: str = "rmse") -> TuningResult:
    """Return the study's best params and CV score in `metric`, the one it minimised (refusing
    a study with no completed trial)."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        raise RuntimeError(f"no {candidate} trial completed within the budget")
    best = study.best_trial
    return TuningResult(
        candidate=candidate,
        params=CANDIDATES[candidate].space(optuna.trial.FixedTrial(best.params)),  # type: ignore[misc]
        value=float(best.value),
        trials=len(done),
        study_name=study.study_name,
        metric=metric,
    )


def worker_tag(pid: int | None = None) -> str:
    """Return "host:pid" for this process (or `pid` on this host), as trials record it."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def _default_trial_params(candidate: str) -> dict[str, Any]:
    """Map a candidate's defaults onto its search-space names (so trial 0 is the default)."""
    defaults = dict(CANDIDATES[candidate].defaults)
    if candidate == "mlp" and "hidden_layer_sizes" in defaults:
        defaults["width"] = defaults.pop("hidden_layer_sizes")[0]
    return defaults


def space_fingerprint(candidate: str) -> str:
    """Return a short hash of a candidate's search space (names, kinds and ranges)."""
    space = CANDIDATES[candidate].space
    if space is None:
        return "none"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trial = optuna.create_study().ask()
    space(trial)
    text = json.dumps({k: repr(v) for k, v in sorted(trial.distributions.items())})
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def rows_key(
    X: pd.DataFrame,
    y: pd.Series,
    splits: list[list[Split]],
    feature_set: FeatureSet | None = None,
) -> str:
    """Return a short hash of what a study scores trials on: the rows, prices and folds, and,
    with `feature_set`, what else changes the CV: the set's definition (its roles and columns),
    the listings under contract it fits beside the sales (its evidence) and the `features:`
    settings of params.yaml that shape its pipeline. Why: the same sales with other evidence
    or columns score the same parameters differently, so their trials must not mix."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(X.astype(str), index=False).to_numpy().tobytes())
    digest.update(pd.Series(y, dtype=float).to_numpy().tobytes())
    for repeat in splits:
        for _, test in repeat:
            digest.update(test.tobytes())
    if feature_set is not None:
        definition = {
            f.name: getattr(feature_set, f.name)
            for f in fields(feature_set)
            if f.name not in ("description", "evidence")
        }
        settings = load_params().get("features", {})
        digest.update(json.dumps([definition, settings], sort_keys=True, default=str).encode())
        if feature_set.evidence is not None:
            frame = feature_set.evidence.frame.astype(str)
            digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
            digest.update(",".join(map(str, frame.columns)).encode())
    return digest.hexdigest()[:12]


def study_prefix(metric: str, base: str = "homevision") -> str:
    """Return the study name prefix for studies minimising `metric`: `base`, with `-by-METRIC`
    for any metric but RMSE (a study keeps one objective; `train` and `tune` share the rule, so
    one continues the other's study)."""
    return base + ("" if metric == "rmse" else f"-by-{metric}")


def study_name(prefix: str, feature_set: str, candidate: str, data_key: str) -> str:
    """Return the study name for a candidate on these rows and folds (`rows_key`) and its
    current search space: other data or a changed space gets a new study, never an old one."""
    return f"{prefix}-{feature_set}-{candidate}-data{data_key}-space{space_fingerprint(candidate)}"


def _claim(study: optuna.Study, space: str, data: str) -> None:
    """Mark a new study with its space and data; refuse to continue one made for others."""
    attrs = study.user_attrs
    if "search_space" not in attrs:
        study.set_user_attr("search_space", space)
        study.set_user_attr("data", data)
        return
    if attrs["search_space"] != space:
        raise ValueError(
            f"study {study.study_name!r} was made for another search space of this candidate; "
            "start a new study (another --study name) to tune the current one"
        )
    if attrs.get("data") != data:
        raise ValueError(
            f"study {study.study_name!r} holds trials scored on other data or folds; "
            "start a new study (another --study name) for this data"
        )
