"""Typed request and response bodies of the REST API: fields named as in the MLS export, with
units and ranges, so a bad field is a 422 that names the field and the rule."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from homevision.data.schema import (
    BATHS_PATTERN,
    MAX_ABS_CDOM,
    MAX_BEDS,
    MAX_LOT_SQFT,
    MAX_SQFT,
    MIN_LIST_PRICE,
)

MAX_BATCH = 10_000
MIN_API_SQFT = 100  # no home has less living area; smaller values are typos


def _baths_text(value: object) -> object:
    """Accept 2.1 as well as "2.1" for the "F.H" baths field."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return value


Money = Annotated[float, Field(allow_inf_nan=False)]
Text = Annotated[str, Field(min_length=1, max_length=120)]


class Listing(BaseModel):
    """One home, in the export's column names. Other export columns are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    MLSNumber: int | None = Field(None, ge=0, le=10**12, description="Listing id (optional).")
    SqFtTotal: float = Field(
        ...,
        ge=MIN_API_SQFT,
        le=MAX_SQFT,
        allow_inf_nan=False,
        description="Living area, square feet.",
    )
    BedsTotal: int = Field(..., ge=0, le=MAX_BEDS, description="Bedrooms.")
    BathsTotal: Annotated[str, BeforeValidator(_baths_text)] = Field(
        ...,
        pattern=BATHS_PATTERN,
        description='Baths as "F.H": full baths, a dot, half baths ("2.1" = 2 full + 1 half).',
    )
    CDOM: float | None = Field(
        None,
        ge=-MAX_ABS_CDOM,
        le=MAX_ABS_CDOM,
        allow_inf_nan=False,
        description="Cumulative days on market (negative values are repaired as sign errors).",
    )
    LotSizeAreaSQFT: float | None = Field(
        None,
        ge=0,
        le=MAX_LOT_SQFT,
        allow_inf_nan=False,
        description="Lot size, square feet (0 for townhouses; missing is imputed).",
    )
    ElementarySchoolName: Text | None = Field(
        None, description="Elementary school attendance zone; new names are accepted."
    )
    ListPrice: float | None = Field(
        None, ge=MIN_LIST_PRICE, le=1e9, allow_inf_nan=False, description="Asking price, USD."
    )
    NumberOfStories: int | None = Field(None, ge=0, le=10)
    ParkingSpacesGarage: int | None = Field(None, ge=0, le=50)
    NumberOfLivingAreas: int | None = Field(None, ge=0, le=50)
    FireplacesTotal: int | None = Field(None, ge=0, le=50)
    PoolYN: bool | None = Field(None, description="Has a pool.")
    PropertySubType: Text | None = None
    City: Text | None = None
    YearBuiltDetails: Text | None = None
    HighSchoolName: Text | None = None
    SubdivisionName: Text | None = None


class Contribution(BaseModel):
    feature: str
    dollars: float


class Comparable(BaseModel):
    MLSNumber: str
    ClosePrice: float
    distance: float
    same_school: bool
    ElementarySchoolName: str | None
    sqft_diff: float
    beds_diff: float
    baths_diff: float
    lot_diff: float | None


class Explanation(BaseModel):
    base_value: float = Field(description="Average valuation of the reference homes, USD.")
    contributions: list[Contribution] = Field(
        description="SHAP contributions in USD; base_value + their sum = the valuation."
    )
    comparables: list[Comparable]


class Valuation(BaseModel):
    MLSNumber: int | None
    predicted_close_price: float | None = Field(
        description="Valuation, USD (null when refused: see error)."
    )
    close_price_low: float | None = Field(description="Low end of the range, USD.")
    close_price_high: float | None = Field(description="High end of the range, USD.")
    confidence: float = Field(description="Probability the sale price falls in the range.")
    error: str | None = Field(
        None,
        description="Why this listing was not valued (its valuation falls outside what the model "
        "supports); the prices are then null. Other listings of the batch are still valued.",
    )
    warning: str | None = Field(
        None,
        description="Valued, but outside the training data (which column, how far): an "
        "extrapolation to treat with care.",
    )
    explanation: Explanation | None = None


class RangeFigure(BaseModel):
    """How the price range at one carried level held up when the model was trained."""

    level: float = Field(description="Nominal confidence of the range, e.g. 0.9.")
    coverage: float | None = Field(
        None, description="Share of sale prices inside the range (random outer folds)."
    )
    median_width: float | None = Field(
        None, description="Median width of the range relative to the valuation."
    )
    time_ordered_coverage: float | None = Field(
        None,
        description="Coverage when calibrated on earlier sales and measured on later ones.",
    )


class ModelInfo(BaseModel):
    uri: str
    name: str | None
    version: str | None
    alias: str | None
    run_id: str | None
    feature_set: str | None = None
    data_hash: str | None = None
    trained_at: str | None = None
    cv_metrics: dict[str, float] = Field(default_factory=dict)
    honest_metrics: dict[str, float] = Field(default_factory=dict)
    interval_coverage: float | None = None
    confidence_levels: list[float] = Field(default_factory=list)
    ranges: list[RangeFigure] = Field(
        default_factory=list, description="Range coverage and width at every carried level."
    )


class ValuationResponse(BaseModel):
    model: ModelInfo
    valuations: list[Valuation]


class Health(BaseModel):
    status: str
    model_loaded: bool


class Problem(BaseModel):
    """An error answer: one sentence."""

    detail: str
