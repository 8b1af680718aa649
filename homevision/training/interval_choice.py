"""Choosing a conformal variant: each variant's coverage and median relative width measured by
an outer CV loop (rows scored there never calibrate the ranges they are scored with), and the
narrowest one that keeps the promised coverage picked."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from homevision.training.evaluation import CVPlan
from homevision.valuation.intervals import CONSTANT_FACTOR, interval_bounds, make_conformal


@dataclass
class IntervalScore:
    """A variant's measured coverage and median relative width ((high - low) / point)."""

    variant: str
    level: float
    coverage: float
    median_relative_width: float


def compare_variants(
    estimator,
    X: pd.DataFrame,
    y: pd.Series,
    variants: list[str],
    level: float,
    outer_folds: int = 5,
    seed: int = 0,
) -> list[IntervalScore]:
    """Measure each variant by outer CV: calibrate on the training folds, score the test fold."""
    y = pd.Series(np.asarray(y, dtype=float), index=X.index)
    folds = CVPlan(folds=outer_folds, repeats=1, seed=seed + 11).splits(y)[0]
    scores = []
    for variant in variants:
        covered, widths = np.zeros(len(X), bool), np.zeros(len(X))
        for train, test in folds:
            conformal = make_conformal(variant, estimator, [level], seed)
            conformal.fit_conformalize(X.iloc[train], y.iloc[train])
            point = conformal.predict(X.iloc[test])
            bounds = interval_bounds(conformal, X.iloc[test], [level])[level]
            truth = y.iloc[test].to_numpy()
            covered[test] = (truth >= bounds[:, 0]) & (truth <= bounds[:, 1])
            widths[test] = (bounds[:, 1] - bounds[:, 0]) / point
        scores.append(
            IntervalScore(variant, level, float(covered.mean()), float(np.median(widths)))
        )
    return scores


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
