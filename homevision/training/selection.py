"""Model selection as one procedure: CV every candidate, tune the best, try a blend, pick a winner.

Because the whole procedure is a function of the rows it is given, its honest error is measured
by running it again inside an outer CV loop (`nested_estimate`): the outer test folds never
influence which model is chosen or how it is tuned.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from homevision.features import FeatureSet
from homevision.training.budget import plan_trials, sweep_seconds
from homevision.training.candidates import (
    BASELINES,
    BLEND,
    CANDIDATES,
    STACK,
    build_from_spec,
)
from homevision.training.checks import sqft_monotonicity_violations
from homevision.training.evaluation import (
    CVPlan,
    CVResult,
    cross_validate_model,
    leaderboard,
    time_ordered_split,
)
from homevision.training.metrics import valuation_metrics
from homevision.training.tuning import TrialCallback, rows_key, study_name, tune

log = logging.getLogger(__name__)
Spec = dict[str, Any]
ResultCallback = Callable[[str, Spec, CVResult], None]


@dataclass(frozen=True)
class SelectionSettings:
    """How hard the procedure works: CV plan, candidates, tuning and blending budget."""

    plan: CVPlan = field(default_factory=CVPlan)
    candidates: tuple[str, ...] = tuple(CANDIDATES)
    tune_top: int = 2
    tuning_trials: int | None = 30
    tuning_timeout: float | None = 60.0
    blend_top: int = 3
    stack: bool = False  # also try scikit-learn's StackingRegressor of the blend's members
    storage: str | None = None  # Optuna storage; None keeps every study in memory
    study_prefix: str = "homevision"
    n_jobs: int = 2
    show_progress: bool = False
    # With both set, the trials are planned after the sweep to fit tuning_seconds (budget.py).
    tuning_seconds: float | None = None
    costs: dict[str, float] | None = None
    # A replayed plan: exactly these candidates tuned, with these trial counts (no clock).
    trials_by_candidate: dict[str, int] | None = None


@dataclass
class SelectionResult:
    """The leaderboard, each entry's CV result and spec, and the winner (already fitted on the
    rows the procedure was given, as the monotonicity check needed)."""

    results: dict[str, CVResult]
    specs: dict[str, Spec]
    winner: str
    fitted: Any
    plan: CVPlan
    gate: dict[str, float] = field(default_factory=dict)
    tuned: dict[str, int] = field(default_factory=dict)  # candidate -> trials completed
    studies: dict[str, str] = field(default_factory=dict)  # candidate -> Optuna study name
    slowdown: float = 1.0  # how much slower the sweep ran than its costs predicted

    @property
    def table(self) -> pd.DataFrame:
        return leaderboard(self.results)

    @property
    def spec(self) -> Spec:
        return self.specs[self.winner]


def single_spec(name: str, params: dict[str, Any] | None = None) -> Spec:
    return {"kind": "single", "name": name, "params": dict(params or {})}


def select_and_tune(
    X: pd.DataFrame,
    y: pd.Series,
    feature_set: FeatureSet,
    settings: SelectionSettings,
    on_result: ResultCallback | None = None,
    on_trial: Callable[[str], TrialCallback] | None = None,
) -> SelectionResult:
    """Run the selection procedure on (X, y) and return its leaderboard and winner."""
    splits = settings.plan.splits(y)
    results: dict[str, CVResult] = {}
    specs: dict[str, Spec] = {}

    def evaluate(name: str, spec: Spec) -> None:
        start = time.perf_counter()
        result = cross_validate_model(
            build_from_spec(spec, feature_set), X, y, splits, n_jobs=settings.n_jobs
        )
        results[name], specs[name] = result, spec
        log.debug(
            "%-22s RMSE %10.0f  (%.1f s)",
            name,
            result.summary()["rmse"],
            time.perf_counter() - start,
        )
        if on_result is not None:
            on_result(name, spec, result)

    sweep_start = time.perf_counter()
    for name in settings.candidates:
        evaluate(name, single_spec(name))
    slowdown = 1.0
    if settings.costs is not None:
        # Calibrate the price list on what the sweep really took (a busy machine, logging,
        # overheads): later plans use costs x slowdown.
        predicted = sweep_seconds(
            settings.costs, list(settings.candidates), settings.plan.folds, settings.plan.repeats
        )
        taken = time.perf_counter() - sweep_start
        slowdown = float(np.clip(taken / predicted, 1.0, 10.0)) if predicted > 0 else 1.0

    ranked = [n for n in leaderboard(results).index if n not in BASELINES]
    to_tune = [n for n in ranked if CANDIDATES[n].tunable][: settings.tune_top]
    trials = settings.tuning_trials
    if settings.tuning_seconds is not None and settings.costs is not None and to_tune:
        to_tune, trials = plan_trials(
            {k: v * slowdown for k, v in settings.costs.items()},
            to_tune,
            settings.plan.folds,
            settings.plan.repeats,
            int(settings.tuning_trials or 0),
            settings.tuning_seconds,
        )
    per_candidate = {name: trials for name in to_tune}
    if settings.trials_by_candidate is not None:  # a replay: what the plan recorded
        per_candidate = {n: t for n, t in settings.trials_by_candidate.items() if t > 0}
        to_tune = list(per_candidate)
    tuned: dict[str, int] = {}
    studies: dict[str, str] = {}
    data_key = rows_key(X, y, splits)
    for name in to_tune:
        timeout = settings.tuning_timeout / len(to_tune) if settings.tuning_timeout else None
        study = study_name(settings.study_prefix, feature_set.name, name, data_key)
        result = tune(
            name,
            feature_set,
            X,
            y,
            splits,
            n_trials=per_candidate[name],
            timeout=timeout,
            storage=settings.storage,
            study_name=study,
            seed=settings.plan.seed,
            n_jobs=settings.n_jobs,
            show_progress=settings.show_progress,
            on_trial=on_trial(name) if on_trial else None,
            data_key=data_key,
        )
        tuned[name], studies[name] = result.trials, result.study_name
        if result.rmse < results[name].summary()["rmse"]:
            evaluate(f"{name}_tuned", single_spec(name, result.params))

    # Blend the best distinct models (tuned versions where tuning helped).
    best_of: dict[str, str] = {}
    for entry in leaderboard(results).index:
        base = specs[entry].get("name")
        if base in BASELINES or base is None or base in best_of:
            continue
        best_of[base] = entry
    members = list(best_of.values())[: settings.blend_top]
    if len(members) >= 2:
        chosen = [[specs[m]["name"], specs[m]["params"]] for m in members]
        evaluate(BLEND, {"kind": "blend", "members": chosen})
        if settings.stack:
            evaluate(STACK, {"kind": "stack", "members": chosen})

    winner, fitted, gate = _first_monotone(X, y, feature_set, specs, leaderboard(results).index)
    return SelectionResult(
        results, specs, winner, fitted, settings.plan, gate, tuned, studies, slowdown
    )


def _first_monotone(X, y, feature_set, specs, ranked) -> tuple[str, Any, dict[str, float]]:
    """Return the best-ranked entry whose model, fitted on all rows, never values a home lower
    for more living area; that fitted model; and the violation share of every entry checked."""
    gate: dict[str, float] = {}
    for name in ranked:
        model = build_from_spec(specs[name], feature_set).fit(X, y)
        gate[name] = sqft_monotonicity_violations(model, X)
        if gate[name] == 0.0:
            return str(name), model, gate
        log.info(
            "  %s values some homes lower for more living area (%.0f%% of homes tried): "
            "not eligible",
            name,
            100 * gate[name],
        )
    raise RuntimeError("no candidate passed the living-area monotonicity check")


def replay_settings(settings: SelectionSettings, done: SelectionResult) -> SelectionSettings:
    """Return the settings that re-run exactly what `done` did: same CV plan and candidates,
    as many candidates tuned with as many trials (in memory, no clock), same blend size.
    The nested estimate runs the procedure with these in every outer fold."""
    trials = min(done.tuned.values()) if done.tuned else 0
    return replace(
        settings,
        tune_top=len(done.tuned) if trials else 0,
        tuning_trials=trials or None,
        tuning_timeout=None,
        tuning_seconds=None,
        costs=None,
        storage=None,
        show_progress=False,
    )


@dataclass
class NestedEstimate:
    """Honest error of the whole procedure: metrics on outer folds it never saw."""

    metrics: dict[str, float]
    winners: list[str]
    method: str
    folds_done: int = 0
    folds_planned: int = 0
    rows_scored: int = 0


def describe_procedure(settings: SelectionSettings) -> str:
    """Return the procedure in words (what the nested loop re-runs), for the card."""
    tuning = (
        f"the best {settings.tune_top} tuned with {settings.tuning_trials} Optuna trials each"
        if settings.tune_top and settings.tuning_trials
        else "no tuning"
    )
    return (
        f"{len(settings.candidates)} candidates ({', '.join(settings.candidates)}) on "
        f"{settings.plan.describe()}, {tuning}, a blend of the best {settings.blend_top}"
        f"{' and their stack' if settings.stack else ''}, "
        "then the living-area monotonicity gate"
    )


def nested_estimate(
    X: pd.DataFrame,
    y: pd.Series,
    feature_set: FeatureSet,
    settings: SelectionSettings,
    outer: CVPlan,
    on_fold: Callable[[int, int], None] | None = None,
    seconds: float | None = None,
    max_folds: int | None = None,
) -> NestedEstimate:
    """Re-run `select_and_tune` with `settings` inside each outer training fold and score its
    winner (fitted on that training fold) on the outer test fold; return pooled metrics.

    With `seconds`, outer folds stop once the next one is not expected to finish in time (at
    least one always runs); the metrics then cover the rows of the folds done, and say so.
    With `max_folds` (a replayed plan) exactly that many run, whatever the clock.
    """
    start = time.perf_counter()
    y = pd.Series(np.asarray(y, dtype=float), index=X.index)
    oof = np.full(len(X), np.nan)
    winners = []
    folds = outer.splits(y)[0]
    done = 0
    for i, (train, test) in enumerate(folds):
        spent = time.perf_counter() - start
        if max_folds is not None and done >= max_folds:
            break
        if seconds is not None and done and spent + spent / done > seconds:
            log.warning(
                "Honest estimate: budget reached after %d of %d outer folds", done, len(folds)
            )
            break
        sel = select_and_tune(X.iloc[train], y.iloc[train], feature_set, settings)
        oof[test] = sel.fitted.predict(X.iloc[test])
        winners.append(sel.winner)
        done += 1
        if on_fold is not None:
            on_fold(i + 1, len(folds))
    scored = ~np.isnan(oof)
    coverage = (
        ""
        if done == len(folds)
        else f"; the budget allowed {done} of them ({int(scored.sum())} of {len(X)} rows scored)"
    )
    method = (
        f"nested CV: {outer.folds} outer folds (seed {outer.seed}){coverage}; inside each, the "
        f"same procedure as the deployed model: {describe_procedure(settings)}"
    )
    metrics = valuation_metrics(y.to_numpy()[scored], oof[scored])
    return NestedEstimate(metrics, winners, method, done, len(folds), int(scored.sum()))


@dataclass
class TimeOrderedEstimate:
    """Honest error on later sales: the whole procedure run on the sales closed before `cut`,
    its winner scored on the sales closed from `cut` on."""

    metrics: dict[str, float]
    winner: str
    cut: str
    earlier: int
    later: int
    method: str


def time_ordered_estimate(
    X: pd.DataFrame,
    y: pd.Series,
    dates: pd.Series,
    feature_set: FeatureSet,
    settings: SelectionSettings,
    later_share: float = 0.3,
) -> TimeOrderedEstimate | None:
    """Re-run `select_and_tune` with `settings` on the earlier sales (by `dates`) and score its
    winner on the later `later_share` of them; None without enough dated sales on both sides.
    The figure that says how well the procedure values next month's sales."""
    found = time_ordered_split(dates, later_share)
    if found is None:
        return None
    (earlier, later), cut = found
    y = pd.Series(np.asarray(y, dtype=float), index=X.index)
    sel = select_and_tune(X.iloc[earlier], y.iloc[earlier], feature_set, settings)
    metrics = valuation_metrics(y.iloc[later].to_numpy(), sel.fitted.predict(X.iloc[later]))
    day = cut.strftime("%Y-%m-%d")
    method = (
        f"time-ordered: the procedure run on the {len(earlier)} sales closed before {day}, "
        f"its winner scored on the {len(later)} closed from {day} on"
    )
    return TimeOrderedEstimate(metrics, sel.winner, day, len(earlier), len(later), method)
