"""The synthetic generator: deterministic, readable as an export, and with the documented noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from homevision.data.listings import load_listings
from homevision.data.synthetic import (
    NOISE_SIGMA,
    UNSOLD_ONLY_SCHOOL,
    MarketDrift,
    generate_listings,
    noise_floor_rmse,
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


def test_no_drift_is_the_base_market():
    base = generate_listings(300, seed=4)
    pd.testing.assert_frame_equal(base, generate_listings(300, seed=4, drift=MarketDrift()))


def test_price_trend_compounds_by_month_with_everything_else_fixed():
    base = generate_listings(800, seed=1, market_seed=0, drift=MarketDrift(month=1))
    later = generate_listings(
        800, seed=1, market_seed=0, drift=MarketDrift(month=1, price_trend=0.02)
    )
    ratio = later["ListPrice"] / base["ListPrice"]
    assert ratio.between(1.02 - 0.002, 1.02 + 0.002).all()  # rounding to $100 only
    pd.testing.assert_series_equal(base["SqFtTotal"], later["SqFtTotal"])


def test_a_month_closes_its_sales_in_that_month_with_its_own_mls_numbers():
    month3 = generate_listings(500, seed=2, drift=MarketDrift(month=3))
    dates = pd.to_datetime(month3["CloseDate"].dropna())
    assert dates.min() >= pd.Timestamp("2020-09-01")
    assert dates.max() <= pd.Timestamp("2020-09-30")
    month4 = generate_listings(500, seed=2, drift=MarketDrift(month=4))
    assert set(month3["MLSNumber"]).isdisjoint(month4["MLSNumber"])


def test_mix_shift_moves_to_bigger_newer_attached_homes():
    base = generate_listings(3000, seed=5)
    shifted = generate_listings(3000, seed=5, drift=MarketDrift(mix_shift=1.0))
    assert shifted["SqFtTotal"].median() > 1.15 * base["SqFtTotal"].median()
    new = shifted["YearBuiltDetails"].str.startswith("New Construction").mean()
    assert new > base["YearBuiltDetails"].str.startswith("New Construction").mean() + 0.15
    attached = shifted["PropertySubType"] != "RES-Single Family"
    assert attached.mean() > (base["PropertySubType"] != "RES-Single Family").mean() + 0.08


def test_new_school_takes_its_share_and_prices_with_its_own_effect():
    drift = MarketDrift(new_school="Zephyr Park", new_school_share=0.2)
    frame = generate_listings(2000, seed=6, drift=drift)
    share = (frame["ElementarySchoolName"] == "Zephyr Park").mean()
    assert 0.17 < share < 0.23
    with pytest.raises(ValueError, match="mix_shift"):
        MarketDrift(mix_shift=2.0)


def test_sample_data_cli_writes_a_drifted_month(tmp_path):
    from typer.testing import CliRunner

    from homevision.cli import app

    out = tmp_path / "m2.csv"
    args = ["sample-data", "--rows", "300", "--month", "2", "--price-trend", "0.01"]
    result = CliRunner().invoke(app, [*args, "--new-school", "Zephyr Park", "--output", str(out)])
    assert result.exit_code == 0, result.output
    frame = load_listings(out).typed
    assert (frame["ElementarySchoolName"] == "Zephyr Park").any()
    assert pd.to_datetime(frame["CloseDate"].dropna()).dt.month.eq(8).all()
    bad = CliRunner().invoke(
        app, ["sample-data", "--new-school-share", "1.5", "--output", str(out)]
    )
    assert bad.exit_code == 2


def test_the_stated_noise_floor_is_the_true_models_error():
    floor = noise_floor_rmse(4000, seed=2)
    frame = generate_listings(4000, seed=2)
    sold = frame["ClosePrice"].dropna().astype(float)
    # The floor sits near the documented log noise times a typical price, and below what
    # knowing nothing but the median price gives.
    assert 0.06 * sold.median() < floor < 0.12 * sold.mean()
    assert floor < float(np.sqrt(np.mean((sold - sold.median()) ** 2)))
    # Without noise every other column is the same: only the price moved.
    clean = generate_listings(4000, seed=2, noise=0.0)
    pd.testing.assert_series_equal(clean["SqFtTotal"], frame["SqFtTotal"])
