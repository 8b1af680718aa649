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

from homevision.features import FeatureSet, build_preprocessor
from homevision.training.candidates import BASELINES, CANDIDATES, STACK_FOLDS, build_model
from homevision.training.fold_cache import fit_prepared, prepare_fold

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


@dataclass
class Prices:
    """What one fold's fit costs, in seconds: `full` the whole model (features + regressor, what
    a refit or a range costs), `model` the regressor alone on prepared features (what the
    selection pays per candidate and per Optuna trial, the features being fitted once per fold),
    `prepare` the feature pipeline of each family."""

    full: dict[str, float]
    model: dict[str, float]
    prepare: dict[str, float]


def probe_prices(
    X: pd.DataFrame,
    y: pd.Series,
    feature_set: FeatureSet,
    names: list[str],
    seed: int = 0,
    seconds: float | None = None,
) -> Prices:
    """Return the price of one fit + predict of each candidate (defaults) on one training fold:
    the unit every later plan is priced in. With `seconds`, pricing stops once that is spent
    (the candidates not priced are not run: the caller says so)."""
    split = next(KFold(5, shuffle=True, random_state=seed).split(X))
    train, test = split
    prices = Prices({}, {}, {})
    values = np.asarray(y, dtype=float)
    folds = {}
    began = time.perf_counter()
    for name in names:
        if seconds is not None and prices.full and time.perf_counter() - began > seconds:
            break
        family = CANDIDATES[name].family
        if family is None:
            model = build_model(name, feature_set)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X.iloc[train], y.iloc[train]).predict(X.iloc[test])
            prices.full[name] = prices.model[name] = time.perf_counter() - start
            continue
        if family not in folds:
            start = time.perf_counter()
            features = build_preprocessor(feature_set, family)
            folds[family] = prepare_fold(X, values, features, split)
            prices.prepare[family] = time.perf_counter() - start
        prices.model[name] = fit_prepared(name, {}, folds[family])[1]
        prices.full[name] = prices.prepare[family] + prices.model[name]
    return prices


def cv_seconds(fit_seconds: float, folds: int, repeats: int) -> float:
    """Predicted wall seconds of cross-validating a model whose fit costs `fit_seconds`."""
    return fit_seconds * folds * repeats / PARALLEL_SPEEDUP


def plan_trials(
    costs: dict[str, float],
    to_tune: list[str],
    folds: int,
    repeats: int,
    max_trials: int,
    seconds: float,
    min_trials: int = 4,
    top: int | None = None,
) -> tuple[list[str], int]:
    """Return (candidates to tune, trials each) that fit `seconds`: candidates taken in the
    order given (best first) while `min_trials` of each still fit, one too costly passed over
    for the next (so a slow leader does not leave Optuna idle), at most `top` of them; then as
    many trials each as fit, up to `max_trials`. No tuning at all when none fits."""
    min_trials = min(min_trials, max_trials)
    top = len(to_tune) if top is None else top

    def per_trial(names: list[str]) -> float:
        return (
            sum(costs[n] for n in names) * folds * repeats * TUNING_COST_FACTOR / PARALLEL_SPEEDUP
        )

    chosen: list[str] = []
    for name in to_tune:
        if len(chosen) >= top or max_trials <= 0:
            break
        if per_trial([*chosen, name]) * min_trials <= seconds:
            chosen.append(name)
    if not chosen:
        return [], 0
    cost = per_trial(chosen)
    trials = int(min(max_trials, np.floor(seconds / cost))) if cost > 0 else max_trials
    return chosen, trials


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


@dataclass
class HalvingPlan:
    """The selection's shape for a budget: rungs of repeats, the share kept at each, the later
    rungs' allowance (CPU seconds), whether the stack is tried, what is left for Optuna."""

    candidates: list[str]
    rungs: tuple[int, ...]
    keep: float
    rung_seconds: float
    stack: bool
    tuning_seconds: float
    predicted_seconds: float
    degraded: list[str] = field(default_factory=list)


def plan_halving(
    prices: Prices,
    candidates: list[str],
    folds: int,
    repeats: int,
    seconds: float,
    keep: float = 0.5,
    tuning_share: float = 0.4,
    stack_members: int = 3,
    stack: bool = True,
) -> HalvingPlan:
    """Return the successive-halving selection that fits `seconds` (wall) and leaves at least
    `tuning_share` of it to Optuna: every candidate on one repeat, the best `keep` of them on
    the rest. Trimmed in turn: fewer repeats (down to 2), then the costliest candidates before
    any is scored (down to 4 learned), then the stack; baselines always stay."""
    names = list(candidates)
    degraded: list[str] = []
    model = prices.model
    prepare = sum(prices.prepare.values())

    def learned() -> list[str]:
        return [n for n in names if n not in BASELINES]

    def later_cpu(reps: int) -> float:
        costs = [model[n] for n in learned()]
        room = max(2, int(np.ceil(len(costs) * keep)))
        typical = float(np.mean(costs)) if costs else 0.0
        return typical * room * folds * max(0, reps - 1)

    def first_rung(reps: int) -> float:  # the features of every repeat, every model once
        return cv_seconds(prepare, folds, reps) + cv_seconds(sum(model[n] for n in names), folds, 1)

    def sweep(reps: int) -> float:
        return first_rung(reps) + later_cpu(reps) / PARALLEL_SPEEDUP

    allowed = seconds * (1 - tuning_share)
    reps = repeats
    while sweep(reps) > allowed and reps > 2:
        reps -= 1
    while sweep(reps) > allowed and len(learned()) > 4:
        worst = max(learned(), key=lambda n: model[n])
        names.remove(worst)
        degraded.append(f"{worst} skipped ({model[worst]:.2f} s a fit)")
    if reps < repeats:
        degraded.insert(0, f"CV repeats {repeats} -> {reps}")
    predicted = sweep(reps)
    rung_seconds = max(0.0, allowed - first_rung(reps)) * PARALLEL_SPEEDUP
    costly = sorted((prices.full[n] for n in learned()), reverse=True)[:stack_members]
    stack_cost = cv_seconds(sum(costly) * (STACK_FOLDS + 1), folds, reps)
    keep_stack = stack and stack_cost <= 0.5 * max(0.0, seconds - predicted)
    if stack and not keep_stack:
        degraded.append("stacking skipped (it would take half of the tuning time or more)")
    used = predicted + (stack_cost if keep_stack else 0.0)
    rungs = (1, reps) if reps > 1 else (1,)
    return HalvingPlan(
        names, rungs, keep, rung_seconds, keep_stack, max(0.0, seconds - used), used, degraded
    )
