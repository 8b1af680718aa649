"""Valuation metrics, always in dollars: the take-home's RMSE, MAE, R2, plus the AVM industry's
percentage errors (MAPE, MdAPE) and hit rates (share of valuations within 5/10/20% of the sale)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

PRIMARY = "rmse"
# Metrics a selection can rank candidates by (lower is better): params.yaml `train.select_by`.
SELECTABLE = ("rmse", "mae", "mape", "mdape")
LABELS = {"rmse": "RMSE", "mae": "MAE", "mape": "MAPE", "mdape": "MdAPE"}
# Metric name -> True when larger is better (for leaderboards and plots).
GREATER_IS_BETTER: dict[str, bool] = {
    "rmse": False,
    "mae": False,
    "r2": True,
    "mape": False,
    "mdape": False,
    "within_5": True,
    "within_10": True,
    "within_20": True,
}


def valuation_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Return every metric for one set of predictions (percentages as fractions: 0.09 = 9%)."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    ape = np.abs(y_pred - y_true) / y_true
    return {
        "rmse": float(root_mean_squared_error(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
        "mape": float(ape.mean()),
        "mdape": float(np.median(ape)),
        "within_5": float((ape <= 0.05).mean()),
        "within_10": float((ape <= 0.10).mean()),
        "within_20": float((ape <= 0.20).mean()),
    }


def format_metric(metric: str, value: float) -> str:
    """Return `value` of `metric` as people read it: dollars, or a percentage."""
    return f"{100 * value:.2f}%" if metric in ("mape", "mdape") else f"${value:,.0f}"
