"""Valuation metrics, always in dollars: the take-home's RMSE, MAE, R2, plus the AVM industry's
percentage errors (MAPE, MdAPE) and hit rates (share of valuations within 5/10/20% of the sale)."""

from __future__ import annotations

from typing import Any

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


BOUND_LEVEL = 0.9  # the bootstrap intervals the card gives beside the honest figures
BOUND_RESAMPLES = 2000


def _bootstrap_statistic(name: str):
    """Return metric `name` as a statistic of (y_true, y_pred) along an axis, for
    scipy.stats.bootstrap's vectorised resamples."""

    def statistic(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
        err = p - y
        ape = np.abs(err) / y
        if name == "rmse":
            return np.sqrt(np.mean(err**2, axis=axis))
        if name == "mae":
            return np.mean(np.abs(err), axis=axis)
        if name == "r2":
            spread = y - np.mean(y, axis=axis, keepdims=True)
            return 1.0 - np.sum(err**2, axis=axis) / np.sum(spread**2, axis=axis)
        if name == "mape":
            return np.mean(ape, axis=axis)
        if name == "mdape":
            return np.median(ape, axis=axis)
        share = float(name.removeprefix("within_")) / 100
        return np.mean(ape <= share, axis=axis)

    return statistic


def metric_bounds(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    level: float = BOUND_LEVEL,
    resamples: int = BOUND_RESAMPLES,
    seed: int = 0,
) -> dict[str, float]:
    """Return `{metric}_low` and `{metric}_high` for every metric of valuation_metrics: the
    percentile bootstrap interval over the scored sales (pairs resampled together, the same
    resamples for every metric, seeded). It says how far a figure measured on these few sales
    could move on other sales like them (on 54 later sales, MdAPE's 90% interval spans about 2
    points); it leaves out how the procedure itself varies from run to run."""
    from scipy.stats import bootstrap

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    out: dict[str, float] = {}
    if len(y_true) < 2:
        return out
    for name in GREATER_IS_BETTER:
        found = bootstrap(
            (y_true, y_pred),
            _bootstrap_statistic(name),
            n_resamples=resamples,
            paired=True,
            vectorized=True,
            confidence_level=level,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        out[f"{name}_low"] = float(found.confidence_interval.low)
        out[f"{name}_high"] = float(found.confidence_interval.high)
    return out


def select_by(cfg: dict[str, Any], fs: Any = None) -> str:
    """Return the metric that ranks candidates (the feature set `fs`'s `select_by`, else
    `train.select_by` of `cfg`), refusing one that cannot (a score where higher is better, or a
    name that is not a metric) in one sentence. `train` and `tune` both rank by it, so a
    `tune` study is one `train` continues."""
    if fs is not None and fs.select_by:
        metric, where = str(fs.select_by), f"feature_sets.{fs.name}.select_by"
    else:
        metric, where = str(cfg.get("select_by", "rmse")), "train.select_by"
    if metric not in SELECTABLE:
        raise ValueError(
            f"params.yaml {where} is {metric!r}; choose one of {', '.join(SELECTABLE)}"
        )
    return metric
