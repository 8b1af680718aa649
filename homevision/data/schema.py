"""The MLS export data contract, as a pandera schema over the raw (string) columns.

The schema is applied to the columns exactly as read from the file, so every reported failure
carries the value the user will find in their export. Each check is named by a rule id; rules in
`REPAIRABLE_RULES` describe quirks the feature pipeline repairs (the row is kept and counted),
every other rule is fatal (the row cannot be valued and is set aside with the reason).
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera import Check

MLS_ID = "MLSNumber"
STATUS = "Status"
TARGET = "ClosePrice"
SOLD = "Sold"
BATHS = "BathsTotal"
SCHOOL = "ElementarySchoolName"

# The header must hold these for a file to count as a listings export.
REQUIRED_COLUMNS: tuple[str, ...] = (
    MLS_ID,
    BATHS,
    "BedsTotal",
    "CDOM",
    "LotSizeAreaSQFT",
    "SqFtTotal",
    SCHOOL,
)

# Columns read as numbers wherever a feature set or the label uses them.
NUMERIC_COLUMNS: tuple[str, ...] = (
    "BedsTotal",
    "CDOM",
    "LotSizeAreaSQFT",
    "SqFtTotal",
    "ListPrice",
    "OriginalListPrice",
    TARGET,
    "NumberOfStories",
    "ParkingSpacesGarage",
    "NumberOfLivingAreas",
    "FireplacesTotal",
)
BOOLEAN_COLUMNS: tuple[str, ...] = ("PoolYN",)

# Rule id -> what it means, shown in reports.
RULES: dict[str, str] = {
    "missing_value": "a value is required",
    "not_a_number": "must be a number",
    "not_an_integer": "must be a whole number",
    "not_positive": "must be greater than 0",
    "negative": "must not be negative",
    "implausible": "outside the plausible range",
    "baths_format": 'must be "F.H": full baths, a dot, half baths (e.g. 2.1)',
    "duplicate": "MLSNumber already used by an earlier row",
    "sold_price_invalid": "a Sold listing needs a ClosePrice greater than 0",
    "cdom_negative": "negative days on market: sign repaired",
    "cdom_missing": "days on market missing: imputed",
    "lot_size_missing": "lot size missing: imputed",
    "lot_size_zero": "lot size 0 (townhouse/duplex): flagged, kept",
    "school_missing": "school missing: treated as an unknown school",
    "list_price_implausible": "asking price below 10,000 (a lease price?): treated as missing",
}
REPAIRABLE_RULES: frozenset[str] = frozenset(
    {
        "cdom_negative",
        "cdom_missing",
        "lot_size_missing",
        "lot_size_zero",
        "school_missing",
        "list_price_implausible",
    }
)

# Plausibility bounds: a value outside them is a data-entry error, not a home.
MAX_SQFT = 100_000
MAX_BEDS = 50
MAX_LOT_SQFT = 1e9
MAX_ABS_CDOM = 20_000
MIN_LIST_PRICE = 10_000
BATHS_PATTERN = r"^\s*\d{1,2}(\.\d{1,2})?\s*$"


def to_number(values: pd.Series) -> pd.Series:
    """Return the values as floats, NaN where missing or not a number."""
    return pd.to_numeric(values, errors="coerce").astype("float64")


def _is_number(s: pd.Series) -> pd.Series:
    return s.isna() | to_number(s).notna()


def _ge(bound: float, strict: bool = False):
    def check(s: pd.Series) -> pd.Series:
        num = to_number(s)
        ok = num > bound if strict else num >= bound
        return num.isna() | ok

    return check


def _le_abs(bound: float):
    def check(s: pd.Series) -> pd.Series:
        num = to_number(s)
        return num.isna() | (num.abs() <= bound)

    return check


def _is_integer(s: pd.Series) -> pd.Series:
    num = to_number(s)
    return num.isna() | (num == num.round())


def _baths_format_ok(s: pd.Series) -> pd.Series:
    return s.isna() | s.astype("string").str.match(BATHS_PATTERN).fillna(False).astype(bool)


def _present(s: pd.Series) -> pd.Series:
    return s.notna() & (s.astype("string").str.strip() != "")


def _numeric_checks(fatal_range: list[Check]) -> list[Check]:
    return [Check(_is_number, name="not_a_number", ignore_na=False), *fatal_range]


def _sold_price_ok(frame: pd.DataFrame) -> pd.Series:
    sold = frame[STATUS].astype("string").str.strip().eq(SOLD).fillna(False)
    price = to_number(frame[TARGET])
    # A Sold row with no ClosePrice at all is not fatal: it is simply valued, not learned from.
    # A non-number is reported by the column's own not_a_number check.
    bad = sold & price.notna() & (price <= 0)
    return ~bad


def build_schema(columns: list[str]) -> pa.DataFrameSchema:
    """Return the schema for an export whose header is `columns` (optional columns checked when
    present). Every check is element-wise in effect, so failures point at rows."""
    cols: dict[str, pa.Column] = {
        MLS_ID: pa.Column(
            nullable=False,
            checks=[
                *_numeric_checks([Check(_is_integer, name="not_an_integer", ignore_na=False)]),
                Check(lambda s: s.isna() | ~s.duplicated(keep="first"), name="duplicate"),
            ],
        ),
        "SqFtTotal": pa.Column(
            nullable=False,
            checks=_numeric_checks(
                [
                    Check(_ge(0, strict=True), name="not_positive", ignore_na=False),
                    Check(_le_abs(MAX_SQFT), name="implausible", ignore_na=False),
                ]
            ),
        ),
        "BedsTotal": pa.Column(
            nullable=False,
            checks=_numeric_checks(
                [
                    Check(_ge(0), name="negative", ignore_na=False),
                    Check(_is_integer, name="not_an_integer", ignore_na=False),
                    Check(_le_abs(MAX_BEDS), name="implausible", ignore_na=False),
                ]
            ),
        ),
        BATHS: pa.Column(
            nullable=False,
            checks=[Check(_baths_format_ok, name="baths_format", ignore_na=False)],
        ),
        "CDOM": pa.Column(
            nullable=True,
            checks=_numeric_checks(
                [
                    Check(_le_abs(MAX_ABS_CDOM), name="implausible", ignore_na=False),
                    Check(_ge(0), name="cdom_negative", ignore_na=False),
                    Check(lambda s: s.notna(), name="cdom_missing", ignore_na=False),
                ]
            ),
        ),
        "LotSizeAreaSQFT": pa.Column(
            nullable=True,
            checks=_numeric_checks(
                [
                    Check(_ge(0), name="negative", ignore_na=False),
                    Check(_le_abs(MAX_LOT_SQFT), name="implausible", ignore_na=False),
                    Check(lambda s: s.notna(), name="lot_size_missing", ignore_na=False),
                    Check(
                        lambda s: s.isna() | (to_number(s) != 0),
                        name="lot_size_zero",
                        ignore_na=False,
                    ),
                ]
            ),
        ),
        SCHOOL: pa.Column(
            nullable=True,
            checks=[Check(_present, name="school_missing", ignore_na=False)],
        ),
    }
    if "ListPrice" in columns:
        cols["ListPrice"] = pa.Column(
            nullable=True,
            checks=_numeric_checks(
                [
                    Check(_ge(0, strict=True), name="not_positive", ignore_na=False),
                    Check(_ge(MIN_LIST_PRICE), name="list_price_implausible", ignore_na=False),
                ]
            ),
        )
    checks = []
    if TARGET in columns:
        cols[TARGET] = pa.Column(nullable=True, checks=_numeric_checks([]))
        if STATUS in columns:
            checks.append(Check(_sold_price_ok, name="sold_price_invalid"))
    return pa.DataFrameSchema(cols, checks=checks, strict=False, coerce=False)
