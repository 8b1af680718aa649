"""A permutation plan walked one raw column at a time gives the engine's own numbers: every
kind of program it walks, both ways of walking an SVR, and the fallback where a plan is not a
walk."""

from __future__ import annotations

import numpy as np
import pytest

from homevision.features import get_feature_set
from homevision.training.candidates import build_blend, build_model
from homevision.valuation.engine import walks
from homevision.valuation.engine.coalitions import hybrid_values
from homevision.valuation.engine.walks import WalkValues, walk_of
from homevision.valuation.explain import DollarExplainer, permutation_weights

from .conftest import build_kind, compiled


def _homes(X, fs, encoder, rows=slice(200, 230)) -> np.ndarray:
    homes = X[fs.raw_columns].iloc[rows].astype(object).reset_index(drop=True)
    homes.iloc[3] = None  # a home with nothing but missing values
    return encoder.encode(homes)


def test_each_coalition_of_a_plan_is_one_column_from_its_parent():
    masks, _ = permutation_weights(12)
    steps = walk_of(masks)
    assert steps is not None and len(steps) == len(masks) - 1
    for i, (parent, j) in enumerate(steps, start=1):
        assert parent < i
        assert np.flatnonzero(masks[i] != masks[parent]).tolist() == [j]
    jump = np.array([[False, False, False], [True, True, False]])  # two columns at once
    assert walk_of(jump) is None


@pytest.mark.parametrize("kind", ["svr", "blend", "stack", "ridge"])
def test_a_walked_plan_values_every_hybrid_as_the_engine_does(kind, train):
    X, y = train
    fs = get_feature_set("offmarket")
    engine, encoder = compiled(build_kind(kind, fs), fs, X, y)
    walker = WalkValues.for_program(engine.program)
    assert walker is not None
    masks, _ = permutation_weights(len(encoder.columns))
    rows = _homes(X, fs, encoder)
    background = encoder.encode(X[fs.raw_columns].head(7))
    got = walker(rows, background, masks)
    expected = hybrid_values(engine.predict_matrix, rows, background, masks)
    assert got.shape == (30, 7, len(masks))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-6)


def test_an_svr_walks_its_exponent_where_products_could_lose_digits(train, monkeypatch):
    X, y = train
    fs = get_feature_set("offmarket")
    engine, encoder = compiled(build_model("svr", fs), fs, X, y)
    masks, _ = permutation_weights(len(encoder.columns))
    rows = _homes(X, fs, encoder)
    background = encoder.encode(X[fs.raw_columns].head(5))
    multiplied = WalkValues.for_program(engine.program)(rows, background, masks)
    monkeypatch.setattr(walks, "MIN_EXPONENT", 1.0)  # no exponent is that high: never multiply
    added = WalkValues.for_program(engine.program)(rows, background, masks)
    np.testing.assert_allclose(multiplied, added, rtol=1e-12)
    expected = hybrid_values(engine.predict_matrix, rows, background, masks)
    np.testing.assert_allclose(added, expected, rtol=1e-9, atol=1e-6)


def test_blocks_and_a_plan_that_is_not_a_walk_change_nothing(train, monkeypatch):
    X, y = train
    fs = get_feature_set("offmarket")
    engine, encoder = compiled(build_blend([("svr", {}), ("mlp", {})], fs), fs, X, y)
    walker = WalkValues.for_program(engine.program)
    masks, _ = permutation_weights(len(encoder.columns))
    rows = _homes(X, fs, encoder)
    background = encoder.encode(X[fs.raw_columns].head(6))
    whole = walker(rows, background, masks)
    monkeypatch.setattr(walks, "MAX_FLOATS", 1)  # one row a block
    np.testing.assert_allclose(walker(rows, background, masks), whole, rtol=1e-12)
    far = int(np.flatnonzero(masks.sum(axis=1) > 1)[0])
    order = np.r_[0, far, np.delete(np.arange(1, len(masks)), far - 1)]
    assert walk_of(masks[order]) is None  # its second coalition is two columns from the first
    np.testing.assert_allclose(walker(rows, background, masks[order]), whole[:, :, order])


def test_programs_with_parts_it_cannot_walk_keep_the_plain_path(train):
    X, y = train
    fs = get_feature_set("offmarket")
    engine, _ = compiled(build_model("hist_gb", fs), fs, X, y)
    assert WalkValues.for_program(engine.program) is None


def test_a_sampled_explanation_is_the_same_walked_or_valued_hybrid_by_hybrid(train):
    X, y = train
    fs = get_feature_set("offmarket")
    engine, encoder = compiled(build_blend([("svr", {}), ("mlp", {})], fs), fs, X, y)
    background = X.head(12)
    walker = WalkValues.for_program(engine.program)
    walked = DollarExplainer(engine.predict_matrix, encoder, background, coalitions=walker)
    plain = DollarExplainer(engine.predict_matrix, encoder, background)
    assert walked.sampled
    homes = X.iloc[150:170]
    got, expected = walked.explain(homes), plain.explain(homes)
    np.testing.assert_allclose(got.values.to_numpy(), expected.values.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(got.base_values, expected.base_values, rtol=1e-12)
    total = got.base_values + got.values.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, engine.predict(homes[fs.raw_columns]), rtol=1e-9)


def test_the_reference_homes_parts_kept_between_calls_follow_the_reference_homes(train):
    """A walker keeps the reference homes' parts and kernel factors from call to call: asked
    about other reference homes (one alone, too) it values with theirs, and back again with the
    first ones."""
    X, y = train
    fs = get_feature_set("offmarket")
    engine, encoder = compiled(build_blend([("svr", {}), ("mlp", {})], fs), fs, X, y)
    walker = WalkValues.for_program(engine.program)
    masks, _ = permutation_weights(len(encoder.columns))
    rows = _homes(X, fs, encoder, rows=slice(200, 204))
    first, other, single = (
        encoder.encode(X[fs.raw_columns].iloc[s]) for s in (slice(0, 6), slice(6, 9), slice(9, 10))
    )
    assert len(rows) >= walks.UNIT_ROWS  # all of them at once: the SVR's factors by units
    for background in (first, other, single, first, first):
        for home in range(len(rows)):  # one home a call, as the API asks
            expected = hybrid_values(engine.predict_matrix, rows[[home]], background, masks)
            got = walker(rows[[home]], background, masks)
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-6)
        expected = hybrid_values(engine.predict_matrix, rows, background, masks)
        np.testing.assert_allclose(walker(rows, background, masks), expected, rtol=1e-9, atol=1e-6)
