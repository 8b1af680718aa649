"""Behavioural model tests: reproducible, sensible in living area, and close to the known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from homevision.features import get_feature_set
from homevision.training.candidates import CANDIDATES, build_blend, build_model
from homevision.training.checks import sqft_monotonicity_violations
from homevision.training.evaluation import CVPlan, cross_validate_model
from homevision.training.metrics import valuation_metrics
from homevision.valuation.baselines import PricePerSqftBaseline


def test_metrics_in_dollars_and_percent():
    m = valuation_metrics(np.array([100.0, 200.0]), np.array([110.0, 180.0]))
    assert m["mae"] == 15.0
    assert m["rmse"] == pytest.approx(np.sqrt((100 + 400) / 2))
    assert m["mape"] == pytest.approx(0.10)
    assert m["within_10"] == 1.0 and m["within_5"] == 0.0


def test_price_per_sqft_baselines():
    X = pd.DataFrame(
        {
            "SqFtTotal": [1000.0, 2000.0, 1000.0, 1500.0],
            "ElementarySchoolName": ["A", "A", "B", "B"],
        }
    )
    y = np.array([100_000.0, 200_000.0, 200_000.0, 300_000.0])
    overall = PricePerSqftBaseline().fit(X, y)
    assert overall.predict(X.iloc[[0]])[0] == pytest.approx(1000 * 150)
    by_school = PricePerSqftBaseline(by="ElementarySchoolName", min_count=2).fit(X, y)
    assert by_school.predict(X.iloc[[0, 2]]).tolist() == [100_000.0, 200_000.0]
    unseen = pd.DataFrame({"SqFtTotal": [1000.0], "ElementarySchoolName": ["Z"]})
    assert by_school.predict(unseen)[0] == pytest.approx(150_000.0)


@pytest.mark.parametrize("name", ["extra_trees", "lightgbm", "mlp", "catboost"])
def test_same_seed_same_model(labelled, name):
    X, y = labelled
    fs = get_feature_set("task6")
    first = build_model(name, fs).fit(X, y).predict(X.head(20))
    second = build_model(name, fs).fit(X, y).predict(X.head(20))
    np.testing.assert_array_equal(first, second)


def test_cross_validation_is_reproducible(labelled):
    X, y = labelled
    plan = CVPlan(folds=3, repeats=2, seed=5)
    fs = get_feature_set("task6")
    a = cross_validate_model(build_model("random_forest", fs), X, y, plan.splits(y))
    b = cross_validate_model(build_model("random_forest", fs), X, y, plan.splits(y))
    pd.testing.assert_frame_equal(a.per_repeat, b.per_repeat)


@pytest.mark.parametrize("name", ["ridge", "elasticnet", "median_ppsf", "school_median_ppsf"])
def test_price_does_not_fall_as_living_area_grows(labelled, name):
    """Log-linear models and $/sqft rules are monotone by construction; flexible models are
    checked at selection time (see test_selection_only_crowns_a_monotone_model)."""
    X, y = labelled
    model = build_model(name, get_feature_set("task6")).fit(X, y)
    assert sqft_monotonicity_violations(model, X) == 0.0


def test_monotonicity_check_catches_a_model_that_pays_less_for_more_space(labelled):
    X, _ = labelled

    class Backwards:
        def predict(self, frame):
            return 1e6 - 100 * frame["SqFtTotal"].to_numpy(float)

    assert sqft_monotonicity_violations(Backwards(), X) == 1.0


def test_every_candidate_builds_fits_and_values_unseen_schools(labelled):
    X, y = labelled
    fs = get_feature_set("task6")
    new = X.head(5).copy()
    new["ElementarySchoolName"] = "A school never seen"
    for name in CANDIDATES:
        prices = build_model(name, fs).fit(X.head(200), y.head(200)).predict(new)
        assert np.isfinite(prices).all() and (prices > 0).all(), name


def test_blend_is_one_estimator_from_raw_columns(labelled):
    X, y = labelled
    blend = build_blend(
        [("ridge", {}), ("extra_trees", {"n_estimators": 50})], get_feature_set("task6")
    ).fit(X, y)
    assert blend.predict(X.head(3)).shape == (3,)


def test_offmarket_model_approaches_the_documented_noise_floor(labelled):
    """Synthetic prices carry 8% log noise (~6.4% MAPE floor); offmarket sees most of the
    structure, so a linear model should land within a few points of it. It cannot see days on
    market (a price driver of this market, which task6 reads) and its feature lists and fees
    add columns that mostly repeat what the structure says, so it must match task6 within a
    fraction of a point rather than beat it."""
    X, y = labelled
    splits = CVPlan(folds=5, repeats=1, seed=0).splits(y)
    off = cross_validate_model(build_model("ridge", get_feature_set("offmarket")), X, y, splits)
    six = cross_validate_model(build_model("ridge", get_feature_set("task6")), X, y, splits)
    assert off.summary()["mape"] < 0.085
    assert off.summary()["mape"] < six.summary()["mape"] + 0.003
