"""No silent clipping: a listing outside the training data is flagged (warning, still valued),
a valuation outside what the model supports is refused (error, no prices), in every face that
goes through valuation.predict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from homevision.config import params_file
from homevision.data.listings import coerce_types
from homevision.data.synthetic import generate_listings
from homevision.features import get_feature_set
from homevision.training.candidates import build_model
from homevision.valuation.model import ValuationModel
from homevision.valuation.predict import (
    OUTPUT_COLUMNS,
    PRICE_COLUMNS,
    support_flags,
    value_frame,
    value_listings,
)


def _sold(rows: int, seed: int) -> pd.DataFrame:
    frame = coerce_types(generate_listings(rows, seed, market_seed=0).astype(object))
    return frame[frame["Status"] == "Sold"].reset_index(drop=True)


@pytest.fixture(scope="module")
def task6() -> tuple[ValuationModel, pd.DataFrame]:
    train = _sold(1200, seed=31)
    model = ValuationModel(
        build_model("ridge", get_feature_set("task6")),
        feature_set="task6",
        interval_variant="cv_base",
        background_rows=20,
    ).fit(train, train["ClosePrice"])
    return model, train


@pytest.fixture(scope="module")
def onmarket() -> tuple[ValuationModel, pd.DataFrame]:
    train = _sold(1200, seed=32)
    model = ValuationModel(
        build_model("ridge", get_feature_set("onmarket")),
        feature_set="onmarket",
        interval_variant="cv_base",
        background_rows=20,
    ).fit(train, train["ClosePrice"])
    return model, train


def test_fit_records_the_range_of_every_numeric_column_and_of_prices(task6):
    model, train = task6
    fs = get_feature_set("task6")
    assert set(model.training_ranges_) == {*fs.numeric, fs.baths}
    assert model.training_ranges_["SqFtTotal"] == (
        train["SqFtTotal"].min(),
        train["SqFtTotal"].max(),
    )
    assert model.price_range_ == tuple(np.quantile(train["ClosePrice"], [0.01, 0.99]))


def test_a_home_far_outside_training_is_valued_with_a_warning(task6):
    model, train = task6
    rows = train.head(3).copy()
    largest = train["SqFtTotal"].max()
    rows.loc[1, "SqFtTotal"] = round(largest * 1.2)
    rows.loc[2, "SqFtTotal"] = 60_000
    out = value_frame(model, rows).frame
    assert out.loc[0, "warning"] == ""
    assert (
        f"SqFtTotal {round(largest * 1.2):,.0f} above the largest seen in training "
        f"({largest:,.0f})" in out.loc[1, "warning"]
    )
    assert "SqFtTotal 60,000 above the largest" in out.loc[2, "warning"]
    assert (out.loc[:1, "error"] == "").all()  # an extrapolation is still valued
    assert out.loc[:1, PRICE_COLUMNS].notna().all().all()


def test_a_valuation_outside_the_supported_prices_is_refused_and_the_rest_valued(
    task6, monkeypatch
):
    model, train = task6
    rows = train.head(4).copy()
    rows.loc[2, "SqFtTotal"] = 2345.5  # the marked home: its valuation goes wild
    real = model.predict(rows)
    original = model.predict_interval_matrix
    sqft = model.encoder_.index("SqFtTotal")

    def wild(raw, confidence=None):
        out = [np.array(a, dtype=float) for a in original(raw, confidence)]
        for a in out:
            a[raw[:, sqft] == 2345.5] = 1e12
        return tuple(out)

    monkeypatch.setattr(model, "predict_interval_matrix", wild)
    out = value_frame(model, rows, explain=True)
    frame = out.frame
    assert "outside what this model supports" in frame.loc[2, "error"]
    assert frame.loc[2, PRICE_COLUMNS].isna().all()
    valued = frame.drop(index=2)
    assert (valued["error"] == "").all() and valued[PRICE_COLUMNS].notna().all().all()
    np.testing.assert_allclose(valued["predicted_close_price"], np.delete(real, 2).round(0))
    assert out.explanations[2] is None and out.explanations[0] is not None


def test_non_finite_and_tiny_valuations_are_refused(task6):
    model, train = task6
    rows = train.head(3)
    low_price = model.price_range_[0] / 3
    point = np.array([np.nan, low_price * 0.5, model.price_range_[0]])
    errors, warnings = support_flags(model, rows, point, factor=3)
    assert "no finite valuation" in errors[0]
    assert "outside what this model supports" in errors[1]
    assert errors[2] == "" and warnings == ["", "", ""]
    # The factor is a setting: a wider tolerance accepts the same valuation.
    assert support_flags(model, rows, point, factor=10)[0][1] == ""


def test_support_factor_comes_from_params(task6, tmp_path, monkeypatch):
    model, train = task6
    path = tmp_path / "params.yaml"
    params = yaml.safe_load(params_file().read_text())
    params["valuation"] = {"support_factor": 1.01}
    path.write_text(yaml.safe_dump(params))
    monkeypatch.setenv("HOMEVISION_PARAMS", str(path))
    point = np.array([model.price_range_[1] * 1.5])
    assert "outside" in support_flags(model, train.head(1), point)[0][0]


def test_clipped_absurd_inputs_are_refused_not_valued_at_1_or_10_billion(onmarket):
    """The price model clips log price to $1..$10 billion; such a valuation must not appear."""
    model, _ = onmarket
    raw = generate_listings(6, seed=40, market_seed=0).astype(object).reset_index(drop=True)
    raw["Status"] = "Active"
    raw["ClosePrice"] = None
    raw.loc[1, "ListPrice"] = "1e300"
    raw.loc[3, "NumberOfStories"] = "1e12"
    out = value_listings(model, raw).frame
    assert list(out.columns) == OUTPUT_COLUMNS and OUTPUT_COLUMNS[-2:] == ["error", "warning"]
    for i in (1, 3):
        assert out.loc[i, "error"], out.loc[i].to_dict()
        assert out.loc[i, PRICE_COLUMNS].isna().all()
    for i in (0, 2, 4, 5):
        assert out.loc[i, "error"] == "" and out.loc[i, "predicted_close_price"] > 10_000


def test_a_list_price_far_above_training_is_refused(onmarket):
    model, train = onmarket
    rows = train.head(3).copy()
    rows.loc[0, "ListPrice"] = 9e8
    out = value_frame(model, rows).frame
    assert "ListPrice 900,000,000 above the largest seen in training" in out.loc[0, "warning"]
    assert "outside what this model supports" in out.loc[0, "error"]
    assert out.loc[0, PRICE_COLUMNS].isna().all()
    assert (out.loc[1:, "error"] == "").all() and out.loc[1:, PRICE_COLUMNS].notna().all().all()


def test_models_logged_before_the_ranges_get_no_flags(task6):
    model, train = task6
    old = ValuationModel.__new__(ValuationModel)
    old.__dict__.update(
        {k: v for k, v in model.__dict__.items() if k not in {"training_ranges_", "price_range_"}}
    )
    rows = train.head(2).copy()
    rows.loc[0, "SqFtTotal"] = 60_000
    out = value_frame(old, rows).frame
    assert (out["warning"] == "").all() and (out["error"] == "").all()
    errors, _ = support_flags(old, rows, np.array([np.inf, 1.0]))
    assert errors[0] and errors[1] == ""
