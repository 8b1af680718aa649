"""Conformal price ranges with MAPIE: multiplicative (gamma score |y - y_hat| / y_hat), so a range
scales with the price, at several confidence levels carried in one fitted object.

`compare_variants` measures each variant's coverage and median relative width by an outer CV
loop (rows scored there never calibrate the ranges they are scored with) and `choose_variant`
picks the narrowest one that keeps the promised coverage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from mapie.regression import CrossConformalRegressor, JackknifeAfterBootstrapRegressor
from sklearn.base import clone
from sklearn.model_selection import KFold

from homevision.modeling.evaluation import CVPlan

VARIANTS = ("cv_base", "cv_plus", "cv_minmax", "jackknife_plus_ab")
# Variants whose range is the full-data valuation times a constant factor per level: a model
# can then serve ranges at the cost of one point prediction.
CONSTANT_FACTOR = frozenset({"cv_base"})


def make_conformal(variant: str, estimator, levels: list[float], seed: int = 0):
    """Return an unfitted MAPIE regressor of the named variant around `estimator`."""
    if variant in ("cv_base", "cv_plus", "cv_minmax"):
        return CrossConformalRegressor(
            clone(estimator),
            confidence_level=list(levels),
            conformity_score="gamma",
            method=variant.removeprefix("cv_"),
            cv=KFold(5, shuffle=True, random_state=seed),
        )
    if variant == "jackknife_plus_ab":
        return JackknifeAfterBootstrapRegressor(
            clone(estimator),
            confidence_level=list(levels),
            conformity_score="gamma",
            method="plus",
            resampling=20,
            random_state=seed,
        )
    raise ValueError(f"unknown interval variant {variant!r}; choose one of {', '.join(VARIANTS)}")


def constant_factors(conformal, X: pd.DataFrame, levels: list[float]) -> dict[float, tuple]:
    """Return {level: (low / valuation, high / valuation)} of a constant-factor variant,
    checking on the given rows that the factors are indeed the same for every row."""
    point = np.asarray(conformal.predict(X), dtype=float)
    factors = {}
    for level, bounds in interval_bounds(conformal, X, levels).items():
        ratios = bounds / point[:, None]
        if not np.allclose(ratios, ratios[0], rtol=1e-9, atol=0):
            raise ValueError("interval factors vary across rows: not a constant-factor variant")
        factors[level] = (float(ratios[0, 0]), float(ratios[0, 1]))
    return factors


def interval_bounds(conformal, X: pd.DataFrame, levels: list[float]) -> dict[float, np.ndarray]:
    """Return {level: array (n, 2) of low, high} from a fitted MAPIE regressor."""
    _, pis = conformal.predict_interval(X)
    return {level: pis[:, :, i] for i, level in enumerate(levels)}


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
