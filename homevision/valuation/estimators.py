"""Meta-estimators that make flexible models behave like valuation models: a living-area trend
they cannot forget, and monotonic constraints for trees."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted


class SqftElasticityTarget(RegressorMixin, BaseEstimator):
    """Fit `estimator` on the log price left over after a log-log living-area trend, and add
    the trend back: price = exp(a + b * log(SqFtTotal) + f(x)).

    The elasticity b is the least-squares slope of log price on log living area in the training
    rows (clipped to [0.2, 1.5]); `elasticity` fixes it instead (1.0: model log $/sqft). Flexible
    models (trees, kernels, networks) revert to their mean far from the data, so without the
    trend they would value a bigger home than any they saw like an average one; with it, more
    living area keeps meaning more dollars.

    `evidence` (an AskingEvidence) adds listings under contract to the rows fitted, priced from
    the training sales' sale-to-list ratio (homevision.valuation.evidence).
    """

    def __init__(
        self,
        estimator=None,
        sqft: str = "SqFtTotal",
        elasticity: float | None = None,
        evidence=None,
    ):
        self.estimator = estimator
        self.sqft = sqft
        self.elasticity = elasticity
        self.evidence = evidence

    def _log_sqft(self, X: pd.DataFrame) -> np.ndarray:
        return np.log(pd.to_numeric(X[self.sqft], errors="coerce").to_numpy(float))

    def trend(self, X: pd.DataFrame, y) -> tuple[float, np.ndarray]:
        """Return (elasticity, log price less the trend) of training rows: what the inner
        estimator is fitted on (the selection's fold cache computes it once per fold)."""
        log_y, log_s = np.log(np.asarray(y, dtype=float)), self._log_sqft(X)
        if self.elasticity is None:
            slope = np.polyfit(log_s, log_y, 1)[0] if np.ptp(log_s) > 0 else 1.0
            elasticity = float(np.clip(slope, 0.2, 1.5))
        else:
            elasticity = float(self.elasticity)
        return elasticity, log_y - elasticity * log_s

    def fit(self, X: pd.DataFrame, y):
        sales = len(X)
        if self.evidence is not None:
            X, y = self.evidence.augment(X, y)
        self.evidence_rows_ = len(X) - sales  # listings under contract fitted beside the sales
        self.elasticity_, target = self.trend(X, y)
        self.estimator_ = clone(self.estimator).fit(X, target)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return to_price(self.estimator_.predict(X) + self.elasticity_ * self._log_sqft(X))


LOG_PRICE_MIN, LOG_PRICE_MAX = np.log(1.0), np.log(1e10)  # $1 .. $10 billion


def to_price(log_price: np.ndarray) -> np.ndarray:
    """Return dollars from log prices, kept positive and finite even for absurd inputs
    (conformal scores need > 0): $1 to $10 billion."""
    # maximum/minimum rather than np.clip: the same values (NaN stays NaN), a third the cost
    # on the one-listing calls the API makes.
    return np.exp(np.minimum(np.maximum(log_price, LOG_PRICE_MIN), LOG_PRICE_MAX))


# Third-party boosters name the parameter differently from scikit-learn's trees.
_BOOSTERS = frozenset({"XGBRegressor", "LGBMRegressor", "CatBoostRegressor"})


class MonotoneInSqft(RegressorMixin, BaseEstimator):
    """Fit a tree model under monotonic constraints so that more living area never lowers its
    output: non-decreasing in features named after living area, non-increasing in the
    lot-to-living ratio (which falls as living area grows). The constraint vector is built from
    the feature names the model receives, so it follows whatever the preprocessor produced."""

    def __init__(
        self,
        regressor=None,
        increasing=("SqFtTotal", "sqft_per_bed"),
        decreasing=("lot_to_living",),
    ):
        self.regressor = regressor
        self.increasing = increasing
        self.decreasing = decreasing

    def constraints(self, columns) -> list[int]:
        """Return +1 / -1 / 0 per feature name."""
        return [
            1
            if any(k in c for k in self.increasing)
            else -1
            if any(k in c for k in self.decreasing)
            else 0
            for c in columns
        ]

    def fit(self, X: pd.DataFrame, y):
        regressor = clone(self.regressor)
        kind = type(regressor).__name__
        name = "monotone_constraints" if kind in _BOOSTERS else "monotonic_cst"
        cst = self.constraints(list(X.columns))
        regressor.set_params(
            **{name: tuple(cst) if type(regressor).__name__ == "XGBRegressor" else cst}
        )
        self.regressor_ = regressor.fit(X, y)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "regressor_")
        return self.regressor_.predict(X)
