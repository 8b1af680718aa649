"""Behavioural checks a valuation model must pass before it may win: more living area, all else
equal, never lowers the price."""

from __future__ import annotations

import numpy as np
import pandas as pd

SQFT = "SqFtTotal"


def sqft_monotonicity_violations(
    model, X: pd.DataFrame, n_rows: int = 40, grid: int = 30, seed: int = 0
) -> float:
    """Return the share of sampled homes whose valuation falls somewhere as SqFtTotal grows
    over the observed range (all other columns fixed). 0.0 means monotone on every home tried."""
    rng = np.random.default_rng(seed)
    rows = X.iloc[rng.choice(len(X), size=min(n_rows, len(X)), replace=False)]
    sqft = pd.to_numeric(X[SQFT], errors="coerce")
    values = np.linspace(float(sqft.min()), float(sqft.max()), grid)
    # One batch: every sampled home repeated at every grid value.
    batch = rows.loc[rows.index.repeat(grid)].copy()
    batch[SQFT] = np.tile(values, len(rows))
    prices = np.asarray(model.predict(batch), dtype=float).reshape(len(rows), grid)
    falls = (np.diff(prices, axis=1) < -1.0).any(axis=1)  # more than a dollar down
    return float(falls.mean())
