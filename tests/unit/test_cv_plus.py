"""CV+ ranges by order selection are MAPIE's ranges, number for number."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.tree import DecisionTreeRegressor

from homevision.valuation import cv_plus, quantiles
from homevision.valuation.intervals import interval_bounds, make_conformal

LEVELS = [0.5, 0.8, 0.9, 0.95]


def _market(rows: int, seed: int, ties: bool = False):
    rng = np.random.default_rng(seed)
    X = rng.uniform(1, 5, size=(rows, 3))
    y = np.exp(11 + X @ np.array([0.2, 0.1, 0.05]) + rng.normal(0, 0.15, rows))
    if ties:  # repeated sales: equal scores within and across folds
        X[rows // 2 :], y[rows // 2 :] = X[: rows - rows // 2], y[: rows - rows // 2]
        y = np.round(y, -4)
    return X, y


def _mapie(conformal, X, monkeypatch) -> np.ndarray:
    """MAPIE's own bounds: its matrix and its own quantile function."""
    import mapie.conformity_scores.regression as reg

    with monkeypatch.context() as patch:
        patch.setattr(reg, "_compute_regression_quantile", quantiles._MAPIE_QUANTILE)
        return conformal.predict_interval(X)[1]


def _assert_equal(fast: dict, slow: np.ndarray) -> None:
    for i, level in enumerate(LEVELS):
        np.testing.assert_array_equal(fast[level], slow[:, :, i])


@pytest.mark.parametrize(
    "rows, seed, ties, estimator",
    [
        (40, 0, False, Ridge()),
        (178, 1, False, Ridge()),
        (178, 2, True, Ridge()),
        (3000, 3, False, Ridge()),
        (300, 4, True, DecisionTreeRegressor(max_depth=3, random_state=0)),  # steps: ties
    ],
)
def test_equals_mapie(rows, seed, ties, estimator, monkeypatch):
    X, y = _market(rows, seed, ties)
    conformal = make_conformal("cv_plus", estimator, LEVELS, seed=seed).fit_conformalize(X, y)
    assert cv_plus.plan(conformal) is not None
    homes = np.vstack([_market(500, seed + 100)[0], X[:50], [[0.0, 9.0, -3.0], [40, 40, 40]]])
    _assert_equal(interval_bounds(conformal, homes, LEVELS), _mapie(conformal, homes, monkeypatch))


def test_rows_outside_the_window_take_the_full_partition(monkeypatch):
    X, y = _market(600, 5)
    conformal = make_conformal("cv_plus", Ridge(), LEVELS, seed=0).fit_conformalize(X, y)
    homes = _market(300, 6)[0] * np.linspace(0.2, 8, 300)[:, None]  # fold models drift apart
    slow = _mapie(conformal, homes, monkeypatch)
    for widths in ((), (0,), (1, 2), (3,)):
        monkeypatch.setattr(cv_plus, "HALF_WIDTHS", widths)
        _assert_equal(interval_bounds(conformal, homes, LEVELS), slow)


def test_other_variants_keep_mapies_path():
    X, y = _market(120, 7)
    for variant in ("cv_base", "cv_minmax", "jackknife_plus_ab"):
        conformal = make_conformal(variant, Ridge(), LEVELS, seed=0).fit_conformalize(X, y)
        assert cv_plus.plan(conformal) is None


def test_a_price_that_is_not_positive_gets_mapies_error():
    X, y = _market(120, 8)
    conformal = make_conformal("cv_plus", Ridge(), LEVELS, seed=0).fit_conformalize(np.log(X), y)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="strictly positive"):  # Ridge on log(y) can go <= 0
        interval_bounds(conformal, np.log(X) - rng.uniform(1e6, 2e6, size=X.shape), LEVELS)


def test_one_wanted_level_is_the_same_as_all_of_them():
    X, y = _market(400, 9)
    conformal = make_conformal("cv_plus", Ridge(), LEVELS, seed=0).fit_conformalize(X, y)
    every = interval_bounds(conformal, X, LEVELS)
    for level in LEVELS:
        one = interval_bounds(conformal, X, LEVELS, wanted=level)
        assert list(one) == [level]
        np.testing.assert_array_equal(one[level], every[level])
