"""Data tests on the real Frisco export (skipped with a reason when ../shared is absent)."""

from __future__ import annotations

import pandas as pd

from homevision.data.listings import load_listings, read_export, validate_listings
from homevision.data.schema import REQUIRED_COLUMNS
from homevision.features import build_preprocessor, feature_set_names, get_feature_set, is_leaky


def test_real_sample_shape_and_labels(real_data_path):
    listings = load_listings(real_data_path)
    assert listings.validation.rows == 608
    assert len(listings.raw.columns) == 250
    assert len(listings.validation.rejected) == 0
    assert len(listings.labelled) == 178
    assert len(listings.to_value) == 430
    assert listings.raw["MLSNumber"].is_unique


def test_real_sample_quirks_are_repaired_and_counted(real_data_path):
    result = load_listings(real_data_path).validation
    assert result.repaired["cdom_negative"] == 3
    assert result.repaired["lot_size_missing"] == 1
    assert result.repaired["lot_size_zero"] == 30
    assert result.repaired["list_price_implausible"] == 1


def test_current_price_leaks_the_label_and_no_feature_set_uses_it(real_data_path):
    sold = load_listings(real_data_path).labelled
    current = pd.to_numeric(sold["CurrentPrice"])
    assert (current == sold["ClosePrice"]).all()  # the leak is real
    for name in feature_set_names():
        assert not [c for c in get_feature_set(name).raw_columns if is_leaky(c)]


def test_every_feature_set_column_is_in_the_export(real_data_path):
    columns = set(read_export(real_data_path).columns)
    assert set(REQUIRED_COLUMNS) <= columns
    for name in feature_set_names():
        assert set(get_feature_set(name).raw_columns) <= columns, name


def test_preprocessor_fits_sold_rows_and_values_unsold_rows(real_data_path):
    listings = load_listings(real_data_path)
    for name in feature_set_names():
        for family in ("linear", "tree"):
            pre = build_preprocessor(name, family).fit(
                listings.labelled, listings.labelled["ClosePrice"]
            )
            out = pre.transform(listings.to_value)
            assert len(out) == 430 and not out.isna().any().any(), (name, family)


def test_damaged_copy_names_every_damaged_row_and_loses_none(real_data_path):
    raw = read_export(real_data_path)
    damaged = raw.copy()
    damage = {
        10: ("SqFtTotal", "unknown"),
        50: ("BathsTotal", "2 1/2"),
        99: ("BedsTotal", "-3"),
        150: ("MLSNumber", raw.loc[0, "MLSNumber"]),
        300: ("SqFtTotal", None),
        400: ("LotSizeAreaSQFT", "-100"),
    }
    for row, (column, value) in damage.items():
        damaged.loc[row, column] = value
    result = validate_listings(damaged)
    assert len(result.accepted) + len(result.rejected) == len(raw)
    assert sorted(result.rejected.index) == sorted(damage)
    fatal = result.violations[result.violations["fatal"]]
    for row, (column, _) in damage.items():
        hit = fatal[(fatal["row"] == row + 1) & (fatal["column"] == column)]
        assert len(hit) == 1, (row, column)
        assert hit["MLSNumber"].iloc[0] == damaged.loc[row, "MLSNumber"]
