"""Cross-validation: repeated K-fold stratified on price bins, metrics in dollars, leaderboards.

Every fitted step is refitted inside each training fold (the whole Pipeline is cloned per fold),
so no validation row ever influences the model that scores it.
"""

from __future__ import annotations

import importlib
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import RepeatedStratifiedKFold

from homevision.data.fields import parse_dates
from homevision.training.metrics import GREATER_IS_BETTER, PRIMARY, valuation_metrics

log = logging.getLogger(__name__)

Split = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class CVPlan:
    """Which folds: K folds x R repeats, stratified on price-quantile bins, fixed seed."""

    folds: int = 5
    repeats: int = 5
    seed: int = 0
    bins: int = 5

    def splits(self, y: pd.Series | np.ndarray) -> list[list[Split]]:
        """Return the splits grouped by repeat: splits[r] is the K folds of repeat r."""
        y = np.asarray(y, dtype=float)
        bins = min(self.bins, max(2, len(y) // (2 * self.folds)))
        strata = pd.qcut(y, q=bins, labels=False, duplicates="drop")
        cv = RepeatedStratifiedKFold(
            n_splits=self.folds, n_repeats=self.repeats, random_state=self.seed
        )
        flat = list(cv.split(np.zeros(len(y)), strata))
        return [flat[r * self.folds : (r + 1) * self.folds] for r in range(self.repeats)]

    def describe(self) -> str:
        return f"{self.repeats}x{self.folds}-fold CV stratified on price bins (seed {self.seed})"


@dataclass
class CVResult:
    """Out-of-fold predictions per repeat and the metrics computed from them."""

    per_repeat: pd.DataFrame  # one row per repeat, one column per metric
    oof: np.ndarray  # shape (repeats, n): each repeat predicts every row exactly once
    fit_seconds: float

    def summary(self) -> dict[str, float]:
        """Return mean and std across repeats of every metric: {"rmse": m, "rmse_std": s, ...}."""
        out: dict[str, float] = {}
        for metric in self.per_repeat.columns:
            out[metric] = float(self.per_repeat[metric].mean())
            out[f"{metric}_std"] = float(self.per_repeat[metric].std(ddof=0))
        out["fit_seconds"] = self.fit_seconds
        return out

    @property
    def oof_mean(self) -> np.ndarray:
        """Each row's out-of-fold prediction averaged over repeats (for plots)."""
        return self.oof.mean(axis=0)


def _fit_predict(model: BaseEstimator, X: pd.DataFrame, y: pd.Series, split: Split):
    train, test = split
    start = time.perf_counter()
    with warnings.catch_warnings():
        # A model that did not converge is judged by its CV score, not by a console warning.
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = clone(model).fit(X.iloc[train], y.iloc[train])
    return test, fitted.predict(X.iloc[test]), time.perf_counter() - start


def warm_workers(n_jobs: int = 2) -> None:
    """Start the CV worker processes and import the model code in them now, so the first
    cross-validation does not pay that (about 5 s) inside a timed budget."""
    with Parallel(n_jobs=n_jobs) as parallel:
        parallel(
            delayed(importlib.import_module)("homevision.training.candidates")
            for _ in range(n_jobs)
        )


def cross_validate_model(
    model: BaseEstimator,
    X: pd.DataFrame,
    y: pd.Series,
    splits: list[list[Split]],
    n_jobs: int = 2,
    on_repeat: Callable[[int, float], None] | None = None,
    metric: str = "rmse",
) -> CVResult:
    """Cross-validate `model` on the given splits and return its out-of-fold results.

    `on_repeat(r, running)` is called after each repeat with the running mean of `metric`
    (Optuna pruning hooks in here and may raise to stop early).
    """
    y = pd.Series(np.asarray(y, dtype=float), index=X.index)
    oof = np.full((len(splits), len(X)), np.nan)
    rows, seconds = [], 0.0
    with Parallel(n_jobs=n_jobs) as parallel:
        for r, folds in enumerate(splits):
            results = parallel(delayed(_fit_predict)(model, X, y, s) for s in folds)
            for test, pred, took in results:
                oof[r, test] = pred
                seconds += took
            rows.append(valuation_metrics(y.to_numpy(), oof[r]))
            if on_repeat is not None:
                on_repeat(r, float(np.mean([row[metric] for row in rows])))
    done = len(rows)
    return CVResult(pd.DataFrame(rows), oof[:done], seconds / max(1, done))


def time_ordered_split(
    dates: pd.Series, later_share: float = 0.3, min_earlier: int = 30, min_later: int = 10
) -> tuple[Split, pd.Timestamp] | None:
    """Return ((earlier, later), cut): row positions of the sales closed before the date `cut`
    (about 1 - `later_share` of those with a date, in time order) and of those closed from `cut`
    on (the rest), to learn from the first and score the second.
    None when too few rows have a date or either side is too small. Validation that says how
    well a model values next month's sales, which random folds (past and future mixed) do not."""
    given = pd.Series(dates).reset_index(drop=True)
    when = parse_dates(given)
    unreadable = when.isna() & given.notna() & given.astype("string").str.strip().ne("")
    if unreadable.any():
        log.warning(
            "%s: %d of %d dates are not ISO 8601 (%r) and are left out of the time-ordered split",
            given.name or "dates",
            int(unreadable.sum()),
            int(given.notna().sum()),
            given[unreadable].iloc[0],
        )
    known = when.dropna().sort_values(kind="stable")
    if len(known) < min_earlier + min_later:
        return None
    cut = pd.Timestamp(known.iloc[min(round(len(known) * (1 - later_share)), len(known) - 1)])
    earlier = known.index[known < cut].to_numpy()  # every sale of the cut day counts as later
    later = known.index[known >= cut].to_numpy()
    if len(earlier) < min_earlier or len(later) < min_later:
        return None
    return (earlier, later), cut


def time_ordered_metrics(
    models: dict[str, BaseEstimator], X: pd.DataFrame, y: pd.Series, split: Split
) -> pd.DataFrame:
    """Return one row per model: its metrics on the later sales, fitted on the earlier ones,
    as `later_<metric>` columns (joined onto the leaderboard)."""
    y = pd.Series(np.asarray(y, dtype=float), index=X.index)
    rows = {}
    for name, model in models.items():
        _test, pred, _took = _fit_predict(model, X, y, split)
        metrics = valuation_metrics(y.iloc[split[1]].to_numpy(), pred)
        rows[name] = {f"later_{k}": v for k, v in metrics.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def leaderboard(results: dict[str, CVResult], primary: str = PRIMARY) -> pd.DataFrame:
    """Return one row per candidate (mean and std of every metric), best first by `primary`."""
    table = pd.DataFrame({name: r.summary() for name, r in results.items()}).T
    table.index.name = "candidate"
    ascending = not GREATER_IS_BETTER[primary]
    return table.sort_values(primary, ascending=ascending)
