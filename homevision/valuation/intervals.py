"""Conformal price ranges with MAPIE: multiplicative (gamma score |y - y_hat| / y_hat), so a range
scales with the price, at several confidence levels carried in one fitted object.

How a variant is chosen (measured by outer CV) lives in homevision.training.interval_choice.
"""

from __future__ import annotations

import logging
import math
import warnings
from decimal import Decimal

import numpy as np
import pandas as pd
from mapie.regression import (
    ConformalizedQuantileRegressor,
    CrossConformalRegressor,
    JackknifeAfterBootstrapRegressor,
)
from sklearn.base import clone
from sklearn.model_selection import KFold, train_test_split
from sklearn.pipeline import Pipeline

from homevision.valuation import cv_plus, quantiles
from homevision.valuation.estimators import SqftElasticityTarget

VARIANTS = ("cv_base", "cv_plus", "cv_minmax", "jackknife_plus_ab", "cqr")
CQR_CONFORMALIZE_SHARE = 0.3  # of the rows: held out to conformalize the quantile models


class _QuietSorting(logging.Filter):
    """MAPIE's quantile regressor reports "The predictions are ill-sorted." on the root logger
    at INFO whenever a lower quantile crosses an upper one on some row (it then sorts them);
    per batch that is noise, not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "The predictions are ill-sorted."


logging.getLogger().addFilter(_QuietSorting())
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
    if variant == "cqr":
        return QuantileConformal(estimator, list(levels), seed)
    raise ValueError(f"unknown interval variant {variant!r}; choose one of {', '.join(VARIANTS)}")


def feature_step(estimator) -> object:
    """Return the (unfitted) feature pipeline of a valuation model: its own, or its first
    member's for a blend or a stack; ValueError when it has none (a rule-of-thumb baseline)."""
    inner = getattr(estimator, "estimator", estimator)
    members = (
        [inner] if isinstance(inner, Pipeline) else [e for _, e in getattr(inner, "estimators", [])]
    )
    for member in members:  # a baseline's "features" only selects columns: not a pipeline
        if isinstance(member, Pipeline) and isinstance(
            member.named_steps.get("features"), Pipeline
        ):
            return member.named_steps["features"]
    raise ValueError(f"{type(inner).__name__} has no feature pipeline to build quantile models on")


def applicable_variants(estimator, variants: list[str]) -> tuple[list[str], dict[str, str]]:
    """Return (the variants that can range this estimator, in order; why each other one
    cannot): CQR builds its quantile models on the model's feature pipeline, which a
    rule-of-thumb baseline has none of."""
    kept, why = [], {}
    for variant in variants:
        if variant == "cqr":
            try:
                feature_step(estimator)
            except ValueError as err:
                why[variant] = str(err)
                continue
        kept.append(variant)
    return kept, why


def scores_needed(variant: str, levels: list[float]) -> int:
    """Return how many conformity scores MAPIE asks for before `variant` ranges at every one
    of `levels`: at least 1/alpha and 1/(1 - alpha), where alpha is 1 - level (20 at 95%), or
    half of it for CQR, whose bounds are conformalized one tail at a time (40 at 95%). Alpha
    is taken in decimal, as MAPIE takes it (1 - 0.9 in floats would ask for 11 scores)."""
    alphas = [float(Decimal(1) - Decimal(str(lv))) for lv in levels]
    alphas = [a / 2 for a in alphas] if variant == "cqr" else alphas
    return math.ceil(max(max(1 / a, 1 / (1 - a)) for a in alphas))


def calibration_scores(variant: str, rows: int) -> int:
    """Return the conformity scores MAPIE counts when `variant` is calibrated on `rows` rows:
    CQR conformalizes on its held-out share of them; the cross-conformal variants score every
    row out of fold, but the gamma score is not symmetric, so MAPIE counts half of them for
    each bound."""
    if variant == "cqr":
        return math.ceil(CQR_CONFORMALIZE_SHARE * rows)
    return rows // 2


def calibration_rows_needed(variant: str, levels: list[float]) -> int:
    """Return the fewest rows `variant` can be calibrated on at every one of `levels`."""
    needed, rows = scores_needed(variant, levels), 1
    while calibration_scores(variant, rows) < needed:
        rows += 1
    return rows


class QuantileConformal:
    """Conformalized quantile regression (MAPIE's ConformalizedQuantileRegressor, Romano et
    al. 2019) at several levels, shaped like the other variants (`fit_conformalize`,
    `predict`, `predict_interval` giving (point, (rows, 2, levels))).

    The quantile models are LightGBM with the pinball loss, on the valuation model's
    own features, in log price beyond the living-area trend (quantiles survive the log). They
    are fitted on 70% of the rows; the other 30% conformalize them, which is the price of the
    method: a split, where the cross-conformal variants use every row both ways."""

    def __init__(self, estimator, levels: list[float], seed: int = 0):
        self.estimator = estimator
        self.levels = list(levels)
        self.seed = seed

    def _quantile_model(self, q: float) -> SqftElasticityTarget:
        from lightgbm import LGBMRegressor  # pinball loss in C++: 10x scikit-learn's boosting

        booster = LGBMRegressor(
            objective="quantile",
            alpha=q,
            n_estimators=100,
            learning_rate=0.05,
            num_leaves=8,
            min_child_samples=8,
            n_jobs=1,
            random_state=self.seed,
            verbose=-1,
        )
        features = clone(feature_step(self.estimator))
        return SqftElasticityTarget(Pipeline([("features", features), ("model", booster)]))

    def fit_conformalize(self, X: pd.DataFrame, y) -> QuantileConformal:
        """Fit the median and each level's two quantile models on one part of the rows and
        conformalize each level on the rest; returns self."""
        y = np.asarray(y, dtype=float)
        fit_rows, cal_rows = train_test_split(
            np.arange(len(y)), test_size=CQR_CONFORMALIZE_SHARE, random_state=self.seed
        )
        X_fit, y_fit = X.iloc[fit_rows], y[fit_rows]
        self.median_ = self._quantile_model(0.5).fit(X_fit, y_fit)
        self.by_level_ = {}
        for level in self.levels:
            low = self._quantile_model((1 - level) / 2).fit(X_fit, y_fit)
            high = self._quantile_model((1 + level) / 2).fit(X_fit, y_fit)
            cqr = ConformalizedQuantileRegressor(
                [low, high, self.median_], confidence_level=level, prefit=True
            )
            with warnings.catch_warnings():  # MAPIE's fitted-check does not know our wrapper
                warnings.filterwarnings("ignore", "Estimator does not appear fitted")
                self.by_level_[level] = cqr.conformalize(X.iloc[cal_rows], y[cal_rows])
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Return the median model's valuation (dollars)."""
        return self.median_.predict(X)

    def predict_interval(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Return (median valuation, bounds of shape (rows, 2, levels)) in dollars, nested:
        each level's range holds every narrower level's (`nested`)."""
        bounds = [self.by_level_[lv].predict_interval(X)[1][:, :, 0] for lv in self.levels]
        return self.predict(X), nested(np.stack(bounds, axis=2), self.levels)


def nested(bounds: np.ndarray, levels: list[float]) -> np.ndarray:
    """Return bounds (rows, 2, levels) widened so that a higher level's range contains every
    lower level's: lows as a running minimum from the narrowest level up, highs as a running
    maximum. CQR fits and conformalizes separate quantile models per level, which can cross
    (a 95% range narrower than the 90% one); widening keeps each level's coverage."""
    order = np.argsort(levels, kind="stable")
    out = np.empty_like(bounds)
    out[:, 0, order] = np.minimum.accumulate(bounds[:, 0, order], axis=1)
    out[:, 1, order] = np.maximum.accumulate(bounds[:, 1, order], axis=1)
    return out


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
    conformal,
    X: pd.DataFrame,
    levels: list[float],
    block_rows: int = BLOCK_ROWS,
    wanted: float | None = None,
) -> dict[float, np.ndarray]:
    """Return {level: array (n, 2) of low, high} from a fitted MAPIE regressor: CV+ by order
    selection without MAPIE's matrix (homevision.valuation.cv_plus), the others through MAPIE
    with its quantiles vectorised (homevision.valuation.quantiles). Rows go `block_rows` at a
    time: jackknife+ builds a (rows x calibration sales) matrix per bound, so memory stays
    bounded by the block, not by the batch. With `wanted` (one of `levels`), only that level
    is sure to be returned: CV+ then computes it alone."""
    quantiles.install()
    fast = cv_plus.plan(conformal)
    only = None if wanted is None else [list(levels).index(wanted)]
    blocks = []
    for start in range(0, max(len(X), 1), block_rows):
        stop = start + block_rows
        part = X.iloc[start:stop] if isinstance(X, pd.DataFrame) else X[start:stop]
        pis = fast.bounds(part, only) if fast is not None else None
        blocks.append(conformal.predict_interval(part)[1] if pis is None else pis)
    pis = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return {level: pis[:, :, i] for i, level in enumerate(levels) if wanted in (None, level)}
