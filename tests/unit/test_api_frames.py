"""The API's frames for explanations: the listing frame holds what the model and its comparables
read, and comparables become JSON records exactly as pandas' to_dict makes them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from homevision.serving.api import _records, listings_frame
from homevision.serving.schemas import Listing


def test_listing_frame_holds_the_id_and_the_models_columns_only():
    listings = [
        Listing.model_validate(
            {"MLSNumber": 7, "SqFtTotal": 2000, "BedsTotal": 3, "BathsTotal": "2.1", "PoolYN": True}
        ),
        Listing.model_validate({"SqFtTotal": 1500, "BedsTotal": 2, "BathsFull": 1}),
    ]
    frame = listings_frame(listings, ["SqFtTotal", "BathsTotal", "PoolYN", "NotAField"])
    assert list(frame.columns) == ["MLSNumber", "SqFtTotal", "BathsTotal", "PoolYN", "NotAField"]
    assert frame["MLSNumber"].tolist()[0] == 7 and pd.isna(frame["MLSNumber"].tolist()[1])
    assert frame["BathsTotal"].tolist() == ["2.1", "1"]  # as the Listing model words it
    assert frame["PoolYN"].tolist()[0] == 1.0 and pd.isna(frame["PoolYN"].tolist()[1])
    assert frame["NotAField"].isna().all()
    assert listings_frame([], ["SqFtTotal"]).columns.tolist() == ["MLSNumber", "SqFtTotal"]


def test_records_equal_pandas_to_dict():
    frame = pd.DataFrame(
        {
            "MLSNumber": np.array([1, 2], dtype=np.int64),
            "ClosePrice": [410_000.0, np.nan],
            "ElementarySchoolName": pd.array(["Aspen", None], dtype="str"),
            "same_school": [True, False],
            "note": pd.array([None, "x"], dtype=object),
        }
    )
    ours, theirs = _records(frame), frame.to_dict(orient="records")
    assert len(ours) == len(theirs) == 2
    for mine, pandas in zip(ours, theirs, strict=True):
        assert mine.keys() == pandas.keys()
        for key, value in mine.items():
            other = pandas[key]
            assert type(value) is type(other), key
            assert value == other or (math.isnan(value) and math.isnan(other)), key
