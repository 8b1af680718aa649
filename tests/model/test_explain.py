"""Exact Shapley values in dollars: the numpy enumeration equals SHAP's Exact explainer and adds
up to the valuation."""

from __future__ import annotations

import numpy as np
import shap

from homevision.features import get_feature_set
from homevision.training.candidates import build_model
from homevision.valuation.engine import RawEncoder
from homevision.valuation.explain import (
    EXACT_MAX_FEATURES,
    DollarExplainer,
    coalition_weights,
    exact_shapley,
    summarize_background,
)


def test_weights_give_shapley_values_of_a_known_game():
    # v(S) = sum of S's weights + an interaction of features 0 and 1 split equally.
    masks, weights = coalition_weights(3)
    gains = np.array([1.0, 2.0, 4.0])
    v = (masks * gains).sum(axis=1) + 3.0 * (masks[:, 0] & masks[:, 1])
    np.testing.assert_allclose(v @ weights, [2.5, 3.5, 4.0])


def test_exact_shapley_matches_shap_exact_and_adds_up(labelled):
    X, y = labelled
    fs = get_feature_set("task6")
    model = build_model("svr", fs).fit(X, y)
    encoder = RawEncoder.fit(X, fs)
    explainer = DollarExplainer(lambda m: model.predict(encoder.decode(m)), encoder, X.head(25))
    homes = X.iloc[100:106]
    ours = explainer.explain(homes)
    matrix = encoder.encode(homes[fs.raw_columns].reset_index(drop=True))
    masker = shap.maskers.Independent(explainer.background, max_samples=25)
    theirs = shap.explainers.Exact(explainer._f, masker)(matrix, silent=True)
    np.testing.assert_allclose(ours.values.to_numpy(), theirs.values, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(ours.base_values, theirs.base_values, rtol=1e-9)
    total = ours.base_values + ours.values.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, model.predict(homes), atol=1.0)


def test_background_weights_count_like_repeated_homes():
    rng = np.random.default_rng(1)
    background, rows = rng.normal(size=(3, 4)), rng.normal(size=(5, 4))

    def f(m):
        return np.exp(m[:, 0]) * m[:, 1] + m[:, 2] * m[:, 3]

    weighted = exact_shapley(f, rows, background, np.array([0.5, 0.25, 0.25]))
    repeated = exact_shapley(f, rows, background[[0, 0, 1, 2]])
    np.testing.assert_allclose(weighted[0], repeated[0])
    np.testing.assert_allclose(weighted[1], repeated[1])


def test_background_summary_is_real_homes_weighted_by_cluster(labelled):
    X, _ = labelled
    points = X[["SqFtTotal", "BedsTotal"]].to_numpy(float)
    rows, weights = summarize_background(points, 12, seed=0)
    assert len(rows) == len(set(rows)) <= 12
    assert np.isclose(weights.sum(), 1.0) and (weights > 0).all()
    again = summarize_background(points, 12, seed=0)
    np.testing.assert_array_equal(rows, again[0])  # fixed seed: the same reference homes
    small_rows, small_weights = summarize_background(points[:5], 12)
    assert list(small_rows) == [0, 1, 2, 3, 4] and np.allclose(small_weights, 0.2)


def test_exact_shapley_is_the_same_in_one_call_or_in_chunks():
    rng = np.random.default_rng(0)
    background, rows = rng.normal(size=(7, 4)), rng.normal(size=(5, 4))

    def f(m):
        return m[:, 0] * m[:, 1] + np.sin(m[:, 2]) + m[:, 3] ** 2

    whole = exact_shapley(f, rows, background)
    chunked = exact_shapley(f, rows, background, max_rows=16 * 7)
    np.testing.assert_allclose(whole[0], chunked[0])
    np.testing.assert_allclose(whole[1] + whole[0].sum(1), f(rows))


def test_shared_values_are_valued_once_and_change_nothing():
    rng = np.random.default_rng(2)
    background = rng.integers(0, 3, size=(6, 4)).astype(float)
    rows = rng.integers(0, 3, size=(9, 4)).astype(float)  # many values shared with background
    rows[0, 1] = background[2, 1] = np.nan  # a shared missing value
    calls = []

    def f(m):
        calls.append(len(m))
        filled = np.nan_to_num(m, nan=5.0)
        return np.exp(filled[:, 0] / 3) * filled[:, 1] + filled[:, 2] * filled[:, 3]

    values, base = exact_shapley(f, rows, background)
    masks, weights = coalition_weights(4)
    grid = np.where(masks[None, :, None, :], rows[:, None, None, :], background[None, None])
    plain = f(grid.reshape(-1, 4)).reshape(9, 16, 6).mean(axis=2)
    np.testing.assert_allclose(values, plain @ weights, atol=1e-12)
    np.testing.assert_allclose(base, plain[:, 0], atol=1e-12)
    assert calls[0] < 9 * 16 * 6  # fewer engine rows than the plain enumeration


def test_a_sampled_explainer_warms_up_and_explains_as_before(labelled):
    """Past EXACT_MAX_FEATURES raw columns, explanations take SHAP's Permutation path; warm_up
    (what a server runs when it loads such a model) explains a reference home once, and the
    explanations after it are the ones a cold explainer gives."""
    X, _ = labelled
    fs = get_feature_set("offmarket")
    assert len(fs.raw_columns) > EXACT_MAX_FEATURES
    encoder = RawEncoder.fit(X, fs)
    weights = np.linspace(1.0, 2.0, len(fs.raw_columns))

    def price(matrix: np.ndarray) -> np.ndarray:
        return np.nan_to_num(matrix, nan=0.0) @ weights

    homes = X.iloc[100:103]
    cold = DollarExplainer(price, encoder, X.head(10)).explain(homes)
    warm = DollarExplainer(price, encoder, X.head(10))
    assert warm.sampled
    warm.warm_up()
    again = warm.explain(homes)
    np.testing.assert_allclose(again.values.to_numpy(), cold.values.to_numpy())
    total = again.base_values + again.values.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, price(encoder.encode(homes[fs.raw_columns])), rtol=1e-9)
