"""Fixtures for model tests: labelled synthetic listings with a known price structure."""

from __future__ import annotations

import pandas as pd
import pytest

from homevision.data.listings import coerce_types
from homevision.data.synthetic import generate_listings


@pytest.fixture(scope="session")
def labelled() -> tuple[pd.DataFrame, pd.Series]:
    frame = coerce_types(generate_listings(1500, seed=11).astype(object))
    sold = frame[frame["Status"] == "Sold"].reset_index(drop=True)
    return sold, sold["ClosePrice"].astype(float)
