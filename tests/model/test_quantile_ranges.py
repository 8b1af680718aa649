"""Conformalized quantile regression (the "cqr" range variant) and the Gaussian-process
candidate: each behaves as a range or a model must, on synthetic sales of a known market."""

from __future__ import annotations

import numpy as np
import pytest

from homevision.data.listings import coerce_types
from homevision.data.synthetic import generate_listings
from homevision.features import get_feature_set
from homevision.training.candidates import build_blend, build_model
from homevision.training.interval_choice import compare_variants
from homevision.valuation.intervals import (
    VARIANTS,
    QuantileConformal,
    applicable_variants,
    feature_step,
    make_conformal,
)
from homevision.valuation.model import ValuationModel

LEVELS = [0.5, 0.9]


@pytest.fixture(scope="module")
def fresh():
    """Sales of the same synthetic market the `labelled` fixture draws from, never trained on."""
    frame = coerce_types(generate_listings(3000, seed=12, market_seed=11).astype(object))
    sold = frame[frame["Status"] == "Sold"].reset_index(drop=True)
    return sold, sold["ClosePrice"].to_numpy(float)


@pytest.fixture(scope="module")
def cqr(small) -> QuantileConformal:
    X, y = small
    estimator = build_model("ridge", get_feature_set("task6"))
    return make_conformal("cqr", estimator, LEVELS, seed=0).fit_conformalize(X, y)


def test_cqr_ranges_are_ordered_nested_and_cover_fresh_sales(cqr, fresh):
    X, truth = fresh
    point, bounds = cqr.predict_interval(X)
    assert bounds.shape == (len(X), 2, len(LEVELS))
    assert (bounds[:, 0, :] <= bounds[:, 1, :]).all()
    # A 90% range is wider than a 50% one for the typical home.
    widths = bounds[:, 1, :] - bounds[:, 0, :]
    assert np.median(widths[:, 1]) > np.median(widths[:, 0])
    covered = (truth >= bounds[:, 0, 1]) & (truth <= bounds[:, 1, 1])
    assert 0.82 <= covered.mean() <= 0.98, covered.mean()
    assert np.allclose(point, cqr.predict(X))


def test_cqr_ranges_of_every_home_nest_a_wider_level_around_a_narrower_one(small, fresh):
    """Separate quantile models per level can cross: a 95% range narrower than the 90% one
    (175 of 608 homes of the real sample); the bounds are nested after conformalizing."""
    X, y = small
    levels = [0.9, 0.8, 0.95]  # not in order: nesting follows the levels, not their positions
    estimator = build_model("ridge", get_feature_set("task6"))
    cqr = make_conformal("cqr", estimator, levels, seed=0).fit_conformalize(X, y)
    _, bounds = cqr.predict_interval(fresh[0])
    narrow_to_wide = np.argsort(levels)
    low, high = bounds[:, 0, narrow_to_wide], bounds[:, 1, narrow_to_wide]
    assert (np.diff(low, axis=1) <= 0).all() and (np.diff(high, axis=1) >= 0).all()
    alone = make_conformal("cqr", estimator, [0.8], seed=0).fit_conformalize(X, y)
    narrowest = np.column_stack([low[:, 0], high[:, 0]])  # the narrowest level is left as is
    np.testing.assert_allclose(alone.predict_interval(fresh[0])[1][:, :, 0], narrowest)


def test_cqr_is_measured_beside_the_other_variants(small):
    X, y = small
    estimator = build_model("ridge", get_feature_set("task6"))
    scores = compare_variants(estimator, X, y, ["cv_plus", "cqr"], 0.9, outer_folds=3)
    assert [s.variant for s in scores] == ["cv_plus", "cqr"]
    assert all(0.7 <= s.coverage <= 1.0 and s.median_relative_width > 0 for s in scores)


def test_cqr_builds_on_the_model_s_own_features_and_refuses_a_baseline():
    fs = get_feature_set("task6")
    blend = build_blend([("ridge", {}), ("hist_gb", {})], fs)
    assert feature_step(blend) is blend.estimator.estimators[0][1].named_steps["features"]
    with pytest.raises(ValueError, match="no feature pipeline"):
        feature_step(build_model("median_ppsf", fs))


def test_a_cqr_model_serves_ranges_on_the_scikit_learn_path_and_says_why(small, fresh):
    X, y = small
    model = ValuationModel(
        build_model("ridge", get_feature_set("task6")),
        interval_variant="cqr",
        levels=(0.5, 0.9),
        confidence=0.9,
        background_rows=4,
    ).fit(X, y)
    assert not model.uses_engine and "QuantileConformal ranges" in model.engine_note_
    point, low, high = model.predict_interval(fresh[0].head(50))
    assert (low <= point).all() and (point <= high).all()


def test_gaussian_process_values_bigger_homes_higher(small):
    X, y = small
    model = build_model("gaussian_process", get_feature_set("task6")).fit(X, y)
    home = X.head(20).copy()
    bigger = home.assign(SqFtTotal=home["SqFtTotal"] * 1.2)
    assert (model.predict(bigger) > model.predict(home)).mean() >= 0.9
    # Its marginal-likelihood fit found a noise level: it does not interpolate the sales.
    in_sample = np.abs(model.predict(X) / y - 1)
    assert np.median(in_sample) > 0.005


@pytest.mark.parametrize("candidate", ["ridge", "svr"])
def test_cv_plus_ranges_of_a_model_are_mapies_own(candidate, labelled, fresh, monkeypatch):
    """The order-selection CV+ bounds (homevision.valuation.cv_plus) on the compiled engine and
    on scikit-learn equal what MAPIE computes with its (rows x sales) matrix."""
    from homevision.valuation import cv_plus

    X, y = labelled
    estimator = build_model(candidate, get_feature_set("task6"))
    model = ValuationModel(estimator, interval_variant="cv_plus").fit(X, y)
    homes = fresh[0].head(400)
    fast = {
        (level, engine): model.predict_interval(homes, level, engine=engine)
        for level in model.levels
        for engine in (True, False)
    }
    monkeypatch.setattr(cv_plus, "plan", lambda conformal: None)
    for (level, engine), got in fast.items():
        for a, b in zip(got, model.predict_interval(homes, level, engine=engine), strict=True):
            np.testing.assert_array_equal(a, b)


def test_a_baseline_winner_is_not_ranged_by_cqr_even_when_a_plan_lists_it():
    """A run whose winner was a baseline stopped after its honest estimate ("no feature
    pipeline to build quantile models on") when the budget let CQR be compared."""
    fs = get_feature_set("task6")
    kept, why = applicable_variants(build_model("median_ppsf", fs), list(VARIANTS))
    assert kept == [v for v in VARIANTS if v != "cqr"]
    assert "no feature pipeline" in why["cqr"]
    assert applicable_variants(build_model("ridge", fs), list(VARIANTS)) == (list(VARIANTS), {})
