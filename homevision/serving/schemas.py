"""Typed request and response bodies of the REST API: fields named as in the MLS export, with
units and ranges, so a bad field is a 422 that names the field and the rule.

`Listing`'s constraints are built from `homevision.data.fields.FIELDS`, the rules the export's
data contract (pandera) checks too: a value one face accepts, the other accepts."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from homevision.data.fields import (
    BATHS_FULL,
    BATHS_HALF,
    BATHS_PATTERN,
    FIELDS,
    MAX_FULL_BATHS,
    RULES,
    BathsError,
    FieldRule,
    check_id,
    describe,
    format_baths,
    parse_baths,
    parse_boolean,
)

MAX_BATCH = 10_000
# No home has less living area; smaller values are typos (the contract's floor, both faces).
MIN_API_SQFT = FIELDS["SqFtTotal"].minimum


def _bound(rule: FieldRule, value: float) -> float | int:
    """A bound as the field's type: whole numbers as int (exact for the 2**63 - 1 id cap)."""
    return int(value) if rule.kind in ("id", "integer") or float(value).is_integer() else value


def api_field(rule: FieldRule, required: bool | None = None, **extra: Any) -> Any:
    """Return the pydantic Field of an export column from its FieldRule: bounds (ge/gt/le),
    label (title), description with the allowed range, unit, step and an example. `required`
    defaults to the rule's own, except the id, which a client may leave out."""
    if required is None:
        required = rule.required and rule.kind != "id"
    kw: dict[str, Any] = {"title": rule.label, "description": rule.description}
    if rule.bounds_text and rule.kind != "baths":
        kw["description"] += f" Allowed: {rule.bounds_text}."
    if rule.kind in ("id", "integer", "number"):
        if rule.minimum is not None:
            kw["gt" if rule.exclusive_minimum else "ge"] = _bound(rule, rule.minimum)
        if rule.maximum is not None:
            kw["le"] = _bound(rule, rule.maximum)
    if rule.kind == "number":
        kw["allow_inf_nan"] = False
    if rule.kind == "text":
        kw |= {"min_length": 1, "max_length": rule.max_length}
    if rule.example is not None:
        kw["examples"] = [rule.example]
    schema_extra = {"unit": rule.unit} if rule.unit else {}
    if rule.step is not None:
        schema_extra["step"] = rule.step
    if schema_extra:
        kw["json_schema_extra"] = schema_extra
    return Field(... if required else None, **kw, **extra)


def _rule_error(column: str, rule_id: str) -> PydanticCustomError:
    return PydanticCustomError(rule_id, describe(column, rule_id))


def _id_value(value: object) -> object:
    """Read an MLSNumber sent as text or a decimal number as the contract does (" 1", "1.0"
    -> 1; "inf", 1e20, 1.5 refused with its rule); integers go on to the int type's bounds."""
    if isinstance(value, bool):
        raise _rule_error("MLSNumber", "not_a_number")
    if isinstance(value, str | float):
        number, problem = check_id(value)
        if problem:
            raise _rule_error("MLSNumber", problem)
        return number
    return value


def _boolean_value(value: object) -> object:
    try:
        return parse_boolean(value)
    except ValueError:
        raise _rule_error("PoolYN", "not_a_boolean") from None


def _baths_value(value: object) -> str | None:
    """Return BathsTotal as the canonical "F.H" text ("2.1", "3"). A JSON integer is full
    baths; a JSON decimal (2.5) is refused: it is not "F.H" text."""
    try:
        parts = parse_baths(value)
    except BathsError as err:
        raise _rule_error("BathsTotal", err.rule) from None
    return None if parts is None else format_baths(*parts)


def _number_text(column: str, value: object) -> object:
    """Read a number sent as text as the export's contract reads it (pd.to_numeric): spaces
    around it and "3e0" are fine ("3e0" is 3 beds, not a 422), "2_400" is not a number (Python
    and pydantic took it as 2400); blank text is missing. Other values go on to the type."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return None
    if "_" in text:
        raise _rule_error(column, "not_a_number")
    try:
        number = float(text)
    except ValueError:
        raise _rule_error(column, "not_a_number") from None
    kind = FIELDS[column].kind
    return int(number) if kind == "integer" and number.is_integer() else number


_BATHS_HOW = (
    'send BathsTotal as "F.H" text ("2.1" = 2 full + 1 half; an integer = full baths only) '
    "or BathsFull and BathsHalf"
)
BathsText = Annotated[str, Field(pattern=BATHS_PATTERN)]
FullBaths = Annotated[int, Field(ge=0, le=MAX_FULL_BATHS)]
Money = Annotated[float, Field(allow_inf_nan=False)]


# The Listing fields of the contract's number and text kinds (test_fields holds them to FIELDS).
NUMBER_FIELDS = (
    "SqFtTotal",
    "BedsTotal",
    "CDOM",
    "LotSizeAreaSQFT",
    "ListPrice",
    "NumberOfStories",
    "ParkingSpacesGarage",
    "NumberOfLivingAreas",
    "FireplacesTotal",
    "AssociationFee",
)
TEXT_FIELDS = (
    "ElementarySchoolName",
    "PropertySubType",
    "City",
    "YearBuiltDetails",
    "HighSchoolName",
    "MiddleSchoolName",
    "AssociationFeeFrequency",
    "CommunityFeatures",
    "ExteriorFeatures",
    "ConstructionMaterials",
    "SubdivisionName",
)


class Listing(BaseModel):
    """One home, in the export's column names. Other export columns are accepted and ignored.

    Baths: `BathsTotal` as "F.H" text (or an integer: full baths only), or `BathsFull` and
    `BathsHalf`. After validation `BathsTotal` always holds the canonical "F.H" text (the model
    reads it); `BathsFull`/`BathsHalf` are left out of `model_dump()`."""

    # Text without surrounding spaces, as the export's (coerce_types): "Vaughn " is "Vaughn".
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    MLSNumber: Annotated[int | None, BeforeValidator(_id_value)] = api_field(FIELDS["MLSNumber"])
    SqFtTotal: float = api_field(FIELDS["SqFtTotal"])
    BedsTotal: int = api_field(FIELDS["BedsTotal"])
    BathsFull: int | None = api_field(BATHS_FULL, exclude=True)
    BathsHalf: int | None = api_field(BATHS_HALF, exclude=True)
    BathsTotal: Annotated[BathsText | FullBaths | None, BeforeValidator(_baths_value)] = Field(
        None,
        validate_default=True,
        title=FIELDS["BathsTotal"].label,
        description=f"{FIELDS['BathsTotal'].description} Required unless BathsFull is given. "
        f"It {RULES['baths_format']}.",
        examples=[FIELDS["BathsTotal"].example],
    )
    CDOM: float | None = api_field(FIELDS["CDOM"])
    LotSizeAreaSQFT: float | None = api_field(FIELDS["LotSizeAreaSQFT"])
    ElementarySchoolName: str | None = api_field(FIELDS["ElementarySchoolName"])
    ListPrice: float | None = api_field(FIELDS["ListPrice"])
    NumberOfStories: int | None = api_field(FIELDS["NumberOfStories"])
    ParkingSpacesGarage: int | None = api_field(FIELDS["ParkingSpacesGarage"])
    NumberOfLivingAreas: int | None = api_field(FIELDS["NumberOfLivingAreas"])
    FireplacesTotal: int | None = api_field(FIELDS["FireplacesTotal"])
    PoolYN: Annotated[bool | None, BeforeValidator(_boolean_value)] = api_field(FIELDS["PoolYN"])
    PropertySubType: str | None = api_field(FIELDS["PropertySubType"])
    City: str | None = api_field(FIELDS["City"])
    YearBuiltDetails: str | None = api_field(FIELDS["YearBuiltDetails"])
    HighSchoolName: str | None = api_field(FIELDS["HighSchoolName"])
    MiddleSchoolName: str | None = api_field(FIELDS["MiddleSchoolName"])
    AssociationFee: float | None = api_field(FIELDS["AssociationFee"])
    AssociationFeeFrequency: str | None = api_field(FIELDS["AssociationFeeFrequency"])
    CommunityFeatures: str | None = api_field(FIELDS["CommunityFeatures"])
    ExteriorFeatures: str | None = api_field(FIELDS["ExteriorFeatures"])
    ConstructionMaterials: str | None = api_field(FIELDS["ConstructionMaterials"])
    SubdivisionName: str | None = api_field(FIELDS["SubdivisionName"])

    @field_validator(*NUMBER_FIELDS, mode="before")
    @classmethod
    def _numbers_as_the_contract_reads_them(cls, value: object, info: ValidationInfo) -> object:
        return _number_text(str(info.field_name), value)

    @field_validator(*TEXT_FIELDS, mode="before")
    @classmethod
    def _blank_text_is_missing(cls, value: object) -> object:
        """Return None for blank text: the export reads an empty cell as missing, where the
        API said string_too_short."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("BathsTotal", mode="after")
    @classmethod
    def _one_baths_form(cls, value: str | int | None, info: ValidationInfo) -> str | None:
        """Fill BathsTotal from BathsFull/BathsHalf, or check they agree with it."""
        if "BathsFull" not in info.data or "BathsHalf" not in info.data:
            return None if value is None else str(value)  # a part failed: reported already
        full, half = info.data["BathsFull"], info.data["BathsHalf"]
        if full is None and half is not None:
            raise PydanticCustomError("missing", f"BathsHalf needs BathsFull: {_BATHS_HOW}")
        parts = None if full is None else format_baths(full, half or 0)
        if value is None:
            if parts is None:
                raise PydanticCustomError("missing", f"Baths required: {_BATHS_HOW}")
            return parts
        if parts is not None and parts != value:
            raise PydanticCustomError(
                "baths_conflict",
                f"BathsTotal {value!r} disagrees with BathsFull={full}, BathsHalf={half or 0}: "
                "send one form only",
            )
        return str(value)


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
    honest_metrics: dict[str, float] = Field(
        default_factory=dict,
        description="The honest (nested-CV) figures; `<metric>_low` and `<metric>_high` give "
        "each one's 90% bootstrap interval over the sales scored (runs since they were added).",
    )
    interval_coverage: float | None = None
    confidence_levels: list[float] = Field(default_factory=list)
    ranges: list[RangeFigure] = Field(
        default_factory=list, description="Range coverage and width at every carried level."
    )
    engine: str | None = Field(
        None,
        description="How valuations are computed: the compiled numpy engine and what it "
        "compiled, or the scikit-learn path and why.",
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
