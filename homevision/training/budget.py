"""A training budget that bounds the whole run: measure what each candidate costs on these rows,
then plan how much of the procedure fits (repeats, candidates, trials), degrading instead of
overrunning. Every degradation is written down, so the model card says what was done.

The procedure chosen here is the one the nested estimate replays in every outer fold, so the
plan reserves time for that replay too (about `outer folds x 0.85` times the procedure itself).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold

from homevision.features import FeatureSet
from homevision.training.candidates import BASELINES, build_model

log = logging.getLogger(__name__)
# Wall-clock speed-up of CV from its two parallel jobs (two cores, some overhead).
PARALLEL_SPEEDUP = 1.8
# A tuned configuration costs more than the defaults on average (more trees, iterations).
TUNING_COST_FACTOR = 1.5
# Fits inside an outer training fold see (K-1)/K of the rows: a little cheaper.
NESTED_ROW_FACTOR = 0.85


class Clock:
    """Seconds since a start, against a total: how much of the budget is left."""

    def __init__(self, seconds: float, start: float | None = None):
        self.seconds = float(seconds)
        self.start = time.perf_counter() if start is None else start

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def remaining(self) -> float:
        return max(0.0, self.seconds - self.elapsed)


def probe_costs(
    X: pd.DataFrame,
    y: pd.Series,
    feature_set: FeatureSet,
    names: list[str],
    seed: int = 0,
    seconds: float | None = None,
) -> dict[str, float]:
    """Return seconds for one fit + predict of each candidate (defaults) on one training fold:
    the unit every later plan is priced in. With `seconds`, pricing stops once that is spent
    (the candidates not priced are not run: the caller says so)."""
    train, test = next(KFold(5, shuffle=True, random_state=seed).split(X))
    costs: dict[str, float] = {}
    began = time.perf_counter()
    for name in names:
        if seconds is not None and costs and time.perf_counter() - began > seconds:
            break
        model = build_model(name, feature_set)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X.iloc[train], y.iloc[train]).predict(X.iloc[test])
        costs[name] = time.perf_counter() - start
    return costs


@dataclass
class SweepPlan:
    """Which candidates the CV sweep runs, with how many repeats, and what was given up."""

    candidates: list[str]
    repeats: int
    predicted_seconds: float
    degraded: list[str] = field(default_factory=list)


def cv_seconds(fit_seconds: float, folds: int, repeats: int) -> float:
    """Predicted wall seconds of cross-validating a model whose fit costs `fit_seconds`."""
    return fit_seconds * folds * repeats / PARALLEL_SPEEDUP


def sweep_seconds(costs: dict[str, float], names: list[str], folds: int, repeats: int) -> float:
    """Predicted wall seconds of cross-validating `names` with folds x repeats."""
    return cv_seconds(sum(costs[n] for n in names), folds, repeats)


def plan_sweep(
    costs: dict[str, float],
    candidates: list[str],
    folds: int,
    repeats: int,
    seconds: float,
    min_learned: int = 2,
) -> SweepPlan:
    """Return the largest sweep that fits `seconds`: first fewer repeats (down to 2), then the
    costliest learned candidates dropped (down to 4), then 1 repeat, then more candidates
    dropped (down to `min_learned`). Baselines always stay (they cost nothing)."""
    names = list(candidates)
    degraded: list[str] = []
    reps = repeats

    def fits() -> bool:
        return sweep_seconds(costs, names, folds, reps) <= seconds

    def drop_costliest(floor: int) -> bool:
        learned = [n for n in names if n not in BASELINES]
        if len(learned) <= floor:
            return False
        worst = max(learned, key=lambda n: costs[n])
        names.remove(worst)
        degraded.append(f"{worst} skipped ({costs[worst]:.2f} s a fit)")
        return True

    while not fits() and reps > 2:
        reps -= 1
    while not fits() and drop_costliest(4):
        pass
    if not fits() and reps > 1:
        reps = 1
    while not fits() and drop_costliest(min_learned):
        pass
    if reps < repeats:
        degraded.insert(0, f"CV repeats {repeats} -> {reps}")
    return SweepPlan(names, reps, sweep_seconds(costs, names, folds, reps), degraded)


def plan_trials(
    costs: dict[str, float],
    to_tune: list[str],
    folds: int,
    repeats: int,
    max_trials: int,
    seconds: float,
    min_trials: int = 4,
) -> tuple[list[str], int]:
    """Return (candidates to tune, trials each) that fit `seconds`: fewer trials first, then
    fewer candidates; no tuning at all when even `min_trials` of one does not fit."""
    chosen = list(to_tune)
    min_trials = min(min_trials, max_trials)
    while chosen and max_trials > 0:
        per_trial = (
            sum(costs[n] for n in chosen) * folds * repeats * TUNING_COST_FACTOR / PARALLEL_SPEEDUP
        )
        trials = int(min(max_trials, np.floor(seconds / per_trial))) if per_trial > 0 else 0
        if trials >= min_trials:
            return chosen, trials
        chosen = chosen[:-1]
    return [], 0


def plan_variants(
    winner_cost: float, variants: list[str], outer_folds: int, seconds: float
) -> list[str]:
    """Return the interval variants (in configured order) whose outer-CV comparison fits
    `seconds`; the first one always stays, so ranges are always measured."""
    # 20 bootstrap fits + the full one; CQR: a median and two quantile models per level (4)
    fits_each = {"jackknife_plus_ab": 21, "cqr": 9}
    chosen: list[str] = []
    spent = 0.0
    for variant in variants:
        cost = winner_cost * outer_folds * fits_each.get(variant, 6) / PARALLEL_SPEEDUP
        if chosen and spent + cost > seconds:
            continue
        chosen.append(variant)
        spent += cost
    return chosen
