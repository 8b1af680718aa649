"""Every field's rules in ONE place: type, bounds, format, units and labels of each export column.

`FIELDS` is the single source of truth. The pandera data contract (`homevision.data.schema`), the
REST API's `Listing` (`homevision.serving.schemas`), the feature pipeline's baths parsing and the
Streamlit form are all built from it, so a value one of them accepts the others accept too.

Each rule is a `FieldRule`: the export column `name`, its `kind`, what it means (`description`,
`label`, `unit`), inclusive bounds (`minimum`, `maximum`; `exclusive_minimum` makes the lower one
strict) and whether a row without it is rejected (`required`). A few fields also carry a
repairable quirk (a value the feature pipeline fixes, so the row is kept and counted): a missing
value (`missing_quirk`), a value below `repair_below` (`repair_rule`), or a zero (`zero_quirk`).

Violations are named by rule ids; `RULES` maps each id to its meaning and `REPAIRABLE_RULES`
lists the quirks (every other rule is fatal: the row is set aside with the reason).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

Kind = Literal["id", "integer", "number", "baths", "boolean", "text"]
KINDS: tuple[str, ...] = ("id", "integer", "number", "baths", "boolean", "text")

ID_MAX = 2**63 - 1  # an MLSNumber is a positive whole number that fits a signed 64-bit integer
MAX_TEXT_LENGTH = 120
MAX_LIST_LENGTH = 1000  # a comma-separated feature list (ExteriorFeatures...) runs longer
MAX_FULL_BATHS = 50
MAX_HALF_BATHS = 4

# BathsTotal is "F.H": full baths, optionally a dot and ONE half-bath digit 0-4 ("2.1" = 2 full +
# 1 half). "2.10" is ambiguous (1 half or 10?) and "2.5" is not two and a half baths.
BATHS_PATTERN = r"^\s*[0-9]{1,2}(\.[0-4])?\s*$"
_BATHS_RE = re.compile(r"^\s*([0-9]{1,2})(?:\.([0-9]+))?\s*$")
_PLAIN_ID = "^[0-9]{1,18}$"  # digit text that check_ids reads in one pass
_NUMBER_TEXT_RE = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")

TRUE_TOKENS: frozenset[str] = frozenset({"true", "yes", "y", "1", "1.0"})
FALSE_TOKENS: frozenset[str] = frozenset({"false", "no", "n", "0", "0.0"})


@dataclass(frozen=True)
class FieldRule:
    """The rules of one export column. Bounds are inclusive unless `exclusive_minimum`.

    `kind` is one of KINDS: "id" (positive whole number below 2**63), "integer", "number",
    "baths" ("F.H" text; `parts` are its full and half counts as integer rules), "boolean"
    (true/false/yes/no/y/n/1/0), "text" (at most `max_length` characters).
    `step` is the increment a form's number input uses; `example` a typical value.
    """

    name: str
    kind: Kind
    description: str
    label: str
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    required: bool = False
    step: float | None = None
    max_length: int | None = None
    example: float | str | bool | None = None
    missing_quirk: str | None = None
    repair_below: float | None = None
    repair_rule: str | None = None
    zero_quirk: str | None = None
    parts: tuple[FieldRule, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")

    @property
    def is_numeric(self) -> bool:
        """True for the kinds read as numbers (integer, number)."""
        return self.kind in ("integer", "number")

    @property
    def bounded(self) -> bool:
        """True when every accepted value lies in a known range or set."""
        if self.kind in ("id", "integer", "number"):
            return self.minimum is not None and self.maximum is not None
        if self.kind == "text":
            return self.max_length is not None
        return True  # baths: at most 2 digits + one half digit; boolean: two values

    @property
    def in_every_export(self) -> bool:
        """True when an export's header must hold this column: its value is required, or its
        absence is a repairable quirk the pipeline needs the column for."""
        return self.required or self.missing_quirk is not None

    @property
    def below_rule(self) -> str:
        """The rule id a value below `minimum` breaks (values <= 0 of a positive field are
        `not_positive`, negatives of a non-negative field `negative`, else `implausible`)."""
        if self.minimum is not None and self.minimum == 0:
            return "not_positive" if self.exclusive_minimum else "negative"
        return "implausible"

    def below_rules(self) -> dict[str, tuple[float, bool]]:
        """Rule id -> (bound, at_bound_breaks) for values below the allowed range, in order: a
        value breaks the FIRST rule whose bound it is below (or at, when at_bound_breaks)."""
        if self.minimum is None:
            return {}
        if self.minimum > 0:  # a positive field with a plausibility floor
            return {
                "not_positive": (0.0, True),
                "implausible": (self.minimum, self.exclusive_minimum),
            }
        return {self.below_rule: (self.minimum, self.exclusive_minimum)}

    @property
    def bounds_text(self) -> str:
        """The allowed range in words, e.g. "100 to 100,000 sqft"."""
        unit = f" {self.unit}" if self.unit else ""
        if self.kind == "text" and self.max_length is not None:
            return f"at most {self.max_length} characters"
        if self.kind == "baths":
            return (
                f'"F.H": 0 to {MAX_FULL_BATHS} full baths, then optionally a dot and ONE '
                f"half-bath digit 0 to {MAX_HALF_BATHS}"
            )
        if self.minimum is None or self.maximum is None:
            return ""
        lo, hi = _fmt(self.minimum), _fmt(self.maximum)
        if self.exclusive_minimum:
            return f"greater than {lo} and at most {hi}{unit}"
        return f"{lo} to {hi}{unit}"

    def rule_ids(self) -> tuple[str, ...]:
        """Every rule id a value of this field can break (fatal and repairable)."""
        ids: list[str] = ["missing_value"] if self.required else []
        if self.kind in ("id", "integer", "number"):
            ids += ["not_a_number", *self.below_rules(), "implausible"]
        if self.kind in ("id", "integer"):
            ids.append("not_an_integer")
        if self.kind == "id":
            ids.append("duplicate")
        if self.kind == "baths":
            ids += ["baths_format", "baths_ambiguous", "baths_half_implausible", "implausible"]
        if self.kind == "boolean":
            ids.append("not_a_boolean")
        if self.kind == "text":
            ids.append("too_long")
        for quirk in (self.missing_quirk, self.repair_rule, self.zero_quirk):
            if quirk:
                ids.append(quirk)
        return tuple(dict.fromkeys(ids))


def _fmt(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,}"


# Plausible sale prices of a home: a Sold row outside them is set aside before training (a
# ClosePrice of 1 or 425,000,000 would be learned from and widen the refusal band a billionfold).
SALE_PRICE_BOUNDS = (10_000.0, 100_000_000.0)  # USD
SALE_PRICE_PER_SQFT_BOUNDS = (10.0, 10_000.0)  # USD per square foot of SqFtTotal


def _text(name: str, label: str, description: str, example: str | None = None, **kw) -> FieldRule:
    return FieldRule(
        name, "text", description, label, max_length=MAX_TEXT_LENGTH, example=example, **kw
    )


def _list(name: str, label: str, description: str, example: str) -> FieldRule:
    return FieldRule(
        name,
        "text",
        f"{description} A comma-separated list; items seen in fewer than "
        "features.token_min_count training homes are ignored.",
        label,
        max_length=MAX_LIST_LENGTH,
        example=example,
    )


def _count(name: str, label: str, description: str, maximum: float, example: int) -> FieldRule:
    return FieldRule(
        name, "integer", description, label, minimum=0, maximum=maximum, step=1, example=example
    )


BATHS_FULL = FieldRule(
    "BathsFull",
    "integer",
    "Full bathrooms (sink, toilet and a tub or shower).",
    "Full baths",
    minimum=0,
    maximum=MAX_FULL_BATHS,
    step=1,
    example=2,
)
BATHS_HALF = FieldRule(
    "BathsHalf",
    "integer",
    "Half bathrooms (sink and toilet only).",
    "Half baths",
    minimum=0,
    maximum=MAX_HALF_BATHS,
    step=1,
    example=1,
)

_RULES_LIST: tuple[FieldRule, ...] = (
    FieldRule(
        "MLSNumber",
        "id",
        "Listing id: a positive whole number. Ids are compared as numbers (1, 1.0 and ' 1' are "
        "the same listing).",
        "MLS number",
        minimum=0,
        maximum=ID_MAX,
        exclusive_minimum=True,
        required=True,
        step=1,
        example=14215661,
    ),
    FieldRule(
        "SqFtTotal",
        "number",
        "Living area in square feet (below 100 is a typo, not a home).",
        "Living area (sqft)",
        unit="sqft",
        minimum=100,
        maximum=100_000,
        required=True,
        step=10,
        example=2400,
    ),
    FieldRule(
        "BedsTotal",
        "integer",
        "Bedrooms.",
        "Bedrooms",
        minimum=0,
        maximum=50,
        required=True,
        step=1,
        example=4,
    ),
    FieldRule(
        "BathsTotal",
        "baths",
        'Bathrooms as "F.H": full baths, a dot, half baths ("2.1" = 2 full + 1 half, not 2.1 '
        "baths). An integer means full baths only.",
        "Bathrooms (full.half)",
        minimum=0,
        maximum=MAX_FULL_BATHS,
        required=True,
        example="2.1",
        parts=(BATHS_FULL, BATHS_HALF),
    ),
    FieldRule(
        "CDOM",
        "number",
        "Cumulative days on market. Negative values are sign errors (repaired); missing values "
        "are imputed.",
        "Days on market",
        unit="days",
        minimum=-20_000,
        maximum=20_000,
        step=1,
        example=30,
        missing_quirk="cdom_missing",
        repair_below=0,
        repair_rule="cdom_negative",
    ),
    FieldRule(
        "LotSizeAreaSQFT",
        "number",
        "Lot size in square feet: 0 for townhouses and duplexes (flagged), missing is imputed "
        "from the living area.",
        "Lot size (sqft)",
        unit="sqft",
        minimum=0,
        maximum=1e9,
        step=100,
        example=7000,
        missing_quirk="lot_size_missing",
        zero_quirk="lot_size_zero",
    ),
    _text(
        "ElementarySchoolName",
        "Elementary school",
        "Elementary school attendance zone; a name never seen in training is accepted (an "
        "unknown school), missing is treated as unknown.",
        "Vaughn",
        missing_quirk="school_missing",
    ),
    FieldRule(
        "ListPrice",
        "number",
        "Asking price in USD. Below 10,000 (a lease price?) it is treated as missing.",
        "Asking price (USD)",
        unit="USD",
        minimum=0,
        maximum=1e9,
        exclusive_minimum=True,
        step=1000,
        example=450_000,
        repair_below=10_000,
        repair_rule="list_price_implausible",
    ),
    FieldRule(
        "OriginalListPrice",
        "number",
        "First asking price in USD.",
        "Original asking price (USD)",
        unit="USD",
        minimum=0,
        maximum=1e9,
        exclusive_minimum=True,
        step=1000,
        example=460_000,
    ),
    FieldRule(
        "ClosePrice",
        "number",
        "Sale price in USD (the label). A Sold row needs one greater than 0; an unsold row may "
        "leave it empty or 0.",
        "Sale price (USD)",
        unit="USD",
        minimum=0,
        maximum=1e9,
        step=1000,
        example=440_000,
    ),
    _count("NumberOfStories", "Stories", "Number of stories (floors).", 10, 2),
    _count("ParkingSpacesGarage", "Garage spaces", "Garage parking spaces.", 50, 2),
    _count("NumberOfLivingAreas", "Living areas", "Number of living areas.", 50, 2),
    _count("FireplacesTotal", "Fireplaces", "Number of fireplaces.", 50, 1),
    FieldRule(
        "PoolYN",
        "boolean",
        "Has a pool: true/false (also yes/no, y/n, 1/0; any case).",
        "Pool",
        example=False,
    ),
    _text(
        "PropertySubType",
        "Property type",
        "Property sub-type, e.g. RES-Single Family, RES-Townhouse.",
        "RES-Single Family",
    ),
    _text("City", "City", "City of the home.", "Frisco"),
    _text(
        "YearBuiltDetails",
        "Construction status",
        "Construction status, e.g. Preowned, New Construction - Complete.",
        "Preowned",
    ),
    _text("HighSchoolName", "High school", "High school attendance zone.", "Frisco"),
    _text("MiddleSchoolName", "Middle school", "Middle school attendance zone.", "Staley"),
    FieldRule(
        "AssociationFee",
        "number",
        "Homeowners' association fee per payment, in USD (see AssociationFeeFrequency); "
        "empty when there is no association.",
        "Association fee",
        unit="USD per payment",
        minimum=0,
        maximum=1e6,
        step=10,
        example=500,
    ),
    _text(
        "AssociationFeeFrequency",
        "Association fee frequency",
        "How often the association fee is paid: Monthly, Quarterly, Semi-Annual or Annual.",
        "Annual",
    ),
    _list(
        "CommunityFeatures",
        "Community features",
        "Amenities of the community, e.g. Community Pool, Playground.",
        "Community Pool, Playground",
    ),
    _list(
        "ExteriorFeatures",
        "Exterior features",
        "Features outside the home, e.g. Covered Patio/Porch, Gutters.",
        "Covered Patio/Porch, Gutters",
    ),
    _list(
        "ConstructionMaterials",
        "Construction materials",
        "What the home is built of, e.g. Brick, Siding.",
        "Brick, Siding",
    ),
    _text(
        "SubdivisionName",
        "Subdivision",
        "Subdivision (neighbourhood); names never seen in training are accepted.",
        "Villages Of Majestic",
    ),
)

FIELDS: dict[str, FieldRule] = {rule.name: rule for rule in _RULES_LIST}

# Fields whose absence is an answer, not a gap: no association (so no fee or frequency), no
# listed community or exterior features. A model reading them accepts a listing without them.
NONE_WHEN_MISSING: frozenset[str] = frozenset(
    {
        "AssociationFee",
        "AssociationFeeFrequency",
        "CommunityFeatures",
        "ExteriorFeatures",
        "ConstructionMaterials",
    }
)


def field(name: str) -> FieldRule:
    """Return the rule of export column `name` (KeyError naming the known fields if none)."""
    try:
        return FIELDS[name]
    except KeyError:
        raise KeyError(f"no field rule for {name!r}; known: {', '.join(FIELDS)}") from None


_LIST_PRICE = FIELDS["ListPrice"]

# Rule id -> what it means, shown in reports. `describe` adds the field's own bounds.
RULES: dict[str, str] = {
    "missing_value": "a value is required",
    "not_a_number": "must be a finite number",
    "not_an_integer": "must be a whole number",
    "not_positive": "must be greater than 0",
    "negative": "must not be negative",
    "implausible": "outside the plausible range",
    "baths_format": (
        'must be "F.H": full baths, then optionally a dot and one half-bath digit 0-4 '
        "(F.H means full.half: 2.1 = 2 full + 1 half)"
    ),
    "baths_ambiguous": (
        'ambiguous baths: "2.10" or a decimal number like 2.5 could mean several things; send '
        'the text "F.H" with ONE half-bath digit ("2.1" = 2 full + 1 half) or BathsFull and '
        "BathsHalf"
    ),
    "baths_half_implausible": (
        "more than 4 half baths is implausible: F.H means full.half: 2.1 = 2 full + 1 half "
        '(so "2.5" would be 2 full + 5 half, not two and a half baths)'
    ),
    "not_a_boolean": "must be true or false (also yes/no, y/n, 1/0)",
    "too_long": "text too long",
    "duplicate": "MLSNumber already used by an earlier row (ids compared as numbers)",
    "sold_price_invalid": "a Sold listing needs a ClosePrice greater than 0",
    "sold_price_implausible": (
        f"a Sold listing's ClosePrice must lie between ${_fmt(SALE_PRICE_BOUNDS[0])} and "
        f"${_fmt(SALE_PRICE_BOUNDS[1])}, and between ${_fmt(SALE_PRICE_PER_SQFT_BOUNDS[0])} and "
        f"${_fmt(SALE_PRICE_PER_SQFT_BOUNDS[1])} per square foot of SqFtTotal: outside them it is "
        "a typo (thousands, a digit too many), not a sale, and is not learned from"
    ),
    "cdom_negative": "negative days on market: sign repaired",
    "cdom_missing": "days on market missing: imputed",
    "lot_size_missing": "lot size missing: imputed",
    "lot_size_zero": "lot size 0 (townhouse/duplex): flagged, kept",
    "school_missing": "school missing: treated as an unknown school",
    "list_price_implausible": (
        f"asking price below {_fmt(_LIST_PRICE.repair_below or 0)} (a lease price?): treated "
        "as missing"
    ),
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
_BOUND_RULES = frozenset({"implausible", "not_positive", "negative", "too_long"})


def describe(column: str, rule_id: str) -> str:
    """Return the meaning of `rule_id` for `column`, with the column's bounds where they help:
    "outside the plausible range (allowed: 0 to 10)"."""
    meaning = RULES.get(rule_id, rule_id)
    rule = FIELDS.get(column)
    if rule is not None and rule_id in _BOUND_RULES and rule.bounds_text:
        return f"{meaning} (allowed: {rule.bounds_text})"
    return meaning


# ---- scalar parsing shared by the data contract, the feature pipeline and the API ----------


def is_missing(value: object) -> bool:
    """True for None, NaN, pd.NA and NaT (a scalar that holds no value)."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # not a scalar
        return False


def check_id(value: object) -> tuple[int | None, str | None]:
    """Return (the MLSNumber as an int, None) or (None, the rule id it breaks); (None, None)
    when missing. Text is stripped and read as a number, so "1", "1.0" and " 1" are all 1.
    Never raises."""
    if is_missing(value):
        return None, None
    try:
        if isinstance(value, bool | np.bool_):
            return None, "not_a_number"
        if isinstance(value, int | np.integer):
            number = Decimal(int(value))
        elif isinstance(value, float | np.floating):
            if not math.isfinite(value):
                return None, "not_a_number"
            number = Decimal(float(value))
        else:
            text = str(value).strip()
            if not _NUMBER_TEXT_RE.match(text):
                return None, "not_a_number"
            number = Decimal(text)
        if number <= 0:
            return None, "not_positive"
        if number > ID_MAX:
            return None, "implausible"
        if number != number.to_integral_value():
            return None, "not_an_integer"
        return int(number), None
    except (InvalidOperation, ArithmeticError, ValueError, TypeError):
        return None, "not_a_number"


def check_ids(values: object) -> tuple[list[int | None], list[str | None]]:
    """Return check_id of each value as two lists (numbers, rule ids). Plain digit text (what
    an export holds: 1 to 18 ASCII digits, always below ID_MAX) is read in one Arrow pass; every
    other value goes through check_id, so the results are check_id's."""
    values = np.asarray(values, dtype=object).ravel()
    numbers: list[int | None] = [None] * len(values)
    rules: list[str | None] = [None] * len(values)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":  # all text: one C pass
        is_text = np.ones(len(values), dtype=bool)
    else:
        is_text = np.fromiter((type(v) is str for v in values), dtype=bool, count=len(values))
    text_at = np.flatnonzero(is_text)
    plain = np.zeros(len(values), dtype=bool)
    if text_at.size:
        text = pa.array(values[text_at], type=pa.string())
        digits = pc.match_substring_regex(text, _PLAIN_ID).to_numpy(zero_copy_only=False)
        read = pc.cast(pc.filter(text, digits), pa.int64()).to_numpy()
        at = text_at[digits][read > 0]
        plain[at] = True
        for i, number in zip(at.tolist(), read[read > 0].tolist(), strict=True):
            numbers[i] = number
    for i in np.flatnonzero(~plain).tolist():
        numbers[i], rules[i] = check_id(values[i])
    return numbers, rules


def normalise_id(value: object) -> int | None:
    """Return the MLSNumber as an int, None when missing or invalid. Never raises."""
    return check_id(value)[0]


class BathsError(ValueError):
    """A BathsTotal value that is not "F.H"; `rule` is the rule id it breaks."""

    def __init__(self, rule: str, value: object):
        self.rule = rule
        super().__init__(f"BathsTotal {value!r}: {RULES[rule]}")


def parse_baths(value: object) -> tuple[int, int] | None:
    """Return (full, half) from a BathsTotal value, None when missing.

    Text must be "F" or "F.H" with ONE half digit 0-4 ("2.1" -> (2, 1)). An integer is full
    baths only (3 -> (3, 0)); a float is full baths only when whole (3.0); any other float
    (2.5, 2.1) is ambiguous: it is a decimal, not "F.H" text. Raises BathsError otherwise.
    """
    if is_missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        raise BathsError("baths_format", value)
    if isinstance(value, int | np.integer | float | np.floating):
        number = float(value)
        if not math.isfinite(number) or not number.is_integer():
            raise BathsError("baths_ambiguous", value)
        if not 0 <= number <= MAX_FULL_BATHS:
            raise BathsError("baths_format" if number < 0 else "implausible", value)
        return int(number), 0
    match = _BATHS_RE.match(str(value))
    if not match:
        raise BathsError("baths_format", value)
    full, half_text = int(match.group(1)), match.group(2) or "0"
    if len(half_text) > 1:
        raise BathsError("baths_ambiguous", value)
    half = int(half_text)
    if half > MAX_HALF_BATHS:
        raise BathsError("baths_half_implausible", value)
    if full > MAX_FULL_BATHS:
        raise BathsError("implausible", value)
    return full, half


def baths_problem(value: object) -> str | None:
    """Return the rule id a BathsTotal value breaks, None when it is fine or missing."""
    try:
        parse_baths(value)
    except BathsError as err:
        return err.rule
    return None


def format_baths(full: int, half: int) -> str:
    """Return the canonical "F.H" text: "2.1", or "3" when there is no half bath."""
    return f"{int(full)}.{int(half)}" if half else str(int(full))


def parse_boolean(value: object) -> bool | None:
    """Return True/False from true/false/yes/no/y/n/1/0 (any case, stripped), None when
    missing; ValueError for anything else."""
    if is_missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    token = str(value).strip().lower()
    if token in TRUE_TOKENS:
        return True
    if token in FALSE_TOKENS:
        return False
    raise ValueError(f"{value!r}: {RULES['not_a_boolean']}")


def parse_dates(values: object) -> pd.Series:
    """Return export dates and timestamps as naive datetimes (datetime64[ns]): "2020-02-13",
    "2020-02-13 10:15:00", one with an offset ("Z", "+02:00") in UTC; NaT where missing, not
    ISO 8601 (the export's format) or out of range (before 1678 or after 2261). One format for
    every value: left to guess, pandas took the format from the first value, so one
    "02/13/2020" first made every ISO date after it NaT, and a time after date-only values was
    NaT; and mixed offsets or a year 9999 raised instead (they stopped the flow for good)."""
    series = pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        text = series.astype("string").str.strip()
        series = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert(None)
    low, high = pd.Timestamp.min.as_unit("ns"), pd.Timestamp.max.as_unit("ns")
    return series.where((series >= low) & (series <= high)).astype("datetime64[ns]")
