"""Value every row of an export with a fitted model: output rows = input rows, always.

A row that fails validation, or that the model cannot value, gets its reason in `error`; the
other rows are still valued.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from homevision.data.listings import REASON_COLUMN, coerce_types, is_labelled, validate_listings
from homevision.data.schema import MLS_ID

log = logging.getLogger(__name__)
OUTPUT_COLUMNS = ["MLSNumber", "predicted_close_price", "error"]


def value_listings(model, raw: pd.DataFrame) -> pd.DataFrame:
    """Return one valuation row per input row: MLSNumber, predicted_close_price, error."""
    raw = raw.reset_index(drop=True)
    result = validate_listings(raw)
    out = pd.DataFrame(
        {
            "MLSNumber": raw[MLS_ID].to_numpy(),
            "predicted_close_price": np.full(len(raw), np.nan),
            "error": pd.Series([""] * len(raw), dtype=object).to_numpy(),
        },
        index=raw.index,
    )
    out.loc[result.rejected.index, "error"] = result.rejected[REASON_COLUMN].to_numpy()
    typed = coerce_types(result.accepted)
    if len(typed):
        prices, errors = _predict(model, typed)
        out.loc[typed.index, "predicted_close_price"] = prices
        out.loc[typed.index, "error"] = errors
    out["predicted_close_price"] = out["predicted_close_price"].round(0)
    return out.reset_index(drop=True)


def _predict(model, typed: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Predict the whole batch; if that fails, row by row so one bad row costs only itself."""
    try:
        prices = np.asarray(model.predict(typed), dtype=float)
        return prices, ["" if np.isfinite(p) else "model returned no finite value" for p in prices]
    except Exception as err:  # a model failure on one row must not lose the others
        log.warning("Batch prediction failed (%s); valuing row by row", err)
    prices, errors = np.full(len(typed), np.nan), []
    for i in range(len(typed)):
        try:
            prices[i] = float(model.predict(typed.iloc[[i]])[0])
            errors.append("")
        except Exception as err:
            errors.append(f"could not be valued: {str(err).splitlines()[0][:200]}")
    return prices, errors


def unsold_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """Return the rows that are not labelled sales (the homes to value), rejected ones included."""
    return raw[~is_labelled(coerce_types(raw))]
