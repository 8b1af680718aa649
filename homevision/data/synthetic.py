"""Synthetic MLS listings with a known price model: the embedded default data and a test oracle.

Every listing's sale price follows a hedonic (log-linear) model with multiplicative noise:

    log(ClosePrice) = 12.78
                      + 0.80 * log(SqFtTotal / 2500)
                      + 0.06 * log1p(LotSizeAreaSQFT / 1000)      (0 for a zero lot)
                      + 0.02 * (BedsTotal - 4)
                      + 0.04 * (BathsFull - 3) + 0.02 * BathsHalf
                      - 0.02 * log1p(|CDOM|)
                      + school[ElementarySchoolName]      (each ~ N(0, 0.10), fixed per seed)
                      + subdivision[SubdivisionName]      (each ~ N(0, 0.05))
                      + 0.04 * PoolYN + 0.03 * new construction - 0.10 * townhouse/duplex
                      + eps,   eps ~ Normal(0, NOISE_SIGMA = 0.08)

so ClosePrice = exp(structural part) * exp(eps). The noise is the best any model can do: with the
true structure known, the log error is eps itself, i.e. an RMSE of 0.08 in log price and a mean
absolute percentage error of about 100 * E|exp(eps) - 1| ~= 6.4 %. A model using only the
take-home's six features cannot see the subdivision, pool, construction or townhouse terms and
must do worse; `offmarket` can approach the floor. `noise_floor_rmse` states the floor in
dollars for a generated sample: the RMSE of the best possible valuation of its sales, the true
model's conditional mean exp(structural + NOISE_SIGMA^2 / 2).

Marginals are close to the real Frisco sample (living area ~2,700 sqft median, 1-6 beds, median
sale ~$370k, ~30% Sold). Quirks of the real export are reproduced: about 0.5% negative CDOM (sign
errors), 0.3% missing lot sizes, zero lots on most townhouses, rare school names, and one school
that appears only among unsold rows. The file format matches the real export: every value quoted,
CRLF line ends, BathsTotal as "F.H", a CloseDate (2019-07-01 .. 2020-06-30) on sold rows. Output
is deterministic per seed.

A market that moves (`MarketDrift`, for monitoring tests and the drift benchmark): month M after
that year, every price is multiplied by (1 + price_trend) ** M, sales close within that calendar
month (2020-06 + M), MLS numbers are unique to the month, and `mix_shift` (0..1) moves the mix of
homes towards bigger, newer, attached homes; `new_school` opens a school (a price effect of its
own) that takes `new_school_share` of the month's listings. With no drift, every column is as
before for a given seed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from homevision.config import SAMPLE_CHUNK_ROWS

NOISE_SIGMA = 0.08
INTERCEPT = 12.78
SCHOOL_SD = 0.10
SUBDIVISION_SD = 0.05
SUBDIVISIONS = 300
UNSOLD_ONLY_SCHOOL = "Zephyr Ridge"

# (name, relative frequency, high school, city). The last ones are rare on purpose.
SCHOOLS: tuple[tuple[str, float, str, str], ...] = (
    ("Aspen", 72, "North", "Frisco"),
    ("Birch", 71, "North", "Frisco"),
    ("Cedar", 70, "Central", "Frisco"),
    ("Dogwood", 55, "Central", "Frisco"),
    ("Elm", 43, "Lakeside", "Frisco"),
    ("Fir", 41, "Lakeside", "Frisco"),
    ("Ginkgo", 38, "Prairie", "Frisco"),
    ("Hawthorn", 37, "Prairie", "Frisco"),
    ("Ironwood", 37, "Summit", "Frisco"),
    ("Juniper", 34, "Summit", "Frisco"),
    ("Kapok", 26, "Heritage", "Allen"),
    ("Linden", 20, "Heritage", "Allen"),
    ("Magnolia", 16, "Ridge", "Frisco"),
    ("Nutmeg", 13, "Ridge", "Frisco"),
    ("Olive", 11, "North", "Frisco"),
    ("Pecan", 5, "Central", "Frisco"),
    ("Quince", 4, "Lakeside", "Frisco"),
    ("Redbud", 4, "Heritage", "Allen"),
    ("Sumac", 3, "Prairie", "Frisco"),
    ("Tupelo", 2, "Summit", "Frisco"),
    ("Umbrella Pine", 1, "Ridge", "Frisco"),
)
STATUSES: dict[str, float] = {
    "Sold": 0.30,
    "Active": 0.29,
    "Pending": 0.12,
    "Cancelled": 0.12,
    "Expired": 0.10,
    "Active Option Contract": 0.055,
    "Active Contingent": 0.015,
}
YEAR_BUILT = {
    "Preowned": 0.70,
    "New Construction - Incomplete": 0.15,
    "New Construction - Complete": 0.14,
    "Unknown": 0.01,
}


FIRST_DRIFT_MONTH = pd.Timestamp("2020-07-01")  # month 1 of a drifting market
NEW_SCHOOL_EFFECT = 0.12  # log-price premium of a school opened by MarketDrift.new_school


@dataclass(frozen=True)
class MarketDrift:
    """How far the market has moved from the base year: see the module docstring."""

    month: int = 0
    price_trend: float = 0.0  # per month, compounding: 0.01 is +1%/month
    mix_shift: float = 0.0  # 0 = the base mix, 1 = a strong shift to bigger/newer/attached homes
    new_school: str | None = None
    new_school_share: float = 0.15

    def __post_init__(self) -> None:
        if self.month < 0:
            raise ValueError("month must be 0 or more")
        if not 0.0 <= self.mix_shift <= 1.0:
            raise ValueError("mix_shift must be between 0 and 1")
        if not 0.0 < self.new_school_share < 1.0:
            raise ValueError("new_school_share must be between 0 and 1")
        if self.price_trend <= -1.0:
            raise ValueError("price_trend must be above -1")

    @property
    def log_price_shift(self) -> float:
        """Return the log-price shift of the trend at this month."""
        return self.month * float(np.log1p(self.price_trend))


# The tax record, the association and the listing's feature lists (drawn after every other
# column, so those keep their draws). They carry no price effect of their own: taxes follow the
# structural price (assessed a year before the sale, with their own error), so no model can use
# them to beat the noise floor.
TAX_RATE = 0.0207
FEE_FREQUENCIES = {
    "Annual": 0.55,
    "Quarterly": 0.2,
    "Semi-Annual": 0.12,
    "Monthly": 0.1,
    "Other": 0.03,
}
_PER_YEAR = np.array([1.0, 4.0, 2.0, 12.0, 1.0])
FEATURE_LISTS = {
    "ExteriorFeatures": ["Covered Patio/Porch", "Gutters", "Sprinkler System", "Outdoor Kitchen"],
    "LotFeatures": ["Interior Lot", "Landscaped", "Some Trees", "Cul-De-Sac", "Corner Lot"],
    "CommunityFeatures": ["Community Pool", "Playground", "Jogging Path/Bike Path", "Park"],
    "PoolFeatures": ["In Ground Gunite", "Heated", "Pool/Spa Combo"],
    "Flooring": ["Carpet", "Ceramic Tile", "Wood", "Laminate"],
    "ConstructionMaterials": ["Brick", "Siding", "Stone", "Fiber Cement"],
}
# How much more (or less) likely each list's k-th item is for a dearer home (logit per sd).
_ITEM_SLOPES = np.array([1.2, -0.8, 0.6, 0.0, 0.3])
_MLS_AREAS = ["FRISCO (1)", "DENTON COUNTY EAST (2)"]


def _combinations(items: list[str]) -> list[str]:
    """Every comma-separated list of `items` by bit mask (index 0 is the empty list)."""
    return [
        ", ".join(t for b, t in enumerate(items) if mask >> b & 1)
        for mask in range(1 << len(items))
    ]


_NEW_BUILD = [i for i, name in enumerate(YEAR_BUILT) if name.startswith("New Construction")]
_SUBTYPES = ["RES-Single Family", "RES-Townhouse", "RES-Half Duplex"]
_SUBDIVISION_NAMES = [f"Subdivision {i}" for i in range(SUBDIVISIONS)]
# BathsTotal by full * 3 + half: "F" with no half bath, else "F.H".
_BATHS = [f"{f}.{h}" if h else str(f) for f in range(8) for h in range(3)]


def _text(values: list[str], index: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Return values[index] as a pandas string array: built by Arrow, ~20x faster than numpy
    strings, and the same column as numpy's (the `str` dtype)."""
    taken = pa.array(values, pa.large_string()).take(pa.array(index, pa.int64()))
    return pd.array(taken, dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def _year_built_weights(mix: float) -> np.ndarray:
    """Return YEAR_BUILT's probabilities with new construction up by `mix` x 25 points."""
    base = np.array(list(YEAR_BUILT.values()))
    if mix == 0:
        return base
    moved = np.array([-0.25, 0.125, 0.125, 0.0]) * mix
    return (base + moved) / (base + moved).sum()


def generate_listings(
    rows: int,
    seed: int = 0,
    market_seed: int | None = None,
    drift: MarketDrift | None = None,
    noise: float = NOISE_SIGMA,
) -> pd.DataFrame:
    """Return `rows` synthetic listings (strings and nullable ints, export column names).

    `market_seed` fixes the market (school and subdivision price effects; default: `seed`), so
    fresh homes from the same market can be drawn with another `seed`. `drift` moves the market
    (prices, mix, a new school) to a later month. `noise` is the log-price noise's standard
    deviation (0 gives each home's structural price; every other column is unchanged).
    """
    if rows < 1:
        raise ValueError("rows must be at least 1")
    drift = drift or MarketDrift()
    mix = drift.mix_shift
    rng = np.random.default_rng(seed)
    market = np.random.default_rng(seed if market_seed is None else market_seed)
    n = rows

    weights = np.array([s[1] for s in SCHOOLS], dtype=float)
    school_idx = rng.choice(len(SCHOOLS), size=n, p=weights / weights.sum())
    school_effect = market.normal(0, SCHOOL_SD, size=len(SCHOOLS))
    sub_idx = rng.integers(0, SUBDIVISIONS, size=n)
    sub_effect = market.normal(0, SUBDIVISION_SD, size=SUBDIVISIONS)

    subtype_draw = rng.random(n)
    townhouse = subtype_draw < 0.09 + 0.12 * mix
    duplex = (subtype_draw >= 0.09 + 0.12 * mix) & (subtype_draw < 0.10 + 0.12 * mix)
    attached = townhouse | duplex

    sqft = np.exp(rng.normal(np.log(2700) + 0.25 * mix, 0.36, size=n) - 0.35 * attached)
    sqft = np.clip(np.round(sqft), 850, 9500).astype(np.int64)
    beds = np.clip(np.round(0.9 + sqft / 850 + rng.normal(0, 0.55, n)), 1, 6).astype(np.int64)
    full = np.clip(np.round(sqft / 1250 + rng.normal(0, 0.45, n)), 1, 7).astype(np.int64)
    half = rng.choice(3, size=n, p=[0.36, 0.57, 0.07])
    lot = np.round(sqft * 2.6 * np.exp(rng.normal(0, 0.45, n)), 2)
    lot[attached & (rng.random(n) < 0.6)] = 0.0
    cdom = np.round(rng.exponential(45, n)).astype(np.int64)
    pool = rng.random(n) < 0.18 + 0.1 * (sqft > 3500)
    # Indices into the value lists, not the values: the same draws, far faster text columns.
    year_built = rng.choice(len(YEAR_BUILT), size=n, p=_year_built_weights(mix))
    new_build = np.isin(year_built, _NEW_BUILD)
    stories = np.where(sqft > 2300, rng.choice([2, 3], n, p=[0.92, 0.08]), rng.choice([1, 2], n))
    garage = np.clip(np.round(1 + sqft / 1800 + rng.normal(0, 0.4, n)), 0, 4).astype(np.int64)
    garage[attached & (rng.random(n) < 0.3)] = 0
    living = np.clip(np.round(sqft / 1500 + rng.normal(0, 0.5, n)), 1, 6).astype(np.int64)
    fireplaces = rng.choice(4, n, p=[0.1, 0.78, 0.09, 0.03])

    structural = (
        INTERCEPT
        + 0.80 * np.log(sqft / 2500)
        + 0.06 * np.log1p(lot / 1000)
        + 0.02 * (beds - 4)
        + 0.04 * (full - 3)
        + 0.02 * half
        - 0.02 * np.log1p(cdom)
        + school_effect[school_idx]
        + sub_effect[sub_idx]
        + 0.04 * pool
        + 0.03 * new_build
        - 0.10 * attached
    )
    opened = np.zeros(n, dtype=bool)
    if drift.new_school:
        # Drawn from the month's own generator after the base draws: other columns keep theirs.
        opened = np.random.default_rng([seed, drift.month, 7]).random(n) < drift.new_school_share
        structural = structural + NEW_SCHOOL_EFFECT * opened - school_effect[school_idx] * opened
    structural = structural + drift.log_price_shift
    log_price = structural + rng.normal(0, noise, n)
    price = np.round(np.exp(log_price), -2).astype(np.int64)
    list_price = np.round(price * np.exp(rng.normal(0.025, 0.035, n)), -2).astype(np.int64)
    original_list = np.round(list_price * np.exp(np.abs(rng.normal(0, 0.03, n))), -2)

    status = rng.choice(len(STATUSES), size=n, p=list(STATUSES.values()))
    sold = status == list(STATUSES).index("Sold")

    # Quirks of the real export.
    flip = rng.random(n) < 0.005
    cdom_out = np.where(flip, -np.maximum(cdom, 1), cdom)
    lot_out = pd.Series(lot, dtype="Float64")
    lot_out[rng.random(n) < 0.003] = pd.NA
    # School indices: len(SCHOOLS) is the unsold-only school, the next one a new school.
    school_out = school_idx.copy()
    school_out[opened] = len(SCHOOLS) + 1
    unsold_positions = np.flatnonzero(~sold)
    if len(unsold_positions) >= 20:
        k = max(2, len(unsold_positions) // 500)
        school_out[rng.choice(unsold_positions, size=k, replace=False)] = len(SCHOOLS)

    subtype = np.where(townhouse, 1, np.where(duplex, 2, 0))
    close = pd.Series(price, dtype="Int64").where(sold)
    # Drawn last so every column above stays as it was for a given seed.
    if drift.month == 0:
        start, days = pd.Timestamp("2019-07-01"), 366
    else:
        start = FIRST_DRIFT_MONTH + pd.DateOffset(months=drift.month - 1)
        days = (start + pd.DateOffset(months=1) - start).days
    day_names = (start + pd.to_timedelta(np.arange(days), unit="D")).strftime("%Y-%m-%d")
    close_day = np.asarray(day_names, dtype=object)[rng.integers(0, days, n)]
    close_date = pd.Series(close_day, dtype=object).where(sold)
    school_names = [*(s[0] for s in SCHOOLS), UNSOLD_ONLY_SCHOOL, drift.new_school or ""]
    # Per subdivision (drawn from the market's generator, after its price effects): the
    # community's amenities and its association's annual fee, both richer where the
    # subdivision's price effect is higher, as for a real community.
    sub_z = sub_effect / SUBDIVISION_SD
    sub_chance = 1.0 / (1.0 + np.exp(-(np.outer(sub_z, _ITEM_SLOPES[:4]) - 0.2)))
    sub_lists = (market.random((SUBDIVISIONS, 4)) < sub_chance) @ (1 << np.arange(4))
    sub_fee = np.exp(np.log(650) + 0.35 * sub_z + market.normal(0, 0.2, SUBDIVISIONS))
    record = _record_columns(
        rng, structural - drift.log_price_shift, new_build, townhouse, duplex, pool, school_idx
    )
    community = sub_lists[sub_idx]
    record["CommunityFeatures"] = pd.Series(
        _text(_combinations(FEATURE_LISTS["CommunityFeatures"]), community)
    ).where(community > 0)
    fee_scale = sub_fee[sub_idx] / 650.0
    record["AssociationFee"] = (record["AssociationFee"] * fee_scale).round()
    return pd.DataFrame(
        {
            # Unique across the months of a drifting market (a month holds at most 1M listings).
            "MLSNumber": 20_000_000 + 1_000_000 * drift.month + rng.permutation(n),
            "Status": _text(list(STATUSES), status),
            "BathsFull": full,
            "BathsHalf": half,
            "BathsTotal": _text(_BATHS, full * 3 + half),
            "BedsTotal": beds,
            "CDOM": cdom_out,
            "City": _text([s[3] for s in SCHOOLS], school_idx),
            "ClosePrice": close,
            "CloseDate": close_date,
            "YearBuiltDetails": _text(list(YEAR_BUILT), year_built),
            "ElementarySchoolName": _text(school_names, school_out),
            "FireplacesTotal": fireplaces,
            "HighSchoolName": _text([s[2] for s in SCHOOLS], school_idx),
            "ListPrice": list_price,
            "LotSizeAreaSQFT": lot_out,
            "NumberOfLivingAreas": living,
            "NumberOfStories": stories,
            "OriginalListPrice": original_list.astype(np.int64),
            "ParkingSpacesGarage": garage,
            "PoolYN": _text(["False", "True"], pool.astype(np.int64)),
            "PropertySubType": _text(_SUBTYPES, subtype),
            "SqFtTotal": sqft,
            "SubdivisionName": _text(_SUBDIVISION_NAMES, sub_idx),
            "TransactionType": "For Sale",
            **record,
        }
    )


def _record_columns(
    rng: np.random.Generator,
    assessed: np.ndarray,
    new_build: np.ndarray,
    townhouse: np.ndarray,
    duplex: np.ndarray,
    pool: np.ndarray,
    school_idx: np.ndarray,
) -> dict[str, object]:
    """Return the tax record, association, style, area, middle school and feature-list columns
    (the middle school follows the elementary school's high school): the taxes of
    the structural price a year earlier (`assessed`, log) with their own noise, missing on most
    new builds (no assessment yet); an association fee on 90% of homes at one of several
    frequencies; feature lists as comma-separated subsets, some items likelier in dearer homes."""
    n = len(assessed)
    taxes = pd.Series(
        np.round(TAX_RATE * np.exp(assessed + rng.normal(0, 0.06, n))), dtype="Float64"
    )
    taxes[(new_build & (rng.random(n) < 0.7)) | (rng.random(n) < 0.03)] = pd.NA
    frequency = rng.choice(len(FEE_FREQUENCIES), n, p=list(FEE_FREQUENCIES.values()))
    # How upmarket a home is (its structural price, standardised): dearer homes carry dearer
    # associations and more of some items, as in the real export; never the sale's own noise.
    z = (assessed - assessed.mean()) / max(float(assessed.std()), 1e-9)
    annual = np.exp(rng.normal(np.log(650) + 0.25 * z, 0.4, n)) * (1 + 0.8 * (townhouse | duplex))
    fee = pd.Series(np.round(annual / _PER_YEAR[frequency]), dtype="Float64")
    no_association = rng.random(n) < 0.1
    fee[no_association] = pd.NA
    freq_text = pd.Series(_text(list(FEE_FREQUENCIES), frequency)).where(~no_association)
    style = np.where(townhouse, 1, np.where(duplex, 2, 0))
    area = (school_idx >= len(SCHOOLS) // 2).astype(np.int64)
    out: dict[str, object] = {
        "UnexemptTaxes": taxes,
        "AssociationFee": fee,
        "AssociationFeeFrequency": freq_text,
        "StructuralStyle": _text(
            ["Single Detached", "Condo/Townhome", "Attached or 1/2 Duplex"], style
        ),
        "MLSAreaMinor": _text(_MLS_AREAS, area),
        "MiddleSchoolName": _text([f"{s[2]} Middle" for s in SCHOOLS], school_idx),
    }
    for column, items in FEATURE_LISTS.items():
        slopes = _ITEM_SLOPES[: len(items)]
        chance = 1.0 / (1.0 + np.exp(-(np.outer(z, slopes) - 0.2)))
        masks = (rng.random((n, len(items))) < chance) @ (1 << np.arange(len(items)))
        if column == "PoolFeatures":
            masks = np.where(pool, np.maximum(masks, 1), 0)
        text = pd.Series(_text(_combinations(items), masks))
        out[column] = text.where(masks > 0)
    return out


def noise_floor_rmse(
    rows: int, seed: int = 0, market_seed: int | None = None, drift: MarketDrift | None = None
) -> float:
    """Return the RMSE in dollars of the best possible valuation of the sales of
    `generate_listings(rows, seed, market_seed, drift)`: the true model's conditional mean,
    exp(structural + NOISE_SIGMA^2 / 2), against the sale prices. No model can beat it in
    expectation; benchmarks report a model's RMSE as a multiple of it."""
    sold = generate_listings(rows, seed, market_seed, drift)["ClosePrice"]
    clean = generate_listings(rows, seed, market_seed, drift, noise=0.0)["ClosePrice"]
    mask = sold.notna().to_numpy()
    price = sold.to_numpy(dtype=float, na_value=np.nan)[mask]
    best = clean.to_numpy(dtype=float, na_value=np.nan)[mask] * np.exp(NOISE_SIGMA**2 / 2)
    return float(np.sqrt(np.mean((best - price) ** 2)))


def write_listings(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write listings in the real export's format (all values quoted, CRLF) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    return path


def chunk_seed(seed: int, index: int) -> int:
    """Return the seed of chunk `index`: `seed` itself for the first chunk (so a file of one chunk
    is the one-shot file), then independent streams derived from (seed, index)."""
    if index == 0:
        return seed
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def listing_chunks(
    rows: int,
    seed: int = 0,
    market_seed: int | None = None,
    drift: MarketDrift | None = None,
    chunk_rows: int = SAMPLE_CHUNK_ROWS,
) -> Iterator[pd.DataFrame]:
    """Yield `rows` listings as frames of at most `chunk_rows`: one market (`market_seed`, default
    `seed`) for every chunk, fresh homes per chunk, MLS numbers unique across chunks (each chunk's
    offset by its first row; past 1M rows they run into the next month's numbers)."""
    if rows < 1 or chunk_rows < 1:
        raise ValueError("rows and chunk_rows must be at least 1")
    market = seed if market_seed is None else market_seed
    for index, start in enumerate(range(0, rows, chunk_rows)):
        frame = generate_listings(
            min(chunk_rows, rows - start), chunk_seed(seed, index), market, drift
        )
        frame["MLSNumber"] += start
        yield frame


def export_csv_bytes(frame: pd.DataFrame, header: bool) -> bytes:
    """Return the frame as write_listings writes it (every value quoted, missing as "", CRLF),
    formatted by Arrow: ~6x faster than pandas. Values must hold no line breaks."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_floating(column.type):  # pandas writes repr(): 7020.0, not Arrow's 7020
            values = frame[name].to_numpy(dtype=object, na_value=None)
            column = pa.array([None if v is None else repr(float(v)) for v in values], pa.string())
        columns.append(pc.fill_null(pc.cast(column, pa.string()), ""))
    out = io.BytesIO()
    options = pa_csv.WriteOptions(include_header=header, quoting_style="all_valid")
    pa_csv.write_csv(pa.table(columns, names=table.column_names), out, options)
    return out.getvalue().replace(b"\n", b"\r\n")


def parquet_schema(frame: pd.DataFrame) -> pa.Schema:
    """Return the Parquet schema of every chunk, from the first: a column with no values in it
    (null type) is text, so a later chunk with values still fits."""
    schema = pa.Schema.from_pandas(frame, preserve_index=False)
    for i, field in enumerate(schema):
        if pa.types.is_null(field.type):
            schema = schema.set(i, field.with_type(pa.large_string()))
    return schema


def write_listings_chunked(
    rows: int,
    path: str | Path,
    seed: int = 0,
    market_seed: int | None = None,
    drift: MarketDrift | None = None,
    chunk_rows: int = SAMPLE_CHUNK_ROWS,
    on_chunk: Callable[[int], None] | None = None,
) -> Path:
    """Generate and write `rows` listings chunk by chunk (memory bounded by `chunk_rows`) and
    return the path: Parquet for a .parquet path, else the export's CSV format. Up to
    `chunk_rows` rows, the CSV is byte for byte write_listings(generate_listings(rows, seed, ...)).
    `on_chunk` gets the rows written so far. The file appears complete or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    chunks = listing_chunks(rows, seed, market_seed, drift, chunk_rows)
    try:
        if path.suffix.lower() == ".parquet":
            _write_parquet_chunks(chunks, partial, on_chunk)
        else:
            _write_csv_chunks(chunks, partial, on_chunk)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _write_csv_chunks(
    chunks: Iterator[pd.DataFrame], path: Path, on_chunk: Callable[[int], None] | None
) -> None:
    written = 0
    with path.open("wb") as out:
        for frame in chunks:
            out.write(export_csv_bytes(frame, header=written == 0))
            written += len(frame)
            if on_chunk:
                on_chunk(written)


def _write_parquet_chunks(
    chunks: Iterator[pd.DataFrame], path: Path, on_chunk: Callable[[int], None] | None
) -> None:
    written, writer = 0, None
    try:
        for frame in chunks:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, parquet_schema(frame))
            writer.write_table(table.cast(writer.schema))
            written += len(frame)
            if on_chunk:
                on_chunk(written)
    finally:
        if writer is not None:
            writer.close()
