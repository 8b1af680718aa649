"""Price ranges, SHAP reasons in dollars and comparable sales of the ValuationModel."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from homevision.data.listings import coerce_types
from homevision.data.synthetic import generate_listings
from homevision.features import get_feature_set
from homevision.training.candidates import build_model
from homevision.training.interval_choice import IntervalScore, choose_variant, compare_variants
from homevision.valuation.explain import global_importance
from homevision.valuation.model import ValuationModel
from homevision.valuation.pyfunc import ValuationPyfunc


def _sold(rows: int, seed: int) -> pd.DataFrame:
    """Sold homes of one synthetic market (market seed 0), drawn with `seed`."""
    frame = coerce_types(generate_listings(rows, seed, market_seed=0).astype(object))
    return frame[frame["Status"] == "Sold"].reset_index(drop=True)


@pytest.fixture(scope="module")
def fitted() -> tuple[ValuationModel, pd.DataFrame]:
    train = _sold(2000, seed=21)
    model = ValuationModel(
        build_model("ridge", get_feature_set("task6")), feature_set="task6", background_rows=40
    ).fit(train, train["ClosePrice"])
    return model, train


def test_ninety_percent_range_covers_88_to_92_percent_of_fresh_homes(fitted):
    model, _ = fitted
    fresh = _sold(34_000, seed=99).head(10_000)
    assert len(fresh) == 10_000
    _, low, high = model.predict_interval(fresh, 0.9)
    y = fresh["ClosePrice"].to_numpy(float)
    coverage = ((y >= low) & (y <= high)).mean()
    assert 0.88 <= coverage <= 0.92, coverage


def test_low_point_high_are_ordered_and_widen_with_confidence(fitted):
    model, train = fitted
    rows = train.head(200)
    widths = []
    for level in (0.5, 0.8, 0.9, 0.95):
        point, low, high = model.predict_interval(rows, level)
        assert (low <= point).all() and (point <= high).all()
        widths.append(high - low)
    for narrower, wider in pairwise(widths):
        assert (wider >= narrower - 1e-6).all()
        assert wider.mean() > narrower.mean()


def test_ranges_scale_with_price(fitted):
    model, train = fitted
    point, low, high = model.predict_interval(train, 0.9)
    relative = (high - low) / point
    assert relative.std() < 0.25 * relative.mean()  # multiplicative: width tracks price


def test_unsupported_confidence_is_refused(fitted):
    model, train = fitted
    with pytest.raises(ValueError, match=r"0\.5, 0\.8, 0\.9, 0\.95"):
        model.predict_interval(train.head(2), 0.99)


def test_shap_contributions_add_up_to_the_valuation(fitted):
    model, train = fitted
    rows = train.sample(12, random_state=3)
    contributions = model.explain(rows)
    total = contributions.base_values + contributions.values.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, model.predict(rows), atol=1.0)  # to the dollar
    assert list(contributions.values.columns) == get_feature_set("task6").raw_columns


def test_shap_additivity_with_many_features_and_unseen_school():
    train = _sold(1200, seed=5)
    model = ValuationModel(
        build_model("ridge", get_feature_set("offmarket")),
        feature_set="offmarket",
        background_rows=25,
    ).fit(train, train["ClosePrice"])
    rows = train.head(4).copy()
    rows["ElementarySchoolName"] = ["Brand New", None, "Aspen", "Birch"]
    contributions = model.explain(rows)
    total = contributions.base_values + contributions.values.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, model.predict(rows), atol=1.0)
    assert len(contributions.values.columns) == len(get_feature_set("offmarket").raw_columns)


def test_global_importance_ranks_living_area_first(fitted):
    model, train = fitted
    importance = global_importance(model.explain(train.head(30)))
    assert importance.index[0] == "SqFtTotal"
    assert importance.is_monotonic_decreasing


def test_comparables_are_other_sold_homes_same_school_first(fitted):
    model, train = fitted
    rows = train.head(6)
    sold_ids = set(train["MLSNumber"].astype(str))
    for i, comps in enumerate(model.comparable_sales(rows)):
        assert len(comps) == 5
        ids = comps["MLSNumber"].astype(str)
        assert set(ids) <= sold_ids  # sold listings only
        assert str(rows["MLSNumber"].iloc[i]) not in set(ids)  # never the listing itself
        assert comps["same_school"].iloc[0]
        assert comps["same_school"].is_monotonic_decreasing  # same school before others
        same = comps[comps["same_school"]]
        assert same["distance"].is_monotonic_increasing
        match = train[train["MLSNumber"].astype(str) == ids.iloc[0]].iloc[0]
        assert comps["sqft_diff"].iloc[0] == match["SqFtTotal"] - rows["SqFtTotal"].iloc[i]


def test_pyfunc_returns_point_and_range(fitted):
    model, train = fitted
    out = ValuationPyfunc(model).predict(None, train.head(3), params={"confidence": 0.8})
    assert list(out.columns) == [
        "predicted_close_price",
        "close_price_low",
        "close_price_high",
        "error",
        "warning",
    ]
    assert (out["close_price_low"] <= out["close_price_high"]).all()
    assert (out["error"] == "").all()


def test_pyfunc_applies_the_apis_rules(fitted):
    """`mlflow models serve` of a registered model refuses what the API refuses and warns
    where it warns (issue 22, defect 9): SqFtTotal=-5 gets no price but a reason."""
    model, train = fitted
    rows = train[model.raw_columns_].head(3).reset_index(drop=True)
    rows.loc[1, "SqFtTotal"] = -5.0
    rows.loc[2, "SqFtTotal"] = 40_000.0  # far beyond the homes it learnt from
    out = ValuationPyfunc(model).predict(None, rows)
    assert out["predicted_close_price"].iloc[0] > 0 and out["error"].iloc[0] == ""
    assert np.isnan(out["predicted_close_price"].iloc[1])
    assert "SqFtTotal" in out["error"].iloc[1]
    assert out["error"].iloc[2] != "" or "SqFtTotal" in out["warning"].iloc[2]
    checked = ValuationPyfunc(model).predict(None, rows.head(1), params={"checked": True})
    assert list(checked.columns) == ["predicted_close_price", "close_price_low", "close_price_high"]
    point = out["predicted_close_price"].iloc[0]  # in whole dollars
    assert checked["predicted_close_price"].iloc[0] == pytest.approx(point, abs=0.5)


def test_choose_variant_prefers_narrowest_that_keeps_coverage():
    scores = [
        IntervalScore("a", 0.9, 0.91, 0.40),
        IntervalScore("b", 0.9, 0.89, 0.30),
        IntervalScore("c", 0.9, 0.80, 0.10),
    ]
    assert choose_variant(scores, tolerance=0.02).variant == "b"
    assert choose_variant(scores, tolerance=0.0).variant == "a"
    assert choose_variant(scores[2:], tolerance=0.0).variant == "c"  # none qualifies
    fast = [
        IntervalScore("jackknife_plus_ab", 0.9, 0.92, 0.44),
        IntervalScore("cv_base", 0.9, 0.92, 0.457),
    ]
    assert choose_variant(fast, 0.02).variant == "jackknife_plus_ab"
    assert choose_variant(fast, 0.02, fast_within=0.05).variant == "cv_base"
    assert choose_variant(fast, 0.02, fast_within=0.01).variant == "jackknife_plus_ab"


def test_compare_variants_measures_coverage_out_of_fold():
    train = _sold(800, seed=8)
    scores = compare_variants(
        build_model("ridge", get_feature_set("task6")),
        train,
        train["ClosePrice"],
        ["cv_plus"],
        0.9,
        outer_folds=3,
    )
    assert 0.8 < scores[0].coverage <= 1.0
    assert 0.1 < scores[0].median_relative_width < 0.8


def test_compare_variants_scores_the_same_on_one_process_or_two():
    """The outer folds run on two processes; each is seeded, so the scores are identical."""
    train = _sold(300, seed=9)
    args = (build_model("mlp", get_feature_set("task6")), train, train["ClosePrice"])
    kwargs = {"variants": ["cv_base", "cv_plus"], "level": [0.8, 0.9], "outer_folds": 3}
    assert compare_variants(*args, **kwargs, n_jobs=1) == compare_variants(
        *args, **kwargs, n_jobs=2
    )


def test_constant_factor_ranges_match_mapie_exactly():
    """cv_base ranges are served as valuation x factor; they must equal MAPIE's own bounds."""
    from homevision.valuation.intervals import interval_bounds, make_conformal

    train = _sold(900, seed=12)
    estimator = build_model("ridge", get_feature_set("task6"))
    model = ValuationModel(estimator, interval_variant="cv_base", background_rows=10).fit(
        train, train["ClosePrice"]
    )
    assert model.conformal_ is None and set(model.factors_) == {0.5, 0.8, 0.9, 0.95}
    conformal = make_conformal("cv_base", estimator, [0.9]).fit_conformalize(
        train, train["ClosePrice"]
    )
    rows = _sold(300, seed=13)
    expected = interval_bounds(conformal, rows, [0.9])[0.9]
    _, low, high = model.predict_interval(rows, 0.9)
    np.testing.assert_allclose(low, expected[:, 0], rtol=1e-9)
    np.testing.assert_allclose(high, expected[:, 1], rtol=1e-9)


def test_pyfunc_values_rows_that_leave_out_a_column_as_rows_that_send_it_empty(fitted):
    """The signature marks a column optional when the input example had gaps in it: leaving it
    out must value the home as sending it empty, not refuse every row."""
    model, train = fitted
    rows = train[model.raw_columns_].head(3).reset_index(drop=True)
    empty = rows.assign(LotSizeAreaSQFT=np.nan)
    left_out = rows.drop(columns="LotSizeAreaSQFT")
    for params in ({}, {"checked": True}):
        expected = ValuationPyfunc(model).predict(None, empty, params=params)
        got = ValuationPyfunc(model).predict(None, left_out, params=params)
        pd.testing.assert_frame_equal(got, expected)
        assert got["predicted_close_price"].notna().all()
    refused = ValuationPyfunc(model).predict(None, rows.drop(columns="SqFtTotal"))
    assert refused["predicted_close_price"].isna().all()
    assert refused["error"].str.contains("SqFtTotal").all()
