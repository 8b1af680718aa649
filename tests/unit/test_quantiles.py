"""The vectorised conformal quantile gives MAPIE's numbers, and MAPIE's ranges are unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from mapie import utils as mapie_utils
from sklearn.linear_model import Ridge

from homevision.valuation import quantiles
from homevision.valuation.intervals import interval_bounds, make_conformal

ALPHAS = np.array([0.5, 0.2, 0.1, 0.05])


@pytest.mark.parametrize("shape, axis", [((300, 178), 1), ((178, 1), 0), ((178,), 0)])
@pytest.mark.parametrize("reverse", [False, True])
def test_equals_mapie_on_every_layout(shape, axis, reverse):
    scores = np.random.default_rng(0).normal(size=shape)
    expected = mapie_utils._compute_regression_quantile(scores, ALPHAS, axis, reverse)
    got = quantiles.regression_quantile(scores, ALPHAS, axis, reverse)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_nan_scores_are_left_to_mapie():
    scores = np.random.default_rng(1).normal(size=(50, 40))
    scores[3, 7] = np.nan
    expected = mapie_utils._compute_regression_quantile(scores, ALPHAS, 1)
    np.testing.assert_array_equal(quantiles.regression_quantile(scores, ALPHAS, 1), expected)


def test_too_few_calibration_rows_raise_as_mapie_does():
    with pytest.raises(ValueError, match="too low to reach the requested level"):
        quantiles.regression_quantile(np.arange(5.0)[:, None], np.array([0.99]), 0)


def test_install_swaps_mapie_callers_once():
    import mapie.conformity_scores.regression as reg

    quantiles.install()
    quantiles.install()
    assert reg._compute_regression_quantile is quantiles.regression_quantile
    assert mapie_utils._compute_regression_quantile is not quantiles.regression_quantile


@pytest.mark.parametrize("variant", ["cv_plus", "cv_minmax", "jackknife_plus_ab"])
def test_ranges_match_mapie_own_quantile(variant, monkeypatch):
    import mapie.conformity_scores.regression as reg

    rng = np.random.default_rng(2)
    X = rng.uniform(1, 5, size=(120, 3))
    y = np.exp(11 + X @ np.array([0.2, 0.1, 0.05]) + rng.normal(0, 0.1, 120))
    levels = [0.5, 0.8, 0.9, 0.95]
    conformal = make_conformal(variant, Ridge(), levels, seed=0).fit_conformalize(X, y)
    fast = interval_bounds(conformal, X[:40], levels)
    monkeypatch.setattr(reg, "_compute_regression_quantile", quantiles._MAPIE_QUANTILE)
    slow = conformal.predict_interval(X[:40])[1]
    for i, level in enumerate(levels):
        np.testing.assert_array_equal(fast[level], slow[:, :, i])


def test_ranges_in_blocks_equal_one_call():
    rng = np.random.default_rng(3)
    X = rng.uniform(1, 5, size=(100, 2))
    y = np.exp(11 + X @ np.array([0.2, 0.1]) + rng.normal(0, 0.1, 100))
    levels = [0.8, 0.9]
    conformal = make_conformal("cv_plus", Ridge(), levels, seed=0).fit_conformalize(X, y)
    whole = interval_bounds(conformal, X, levels)
    blocks = interval_bounds(conformal, X, levels, block_rows=7)
    for level in levels:
        np.testing.assert_array_equal(blocks[level], whole[level])
