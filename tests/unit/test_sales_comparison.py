"""The sales-comparison model: hedonic value plus the similarity-weighted residuals of the
nearest sales, in a metric weighted by the hedonic coefficients."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import Ridge

from homevision.valuation.sales_comparison import SalesComparison


def _data(seed: int = 0, n: int = 80):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = X @ np.array([1.0, 0.5, 0.0]) + rng.normal(0, 0.1, n)
    return X, y


def test_without_carrying_residuals_it_is_the_hedonic_ridge():
    X, y = _data()
    model = SalesComparison(alpha=2.0, shrink=0.0).fit(X, y)
    np.testing.assert_allclose(model.predict(X), Ridge(alpha=2.0).fit(X, y).predict(X))


def test_each_comparable_is_adjusted_to_the_subject_by_the_coefficients():
    X, y = _data()
    model = SalesComparison(alpha=1.0, n_comps=5, shrink=1.0).fit(X, y)
    subject = X[:1] + 0.05
    rows, weights = model.comparables(subject)
    adjusted = y[rows[0]] + (subject - X[rows[0]]) @ model.coef_  # the appraiser's grid
    assert np.isclose(model.predict(subject)[0], np.sum(weights[0] * adjusted))


def test_comparables_are_nearest_first_in_the_learned_metric_and_weights_sum_to_one():
    X, y = _data()
    model = SalesComparison(n_comps=6).fit(X, y)
    rows, weights = model.comparables(X[:10])
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert (np.diff(weights, axis=1) <= 1e-12).all()  # closer sales weigh more
    assert (rows[:, 0] == np.arange(10)).all()  # a sale's nearest sale is itself
    # The third feature has no price effect: moving along it changes no comparable.
    moved = X[:10].copy()
    moved[:, 2] += 5.0
    np.testing.assert_array_equal(model.comparables(moved)[0], rows)


def test_a_local_premium_is_carried_to_homes_near_it():
    X, y = _data(n=120)
    premium = X[:, 0] > 1.0
    y = y + 0.5 * (premium & (X[:, 1] > 0))  # something the linear model cannot express
    inside = premium & (X[:, 1] > 0)
    held = np.flatnonzero(inside)[:4]  # four homes of the premium area, held out
    train = np.setdiff1d(np.arange(len(y)), held)
    model = SalesComparison(alpha=1.0, n_comps=5, shrink=1.0).fit(X[train], y[train])
    hedonic = Ridge(alpha=1.0).fit(X[train], y[train])
    assert len(held) == 4
    comps = np.abs(model.predict(X[held]) - y[held]).mean()
    assert comps < np.abs(hedonic.predict(X[held]) - y[held]).mean()
