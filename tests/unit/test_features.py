"""Each feature transformer on tiny frames, each with a negative case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from homevision.features import (
    ANNUAL_FEE,
    AnnualFee,
    BathsSplitter,
    CDOMRepair,
    ColumnSelector,
    ImplausibleToMissing,
    LotSizeImputer,
    RatioFeatures,
    TokenIndicators,
    build_preprocessor,
    fee_multiplier,
    split_baths,
    split_tokens,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2.1", (2, 1)),
        ("3", (3, 0)),
        (2.0, (2, 0)),  # a whole float is full baths; a fractional one is not "F.H"
        (4, (4, 0)),
        ("5.2", (5, 2)),
        ("10.1", (10, 1)),
    ],
)
def test_split_baths_reads_full_dot_half(value, expected):
    assert split_baths(value) == expected


@pytest.mark.parametrize("value", ["2,5", "two", "", None, np.nan, "2.1.1"])
def test_split_baths_rejects_garbage_as_nan(value):
    full, half = split_baths(value)
    assert np.isnan(full) and np.isnan(half)


def test_baths_splitter_replaces_column_and_names_outputs():
    frame = pd.DataFrame({"BathsTotal": ["2.1", "3", "4.2"], "x": [1, 2, 3]})
    step = BathsSplitter().fit(frame)
    out = step.transform(frame)
    assert list(out.columns) == ["x", "baths_full", "baths_half"]
    assert out["baths_full"].tolist() == [2, 3, 4]
    assert out["baths_half"].tolist() == [1, 0, 2]
    assert list(step.get_feature_names_out()) == list(out.columns)
    # 2.1 baths is not 2.1 bathrooms: never summed as a decimal.
    assert out["baths_full"].iloc[0] + out["baths_half"].iloc[0] != 2.1


def test_cdom_repair_flips_sign_errors_and_imputes_training_median():
    train = pd.DataFrame({"CDOM": [10.0, -30.0, 50.0, np.nan]})
    step = CDOMRepair().fit(train)
    assert step.median_ == 30.0  # median of |10|, |-30|, |50|
    out = step.transform(pd.DataFrame({"CDOM": [-62.0, np.nan, 5.0]}))
    assert out["CDOM"].tolist() == [62.0, 30.0, 5.0]


def test_cdom_repair_median_ignores_rows_it_only_transforms():
    step = CDOMRepair().fit(pd.DataFrame({"CDOM": [1.0, 2.0, 3.0]}))
    step.transform(pd.DataFrame({"CDOM": [1000.0, np.nan]}))
    assert step.median_ == 2.0


def test_lot_imputer_uses_living_area_ratio_and_flags_zero_lots():
    train = pd.DataFrame(
        {"LotSizeAreaSQFT": [6000.0, 9000.0, 0.0], "SqFtTotal": [2000, 3000, 1500]}
    )
    step = LotSizeImputer().fit(train)
    assert step.ratio_ == 3.0  # zero lots do not drag the ratio down
    out = step.transform(
        pd.DataFrame({"LotSizeAreaSQFT": [np.nan, 0.0, 5000.0], "SqFtTotal": [1000, 1200, 2500]})
    )
    assert out["LotSizeAreaSQFT"].tolist() == [3000.0, 0.0, 5000.0]
    assert out["lot_is_zero"].tolist() == [0.0, 1.0, 0.0]


def test_implausible_list_price_becomes_missing():
    step = ImplausibleToMissing("ListPrice", 10_000).fit(pd.DataFrame({"ListPrice": [1.0]}))
    out = step.transform(pd.DataFrame({"ListPrice": [2500.0, 400_000.0]}))
    assert np.isnan(out["ListPrice"].iloc[0])
    assert out["ListPrice"].iloc[1] == 400_000.0


def test_ratio_features_guard_zero_bedrooms():
    frame = pd.DataFrame(
        {
            "SqFtTotal": [2000.0, 900.0],
            "BedsTotal": [4.0, 0.0],
            "LotSizeAreaSQFT": [8000.0, 0.0],
            "baths_full": [2.0, 1.0],
            "baths_half": [1.0, 0.0],
        }
    )
    out = RatioFeatures().fit(frame).transform(frame)
    assert out["sqft_per_bed"].tolist() == [500.0, 900.0]
    assert out["baths_per_bed"].tolist() == [0.625, 1.0]
    assert out["lot_to_living"].tolist() == [4.0, 0.0]
    assert np.isfinite(out.select_dtypes("number")).all().all()


def test_column_selector_names_a_missing_column():
    step = ColumnSelector(numeric=("SqFtTotal",), text=("ElementarySchoolName",))
    frame = pd.DataFrame({"SqFtTotal": [1.0]})
    with pytest.raises(KeyError, match="ElementarySchoolName"):
        step.fit(frame).transform(frame)


def test_column_selector_reads_booleans_and_numeric_strings():
    step = ColumnSelector(numeric=("PoolYN", "SqFtTotal"))
    frame = pd.DataFrame({"PoolYN": ["True", "False"], "SqFtTotal": ["2000", "1500"]})
    out = step.fit(frame).transform(frame)
    assert out["PoolYN"].tolist() == [1.0, 0.0]
    assert out["SqFtTotal"].tolist() == [2000.0, 1500.0]


def _listings(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    schools = np.array(["A", "B", "C", "Rare"])
    return pd.DataFrame(
        {
            "BathsTotal": rng.choice(["2", "2.1", "3.1"], n),
            "BedsTotal": rng.integers(2, 6, n).astype(float),
            "CDOM": rng.integers(-5, 100, n).astype(float),
            "LotSizeAreaSQFT": rng.choice([0.0, 6000.0, 8000.0, np.nan], n),
            "SqFtTotal": rng.integers(1000, 4000, n).astype(float),
            "ElementarySchoolName": rng.choice(schools, n, p=[0.4, 0.3, 0.27, 0.03]),
        }
    )


@pytest.mark.parametrize("family", ["linear", "tree"])
def test_preprocessor_outputs_named_complete_numbers(family):
    frame = _listings()
    y = 100 * frame["SqFtTotal"]
    pre = build_preprocessor("task6", family).fit(frame, y)
    out = pre.transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert not out.isna().any().any()
    assert any("SqFtTotal" in c for c in out.columns)
    assert any("ElementarySchoolName" in c for c in out.columns)


@pytest.mark.parametrize("family", ["linear", "tree"])
def test_preprocessor_copes_with_unseen_and_missing_school(family):
    frame = _listings()
    pre = build_preprocessor("task6", family).fit(frame, 100 * frame["SqFtTotal"])
    new = _listings(3, seed=1)
    new["ElementarySchoolName"] = ["Brand New School", None, "A"]
    out = pre.transform(new)
    assert len(out) == 3 and not out.isna().any().any()


def test_linear_preprocessor_groups_rare_schools():
    frame = _listings(60)
    pre = build_preprocessor("task6", "linear", school_min_count=5).fit(frame, frame["SqFtTotal"])
    school_cols = [c for c in pre.transform(frame).columns if c.startswith("school__")]
    assert not any(c.endswith("_Rare") for c in school_cols)
    assert any("infrequent" in c for c in school_cols)


def test_preprocessor_does_not_mutate_its_input():
    frame = _listings()
    before = frame.copy()
    build_preprocessor("task6", "tree").fit_transform(frame, frame["SqFtTotal"])
    pd.testing.assert_frame_equal(frame, before)


def test_preprocessor_rejects_unknown_family_and_feature_set():
    with pytest.raises(ValueError, match="family"):
        build_preprocessor("task6", "quantum")
    with pytest.raises(KeyError, match="task6"):
        build_preprocessor("no-such-set", "tree")


@pytest.mark.parametrize(
    ("frequency", "per_year"),
    [("Monthly", 12), ("Quarterly", 4), ("Semi-Annual", 2), ("Annual", 1), (" monthly ", 12)],
)
def test_fee_frequency_becomes_payments_per_year(frequency, per_year):
    assert fee_multiplier(frequency) == per_year


@pytest.mark.parametrize("frequency", ["Other", "", None, np.nan, 12])
def test_unknown_fee_frequency_is_missing_not_a_guess(frequency):
    assert np.isnan(fee_multiplier(frequency))


def test_annual_fee_turns_amount_and_frequency_into_one_yearly_amount():
    frame = pd.DataFrame(
        {
            "AssociationFee": [50.0, 600.0, 150.0, np.nan, 300.0],
            "AssociationFeeFrequency": ["Monthly", "Annual", "Quarterly", None, "Other"],
            "SqFtTotal": [1.0] * 5,
        }
    )
    step = AnnualFee().fit(frame)
    out = step.transform(frame)
    assert list(out.columns) == ["SqFtTotal", ANNUAL_FEE]
    assert list(step.get_feature_names_out()) == ["SqFtTotal", ANNUAL_FEE]
    # $50 a month and $600 a year are the same; no fee is no association (0); an amount at an
    # unknown frequency is missing, left to the imputer.
    np.testing.assert_array_equal(out[ANNUAL_FEE].to_numpy()[:4], [600.0, 600.0, 600.0, 0.0])
    assert np.isnan(out[ANNUAL_FEE].iloc[4])


def test_split_tokens_reads_comma_separated_lists():
    assert split_tokens("Gutters, Patio Open ,Gutters") == {"Gutters", "Patio Open"}
    assert split_tokens(None) == set() and split_tokens(np.nan) == set()
    assert split_tokens(" , ") == set()


def test_token_indicators_keep_frequent_items_learned_from_training_rows_only():
    train = pd.DataFrame({"Flooring": ["Wood, Carpet", "Wood", "Carpet, Tile", None, "Wood"]})
    step = TokenIndicators(min_count=2).fit(train)
    assert step.tokens_ == {"Flooring": ["Carpet", "Wood"]}  # Tile seen once: no column
    assert list(step.get_feature_names_out()) == ["Flooring=Carpet", "Flooring=Wood"]
    # A new item (Marble) and a rare one (Tile) are ignored; a missing list has no items.
    new = pd.DataFrame({"Flooring": ["Marble, Wood", "Tile", None]})
    np.testing.assert_array_equal(step.transform(new), [[0, 1], [0, 0], [0, 0]])
    # Negative case: an item only the scored rows have never becomes a column.
    assert "Marble" not in step.tokens_["Flooring"]


def test_preprocessor_reads_fee_taxes_and_feature_lists_when_the_set_has_them():
    from dataclasses import replace

    from homevision.features import get_feature_set

    frame = _listings()
    rng = np.random.default_rng(1)
    frame["UnexemptTaxes"] = rng.uniform(3000, 9000, len(frame))
    frame["AssociationFee"] = rng.choice([50.0, 600.0, np.nan], len(frame))
    frame["AssociationFeeFrequency"] = rng.choice(["Monthly", "Annual"], len(frame))
    frame["Flooring"] = rng.choice(["Wood, Carpet", "Tile", None], len(frame))
    base = get_feature_set("task6")
    fs = replace(
        base,
        numeric=(*base.numeric, "UnexemptTaxes"),
        fee=("AssociationFee", "AssociationFeeFrequency"),
        token_lists=("Flooring",),
    )
    for family in ("linear", "tree"):
        out = build_preprocessor(fs, family, token_min_count=3).fit_transform(frame, frame.CDOM)
        assert not out.isna().any().any()
        assert any(ANNUAL_FEE in c for c in out.columns)
        assert any("UnexemptTaxes" in c for c in out.columns)
        assert {c.split("__")[-1] for c in out.columns} >= {"Flooring=Wood", "Flooring=Tile"}


def test_the_tax_record_is_cleaned_per_square_foot_and_flagged():
    from homevision.features import TAX_MISSING, TAX_PER_SQFT, TaxRecord

    train = pd.DataFrame({"UnexemptTaxes": [6000.0, 8000.0, 10000.0], "SqFtTotal": [2000.0] * 3})
    record = TaxRecord(min_share=0.5).fit(train)
    assert record.per_sqft_ == 4.0  # median of 3, 4, 5 $/sqft
    homes = pd.DataFrame(
        {"UnexemptTaxes": [9000.0, 0.0, 1000.0, np.nan], "SqFtTotal": [3000.0] * 4}
    )
    out = record.transform(homes)
    # A real bill is kept; no bill, a land-only one (0.33 $/sqft < half of 4) and a missing one
    # become the median rate x the living area, flagged.
    assert out["UnexemptTaxes"].tolist() == [9000.0, 12000.0, 12000.0, 12000.0]
    assert out[TAX_MISSING].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert out[TAX_PER_SQFT].tolist() == [3.0, 4.0, 4.0, 4.0]


def test_the_garage_area_is_length_times_width_and_zero_without_a_garage():
    from homevision.features import GARAGE_AREA, GarageArea

    homes = pd.DataFrame(
        {"GarageLength": [20.0, 0.0, np.nan, 21.0], "GarageWidth": [20.0, 19.0, np.nan, np.nan]}
    )
    out = GarageArea().fit(homes).transform(homes)
    assert list(out.columns) == [GARAGE_AREA]
    assert out[GARAGE_AREA].tolist()[:2] == [400.0, 0.0]
    assert out[GARAGE_AREA].isna().tolist()[2:] == [True, True]


def test_linear_models_can_give_well_supported_subdivisions_their_own_column():
    import dataclasses

    from homevision.features import build_preprocessor, get_feature_set

    fs = get_feature_set("offmarket")
    rows = 60
    frame = pd.DataFrame({c: [np.nan] * rows for c in fs.raw_columns})
    frame["SqFtTotal"] = 2000.0
    frame["BathsTotal"] = "2.1"
    frame["SubdivisionName"] = ["Big"] * 30 + ["Mid"] * 10 + [f"s{i}" for i in range(20)]
    y = np.linspace(12, 13, rows)
    one_hot = build_preprocessor(fs, "linear", subdivision_min_count=10).fit(frame, y)
    names = [n for n in one_hot.get_feature_names_out() if n.startswith("hicard__")]
    assert {"hicard__SubdivisionName_Big", "hicard__SubdivisionName_Mid"} <= set(names)
    assert "hicard__SubdivisionName_infrequent_sklearn" in names
    encoded = build_preprocessor(dataclasses.replace(fs), "linear", subdivision_min_count=0)
    names = encoded.fit(frame, y).get_feature_names_out()
    assert [n for n in names if n.startswith("hicard__")] == ["hicard__SubdivisionName"]
