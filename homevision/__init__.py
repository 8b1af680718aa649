"""homevision: value homes from an MLS listings export.

The Python API: `homevision.value(listings, model=REF)` returns a Valuations object (a frame with
price and range per listing, plus per-row explanations when `explain=True`). A row the model
cannot value has no prices and says why in `error`; a row outside the training data is valued
and says so in `warning`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from homevision.valuation.predict import Valuations

__all__ = ["value"]


def value(
    listings: pd.DataFrame,
    model: str | None = None,
    confidence: float | None = None,
    explain: bool = False,
) -> Valuations:
    """Value listings (a frame in export columns) with the referenced model (default: the
    champion) and return Valuations: one row per input with price, range, `error` (refused or
    invalid rows, prices NaN) and `warning` (extrapolations), and explanations on request.

    Raises ValueError for a `confidence` the model does not carry."""
    from homevision.tracking import load_model
    from homevision.valuation.predict import value_listings

    frame = listings.astype(object).where(listings.notna(), None)
    return value_listings(load_model(model), frame, confidence=confidence, explain=explain)
