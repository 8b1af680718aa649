"""The API's frames for explanations: the frame of its records holds what the model and its
comparables read, and comparables become JSON records exactly as pandas' to_dict makes them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from homevision.serving.api import _records
from homevision.serving.schemas import Listing
from homevision.valuation.comps import COMP_COLUMNS, ComparableFrames
from homevision.valuation.explain import Contributions
from homevision.valuation.predict import Explanation
from homevision.valuation.records import records_frame


def test_a_records_frame_holds_the_id_and_the_models_columns_only():
    listings = [
        Listing.model_validate(
            {"MLSNumber": 7, "SqFtTotal": 2000, "BedsTotal": 3, "BathsTotal": "2.1", "PoolYN": True}
        ),
        Listing.model_validate({"SqFtTotal": 1500, "BedsTotal": 2, "BathsFull": 1}),
    ]
    records = [listing.model_dump() for listing in listings]
    frame = records_frame(records, ["SqFtTotal", "BathsTotal", "PoolYN", "NotAField"])
    assert list(frame.columns) == ["MLSNumber", "SqFtTotal", "BathsTotal", "PoolYN", "NotAField"]
    assert frame["MLSNumber"].tolist()[0] == 7 and pd.isna(frame["MLSNumber"].tolist()[1])
    assert frame["BathsTotal"].tolist() == ["2.1", "1"]  # as the Listing model words it
    assert frame["PoolYN"].tolist()[0] == 1.0 and pd.isna(frame["PoolYN"].tolist()[1])
    assert frame["NotAField"].isna().all()
    assert records_frame([], ["SqFtTotal"]).columns.tolist() == ["MLSNumber", "SqFtTotal"]


def assert_records_equal_to_dict(exp: Explanation) -> None:
    ours, theirs = _records(exp), exp.comparables.to_dict(orient="records")
    assert len(ours) == len(theirs)
    for mine, pandas in zip(ours, theirs, strict=True):
        assert mine.keys() == pandas.keys()
        for key, value in mine.items():
            other = pandas[key]
            assert type(value) is type(other), key
            assert value == other or (math.isnan(value) and math.isnan(other)), key


def test_records_equal_pandas_to_dict():
    """Of a comps frame of its own, and of comps read from a batch's columns (ComparableFrames:
    cut from the batch's frame, or a frame of their own)."""
    columns = {
        "MLSNumber": np.array([1, 2, 3], dtype=np.int64),
        "ClosePrice": np.array([410_000.0, np.nan, 5.0]),
        "distance": np.array([0.5, 1.0, 2.0]),
        "same_school": np.array([True, False, False]),
        "ElementarySchoolName": np.array(["Aspen", None, "Elm"], dtype=object),
        **{f"{n}_diff": np.array([1.0, np.nan, -2.0]) for n in ("sqft", "beds", "baths", "lot")},
    }
    assert list(columns) == COMP_COLUMNS
    frame = pd.DataFrame(columns).astype({"ElementarySchoolName": "str"})
    assert_records_equal_to_dict(Explanation(0.0, {}, [frame], 0))
    batch = ComparableFrames(columns, np.array([2, 1]))
    assert batch.alone.tolist() == [False, False]
    for position in (0, 1):
        assert_records_equal_to_dict(Explanation(0.0, {}, batch, position))
    columns["ElementarySchoolName"][2] = 7  # not text: each home gets a frame of its own
    batch = ComparableFrames(columns, np.array([2, 1]))
    assert batch.alone.all()
    for position in (0, 1):
        assert_records_equal_to_dict(Explanation(0.0, {}, batch, position))


def test_contributions_of_records_read_their_feature_values_as_a_frame():
    records = [
        {"MLSNumber": 1, "SqFtTotal": 2000, "PoolYN": True},
        {"MLSNumber": 2, "SqFtTotal": None, "PoolYN": False},
    ]
    values = pd.DataFrame({"SqFtTotal": [1.0, 2.0], "PoolYN": [0.5, -0.5]})
    got = Contributions(values, np.zeros(2), records).feature_values
    assert list(got.columns) == ["SqFtTotal", "PoolYN"]
    assert got["PoolYN"].tolist() == [1.0, 0.0]
    assert got["SqFtTotal"].tolist()[0] == 2000 and pd.isna(got["SqFtTotal"].tolist()[1])
