"""The synthetic generator: deterministic, readable as an export, and with the documented noise."""

from __future__ import annotations

import numpy as np
import pandas as pd

from homevision.data.listings import load_listings
from homevision.data.synthetic import (
    NOISE_SIGMA,
    UNSOLD_ONLY_SCHOOL,
    generate_listings,
    write_listings,
)


def test_same_seed_same_listings_other_seed_other_listings():
    pd.testing.assert_frame_equal(generate_listings(300, 3), generate_listings(300, 3))
    assert not generate_listings(300, 3).equals(generate_listings(300, 4))


def test_round_trip_through_the_reader(tmp_path):
    path = write_listings(generate_listings(2000, 0), tmp_path / "s.csv")
    raw = path.read_bytes()
    assert raw.startswith(b'"MLSNumber"') and b'"\r\n"' in raw  # quoted, CRLF
    listings = load_listings(path)
    assert listings.validation.rows == 2000
    assert listings.validation.rejected.empty
    assert 0.25 < len(listings.labelled) / 2000 < 0.35
    assert {"cdom_negative", "lot_size_missing", "lot_size_zero"} <= set(
        listings.validation.repaired
    )


def test_marginals_resemble_the_real_sample():
    frame = generate_listings(20_000, 1)
    sold = frame[frame["Status"] == "Sold"]
    assert 2300 < frame["SqFtTotal"].median() < 3100
    assert frame["BedsTotal"].between(1, 6).all()
    assert 300_000 < sold["ClosePrice"].median() < 450_000
    assert frame["ClosePrice"].notna().sum() == len(sold)
    baths = frame["BathsTotal"].astype(str)
    assert baths.str.fullmatch(r"\d(\.\d)?").all()


def test_quirks_rare_schools_and_a_school_only_among_unsold_rows():
    frame = generate_listings(5000, 2)
    sold = frame["Status"] == "Sold"
    assert UNSOLD_ONLY_SCHOOL in set(frame.loc[~sold, "ElementarySchoolName"])
    assert UNSOLD_ONLY_SCHOOL not in set(frame.loc[sold, "ElementarySchoolName"])
    counts = frame["ElementarySchoolName"].value_counts()
    assert (counts < 20).any()
    assert (frame["CDOM"] < 0).any()
    assert frame["LotSizeAreaSQFT"].isna().any()


def test_documented_noise_is_recovered_by_the_true_model():
    """Regress log price on the generator's own terms: the residual is the documented noise."""
    frame = generate_listings(40_000, 5)
    sold = frame[frame["Status"] == "Sold"].copy()
    lot = sold["LotSizeAreaSQFT"].astype("float64")
    sold = sold[lot.notna()]
    lot = lot[lot.notna()]
    half = sold["BathsHalf"].astype(float)
    numeric = np.column_stack(
        [
            np.log(sold["SqFtTotal"] / 2500),
            np.log1p(lot / 1000),
            sold["BedsTotal"],
            sold["BathsFull"],
            half,
            np.log1p(sold["CDOM"].abs()),
            sold["PoolYN"].eq("True"),
            sold["YearBuiltDetails"].str.startswith("New Construction"),
            sold["PropertySubType"].ne("RES-Single Family"),
        ]
    ).astype(float)
    dummies = pd.get_dummies(sold[["ElementarySchoolName", "SubdivisionName"]]).to_numpy(float)
    design = np.column_stack([numeric, dummies])
    y = np.log(sold["ClosePrice"].astype(float).to_numpy())
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    dof = len(y) - np.linalg.matrix_rank(design)
    sigma = np.sqrt((residual**2).sum() / dof)
    assert abs(sigma - NOISE_SIGMA) < 0.006, sigma
