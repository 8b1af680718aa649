"""Listings under contract as training evidence: which rows, at what price, never a sale's own
listing, never a contract signed after a time-ordered cut, and the fold cache equal to refitting
the whole model with the same evidence."""

from __future__ import annotations

import copy
import pickle
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from homevision.data.listings import coerce_types
from homevision.data.synthetic import generate_listings
from homevision.feature_sets import evidence_as_of, with_evidence
from homevision.features import get_feature_set
from homevision.training.candidates import build_blend, build_model
from homevision.training.evaluation import CVPlan, cross_validate_model
from homevision.training.fold_cache import FoldCache, blend_result, cross_validate_cached
from homevision.valuation.engine import RawEncoder
from homevision.valuation.evidence import MIN_ASKING_PRICE, AskingEvidence, as_of
from homevision.valuation.model import ValuationModel

UNDER_CONTRACT = ("Pending", "Active Option Contract", "Active Contingent")


@pytest.fixture(scope="module")
def export() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(sold, unsold) rows of a synthetic export, with pending dates on the unsold ones."""
    frame = coerce_types(generate_listings(900, seed=5).astype(object))
    sold = frame[frame["Status"] == "Sold"].reset_index(drop=True).head(200)
    unsold = frame[frame["Status"] != "Sold"].reset_index(drop=True)
    days = np.arange(len(unsold)) % 60
    unsold["PendingDate"] = (pd.Timestamp("2020-01-01") + pd.to_timedelta(days, "D")).strftime(
        "%Y-%m-%d"
    )
    return sold, unsold


@pytest.fixture(scope="module")
def fs(export):
    sold, unsold = export
    return with_evidence(get_feature_set("offmarket"), unsold, sold)


def test_evidence_is_the_listings_under_contract_with_an_asking_price(export, fs):
    _sold, unsold = export
    assert fs.evidence_statuses == UNDER_CONTRACT
    expected = unsold["Status"].isin(UNDER_CONTRACT) & unsold["ListPrice"].ge(MIN_ASKING_PRICE)
    assert len(fs.evidence) == int(expected.sum()) > 20
    assert set(fs.evidence.frame["ListPrice"]) <= set(unsold.loc[expected, "ListPrice"])
    assert "ClosePrice" not in fs.evidence.frame.columns
    assert set(get_feature_set("offmarket").raw_columns) <= set(fs.evidence.frame.columns)


def test_a_sales_own_listing_is_never_its_evidence(export):
    sold, unsold = export
    pending = unsold[unsold["Status"] == "Pending"].copy()
    pending.iloc[0, pending.columns.get_loc("MLSNumber")] = sold["MLSNumber"].iloc[3]
    pending["ParcelNumber"] = [f"P{i}" for i in range(len(pending))]
    sold = sold.assign(ParcelNumber=[f"S{i}" for i in range(len(sold))])
    sold.loc[5, "ParcelNumber"] = pending["ParcelNumber"].iloc[1]
    found = AskingEvidence.from_listings(pending, sold, UNDER_CONTRACT, ["SqFtTotal"])
    assert len(found) == len(pending) - 2
    assert sold["MLSNumber"].iloc[3] not in set(found.frame["MLSNumber"])
    assert pending["ParcelNumber"].iloc[1] not in set(found.frame["ParcelNumber"])


def test_evidence_is_priced_at_asking_times_the_training_sales_ratio(export, fs):
    sold, _ = export
    y = sold["ClosePrice"].astype(float)
    rows, prices = fs.evidence.augment(sold, y)
    ratio = float(np.median(y / sold["ListPrice"].astype(float)))
    assert len(rows) == len(sold) + len(fs.evidence) == len(prices)
    np.testing.assert_array_equal(prices[: len(sold)], y.to_numpy())
    np.testing.assert_allclose(prices[len(sold) :], fs.evidence.frame["ListPrice"] * ratio)
    assert 0.8 < ratio < 1.1


def test_no_ratio_no_evidence(export, fs):
    sold, _ = export
    y = sold["ClosePrice"].astype(float)
    for rows in (sold.drop(columns="ListPrice"), sold.head(9)):
        out, prices = fs.evidence.augment(rows, y.head(len(rows)))
        assert out is rows and len(prices) == len(rows)


def test_a_time_ordered_cut_keeps_contracts_signed_before_it(fs):
    cut = pd.Timestamp("2020-01-20")
    earlier = evidence_as_of(fs, cut)
    pending = pd.to_datetime(earlier.evidence.frame["PendingDate"])
    assert 0 < len(earlier.evidence) < len(fs.evidence)
    assert (pending < cut).all()
    no_dates = AskingEvidence(fs.evidence.frame.drop(columns="PendingDate"))
    assert len(no_dates.before(cut)) == 0


def test_as_of_restricts_a_models_evidence_and_leaves_others_alone(fs):
    model = build_model("ridge", fs)
    dated = as_of(model, pd.Timestamp("2020-01-20"))
    assert dated is not model and len(dated.evidence) < len(model.evidence)
    plain = build_model("ridge", get_feature_set("offmarket"))
    assert as_of(plain, pd.Timestamp("2020-01-20")) is plain


def test_a_model_fits_the_evidence_beside_the_sales(export, fs):
    sold, _ = export
    y = sold["ClosePrice"].astype(float)
    with_ev = build_model("ridge", fs).fit(sold, y)
    without = build_model("ridge", get_feature_set("offmarket")).fit(sold, y)
    assert with_ev.evidence_rows_ == len(fs.evidence) and without.evidence_rows_ == 0
    assert not np.allclose(with_ev.predict(sold), without.predict(sold))


@pytest.mark.parametrize(("name", "params"), [("ridge", {"alpha": 0.5}), ("svr", {})])
def test_cached_cv_with_evidence_equals_refitting_the_whole_model(export, fs, name, params):
    sold, _ = export
    y = sold["ClosePrice"].astype(float)
    splits = CVPlan(folds=3, repeats=1, seed=0).splits(y)
    cache = FoldCache(sold, y.to_numpy(), fs, splits)
    whole = cross_validate_model(build_model(name, fs, params), sold, y, splits)
    fast = cross_validate_cached(name, params, cache, repeats=1)
    np.testing.assert_allclose(fast.oof, whole.oof, rtol=1e-9)
    assert fast.oof.shape[-1] == len(sold)  # only sales are scored
    members = [("ridge", {}), ("svr", {})]
    results = [cross_validate_cached(n, p, cache, repeats=1) for n, p in members]
    blend = cross_validate_model(build_blend(members, fs), sold, y, splits)
    np.testing.assert_allclose(blend_result(results, y.to_numpy()).oof, blend.oof, rtol=1e-9)


@pytest.fixture(scope="module")
def evidence_only(export, fs) -> tuple[ValuationModel, pd.DataFrame, pd.DataFrame]:
    """(model, homes, sales): a model whose evidence alone carries a subdivision, the homes in
    that subdivision, and the sales it was fitted on."""
    sold, _ = export
    frame = fs.evidence.frame.copy()
    frame.loc[:11, "SubdivisionName"] = ONLY_IN_EVIDENCE
    estimator = build_model("ridge", replace(fs, evidence=AskingEvidence(frame)))
    model = ValuationModel(estimator, feature_set="offmarket", background_rows=8)
    model.fit(sold, sold["ClosePrice"].astype(float))
    return model, frame.head(12), sold


ONLY_IN_EVIDENCE = "Contract Only Estates"


def test_the_engine_values_categories_learnt_from_evidence_as_the_estimator(evidence_only):
    model, homes, _ = evidence_only
    assert model.uses_engine, model.engine_note_
    np.testing.assert_allclose(
        model.predict(homes), model.predict(homes, engine=False), atol=0.01, rtol=0
    )
    assert ONLY_IN_EVIDENCE in model.encoder_.text["SubdivisionName"]
    fast = np.column_stack(model.predict_interval(homes))
    slow = np.column_stack(model.predict_interval(homes, engine=False))
    np.testing.assert_allclose(fast, slow, atol=0.01, rtol=0)


def test_a_model_pickled_before_its_encoder_covered_evidence_is_served_right(evidence_only):
    model, homes, sold = evidence_only
    old = copy.deepcopy(model)  # as fit built it before: vocabulary and check on the sales
    old.encoder_ = RawEncoder.fit(sold, get_feature_set("offmarket"))
    old._compile(sold)
    assert old.uses_engine and ONLY_IN_EVIDENCE not in old.encoder_.text["SubdivisionName"]
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded.uses_engine, loaded.engine_note_
    expected = model.predict(homes, engine=False)
    np.testing.assert_allclose(loaded.predict(homes), expected, atol=0.01, rtol=0)
    point, *_ = loaded.predict_interval_matrix(loaded.encoder_.encode(homes))
    np.testing.assert_allclose(point, expected, atol=0.01, rtol=0)
