"""The selection's fold cache: the feature pipeline fitted once per fold gives exactly the
predictions of the whole model refitted per fold, for single candidates and blends alike."""

from __future__ import annotations

import numpy as np
import pytest

from homevision.features import get_feature_set
from homevision.training.candidates import build_blend, build_model
from homevision.training.evaluation import CVPlan, cross_validate_model
from homevision.training.fold_cache import FoldCache, blend_result, cross_validate_cached

FS = get_feature_set("offmarket")


@pytest.fixture(scope="module")
def cached(small):
    X, y = small
    splits = CVPlan(folds=3, repeats=2, seed=0).splits(y)
    return X, y, splits, FoldCache(X, y.to_numpy(), FS, splits)


@pytest.mark.parametrize(
    ("name", "params"),
    [("ridge", {"alpha": 0.5}), ("svr", {}), ("comparables", {"n_comps": 4}), ("hist_gb", {})],
)
def test_cached_cv_equals_refitting_the_whole_model(cached, name, params):
    X, y, splits, cache = cached
    whole = cross_validate_model(build_model(name, FS, params), X, y, splits)
    fast = cross_validate_cached(name, params, cache, repeats=2)
    np.testing.assert_allclose(fast.oof, whole.oof, rtol=1e-9)
    assert fast.per_repeat["rmse"].tolist() == pytest.approx(whole.per_repeat["rmse"].tolist())


def test_a_shorter_run_is_extended_not_redone(cached):
    cache = cached[3]
    one = cross_validate_cached("ridge", {}, cache, repeats=1)
    two = cross_validate_cached("ridge", {}, cache, repeats=2, start_from=one)
    np.testing.assert_array_equal(two.oof[0], one.oof[0])
    np.testing.assert_allclose(two.oof, cross_validate_cached("ridge", {}, cache, 2).oof)


def test_a_blend_is_scored_from_its_members(cached):
    X, y, splits, cache = cached
    members = [("ridge", {}), ("svr", {})]
    results = [cross_validate_cached(n, p, cache, repeats=2) for n, p in members]
    whole = cross_validate_model(build_blend(members, FS), X, y, splits)
    np.testing.assert_allclose(blend_result(results, y.to_numpy()).oof, whole.oof, rtol=1e-9)


def test_baselines_are_refused(cached):
    with pytest.raises(ValueError, match="baseline"):
        cross_validate_cached("median_ppsf", {}, cached[3], repeats=1)
