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
    EXPLAIN_THREADS,
    PERMUTATIONS,
    THREADS_ENV,
    DollarExplainer,
    block_rows,
    coalition_weights,
    exact_shapley,
    explain_threads,
    permutation_weights,
    shapley_values,
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


def test_blocks_are_shared_out_evenly_and_the_values_do_not_depend_on_the_threads():
    """A last block left alone kept one core idle (23 blocks on two threads): blocks now come in
    multiples of EXPLAIN_THREADS, as equal as may be, whatever the threads that run them."""
    for n, most in [(2500, 112), (10_000, 112), (300, 112), (113, 112), (5, 16), (3, 1), (1, 1)]:
        size = block_rows(n, most)
        blocks = -(-n // size)
        assert size <= most and blocks * size >= n > (blocks - 1) * size
        assert blocks in (1, n) or blocks % EXPLAIN_THREADS == 0
        assert blocks * size - n < blocks  # no block more than one row short of another
    rng = np.random.default_rng(3)
    background, rows = rng.normal(size=(7, 4)), rng.normal(size=(23, 4))

    def f(m):
        return m[:, 0] * m[:, 1] + np.sin(m[:, 2]) + m[:, 3] ** 2

    runs = [exact_shapley(f, rows, background, max_rows=16 * 7 * 3, threads=t) for t in (1, 2, 3)]
    for values, base in runs[1:]:
        assert np.array_equal(values, runs[0][0]) and np.array_equal(base, runs[0][1])


def test_a_pool_worker_explains_on_the_one_thread_its_environment_gives(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "1")  # what valuation.parallel's workers set
    assert explain_threads() == 1
    monkeypatch.delenv(THREADS_ENV)
    assert 1 <= explain_threads() <= EXPLAIN_THREADS


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


def test_a_permutation_plan_adds_up_and_is_exact_for_an_additive_game():
    """Each pass of the plan adds up to v(all) - v(none); for an additive game every marginal
    gain is the feature's own, so any permutation gives the exact values."""
    masks, weights = permutation_weights(12)
    assert not masks[0].any()  # the first coalition is the empty one: the base value
    assert len({m.tobytes() for m in masks}) == len(masks) <= 2 + PERMUTATIONS * 2 * 11
    totals = weights.sum(axis=1)
    full = masks.all(axis=1)
    np.testing.assert_allclose(totals[full], 1.0)
    np.testing.assert_allclose(totals[0], -1.0)
    np.testing.assert_allclose(totals[~full & masks.any(axis=1)], 0.0, atol=1e-12)
    gains = np.arange(1.0, 13.0)
    np.testing.assert_allclose((masks * gains).sum(axis=1) @ weights, gains)
    again = permutation_weights(12)
    np.testing.assert_array_equal(masks, again[0])  # a fixed plan: the same for every home


def test_permutation_sampling_converges_to_the_exact_values():
    rng = np.random.default_rng(3)
    background, rows = rng.normal(size=(5, 6)), rng.normal(size=(4, 6))
    w = np.array([0.4, 0.1, 0.1, 0.2, 0.2])

    def f(m):
        return np.exp(m[:, 0] * m[:, 1] / 2) + m[:, 2] * m[:, 3] - np.sin(m[:, 4] + m[:, 5])

    exact, base = exact_shapley(f, rows, background, w)
    plan = permutation_weights(6, permutations=400)
    sampled, sampled_base = shapley_values(f, rows, background, w, plan)
    np.testing.assert_allclose(sampled_base, base)
    np.testing.assert_allclose(sampled, exact, atol=0.03 * np.abs(exact).max())
    np.testing.assert_allclose(sampled_base + sampled.sum(axis=1), f(rows), rtol=1e-12)


def test_a_plan_values_shared_hybrids_once_and_changes_nothing():
    rng = np.random.default_rng(4)
    background = rng.integers(0, 3, size=(6, 12)).astype(float)
    rows = rng.integers(0, 3, size=(5, 12)).astype(float)  # many values shared
    rows[0, 1] = background[2, 1] = np.nan  # a shared missing value
    calls = []

    def f(m):
        calls.append(len(m))
        filled = np.nan_to_num(m, nan=5.0)
        return np.exp(filled[:, 0] / 3) * filled[:, 1] + filled[:, 2:] @ np.arange(10.0)

    plan = permutation_weights(12)
    values, base = shapley_values(f, rows, background, None, plan)
    masks, weights = plan
    grid = np.where(masks[None, :, None, :], rows[:, None, None, :], background[None, None])
    plain = f(grid.reshape(-1, 12)).reshape(5, len(masks), 6).mean(axis=2)
    np.testing.assert_allclose(values, plain @ weights, atol=1e-9)
    np.testing.assert_allclose(base, plain[:, 0], atol=1e-12)
    assert calls[0] < 5 * len(masks) * 6  # fewer engine rows than the plain plan


def test_a_sampled_explainer_is_exact_for_a_linear_price_and_each_home_alone(labelled):
    """Past EXACT_MAX_FEATURES raw columns, explanations sample permutations, against the
    weighted reference homes; a linear price's values are exact whatever the permutations, and
    a home's explanation does not depend on the homes explained with it."""
    X, _ = labelled
    fs = get_feature_set("offmarket")
    assert len(fs.raw_columns) > EXACT_MAX_FEATURES
    encoder = RawEncoder.fit(X, fs)
    slopes = np.linspace(1.0, 2.0, len(fs.raw_columns))

    def price(matrix: np.ndarray) -> np.ndarray:
        return np.nan_to_num(matrix, nan=0.0) @ slopes

    reference = np.linspace(1.0, 3.0, 10)
    explainer = DollarExplainer(price, encoder, X.head(10), reference)
    assert explainer.sampled
    homes = X.iloc[100:103]
    together = explainer.explain(homes)
    matrix = np.nan_to_num(encoder.encode(homes[fs.raw_columns].reset_index(drop=True)))
    mean = (reference / reference.sum()) @ np.nan_to_num(explainer.background)
    np.testing.assert_allclose(together.values.to_numpy(), (matrix - mean) * slopes, atol=1e-6)
    total = together.base_values + together.values.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, price(matrix), rtol=1e-9)
    alone = explainer.explain(homes.iloc[[2]])
    np.testing.assert_allclose(alone.values.to_numpy(), together.values.to_numpy()[[2]], atol=1e-9)
