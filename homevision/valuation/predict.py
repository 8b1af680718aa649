"""Value every row of an export with a fitted ValuationModel: output rows = input rows, always.

A row that fails validation, or that the model cannot value, gets its reason in `error`; the
other rows are still valued, each with its conformal price range (and, on request, the SHAP
contributions in dollars and the comparable sales behind it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from homevision.config import load_params
from homevision.data.fields import FIELDS
from homevision.data.listings import REASON_COLUMN, coerce_types, is_labelled, validate_listings
from homevision.data.schema import MLS_ID, ROW_REQUIRED_COLUMNS, STATUS, TARGET
from homevision.valuation.comps import ComparableFrames
from homevision.valuation.model import matrix_support_values, support_values
from homevision.valuation.records import Records

log = logging.getLogger(__name__)
OUTPUT_COLUMNS = [
    "MLSNumber",
    "predicted_close_price",
    "close_price_low",
    "close_price_high",
    "error",
    "warning",
]
DEFAULT_SUPPORT_FACTOR = 3.0
PRICE_COLUMNS = ["predicted_close_price", "close_price_low", "close_price_high"]
# What explanation_columns appends: the base value, the top contributions, the comparables.
EXPLANATION_COLUMNS = ["base_value", "top_contributions", "comparables"]
UNSUPPORTED = "is outside what this model supports"  # in the error of a refused valuation


@dataclass
class Explanation:
    """Why one home is valued as it is: base value + contributions = valuation; its comps."""

    base_value: float
    contributions: dict[str, float]
    sales: Sequence[pd.DataFrame]  # the comparables of every home explained with this one
    position: int  # this home's among them

    @property
    def comparables(self) -> pd.DataFrame:
        """Return its comparable sales (COMP_COLUMNS), best first."""
        return self.sales[self.position]

    def comparable_values(self, column: str) -> list:
        """Return one column of its comparable sales as a list (without building their frame
        where the batch holds them as columns: ComparableFrames)."""
        if isinstance(self.sales, ComparableFrames):
            return self.sales.values(self.position, column)
        return self.comparables[column].tolist()

    def top(self, n: int) -> list[tuple[str, float]]:
        """Return the n largest contributions by size, as (raw feature, dollars)."""
        ranked = sorted(self.contributions.items(), key=lambda kv: -abs(kv[1]))
        return ranked[:n]


@dataclass
class Valuations:
    """One row per input listing, plus an Explanation per valued row when asked for."""

    frame: pd.DataFrame
    confidence: float
    explanations: list[Explanation | None] = field(default_factory=list)


def value_listings(
    model, raw: pd.DataFrame, confidence: float | None = None, explain: bool = False
) -> Valuations:
    """Return valuations (OUTPUT_COLUMNS) for every row of `raw`, in its order: rows that fail
    the data contract get its reasons in `error`, the others go through `value_frame`."""
    raw = raw.reset_index(drop=True)
    level = _level(model, confidence)
    result = validate_listings(raw)
    out = pd.DataFrame(
        {
            "MLSNumber": raw[MLS_ID].to_numpy(),
            **{c: np.full(len(raw), np.nan) for c in PRICE_COLUMNS},
            "error": np.array([""] * len(raw), dtype=object),
            "warning": np.array([""] * len(raw), dtype=object),
        }
    )
    out.loc[result.rejected.index, "error"] = result.rejected[REASON_COLUMN].to_numpy()
    typed = coerce_types(result.accepted)
    explanations: list[Explanation | None] = [None] * len(raw) if explain else []
    if len(typed):
        valued = value_frame(model, typed, level, explain)
        for column in OUTPUT_COLUMNS[1:]:
            out.loc[typed.index, column] = valued.frame[column].to_numpy()
        for position, row in enumerate(typed.index):
            if explain:
                explanations[row] = valued.explanations[position]
    return Valuations(out[OUTPUT_COLUMNS], level, explanations)


def value_frame(
    model, typed: pd.DataFrame, confidence: float | None = None, explain: bool = False
) -> Valuations:
    """Value rows already typed and checked (the CLI's validated export, the API's parsed
    listings): point and range, refusal of what the model cannot support, extrapolation
    warnings, and on request the explanations. Output rows = input rows, in order (the frame
    keeps `typed`'s index). Every face goes through here."""
    level = _level(model, confidence)
    ids = typed[MLS_ID].to_numpy() if MLS_ID in typed else np.full(len(typed), np.nan)
    if len(typed) == 0:
        return Valuations(_frame(ids, np.empty((0, 3)), [], [], typed.index), level, [])
    try:
        raw = model.encoder_.encode(typed)
    except KeyError as err:  # the export lacks a column this model reads: no row can be valued
        reason = f"could not be valued: {err.args[0]}"
        prices = np.full((len(typed), 3), np.nan)
        out = _frame(ids, prices, [reason] * len(typed), [""] * len(typed), typed.index)
        return Valuations(out, level, [None] * len(typed) if explain else [])
    prices, errors, warnings = value_matrix(model, raw, level)
    out = _frame(ids, prices, errors, warnings, typed.index)
    explanations: list[Explanation | None] = []
    if explain:
        explanations = explain_rows(model, typed, errors)
    return Valuations(out, level, explanations)


def value_matrix(
    model, raw: np.ndarray, confidence: float | None = None, factor: float | None = None
) -> tuple[np.ndarray, list[str], list[str]]:
    """Return (prices (n, 3) [point, low, high] rounded to dollars, NaN where refused; errors;
    warnings) for rows already in the model's raw matrix: the core every face shares (value_frame
    for frames, the API for parsed listings). `factor`: the support factor, read from
    params.yaml when None (a server reads it once: the file look-up costs more than a
    valuation)."""
    level = _level(model, confidence)
    prices, failures = _predict(model, raw, level)
    ranges = getattr(model, "training_ranges_", None) or {}
    seen = {c: matrix_support_values(model.encoder_, raw, c) for c in ranges}
    refusals, warnings = _flags(model, seen, prices[:, 0], prices, factor)
    errors = [f or r for f, r in zip(failures, refusals, strict=True)]
    prices[np.array([bool(e) for e in errors], dtype=bool)] = np.nan
    return prices.round(0), errors, warnings


def _frame(
    ids: np.ndarray, prices: np.ndarray, errors: list[str], warnings: list[str], index: pd.Index
) -> pd.DataFrame:
    """Return the OUTPUT_COLUMNS frame, built in one go (this runs once per API request)."""
    return pd.DataFrame(
        {
            "MLSNumber": ids,
            **{c: prices[:, i] for i, c in enumerate(PRICE_COLUMNS)},
            "error": np.array(errors, dtype=object),
            "warning": np.array(warnings, dtype=object),
        },
        index=index,
        columns=OUTPUT_COLUMNS,
    )


def refusal_reason(error: str) -> str:
    """Why a row was refused, in one word, from its `error`: "unsupported" (the valuation falls
    outside the prices the model supports) or "failed" (the model gave no valuation)."""
    return "unsupported" if UNSUPPORTED in error else "failed"


def _level(model, confidence: float | None) -> float:
    """The range level to report: `confidence` if the model carries it (else ValueError)."""
    level = model.confidence if confidence is None else confidence
    if level not in model.levels:
        raise ValueError(
            f"confidence {level} not carried by this model; use one of "
            f"{', '.join(str(v) for v in model.levels)}"
        )
    return level


def support_factor() -> float:
    """How far past the training prices a valuation may fall and still be reported
    (params.yaml valuation.support_factor; 3 when not set)."""
    try:
        section = load_params().get("valuation") or {}
    except FileNotFoundError:
        section = {}
    return float(section.get("support_factor", DEFAULT_SUPPORT_FACTOR))


def support_flags(
    model,
    typed: pd.DataFrame,
    point: np.ndarray,
    prices: np.ndarray | None = None,
    factor: float | None = None,
) -> tuple[list[str], list[str]]:
    """Return (errors, warnings), one string per row ("" when none), for valuations `point` of
    the rows of `typed`.

    error: the valuation (or its range, `prices` as [point, low, high] columns) is not finite,
    or falls outside the prices the model supports: the training prices divided / multiplied
    by `factor` (params.yaml valuation.support_factor). Such a row is refused, not reported.
    warning: a numeric column the model reads lies outside what it saw in training (min..max);
    the row is still valued, but it is an extrapolation.

    Models logged before the ranges were recorded have no `training_ranges_`/`price_range_`:
    they get only the non-finite check.
    """
    ranges = getattr(model, "training_ranges_", None) or {}
    seen = {column: support_values(typed, column) for column in ranges}
    return _flags(model, seen, point, prices, factor)


def _flags(
    model,
    seen: dict[str, np.ndarray],
    point: np.ndarray,
    prices: np.ndarray | None = None,
    factor: float | None = None,
) -> tuple[list[str], list[str]]:
    """support_flags' rule, given each range-checked column's values (`seen`)."""
    warnings = extrapolation_warnings(model, seen, len(point))
    return refusals(model, point, prices, factor), warnings


def refusals(
    model, point: np.ndarray, prices: np.ndarray | None = None, factor: float | None = None
) -> list[str]:
    """Return one error per valuation ("" when reported): not finite, or outside the training
    prices divided / multiplied by `factor` (support_flags' error rule). Needs only the prices
    and `model.price_range_`, so a stage that sees the prices alone can apply it (Spark)."""
    factor = support_factor() if factor is None else float(factor)
    point = np.asarray(point, dtype=float)
    values = point[:, None] if prices is None else np.asarray(prices, dtype=float)
    finite = np.isfinite(values).all(axis=1)
    errors = [
        "" if ok else "the model returned no finite valuation for these values" for ok in finite
    ]
    price_range = getattr(model, "price_range_", None)
    if price_range is not None:
        low, high = price_range[0] / factor, price_range[1] * factor
        for i in np.flatnonzero(finite & ((point < low) | (point > high))):
            errors[i] = (
                f"valuation ${point[i]:,.0f} {UNSUPPORTED} "
                f"(${low:,.0f} to ${high:,.0f}: its training prices ${price_range[0]:,.0f} to "
                f"${price_range[1]:,.0f}, divided or multiplied by {factor:g}); not reported"
            )
    return errors


def extrapolation_warnings(model, seen: dict[str, np.ndarray], rows: int) -> list[str]:
    """Return one warning per row of `rows` ("" when none): the numeric columns whose value
    (`seen`, one array per column of `model.training_ranges_`) lies outside the training
    min..max. Needs no price, so it can be decided before the valuation (Spark)."""
    ranges = getattr(model, "training_ranges_", None) or {}
    out = [""] * rows
    if not ranges:
        return out
    names = list(ranges)
    low = np.array([ranges[c][0] for c in names], dtype=float)
    high = np.array([ranges[c][1] for c in names], dtype=float)
    values = np.empty((rows, len(names)))
    for j, column in enumerate(names):
        values[:, j] = seen[column]
    above, below = values > high, values < low  # NaN is neither
    for i in np.flatnonzero((above | below).any(axis=1)).tolist():  # most rows have no note
        notes = []
        for j, column in enumerate(names):
            if above[i, j]:
                notes.append(
                    f"{column} {_num(values[i, j])} above the largest seen in training "
                    f"({_num(high[j])})"
                )
            elif below[i, j]:
                notes.append(
                    f"{column} {_num(values[i, j])} below the smallest seen in training "
                    f"({_num(low[j])})"
                )
        out[i] = "; ".join(notes) + ": an extrapolation, treat the valuation with care"
    return out


def _num(value: float) -> str:
    """12000.0 -> "12,000"; 2.5 -> "2.5"."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}".rstrip("0").rstrip(".")


def _predict(model, raw: np.ndarray, level: float) -> tuple[np.ndarray, list[str]]:
    """Predict the whole batch as (n, 3) [point, low, high]; if that fails, row by row so one bad
    row costs only itself (its error is a fixed sentence; the exception goes to the log)."""
    try:
        prices = np.empty((len(raw), 3))  # not column_stack: it costs more than the copy
        prices[:, 0], prices[:, 1], prices[:, 2] = model.predict_interval_matrix(raw, level)
        return prices, [""] * len(raw)
    except Exception as err:  # a model failure on one row must not lose the others
        log.warning("Batch valuation failed (%s); valuing row by row", err)
    prices, errors = np.full((len(raw), 3), np.nan), []
    for i in range(len(raw)):
        try:
            prices[i] = np.column_stack(model.predict_interval_matrix(raw[[i]], level))[0]
            errors.append("")
        except Exception:
            log.exception("Row %d could not be valued", i)
            errors.append("could not be valued: the model cannot use these values")
    return prices, errors


def explain_rows(
    model, homes: pd.DataFrame | Records, errors: list[str], raw: np.ndarray | None = None
) -> list[Explanation | None]:
    """Return an Explanation per home (a row of a typed frame, or a record; None for a home
    with an error: refused); `raw`: the homes in the engine's raw matrix, when the caller has
    it (the API, which gives records: a frame would cost it more than the comparables)."""
    explanations: list[Explanation | None] = [None] * len(homes)
    rows = np.flatnonzero(np.asarray(errors, dtype=object) == "")
    if rows.size == 0:
        return explanations
    valued = homes.iloc[rows] if isinstance(homes, pd.DataFrame) else [homes[i] for i in rows]
    contributions = model.explain(valued, matrix=None if raw is None else raw[rows])
    comps = model.comparable_sales(valued)
    names = [str(c) for c in contributions.values.columns]
    values = contributions.values.to_numpy(dtype=float)
    for j, row in enumerate(rows):
        explanations[row] = Explanation(
            base_value=float(contributions.base_values[j]),
            contributions=dict(zip(names, values[j].tolist(), strict=True)),
            sales=comps,
            position=j,
        )
    return explanations


def explanation_columns(valuations: Valuations, top: int) -> pd.DataFrame:
    """Return the valuation frame with readable explanation columns appended."""
    frame = valuations.frame.copy()
    base, reasons, comps = [], [], []
    for exp in valuations.explanations:
        if exp is None:
            base.append(np.nan)
            reasons.append("")
            comps.append("")
            continue
        base.append(round(exp.base_value))
        reasons.append("; ".join(f"{name} {value:+,.0f}" for name, value in exp.top(top)))
        comps.append(
            "; ".join(
                f"{mls} ${price:,.0f} ({sqft:+,.0f} sqft)"
                for mls, price, sqft in zip(
                    exp.comparable_values("MLSNumber"),
                    exp.comparable_values("ClosePrice"),
                    exp.comparable_values("sqft_diff"),
                    strict=True,
                )
            )
        )
    # Dollars as floats, like the prices: the same column whether or not a row lacks one (a
    # streamed file's chunks then agree with each other and with the file valued at once).
    base_values = np.array(base, dtype=float)
    columns = (base_values, reasons, comps)
    return frame.assign(**dict(zip(EXPLANATION_COLUMNS, columns, strict=True)))


def export_columns(model) -> set[str]:
    """Return the export columns a valuation by `model` reads: every field of the data contract
    (a row breaking any of its rules is refused, whatever the model uses), MLSNumber, and the
    model's own columns. Reading only these gives the same valuations, errors and warnings."""
    return {*FIELDS, STATUS, TARGET, MLS_ID, *model.encoder_.columns}


def required_columns(model) -> tuple[str, ...]:
    """Return the columns an export's header must hold for `model` to value it: those every row
    needs a value of (MLSNumber, SqFtTotal, BedsTotal, BathsTotal) and those the model reads.
    Any other contract column may be absent (CDOM for an off-market model): a row breaks no
    rule of an absent column, as it breaks none with the cell empty, so the valuations are
    those of the file with the column there and empty."""
    return tuple(dict.fromkeys([*ROW_REQUIRED_COLUMNS, *model.raw_columns_]))


def unsold_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """Return the rows that are not labelled sales (the homes to value), rejected ones included."""
    return raw[~is_labelled(coerce_types(raw))]
