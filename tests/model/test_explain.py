"""Exact Shapley values in dollars: the numpy enumeration equals SHAP's Exact explainer and adds
up to the valuation."""

from __future__ import annotations

import numpy as np
import shap

from homevision.features import get_feature_set
from homevision.training.candidates import build_model
from homevision.valuation.explain import DollarExplainer, coalition_weights, exact_shapley


def test_weights_give_shapley_values_of_a_known_game():
    # v(S) = sum of S's weights + an interaction of features 0 and 1 split equally.
    masks, weights = coalition_weights(3)
    gains = np.array([1.0, 2.0, 4.0])
    v = (masks * gains).sum(axis=1) + 3.0 * (masks[:, 0] & masks[:, 1])
    np.testing.assert_allclose(v @ weights, [2.5, 3.5, 4.0])


def test_exact_shapley_matches_shap_exact_and_adds_up(labelled):
    X, y = labelled
    columns = get_feature_set("task6").raw_columns
    model = build_model("svr", get_feature_set("task6")).fit(X, y)
    explainer = DollarExplainer(model.predict, X.head(25), columns)
    homes = X.iloc[100:106]
    ours = explainer.explain(homes)
    matrix = explainer.codec.encode(homes[columns].reset_index(drop=True))
    masker = shap.maskers.Independent(explainer.background, max_samples=25)
    theirs = shap.explainers.Exact(explainer._f, masker)(matrix, silent=True)
    np.testing.assert_allclose(ours.values.to_numpy(), theirs.values, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(ours.base_values, theirs.base_values, rtol=1e-9)
    total = ours.base_values + ours.values.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, model.predict(homes), atol=1.0)


def test_exact_shapley_is_the_same_in_one_call_or_in_chunks():
    rng = np.random.default_rng(0)
    background, rows = rng.normal(size=(7, 4)), rng.normal(size=(5, 4))

    def f(m):
        return m[:, 0] * m[:, 1] + np.sin(m[:, 2]) + m[:, 3] ** 2

    whole = exact_shapley(f, rows, background)
    chunked = exact_shapley(f, rows, background, max_rows=16 * 7)
    np.testing.assert_allclose(whole[0], chunked[0])
    np.testing.assert_allclose(whole[1] + whole[0].sum(1), f(rows))
