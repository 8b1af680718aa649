"""Figures people would rather look at than tables: leaderboard, predicted vs actual, residuals."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

_DOLLARS = matplotlib.ticker.FuncFormatter(
    lambda x, _: f"${x / 1e6:,.1f}M" if abs(x) >= 1e6 else f"${x / 1e3:,.0f}k"
)


def leaderboard_chart(table: pd.DataFrame, metric: str = "rmse") -> Figure:
    """Return a horizontal bar chart of CV `metric` per candidate with std error bars."""
    ordered = table.sort_values(metric, ascending=False)
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(ordered) + 1.5))
    ax.barh(
        ordered.index,
        ordered[metric],
        xerr=ordered[f"{metric}_std"],
        color="#4C72B0",
        ecolor="#333333",
        capsize=3,
    )
    ax.set_xlabel(f"CV {metric.upper()} (USD), mean ± std across repeats")
    ax.set_title("Model selection leaderboard (lower is better)")
    ax.xaxis.set_major_formatter(_DOLLARS)
    fig.tight_layout()
    return fig


def predicted_vs_actual(y: np.ndarray, pred: np.ndarray, title: str) -> Figure:
    """Return a scatter of out-of-fold predictions against sale prices, with the y = x line."""
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(y, pred, s=14, alpha=0.7)
    lo, hi = float(min(np.min(y), np.min(pred))), float(max(np.max(y), np.max(pred)))
    ax.plot([lo, hi], [lo, hi], color="black", lw=1)
    ax.set_xlabel("Sale price (USD)")
    ax.set_ylabel("Out-of-fold valuation (USD)")
    ax.set_title(title)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(_DOLLARS)
    fig.tight_layout()
    return fig


def residual_plot(y: np.ndarray, pred: np.ndarray, title: str) -> Figure:
    """Return percentage errors against the valuation: where the model over/under-values."""
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(pred, 100 * (pred - y) / y, s=14, alpha=0.7)
    ax.axhline(0, color="black", lw=1)
    ax.set_xlabel("Out-of-fold valuation (USD)")
    ax.set_ylabel("Error (% of sale price)")
    ax.set_title(title)
    ax.xaxis.set_major_formatter(_DOLLARS)
    fig.tight_layout()
    return fig


def close(fig: Figure) -> None:
    """Release a figure once it is saved (pyplot keeps every open figure alive)."""
    plt.close(fig)
