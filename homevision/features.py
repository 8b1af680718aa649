"""Feature pipeline: scikit-learn transformers from raw export columns to model inputs.

`build_preprocessor(feature_set, family)` returns ONE Pipeline holding every fitted step, so a
model that starts with it needs nothing else at prediction time (no separately saved scalers or
encoders). Every step is fitted on the rows it is fitted on and nothing else: inside
cross-validation that means training folds only.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    StandardScaler,
    TargetEncoder,
)
from sklearn.utils.validation import check_is_fitted

from homevision.config import load_params
from homevision.data.fields import parse_baths
from homevision.data.schema import MIN_LIST_PRICE
from homevision.feature_sets import (  # noqa: F401  (re-exported: the feature pipeline's API)
    FeatureSet,
    feature_set_names,
    get_feature_set,
    is_leaky,
    leakage_columns,
)

Family = Literal["linear", "tree"]
UNKNOWN = "Unknown"
# Derived columns and whether a linear model should see them on a log scale.
DERIVED_NUMERIC = [
    "baths_full",
    "baths_half",
    "lot_is_zero",
    "sqft_per_bed",
    "baths_per_bed",
    "lot_to_living",
]
RATIO_CAP = 1e6
LOG_SCALE = {
    "SqFtTotal",
    "LotSizeAreaSQFT",
    "CDOM",
    "ListPrice",
    "UnexemptTaxes",
    "association_fee_annual",
    "tax_per_sqft",
    "garage_area",
    "sqft_per_bed",
    "lot_to_living",
}


class _FrameTransformer(TransformerMixin, BaseEstimator):
    """Base for stateless-shape transformers that take and return DataFrames."""

    def fit(self, X: pd.DataFrame, y=None):
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self._fit(X)
        return self

    def _fit(self, X: pd.DataFrame) -> None:
        """Learn what the transform needs; default: nothing."""

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "feature_names_in_")
        return np.asarray(self._out_columns(list(self.feature_names_in_)), dtype=object)

    def _out_columns(self, columns: list[str]) -> list[str]:
        return columns


def split_baths(value: object) -> tuple[float, float]:
    """Return (full, half) from the MLS "F.H" BathsTotal: "2.1" -> (2, 1), not 2.1 baths.

    Parsed by the data contract's own rule (`homevision.data.fields.parse_baths`): text "F" or
    "F.H" with one half digit 0-4; an integer (or a whole float) is full baths only. A
    fractional float (2.5, 2.1) is a decimal, not "F.H" text, so it is never read as full.half;
    it and anything else the contract rejects give (nan, nan).
    """
    try:
        parts = parse_baths(value)
    except ValueError:
        return (np.nan, np.nan)
    if parts is None:
        return (np.nan, np.nan)
    return (float(parts[0]), float(parts[1]))


class BathsSplitter(_FrameTransformer):
    """Replace the "F.H" BathsTotal column by numeric `baths_full` and `baths_half`."""

    def __init__(self, column: str = "BathsTotal"):
        self.column = column

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X.drop(columns=[self.column])
        parts = [split_baths(v) for v in X[self.column].to_numpy()]
        out["baths_full"] = [p[0] for p in parts]
        out["baths_half"] = [p[1] for p in parts]
        return out

    def _out_columns(self, columns: list[str]) -> list[str]:
        return [c for c in columns if c != self.column] + ["baths_full", "baths_half"]


class CDOMRepair(_FrameTransformer):
    """Repair days on market: negative values are sign errors (abs), missing ones get the
    training median."""

    def __init__(self, column: str = "CDOM"):
        self.column = column

    def _fit(self, X: pd.DataFrame) -> None:
        values = pd.to_numeric(X[self.column], errors="coerce").abs()
        self.median_ = float(values.median()) if values.notna().any() else 0.0

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X.copy()
        out[self.column] = pd.to_numeric(X[self.column], errors="coerce").abs().fillna(self.median_)
        return out


class LotSizeImputer(_FrameTransformer):
    """Impute missing lot sizes as living area x the training median lot-to-living ratio, and
    flag zero lots (townhouses, duplexes) in `lot_is_zero` instead of treating 0 as tiny."""

    def __init__(self, lot: str = "LotSizeAreaSQFT", sqft: str = "SqFtTotal"):
        self.lot = lot
        self.sqft = sqft

    def _fit(self, X: pd.DataFrame) -> None:
        lot = pd.to_numeric(X[self.lot], errors="coerce")
        sqft = pd.to_numeric(X[self.sqft], errors="coerce")
        ratio = (lot / sqft)[(lot > 0) & (sqft > 0)]
        self.ratio_ = float(ratio.median()) if len(ratio) else 2.5

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X.copy()
        lot = pd.to_numeric(X[self.lot], errors="coerce")
        sqft = pd.to_numeric(X[self.sqft], errors="coerce")
        out[self.lot] = lot.fillna(sqft * self.ratio_)
        out["lot_is_zero"] = (out[self.lot] == 0).astype("float64")
        return out

    def _out_columns(self, columns: list[str]) -> list[str]:
        return [*columns, "lot_is_zero"]


class ImplausibleToMissing(_FrameTransformer):
    """Treat values below `minimum` as missing (a lease price typed into ListPrice, say)."""

    def __init__(self, column: str = "ListPrice", minimum: float = MIN_LIST_PRICE):
        self.column = column
        self.minimum = minimum

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X.copy()
        values = pd.to_numeric(X[self.column], errors="coerce")
        out[self.column] = values.where(values >= self.minimum)
        return out


# Payments per year of each association fee frequency (case and spaces ignored); any other
# frequency ("Other") leaves the annual fee unknown, to be imputed like any missing number.
FEE_PER_YEAR = {
    "annual": 1.0,
    "annually": 1.0,
    "yearly": 1.0,
    "semi-annual": 2.0,
    "semiannual": 2.0,
    "quarterly": 4.0,
    "monthly": 12.0,
}
ANNUAL_FEE = "association_fee_annual"


def fee_multiplier(frequency: object) -> float:
    """Return payments per year of an association fee frequency ("Monthly" -> 12); NaN for a
    missing or unrecognised one."""
    if not isinstance(frequency, str):
        return np.nan
    return FEE_PER_YEAR.get(frequency.strip().lower().replace(" ", ""), np.nan)


class AnnualFee(_FrameTransformer):
    """Replace an association fee and its frequency by the annual amount (`association_fee_annual`):
    a monthly $50 and an annual $600 are the same burden. No fee amount means no association
    (0 a year); an amount with an unknown frequency is missing (imputed later)."""

    def __init__(self, amount: str = "AssociationFee", frequency: str = "AssociationFeeFrequency"):
        self.amount = amount
        self.frequency = frequency

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X.drop(columns=[self.amount, self.frequency])
        amount = pd.to_numeric(X[self.amount], errors="coerce").to_numpy(dtype=float)
        per_year = np.array([fee_multiplier(v) for v in X[self.frequency]], dtype=float)
        out[ANNUAL_FEE] = np.where(np.isnan(amount), 0.0, amount * per_year)
        return out

    def _out_columns(self, columns: list[str]) -> list[str]:
        gone = (self.amount, self.frequency)
        return [c for c in columns if c not in gone] + [ANNUAL_FEE]


TAX_PER_SQFT = "tax_per_sqft"
TAX_MISSING = "tax_missing"
GARAGE_AREA = "garage_area"


class TaxRecord(_FrameTransformer):
    """Clean the tax record (annual tax in dollars) the way an appraiser reads it: a zero and a
    land-only bill (under `min_share` of the training median tax per square foot of living
    area: a new build assessed before the house stood) say nothing about the house, so they
    become missing, flagged in `tax_missing`, and imputed as the training median tax per square
    foot x the living area. Adds `tax_per_sqft`. Fitted on the training rows only."""

    def __init__(self, tax: str = "UnexemptTaxes", sqft: str = "SqFtTotal", min_share: float = 0.3):
        self.tax = tax
        self.sqft = sqft
        self.min_share = min_share

    def _fit(self, X: pd.DataFrame) -> None:
        tax = pd.to_numeric(X[self.tax], errors="coerce").to_numpy(float)
        sqft = pd.to_numeric(X[self.sqft], errors="coerce").to_numpy(float)
        per_sqft = (tax / sqft)[(tax > 0) & (sqft > 0)]
        self.per_sqft_ = float(np.median(per_sqft)) if per_sqft.size else np.nan

    def clean(self, tax: np.ndarray, sqft: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (tax with zero, land-only and missing bills imputed, missing flag)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            usable = (tax > 0) & (tax / sqft >= self.min_share * self.per_sqft_)
        imputed = np.where(usable, tax, self.per_sqft_ * sqft)
        return imputed, (~usable).astype(float)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X.copy()
        sqft = pd.to_numeric(X[self.sqft], errors="coerce").to_numpy(float)
        tax, missing = self.clean(pd.to_numeric(X[self.tax], errors="coerce").to_numpy(float), sqft)
        out[self.tax] = tax
        with np.errstate(invalid="ignore", divide="ignore"):
            out[TAX_PER_SQFT] = np.where(sqft > 0, tax / sqft, np.nan)
        out[TAX_MISSING] = missing
        return out

    def _out_columns(self, columns: list[str]) -> list[str]:
        return [*columns, TAX_PER_SQFT, TAX_MISSING]


class GarageArea(_FrameTransformer):
    """Replace a garage's length and width (feet) by its area: 0 when either side is 0 (no
    garage), missing when neither is known."""

    def __init__(self, length: str = "GarageLength", width: str = "GarageWidth"):
        self.length = length
        self.width = width

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X.drop(columns=[self.length, self.width])
        length = pd.to_numeric(X[self.length], errors="coerce").to_numpy(float)
        width = pd.to_numeric(X[self.width], errors="coerce").to_numpy(float)
        none = (length == 0) | (width == 0)
        out[GARAGE_AREA] = np.where(none, 0.0, np.clip(length * width, 0, RATIO_CAP))
        return out

    def _out_columns(self, columns: list[str]) -> list[str]:
        gone = (self.length, self.width)
        return [c for c in columns if c not in gone] + [GARAGE_AREA]


def split_tokens(value: object) -> set[str]:
    """Return the set of items of a comma-separated feature list ("Gutters, Patio Open" ->
    {"Gutters", "Patio Open"}); empty for a missing value."""
    if not isinstance(value, str):
        return set()
    return {t.strip() for t in value.split(",") if t.strip()}


def count_tokens(values) -> dict[str, int]:
    """Return how many of `values` (feature lists) hold each item: what decides which items a
    model knows, for the indicators and for the engine's bit masks alike."""
    counts: dict[str, int] = {}
    for items in map(split_tokens, values):
        for token in items:
            counts[token] = counts.get(token, 0) + 1
    return counts


class TokenIndicators(TransformerMixin, BaseEstimator):
    """One 0/1 column per item of a comma-separated feature list (ExteriorFeatures, Flooring...)
    seen in at least `min_count` training rows; rarer and unseen items are ignored, a missing
    list has no items. Fitted on the training rows only, like every other step."""

    def __init__(self, min_count: int = 10):
        self.min_count = min_count

    def fit(self, X: pd.DataFrame, y=None):
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        self.tokens_ = {}
        for col in X.columns:
            counts = count_tokens(X[col])
            self.tokens_[col] = sorted(t for t, n in counts.items() if n >= self.min_count)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "tokens_")
        parts = []
        for col, tokens in self.tokens_.items():
            items = [split_tokens(v) for v in X[col]]
            parts.append(np.array([[t in row for t in tokens] for row in items], dtype=float))
        parts = [p.reshape(len(X), -1) for p in parts]
        return np.concatenate(parts, axis=1) if parts else np.empty((len(X), 0))

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "tokens_")
        names = [f"{col}={t}" for col, tokens in self.tokens_.items() for t in tokens]
        return np.asarray(names, dtype=object)


class RatioFeatures(_FrameTransformer):
    """Add living area per bedroom, baths per bedroom and lot-to-living ratio (all after the
    baths split and lot repair, so they never divide by a raw quirk)."""

    def __init__(
        self, sqft: str = "SqFtTotal", beds: str = "BedsTotal", lot: str = "LotSizeAreaSQFT"
    ):
        self.sqft = sqft
        self.beds = beds
        self.lot = lot

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = X.copy()
        beds = pd.to_numeric(X[self.beds], errors="coerce").clip(lower=1)
        sqft = pd.to_numeric(X[self.sqft], errors="coerce")
        baths = X["baths_full"] + 0.5 * X["baths_half"]
        out["sqft_per_bed"] = sqft / beds
        out["baths_per_bed"] = baths / beds
        out["lot_to_living"] = pd.to_numeric(X[self.lot], errors="coerce") / sqft
        ratios = ["sqft_per_bed", "baths_per_bed", "lot_to_living"]
        # An absurd input (a lot a million times the house) must not become an infinite feature.
        out[ratios] = out[ratios].replace([np.inf, -np.inf], np.nan).clip(upper=RATIO_CAP)
        return out

    def _out_columns(self, columns: list[str]) -> list[str]:
        return [*columns, "sqft_per_bed", "baths_per_bed", "lot_to_living"]


class ColumnSelector(_FrameTransformer):
    """Keep the feature set's columns, as floats where numeric and strings elsewhere; a missing
    column is an error naming it, not a silent NaN."""

    def __init__(self, numeric: tuple[str, ...] = (), text: tuple[str, ...] = ()):
        self.numeric = numeric
        self.text = text

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in (*self.numeric, *self.text) if c not in X.columns]
        if missing:
            raise KeyError(f"input is missing column(s) the model needs: {', '.join(missing)}")
        out = pd.DataFrame(index=X.index)
        for col in self.numeric:
            out[col] = as_float(X[col])
        for col in self.text:
            out[col] = X[col].astype(object).where(X[col].notna(), None)
        return out

    def _out_columns(self, columns: list[str]) -> list[str]:
        return [*self.numeric, *self.text]


def as_float(values: pd.Series) -> pd.Series:
    """Return a column as float64 the way every model reads it: numbers as they are, yes/no and
    true/false text (and booleans) as 1/0, anything else unreadable as NaN. ColumnSelector and
    the compiled engine's raw encoder share it, so both read a column identically."""
    if not pd.api.types.is_numeric_dtype(values) or values.dtype == bool:
        values = _to_float(values)
    return pd.to_numeric(values, errors="coerce").astype("float64")


def _to_float(values: pd.Series) -> pd.Series:
    mapping = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0, "y": 1.0, "n": 0.0}
    text = values.astype("string").str.strip().str.lower()
    return text.map(lambda v: mapping.get(v, v) if isinstance(v, str) else np.nan)


def _log1p(x):
    return np.log1p(np.clip(x, 0, None))


def _log_scaled(columns: list[str]) -> Pipeline:
    return make_pipeline(
        SimpleImputer(strategy="median"),
        FunctionTransformer(_log1p, feature_names_out="one-to-one"),
        StandardScaler(),
    )


def _categories(min_count: int) -> Pipeline:
    return make_pipeline(
        SimpleImputer(strategy="constant", fill_value=UNKNOWN),
        OneHotEncoder(
            handle_unknown="infrequent_if_exist", min_frequency=min_count, sparse_output=False
        ),
    )


def _target_encoded() -> Pipeline:
    return make_pipeline(
        SimpleImputer(strategy="constant", fill_value=UNKNOWN),
        TargetEncoder(target_type="continuous", cv=KFold(5, shuffle=True, random_state=0)),
    )


def build_preprocessor(
    feature_set: FeatureSet | str,
    family: Family = "tree",
    school_min_count: int | None = None,
    token_min_count: int | None = None,
    subdivision_min_count: int | None = None,
) -> Pipeline:
    """Return the Pipeline from raw export columns to a numeric feature frame.

    `family="linear"` logs skewed sizes, scales, and one-hot encodes schools (rare and unseen
    names share one "infrequent" column); `family="tree"` leaves numbers as they are and
    target-encodes schools (cross-fitted by scikit-learn, so no row sees its own price).
    """
    fs = get_feature_set(feature_set) if isinstance(feature_set, str) else feature_set
    if family not in ("linear", "tree"):
        raise ValueError(f"family must be 'linear' or 'tree', not {family!r}")
    if school_min_count is None:
        school_min_count = int(load_params()["features"]["school_min_count"])
    if token_min_count is None:
        token_min_count = int(load_params()["features"].get("token_min_count", 10))
    if subdivision_min_count is None:
        subdivision_min_count = int(load_params()["features"].get("subdivision_min_count", 0))
    text = (fs.baths, *fs.text_columns, *fs.token_lists)
    numeric_in = (*fs.numeric_inputs, *([fs.fee[0]] if fs.fee else []))
    steps: list[tuple[str, object]] = [
        ("select", ColumnSelector(numeric=numeric_in, text=text)),
        ("baths", BathsSplitter(fs.baths)),
    ]
    if "CDOM" in fs.numeric:
        steps.append(("cdom", CDOMRepair("CDOM")))
    steps.append(("lot", LotSizeImputer("LotSizeAreaSQFT", "SqFtTotal")))
    if "ListPrice" in fs.numeric:
        steps.append(("list_price", ImplausibleToMissing("ListPrice", MIN_LIST_PRICE)))
    if fs.fee:
        steps.append(("fee", AnnualFee(*fs.fee)))
    if fs.tax:
        share = float(load_params()["features"].get("tax_min_share", 0.5))
        steps.append(("tax", TaxRecord(fs.tax, "SqFtTotal", share)))
    if fs.garage:
        steps.append(("garage", GarageArea(*fs.garage)))
    steps.append(("ratios", RatioFeatures()))

    numeric = [
        *fs.numeric,
        *([ANNUAL_FEE] if fs.fee else []),
        *([fs.tax, TAX_PER_SQFT, TAX_MISSING] if fs.tax else []),
        *([GARAGE_AREA] if fs.garage else []),
        *DERIVED_NUMERIC,
    ]
    if family == "linear":
        logged = [c for c in numeric if c in LOG_SCALE]
        plain = [c for c in numeric if c not in LOG_SCALE]
        transformers = [
            ("log", _log_scaled(logged), logged),
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), plain),
            ("school", _categories(school_min_count), [fs.school]),
        ]
    else:
        transformers = [
            ("num", SimpleImputer(strategy="median"), numeric),
            ("school", _target_encoded(), [fs.school]),
        ]
    if fs.categorical:
        transformers.append(("cat", _categories(school_min_count), list(fs.categorical)))
    if fs.high_cardinality and family == "linear" and subdivision_min_count:
        # A linear model prices each well-supported subdivision by its own coefficient (the
        # appraiser's location adjustment); the rest share one "infrequent" level.
        hicard = _categories(subdivision_min_count)
        transformers.append(("hicard", hicard, list(fs.high_cardinality)))
    elif fs.high_cardinality:
        transformers.append(("hicard", _target_encoded(), list(fs.high_cardinality)))
    if fs.token_lists:
        transformers.append(("tokens", TokenIndicators(token_min_count), list(fs.token_lists)))
    encode = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
    steps.append(("encode", encode))
    return Pipeline(steps).set_output(transform="pandas")
