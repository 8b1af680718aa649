"""Choosing a conformal variant: each variant's coverage and median relative width measured by
an outer CV loop (rows scored there never calibrate the ranges they are scored with), and the
narrowest one that keeps the promised coverage picked."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning

from homevision.training.evaluation import CVPlan, time_ordered_split
from homevision.valuation.evidence import as_of
from homevision.valuation.intervals import (
    CONSTANT_FACTOR,
    calibration_rows_needed,
    interval_bounds,
    make_conformal,
)


@dataclass
class IntervalScore:
    """A variant's measured coverage and median relative width ((high - low) / point)."""

    variant: str
    level: float
    coverage: float
    median_relative_width: float


def _levels(level: float | Sequence[float]) -> list[float]:
    return [float(level)] if isinstance(level, int | float) else [float(v) for v in level]


def _score(variant, level, truth, bounds, point) -> IntervalScore:
    covered = (truth >= bounds[:, 0]) & (truth <= bounds[:, 1])
    width = (bounds[:, 1] - bounds[:, 0]) / point
    return IntervalScore(variant, level, float(covered.mean()), float(np.median(width)))


def sales_needed(variant: str, levels: list[float], outer_folds: int) -> int:
    """Return the fewest sales whose every outer training fold (all but about 1/`outer_folds`
    of them) can calibrate `variant` at every one of `levels` (compare_variants needs this)."""
    rows = calibration_rows_needed(variant, levels)
    sales = rows
    while sales - math.ceil(sales / outer_folds) < rows:
        sales += 1
    return sales


def compare_variants(
    estimator,
    X: pd.DataFrame,
    y: pd.Series,
    variants: list[str],
    level: float | Sequence[float],
    outer_folds: int = 5,
    seed: int = 0,
    n_jobs: int = 2,
) -> list[IntervalScore]:
    """Measure each variant at each level by outer CV: calibrate on the training folds, score
    the held-out fold; one IntervalScore per (variant, level), pooled over folds.

    The outer folds run on `n_jobs` processes. Why: MAPIE fits a fold's models one after
    another, so run in turn a costly winner's comparison took several times what the budget
    planner (which prices it on both cores) allowed; each fold is independent and seeded, so
    the scores do not depend on `n_jobs`."""
    levels = _levels(level)
    y = pd.Series(np.asarray(y, dtype=float), index=X.index)
    folds = CVPlan(folds=outer_folds, repeats=1, seed=seed + 11).splits(y)[0]
    truth = y.to_numpy()
    scores = []
    with Parallel(n_jobs=n_jobs) as parallel:
        for variant in variants:
            bounds = {lv: np.zeros((len(X), 2)) for lv in levels}
            point = np.zeros(len(X))
            done = parallel(
                delayed(_fold_bounds)(variant, estimator, X, y, split, levels, seed)
                for split in folds
            )
            for test, fold_point, fold_bounds in done:
                point[test] = fold_point
                for lv, b in fold_bounds.items():
                    bounds[lv][test] = b
            scores += [_score(variant, lv, truth, bounds[lv], point) for lv in levels]
    return scores


def _fold_bounds(variant, estimator, X, y, split, levels, seed):
    """Return one outer fold's held-out rows, their valuations and their bounds per level,
    the variant calibrated on the fold's training rows."""
    train, test = split
    with warnings.catch_warnings():
        # A model that did not converge is judged by its coverage, not by a console warning.
        warnings.simplefilter("ignore", ConvergenceWarning)
        conformal = make_conformal(variant, estimator, levels, seed)
        conformal.fit_conformalize(X.iloc[train], y.iloc[train])
    point = conformal.predict(X.iloc[test])
    return test, point, interval_bounds(conformal, X.iloc[test], levels)


def time_ordered_scores(
    estimator,
    X: pd.DataFrame,
    y: pd.Series,
    dates: pd.Series,
    variant: str,
    level: float | Sequence[float],
    later_share: float = 0.3,
    seed: int = 0,
) -> list[IntervalScore]:
    """Calibrate on the earlier sales (by `dates`) and score the later `later_share` of them:
    how well the ranges hold for next month's sales rather than for a random fold. Returns []
    when there are no usable dates or too few rows on either side (the earlier side must
    calibrate the variant at every level)."""
    levels = _levels(level)
    earliest = max(30, calibration_rows_needed(variant, levels))
    found = time_ordered_split(dates, later_share, min_earlier=earliest, min_later=10)
    if found is None:
        return []
    (earlier, later), cut = found
    y = pd.Series(np.asarray(y, dtype=float), index=X.index)
    conformal = make_conformal(variant, as_of(estimator, cut), levels, seed)
    conformal.fit_conformalize(X.iloc[earlier], y.iloc[earlier])
    point = conformal.predict(X.iloc[later])
    truth = y.iloc[later].to_numpy()
    return [
        _score(variant, lv, truth, b, point)
        for lv, b in interval_bounds(conformal, X.iloc[later], levels).items()
    ]


def carried_levels(scores: list[IntervalScore], tolerance: float) -> list[float]:
    """Return the levels whose measured coverage reaches the level (minus `tolerance`): a level
    that falls short is not carried, so no range is served at a probability never met."""
    return sorted(s.level for s in scores if s.coverage >= s.level - tolerance)


def choose_variant(
    scores: list[IntervalScore], tolerance: float, fast_within: float = 0.0
) -> IntervalScore:
    """Return the narrowest variant whose coverage reaches the level (minus `tolerance`), else
    the best-covering one. A constant-factor variant (served at the cost of one prediction)
    is preferred when its width is within `fast_within` (relative) of the narrowest."""
    qualified = [s for s in scores if s.coverage >= s.level - tolerance]
    if not qualified:
        return max(scores, key=lambda s: s.coverage)
    narrowest = min(qualified, key=lambda s: s.median_relative_width)
    fast = [
        s
        for s in qualified
        if s.variant in CONSTANT_FACTOR
        and s.median_relative_width <= narrowest.median_relative_width * (1 + fast_within)
    ]
    return min(fast, key=lambda s: s.median_relative_width) if fast else narrowest
