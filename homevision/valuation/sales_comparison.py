"""The sales-comparison approach as a model: value a home from its nearest sales, each adjusted
to the home by hedonic coefficients, weighted by similarity.

An appraiser picks the k sales most like the subject, adjusts each sale's price for every way
it differs (a coefficient per feature: dollars per extra bathroom, per square foot...), and
reconciles the adjusted prices, trusting the closest sales most. With a linear hedonic model
fitted on the training sales (coefficients b, intercept a), sale j adjusted to the subject q is

    y_j + b.(x_q - x_j)  =  (a + b.x_q) + (y_j - a - b.x_j)  =  hedonic(q) + residual_j,

so the model is the hedonic value plus a similarity-weighted mean of the comparables'
residuals: what the hedonic model misses about homes like this one (a street, a view, a
builder), carried over from the sales that share it. Similarity is measured in a learned
metric: each feature counts in proportion to its hedonic coefficient (differences that move the
price matter; the rest do not), so homes in the same well-supported subdivision or school are
near each other whenever the location coefficients matter.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import VotingRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted


class SalesComparison(RegressorMixin, BaseEstimator):
    """Hedonic ridge + the similarity-weighted residuals of the `n_comps` nearest sales.

    `alpha`: ridge penalty of the hedonic adjustments; `n_comps`: comparables per home;
    `shrink`: how much of the comparables' mean residual is carried over (0: the hedonic model
    alone, 1: all of it); `bandwidth`: similarity weight exp(-(d / (bandwidth * d_k))^2), d_k the
    distance of the k-th comparable, so the closest sales weigh most.
    """

    def __init__(
        self,
        alpha: float = 3.0,
        n_comps: int = 8,
        shrink: float = 0.7,
        bandwidth: float = 1.0,
    ):
        self.alpha = alpha
        self.n_comps = n_comps
        self.shrink = shrink
        self.bandwidth = bandwidth

    def fit(self, X, y):
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        hedonic = Ridge(alpha=self.alpha).fit(X, y)
        self.coef_ = np.asarray(hedonic.coef_, dtype=float)
        self.intercept_ = float(hedonic.intercept_)
        self.metric_ = np.abs(self.coef_)  # the learned metric: per-feature price effect
        self.sales_ = X * self.metric_
        self.residuals_ = y - (X @ self.coef_ + self.intercept_)
        self.n_features_in_ = X.shape[1]
        return self

    def nearest(self, X, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return (rows of the training sales, squared distances), each (n, k): every home's
        `k` (default `n_comps`) nearest sales in the learned metric, nearest first."""
        check_is_fitted(self, "sales_")
        points = np.asarray(X, dtype=float) * self.metric_
        k = int(min(max(1, k or self.n_comps), len(self.sales_)))
        # Squared distances to every sale: |p|^2 - 2 p.s + |s|^2, clipped at 0 against rounding.
        d2 = (points * points).sum(axis=1)[:, None] - 2.0 * points @ self.sales_.T
        d2 += (self.sales_ * self.sales_).sum(axis=1)[None, :]
        np.maximum(d2, 0.0, out=d2)
        rows = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < d2.shape[1] else np.argsort(d2, 1)
        near = np.take_along_axis(d2, rows, axis=1)
        order = np.argsort(near, axis=1, kind="stable")
        return np.take_along_axis(rows, order, 1), np.take_along_axis(near, order, 1)

    def comparables(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Return (rows of the training sales, weights), each (n, k): every home's comparables,
        nearest first, and their similarity weights (summing to 1 per home)."""
        rows, near = self.nearest(X)
        scale = self.bandwidth**2 * np.maximum(near[:, -1:], 1e-12)
        weights = np.exp(-near / scale)
        weights /= weights.sum(axis=1, keepdims=True)
        return rows, weights

    def predict(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        rows, weights = self.comparables(X)
        carried = (self.residuals_[rows] * weights).sum(axis=1)
        return X @ self.coef_ + self.intercept_ + self.shrink * carried


def find_sales_comparison(estimator: object) -> tuple[Pipeline, SalesComparison] | None:
    """Return (fitted feature pipeline, SalesComparison) when a fitted valuation estimator is
    the comparable-sales model or a blend with it as a member; else None. The explanation
    then shows the comparables that model used."""
    inner = getattr(estimator, "estimator_", None)  # SqftElasticityTarget's fitted model
    members = inner.estimators_ if isinstance(inner, VotingRegressor) else [inner]
    for member in members:
        if isinstance(member, Pipeline) and isinstance(member.steps[-1][1], SalesComparison):
            return member[:-1], member.steps[-1][1]
    return None
