"""Value every row of an export with a fitted ValuationModel: output rows = input rows, always.

A row that fails validation, or that the model cannot value, gets its reason in `error`; the
other rows are still valued, each with its conformal price range (and, on request, the SHAP
contributions in dollars and the comparable sales behind it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from homevision.data.listings import REASON_COLUMN, coerce_types, is_labelled, validate_listings
from homevision.data.schema import MLS_ID

log = logging.getLogger(__name__)
OUTPUT_COLUMNS = [
    "MLSNumber",
    "predicted_close_price",
    "close_price_low",
    "close_price_high",
    "error",
]
PRICE_COLUMNS = ["predicted_close_price", "close_price_low", "close_price_high"]


@dataclass
class Explanation:
    """Why one home is valued as it is: base value + contributions = valuation; its comps."""

    base_value: float
    contributions: dict[str, float]
    comparables: pd.DataFrame

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
    """Return valuations (OUTPUT_COLUMNS) for every row of `raw`, in its order."""
    raw = raw.reset_index(drop=True)
    level = model.confidence if confidence is None else confidence
    result = validate_listings(raw)
    out = pd.DataFrame(
        {
            "MLSNumber": raw[MLS_ID].to_numpy(),
            **{c: np.full(len(raw), np.nan) for c in PRICE_COLUMNS},
            "error": np.array([""] * len(raw), dtype=object),
        }
    )
    out.loc[result.rejected.index, "error"] = result.rejected[REASON_COLUMN].to_numpy()
    typed = coerce_types(result.accepted)
    if len(typed):
        prices, errors = _predict(model, typed, level)
        out.loc[typed.index, PRICE_COLUMNS] = prices
        out.loc[typed.index, "error"] = errors
    out[PRICE_COLUMNS] = out[PRICE_COLUMNS].round(0)
    out = out[OUTPUT_COLUMNS]
    explanations: list[Explanation | None] = []
    if explain:
        explanations = _explain(model, typed, out)
    return Valuations(out, level, explanations)


def _predict(model, typed: pd.DataFrame, level: float) -> tuple[np.ndarray, list[str]]:
    """Predict the whole batch; if that fails, row by row so one bad row costs only itself."""
    try:
        prices = np.column_stack(model.predict_interval(typed, level))
        finite = np.isfinite(prices).all(axis=1)
        return prices, ["" if ok else "model returned no finite value" for ok in finite]
    except Exception as err:  # a model failure on one row must not lose the others
        log.warning("Batch valuation failed (%s); valuing row by row", err)
    prices, errors = np.full((len(typed), 3), np.nan), []
    for i in range(len(typed)):
        try:
            prices[i] = np.column_stack(model.predict_interval(typed.iloc[[i]], level))[0]
            errors.append("")
        except Exception as err:
            errors.append(f"could not be valued: {str(err).splitlines()[0][:200]}")
    return prices, errors


def _explain(model, typed: pd.DataFrame, out: pd.DataFrame) -> list[Explanation | None]:
    """Return an Explanation per output row (None for rows that could not be valued)."""
    explanations: list[Explanation | None] = [None] * len(out)
    valued = typed[out.loc[typed.index, "error"].eq("").to_numpy()]
    if valued.empty:
        return explanations
    contributions = model.explain(valued)
    comps = model.comparable_sales(valued)
    for j, row in enumerate(valued.index):
        explanations[row] = Explanation(
            base_value=float(contributions.base_values[j]),
            contributions={k: float(v) for k, v in contributions.values.iloc[j].items()},
            comparables=comps[j],
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
                f"{r.MLSNumber} ${r.ClosePrice:,.0f} ({r.sqft_diff:+,.0f} sqft)"
                for r in exp.comparables.itertuples()
            )
        )
    return frame.assign(base_value=base, top_contributions=reasons, comparables=comps)


def unsold_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """Return the rows that are not labelled sales (the homes to value), rejected ones included."""
    return raw[~is_labelled(coerce_types(raw))]
