"""Conformal price ranges with MAPIE: multiplicative (gamma score |y - y_hat| / y_hat), so a range
scales with the price, at several confidence levels carried in one fitted object.

How a variant is chosen (measured by outer CV) lives in homevision.training.interval_choice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from mapie.regression import CrossConformalRegressor, JackknifeAfterBootstrapRegressor
from sklearn.base import clone
from sklearn.model_selection import KFold

from homevision.valuation import quantiles

VARIANTS = ("cv_base", "cv_plus", "cv_minmax", "jackknife_plus_ab")
# Variants whose range is the full-data valuation times a constant factor per level: a model
# can then serve ranges at the cost of one point prediction.
CONSTANT_FACTOR = frozenset({"cv_base"})
# Rows per MAPIE call when computing ranges (see interval_bounds).
BLOCK_ROWS = 8192


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


def interval_bounds(
    conformal, X: pd.DataFrame, levels: list[float], block_rows: int = BLOCK_ROWS
) -> dict[float, np.ndarray]:
    """Return {level: array (n, 2) of low, high} from a fitted MAPIE regressor (its quantiles
    vectorised: homevision.valuation.quantiles). Rows go through MAPIE `block_rows` at a time:
    CV+ and jackknife+ build a (rows x calibration sales) matrix per bound, so memory stays
    bounded by the block, not by the batch."""
    quantiles.install()
    blocks = []
    for start in range(0, max(len(X), 1), block_rows):
        stop = start + block_rows
        part = X.iloc[start:stop] if isinstance(X, pd.DataFrame) else X[start:stop]
        blocks.append(conformal.predict_interval(part)[1])
    pis = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return {level: pis[:, :, i] for i, level in enumerate(levels)}
