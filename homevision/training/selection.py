"""Model selection as one procedure: CV every candidate, tune the best, try a blend, pick a winner.

Because the whole procedure is a function of the rows it is given, its honest error is measured
by running it again inside an outer CV loop (`nested_estimate`): the outer test folds never
influence which model is chosen or how it is tuned.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from homevision.feature_sets import evidence_as_of
from homevision.features import FeatureSet
from homevision.training.budget import cv_seconds, plan_trials
from homevision.training.candidates import (
    BASELINES,
    BLEND,
    CANDIDATES,
    SIMPLICITY,
    STACK,
    build_from_spec,
)
from homevision.training.checks import sqft_monotonicity_violations
from homevision.training.evaluation import (
    CVPlan,
    CVResult,
    Split,
    cross_validate_model,
    leaderboard,
    time_ordered_split,
)
from homevision.training.fold_cache import FoldCache, blend_result, cross_validate_cached
from homevision.training.metrics import (
    LABELS,
    format_metric,
    metric_bounds,
    valuation_metrics,
)
from homevision.training.tuning import TrialCallback, rows_key, study_name, study_prefix, tune

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
    # Successive halving: repeats at each rung (the last is plan.repeats), the share of the
    # learned candidates kept from one rung to the next, and each later rung's allowance in
    # CPU seconds (with `costs`; None: no allowance). None rungs: one rung, every candidate on
    # every repeat.
    rungs: tuple[int, ...] | None = None
    keep: float = 0.5
    rung_seconds: float | None = None
    one_se: bool = True  # pick within one standard error of the best (blend, then simplest)
    # A blend member must lower the blend's CV score by more than the fold noise of that gain
    # (False: by any amount, as plans recorded before the rule replay).
    blend_noise: bool = True
    # A replay's price calibration: the slowdown the first run measured (None: measure it).
    slowdown: float | None = None
    # What ranks candidates, tunes them, builds the blend and sets the one-SE band (lower is
    # better; metrics.SELECTABLE): params.yaml `train.select_by`.
    metric: str = "rmse"


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
    tuned: dict[str, int] = field(default_factory=dict)  # candidate -> trials run (pruned too)
    studies: dict[str, str] = field(default_factory=dict)  # candidate -> Optuna study name
    slowdown: float = 1.0  # how much slower the sweep ran than its costs predicted
    reached: dict[str, int] = field(default_factory=dict)  # candidate -> repeats it ran
    choice: str = ""  # the selection rule applied, in words (for the card)
    metric: str = "rmse"  # what ranked the candidates
    # candidate -> trials its stored study held before this run (a continued study; in
    # `tuned` too): the replays then tune with `tuned`'s counts, not the prices' plan.
    earlier: dict[str, int] = field(default_factory=dict)

    @property
    def table(self) -> pd.DataFrame:
        return leaderboard(self.results, self.metric)

    @property
    def spec(self) -> Spec:
        return self.specs[self.winner]

    @property
    def repeats_run(self) -> dict[str, int]:
        """Return the CV repeats each leaderboard entry ran (1 for one dropped after the first
        rung of successive halving)."""
        return {name: len(result.per_repeat) for name, result in self.results.items()}


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
    """Run the selection procedure on (X, y) and return its leaderboard and winner.

    Successive halving: every candidate is cross-validated on the first rung's repeats, the
    weakest are dropped, the rest get the next rung's repeats (a candidate enters a rung in the
    order of its score while the rung's cost allowance has room: a strong slow candidate is not
    dropped for its cost alone). The survivors of the last rung are tuned with Optuna, blended
    and stacked; the winner is chosen within one standard error of the best (blend, then the
    simplest model) and must pass the living-area monotonicity gate. Every decision depends on
    the CV scores and the recorded settings only, so the nested estimate replays it exactly.
    """
    splits = settings.plan.splits(y)
    repeats = settings.plan.repeats
    metric = settings.metric
    y_values = np.asarray(y, dtype=float)
    cache = FoldCache(X, y_values, feature_set, splits, n_jobs=settings.n_jobs)
    results: dict[str, CVResult] = {}
    specs: dict[str, Spec] = {}

    def record(name: str, spec: Spec, result: CVResult, start: float) -> None:
        results[name], specs[name] = result, spec
        log.debug(
            "%-22s %s %s  (%d repeats, %.1f s)",
            name,
            LABELS[metric],
            format_metric(metric, result.summary()[metric]),
            len(result.per_repeat),
            time.perf_counter() - start,
        )
        if on_result is not None:
            on_result(name, spec, result)

    def evaluate(name: str, spec: Spec) -> None:  # the whole model, refitted per fold
        start = time.perf_counter()
        model = build_from_spec(spec, feature_set)
        record(name, spec, cross_validate_model(model, X, y, splits, n_jobs=settings.n_jobs), start)

    def evaluate_cached(name: str, spec: Spec, reps: int, earlier=None) -> None:
        start = time.perf_counter()
        result = cross_validate_cached(spec["name"], spec["params"], cache, reps, None, earlier)
        record(name, spec, result, start)

    sweep_start = time.perf_counter()
    learned = [n for n in settings.candidates if n not in BASELINES]
    for name in settings.candidates:
        if name in BASELINES:
            evaluate(name, single_spec(name))
    rungs = [min(r, repeats) for r in (settings.rungs or (repeats,))]
    if rungs[-1] != repeats:
        rungs.append(repeats)
    reached: dict[str, int] = {}
    alive = list(learned)
    for i, reps in enumerate(rungs):
        for name in alive:
            evaluate_cached(name, single_spec(name), reps, results.get(name))
            reached[name] = reps
        if i + 1 < len(rungs):
            alive = promote(alive, results, settings, rungs[i + 1] - reps)
    slowdown = 1.0 if settings.slowdown is None else settings.slowdown
    if settings.costs is not None and settings.slowdown is None:
        # Calibrate the price list on what the sweep really took (a busy machine, logging,
        # overheads): later plans use costs x slowdown.
        predicted = halving_seconds(settings.costs, alive, learned, settings)
        taken = time.perf_counter() - sweep_start - cache.prepare_seconds
        slowdown = float(np.clip(taken / predicted, 1.0, 10.0)) if predicted > 0 else 1.0

    ranked = sorted(alive, key=lambda n: results[n].summary()[metric])
    tunable = [n for n in ranked if CANDIDATES[n].tunable]
    to_tune = tunable[: settings.tune_top]
    trials = settings.tuning_trials
    if settings.tuning_seconds is not None and settings.costs is not None and to_tune:
        to_tune, trials = plan_trials(
            {k: v * slowdown for k, v in settings.costs.items()},
            tunable,
            settings.plan.folds,
            settings.plan.repeats,
            int(settings.tuning_trials or 0),
            settings.tuning_seconds,
            top=settings.tune_top,
        )
    per_candidate = {name: trials for name in to_tune}
    if settings.trials_by_candidate is not None:  # a replay: what the plan recorded
        per_candidate = {n: t for n, t in settings.trials_by_candidate.items() if t > 0}
        to_tune = list(per_candidate)
    tuned: dict[str, int] = {}
    earlier: dict[str, int] = {}
    studies: dict[str, str] = {}
    data_key = rows_key(X, y, splits, feature_set)
    for name in to_tune:
        if not per_candidate[name]:
            continue
        timeout = settings.tuning_timeout / len(to_tune) if settings.tuning_timeout else None
        prefix = study_prefix(metric, settings.study_prefix)
        study = study_name(prefix, feature_set.name, name, data_key)

        def scored(params, report, name=name):
            return cross_validate_cached(name, params, cache, repeats, report, metric=metric)

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
            evaluate=scored,
            metric=metric,
        )
        # The trials run, pruned ones included: what a replay (n_trials) must run again.
        # A study continued from storage chose among its earlier trials too: the honest
        # estimate and a replay tune with as many (not the same ones), so they measure the
        # procedure that chose the deployed model, not a lighter one.
        tuned[name], studies[name] = result.ran + result.earlier, result.study_name
        if result.earlier:
            earlier[name] = result.earlier
            log.info(
                "%s: continued study %s, %d earlier trials and %d now; replays tune with %d",
                name,
                result.study_name,
                result.earlier,
                result.ran,
                tuned[name],
            )
        if result.value < results[name].summary()[metric]:
            evaluate_cached(f"{name}_tuned", single_spec(name, result.params), repeats)
            reached[f"{name}_tuned"] = repeats

    # Blend the best distinct models of the last rung (tuned versions where tuning helped),
    # chosen forward: a member joins only when it lowers the blend's CV score by more than the
    # fold-to-fold noise of that gain.
    table = leaderboard(results, metric)
    full = [n for n in table.index if len(results[n].per_repeat) == repeats]
    best_of: dict[str, str] = {}
    for entry in full:
        base = specs[entry].get("name")
        if base in BASELINES or base is None or base in best_of:
            continue
        best_of[base] = entry
    members = forward_blend(
        list(best_of.values()),
        results,
        y_values,
        settings.blend_top,
        metric,
        splits if settings.blend_noise else None,
    )
    if len(members) >= 2:
        chosen = [[specs[m]["name"], specs[m]["params"]] for m in members]
        start = time.perf_counter()
        blended = blend_result([results[m] for m in members], y_values)  # type: ignore[misc]
        record(BLEND, {"kind": "blend", "members": chosen}, blended, start)
    top = list(best_of.values())[: settings.blend_top]
    if settings.stack and len(top) >= 2:  # the stack weighs the best few itself
        evaluate(
            STACK,
            {"kind": "stack", "members": [[specs[m]["name"], specs[m]["params"]] for m in top]},
        )

    order, choice = preference_order(results, splits, y_values, repeats, settings.one_se, metric)
    winner, fitted, gate = _first_monotone(X, y, feature_set, specs, order)
    return SelectionResult(
        results,
        specs,
        winner,
        fitted,
        settings.plan,
        gate,
        tuned,
        studies,
        slowdown,
        reached=reached,
        choice=choice if winner == order[0] else f"{choice}; {winner} passed the gate first",
        metric=metric,
        earlier=earlier,
    )


def forward_blend(
    ranked: list[str],
    results: dict[str, CVResult],
    y: np.ndarray,
    most: int,
    metric: str = "rmse",
    splits: list[list[Split]] | None = None,
) -> list[str]:
    """Return the blend's members: starting from the best, the candidate (of `ranked`, best
    first) whose addition lowers the equal-weight blend's CV `metric` most, until none does or
    `most` are in; blends cost nothing to score (fold_cache.blend_result).

    With `splits`, a member joins only when the gain beats its own noise: the mean per-fold
    improvement must exceed one standard error of the paired per-fold differences. Why: adding
    the member that helps most usually lowers the CV score a little on the folds that chose it,
    so without the bar a blend is nearly always built, and on the real sample the runs that chose
    such blends did worse on unseen sales (docs/concepts/honest-estimate.md).
    """
    if not ranked:
        return []
    members = [ranked[0]]

    def folds(names: list[str]) -> np.ndarray:
        blended = blend_result([results[n] for n in names], y)
        if splits is None:
            return blended.per_repeat[metric].to_numpy(dtype=float)
        return fold_values(blended, splits, y, metric)

    current = folds(members)
    while len(members) < most:
        trials = {n: folds([*members, n]) for n in ranked if n not in members}
        if not trials:
            break
        name = min(trials, key=lambda n: float(trials[n].mean()))
        gain = current[: len(trials[name])] - trials[name]
        noise = float(gain.std(ddof=1) / np.sqrt(gain.size)) if splits and gain.size > 1 else 0.0
        if gain.mean() <= noise:
            break
        members.append(name)
        current = trials[name]
    return members


def promote(
    alive: list[str], results: dict[str, CVResult], settings: SelectionSettings, more: int
) -> list[str]:
    """Return the candidates that go on to the next rung (in their original order): the best
    `keep` share by CV score (`settings.metric`), weakest dropped first; with costs, each
    enters in order of its score while the rung's allowance (`rung_seconds`, CPU seconds for
    `more` repeats) has room, so a strong candidate is kept unless it alone would overrun, and
    a cheaper one behind it may take its place."""
    by_score = sorted(alive, key=lambda n: results[n].summary()[settings.metric])
    room = max(2, int(np.ceil(len(alive) * settings.keep)))
    if settings.costs is None or settings.rung_seconds is None:
        kept = by_score[:room]
    else:
        kept, spent = [], 0.0
        for name in by_score:
            cost = settings.costs.get(name, 0.0) * settings.plan.folds * more
            if len(kept) < room and (not kept or spent + cost <= settings.rung_seconds):
                kept.append(name)
                spent += cost
    return [n for n in alive if n in kept]


def halving_seconds(
    costs: dict[str, float], alive: list[str], learned: list[str], settings: SelectionSettings
) -> float:
    """Predicted wall seconds of the halving sweep that ended with `alive` (for calibration)."""
    rungs = settings.rungs or (settings.plan.repeats,)
    first = cv_seconds(sum(costs.get(n, 0.0) for n in learned), settings.plan.folds, rungs[0])
    rest = settings.plan.repeats - rungs[0]
    return first + cv_seconds(sum(costs.get(n, 0.0) for n in alive), settings.plan.folds, rest)


def fold_se(
    result: CVResult, splits: list[list[Split]], y: np.ndarray, metric: str = "rmse"
) -> float:
    """Return the standard error of a candidate's CV `metric` across its folds (every fold of
    every repeat it ran): the noise a difference in CV score must beat to mean anything."""
    values = fold_values(result, splits, y, metric)
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def fold_values(
    result: CVResult, splits: list[list[Split]], y: np.ndarray, metric: str = "rmse"
) -> np.ndarray:
    """Return a candidate's CV `metric` on each test fold of each repeat it ran, in order: the
    units that paired comparisons between candidates (scored on the same splits) are made in."""
    values = []
    for r, folds in enumerate(splits[: len(result.oof)]):
        for _, test in folds:
            values.append(valuation_metrics(y[test], result.oof[r, test])[metric])
    return np.asarray(values, dtype=float)


def preference_order(
    results: dict[str, CVResult],
    splits: list[list[Split]],
    y: np.ndarray,
    repeats: int,
    one_se: bool = True,
    metric: str = "rmse",
) -> tuple[list[str], str]:
    """Return the entries in the order the winner is picked (the first that passes the gate)
    and the rule in words. With `one_se`, the entries within one standard error of the best CV
    `metric` come first: the blend (or stack), then the simplest single model; then the rest by
    score. Only entries scored on every repeat compete."""
    table = leaderboard(results, metric)
    full = [n for n in table.index if len(results[n].per_repeat) == repeats]
    rest = [n for n in table.index if n not in full]
    best = full[0]
    label = LABELS[metric]
    if not one_se:
        return full + rest, f"best CV {label} ({best})"
    se = fold_se(results[best], splits, y, metric)
    limit = float(table.loc[best, metric]) + se
    near = [n for n in full if float(table.loc[n, metric]) <= limit]
    near.sort(key=simplicity)
    choice = (
        f"within one standard error ({format_metric(metric, se)}) of the best CV {label} "
        f"({best}): "
        f"{', '.join(near)}; preferred {near[0]} (blends first, then the simplest)"
    )
    return near + [n for n in full if n not in near] + rest, choice


def simplicity(name: str) -> int:
    """Return a rank, lower for what is preferred among equals: blends, then simpler models."""
    if name in (BLEND, STACK):
        return 0 if name == BLEND else 1
    base = name.removesuffix("_tuned")
    return 2 + (SIMPLICITY.index(base) if base in SIMPLICITY else len(SIMPLICITY))


class NoMonotoneCandidateError(ValueError):
    """No candidate the selection ranked values every home at least as high for more living
    area: a ValueError, so `train` says it in one sentence (exit 2), naming each one's share."""

    def __init__(self, gate: dict[str, float]):
        self.gate = gate
        shares = ", ".join(f"{name} {100 * share:.0f}%" for name, share in gate.items())
        super().__init__(
            "no candidate passed the living-area monotonicity check (share of homes each "
            f"values lower for more living area: {shares}); add one that prices size "
            "smoothly, such as ridge or svr, to train.candidates in params.yaml"
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
    raise NoMonotoneCandidateError(gate)


def replay_settings(settings: SelectionSettings, done: SelectionResult) -> SelectionSettings:
    """Return the settings that re-run what `done` did, as a procedure: same CV plan, rungs,
    candidates, blend and choice rule, and the same tuning rule with the prices `done` used
    (calibrated by its measured slowdown), so every decision is a function of the rows alone
    (in memory, no clock). The nested estimate runs the procedure with these in every outer
    fold. Without prices (a replayed plan), as many candidates tuned with as many trials.
    When `done` continued a stored study (`--storage`), its winner was chosen among the
    study's earlier trials too: the replays then tune the same candidates with as many trials
    each (`done.tuned`) instead of the prices' plan, so they measure that procedure, not a
    lighter one."""
    if settings.costs is not None and settings.tuning_seconds is not None:
        continued = bool(done.earlier)
        return replace(
            settings,
            tuning_timeout=None,
            slowdown=done.slowdown,
            storage=None,
            show_progress=False,
            trials_by_candidate=dict(done.tuned) if continued else None,
            tune_top=len(done.tuned) if continued else settings.tune_top,
        )
    trials = min(done.tuned.values()) if done.tuned else 0
    return replace(
        settings,
        tune_top=len(done.tuned) if trials else 0,
        tuning_trials=trials or None,
        tuning_timeout=None,
        tuning_seconds=None,
        storage=None,
        show_progress=False,
        trials_by_candidate=None,
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
    # `{metric}_low`/`_high`: bootstrap intervals over the rows scored (metrics.metric_bounds)
    bounds: dict[str, float] = field(default_factory=dict)
    # Each row's out-of-fold valuation (NaN where no outer fold scored it) and its outer fold
    # (-1 likewise): what the procedure gives sales it never saw, for the champion rule.
    oof: np.ndarray | None = field(default=None, repr=False)
    fold_of: np.ndarray | None = field(default=None, repr=False)


def tuning_text(per_fold: list[dict[str, int]]) -> str:
    """Return what Optuna did inside the outer folds, in words, from each fold's trials per
    candidate tuned ("no tuning" when no fold tuned): in a budgeted run each fold plans its own
    trials from the prices, so the configured caps say nothing of what ran."""
    if not any(per_fold):
        return "no tuning"
    counts = Counter((name, trials) for fold in per_fold for name, trials in fold.items())
    parts = [
        f"{name} {trials} trial{'s' * (trials != 1)} in {n} of {len(per_fold)} folds"
        for (name, trials), n in sorted(counts.items())
    ]
    untuned = sum(1 for fold in per_fold if not fold)
    if untuned:
        parts.append(f"no tuning in {untuned}")
    return "tuned with Optuna (" + "; ".join(parts) + ")"


def describe_procedure(
    settings: SelectionSettings, tuned: list[dict[str, int]] | None = None
) -> str:
    """Return the procedure in words (what the nested loop re-runs), for the card: with
    `tuned` (each outer fold's trials per candidate), the tuning that ran; without, the
    settings' own."""
    if tuned is not None:
        tuning = tuning_text(tuned)
    elif settings.tune_top and settings.tuning_trials:
        tuning = (
            f"the best {settings.tune_top} tuned with {settings.tuning_trials} Optuna trials each"
        )
    else:
        tuning = "no tuning"
    rungs = settings.rungs or (settings.plan.repeats,)
    halving = (
        f" (successive halving: all on {rungs[0]} repeat(s), the best {settings.keep:.0%} on "
        f"{rungs[-1]})"
        if len(rungs) > 1
        else ""
    )
    choice = (
        "within one standard error of the best: blend, then the simplest"
        if settings.one_se
        else "the best CV RMSE"
    )
    return (
        f"{len(settings.candidates)} candidates ({', '.join(settings.candidates)}) on "
        f"{settings.plan.describe()}{halving}, {tuning}, a blend of up to "
        f"{settings.blend_top} of the best (a member joins when its gain beats the fold noise)"
        f"{' and the stack of the best ' + str(settings.blend_top) if settings.stack else ''}, "
        f"the winner {choice}, then the living-area monotonicity gate"
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
    fold_of = np.full(len(X), -1)
    winners = []
    tuned: list[dict[str, int]] = []  # each fold's trials per candidate: what the card says
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
        fold_of[test] = i
        winners.append(sel.winner)
        tuned.append(dict(sel.tuned))
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
        f"same procedure as the deployed model: {describe_procedure(settings, tuned)}"
    )
    truth, predicted = y.to_numpy()[scored], oof[scored]
    metrics = valuation_metrics(truth, predicted)
    bounds = metric_bounds(truth, predicted)
    return NestedEstimate(
        metrics, winners, method, done, len(folds), int(scored.sum()), bounds, oof, fold_of
    )


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
    # `{metric}_low`/`_high`: bootstrap intervals over the later sales (metrics.metric_bounds)
    bounds: dict[str, float] = field(default_factory=dict)


def time_ordered_estimate(
    X: pd.DataFrame,
    y: pd.Series,
    dates: pd.Series,
    feature_set: FeatureSet,
    settings: SelectionSettings,
    later_share: float = 0.3,
    found: tuple[Split, pd.Timestamp] | None = None,
) -> TimeOrderedEstimate | None:
    """Re-run `select_and_tune` with `settings` on the earlier sales (by `dates`) and score its
    winner on the later `later_share` of them; None without enough dated sales on both sides.
    The figure that says how well the procedure values next month's sales. `found`: the
    caller's time_ordered_split of the same dates and share (not parsed twice)."""
    found = found or time_ordered_split(dates, later_share)
    if found is None:
        return None
    (earlier, later), cut = found
    y = pd.Series(np.asarray(y, dtype=float), index=X.index)
    known = evidence_as_of(feature_set, cut)  # no contract signed after the cut
    sel = select_and_tune(X.iloc[earlier], y.iloc[earlier], known, settings)
    truth, predicted = y.iloc[later].to_numpy(), sel.fitted.predict(X.iloc[later])
    metrics = valuation_metrics(truth, predicted)
    day = cut.strftime("%Y-%m-%d")
    method = (
        f"time-ordered: the procedure run on the {len(earlier)} sales closed before {day}, "
        f"its winner scored on the {len(later)} closed from {day} on"
    )
    bounds = metric_bounds(truth, predicted)
    return TimeOrderedEstimate(metrics, sel.winner, day, len(earlier), len(later), method, bounds)
