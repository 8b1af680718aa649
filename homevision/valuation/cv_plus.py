"""CV+ ranges without the (rows x calibration sales) matrix: MAPIE's numbers, exactly.

MAPIE's CV+ bound for a home x is an order statistic of n values, one per calibration sale i:
y_k(i)(x) * (1 + s_i), where y_k is the fold model that did not see sale i and s_i its gamma
conformity score. MAPIE builds that (rows x n) matrix and partitions it for every bound: with
3,000 sales it was 83% of a batch valuation (4,662 rows/s).

The values of one fold are one sorted list scaled by a positive number, y_k(x) (rounding to
nearest keeps the order), so a bound is the r-th smallest of the union of K scaled sorted
lists. Fold models agree closely, so the answer lies near the geometric mean of the K scales
times the pooled r-th value of 1 + s. Per fold, only the few values either side of that guess
are gathered and sorted, and the answer is then checked exactly: every value left out below
is <= it and every value left out above is >= it, which makes it the r-th order statistic
whatever the rounding. A row that fails the check gets a wider window, then the full
partition, so every bound is the number MAPIE computes; tests/unit/test_cv_plus.py holds them
equal.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

HALF_WIDTHS = (2, 8, 48)  # values gathered per fold either side of the guess, try by try
_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Side:
    """One side's distribution: per fold, its calibration values 1 + s sorted."""

    folds: tuple[np.ndarray, ...]
    pooled: np.ndarray  # all folds' values, sorted
    fold_of: np.ndarray  # fold of each calibration sale (for the full partition)
    values: np.ndarray  # 1 + s per calibration sale, in the same order as fold_of

    @classmethod
    def of(cls, values: np.ndarray, fold_of: np.ndarray, n_folds: int) -> Side:
        folds = tuple(np.sort(values[fold_of == k]) for k in range(n_folds))
        return cls(folds, np.sort(values), fold_of, values)


@dataclass(frozen=True)
class CvPlusPlan:
    """What a CrossConformalRegressor (method "plus", gamma score) needs to give its bounds:
    the fold models, each side's sorted values and each (side, level)'s rank."""

    models: tuple[object, ...]
    low: Side
    up: Side
    low_ranks: np.ndarray  # per level: rank (0-based, ascending) of the lower bound
    up_ranks: np.ndarray

    def bounds(self, X, levels: list[int] | None = None) -> np.ndarray | None:
        """Return MAPIE's bounds for the rows of X, shape (rows, 2, levels), computed for the
        level positions in `levels` only (all when None; the others are NaN); None when a
        fold model gives a price that is not positive and finite (MAPIE's own path then
        answers, with its own error)."""
        scales = np.column_stack([np.asarray(m.predict(X), dtype=float) for m in self.models])
        if not (np.isfinite(scales).all() and (scales > 0).all()):
            return None
        wanted = range(len(self.low_ranks)) if levels is None else levels
        out = np.full((scales.shape[0], 2, len(self.low_ranks)), np.nan)
        for side, ranks, j in ((self.low, self.low_ranks, 0), (self.up, self.up_ranks, 1)):
            for i in wanted:
                out[:, j, i] = select(side, scales, int(ranks[i]))
        return out


def select(side: Side, scales: np.ndarray, rank: int) -> np.ndarray:
    """Return, per row, the `rank`-th smallest (0-based) of fl(scales[row, k] * v) over each
    fold k's values v: exactly what a partition of the full matrix gives."""
    answer = np.empty(scales.shape[0])
    todo = np.arange(scales.shape[0])
    # Where the answer would be if every fold model agreed: their geometric mean times the
    # pooled order statistic. The window around it holds the answer for almost every row.
    centre = np.exp(np.log(scales).mean(axis=1)) * side.pooled[rank]
    for half in HALF_WIDTHS:
        if not todo.size:
            break
        found, exact = _window_select(side, scales[todo], centre[todo], rank, half)
        answer[todo[exact]] = found[exact]
        todo = todo[~exact]
    if todo.size:
        full = scales[todo][:, side.fold_of] * side.values
        answer[todo] = np.partition(full, rank, axis=1)[:, rank]
    return answer


def _window_select(
    side: Side, scales: np.ndarray, centre: np.ndarray, rank: int, half: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return (candidate, exact): per row, the order statistic among each fold's `half`
    values either side of `centre`, and whether it is provably the `rank`-th of all (every
    value left out below is <= it, every value left out above is >= it)."""
    rows = scales.shape[0]
    starts, stops, parts = [], [], [np.full((rows, 1), np.inf)]  # the inf keeps it non-empty
    for k, values in enumerate(side.folds):
        scale, size = scales[:, k], len(values)
        at = np.searchsorted(values, centre / scale)
        start, stop = np.maximum(at - half, 0), np.minimum(at + half, size)
        positions = start[:, None] + np.arange(min(2 * half, size))
        inside = positions < stop[:, None]
        product = scale[:, None] * values[np.minimum(positions, size - 1)]
        parts.append(np.where(inside, product, np.inf))
        starts.append(start), stops.append(stop)
    within = rank - np.sum(starts, axis=0)
    window = np.sort(np.concatenate(parts, axis=1), axis=1)
    last = window.shape[1] - 1
    found = np.take_along_axis(window, np.clip(within, 0, last)[:, None], axis=1)[:, 0]
    exact = (within >= 0) & np.isfinite(found)
    for k, values in enumerate(side.folds):
        start, stop, scale, size = starts[k], stops[k], scales[:, k], len(values)
        exact &= (start == 0) | (scale * values[np.maximum(start - 1, 0)] <= found)
        exact &= (stop == size) | (scale * values[np.minimum(stop, size - 1)] >= found)
    return found, exact


def order_rank(n: int, quantile: float) -> int:
    """Return the index numpy's quantile(method="lower") takes in a sorted array of n."""
    return int(np.quantile(np.arange(n, dtype=float), quantile, method="lower"))


def plan(conformal) -> CvPlusPlan | None:
    """Return the plan of a fitted CrossConformalRegressor with method "plus" and the gamma
    score, computed once per object (kept beside it, never pickled with it); None for anything
    else (MAPIE's own path then)."""
    try:
        return _PLANS[conformal]
    except KeyError:
        made = _PLANS[conformal] = _make_plan(conformal)
        return made
    except TypeError:  # an object that cannot be weakly referenced: compute each time
        return _make_plan(conformal)


def _make_plan(conformal) -> CvPlusPlan | None:
    from mapie.utils import _check_alpha, _check_alpha_and_n_samples

    inner = getattr(conformal, "_mapie_regressor", None)
    ensemble = getattr(inner, "estimator_", None)
    score = getattr(inner, "conformity_score_function_", None)
    if (
        type(conformal).__name__ != "CrossConformalRegressor"
        or getattr(inner, "method", None) != "plus"
        or getattr(ensemble, "method", None) != "plus"
        or type(score).__name__ != "GammaConformityScore"
        or getattr(ensemble, "agg_function", None) != "mean"
    ):
        return None
    scores = np.asarray(inner.conformity_scores_, dtype=float)
    masks = np.nan_to_num(np.asarray(ensemble.k_, dtype=float), nan=0.0)
    if (
        scores.ndim != 1
        or np.isnan(scores).any()
        or masks.shape != (len(scores), len(ensemble.estimators_))
        or not ((masks == 0) | (masks == 1)).all()
        or not (masks.sum(axis=1) == 1).all()
    ):
        return None  # not one fold per sale: MAPIE's aggregation is not a single model
    alphas = np.asarray(_check_alpha(conformal._alphas), dtype=float)
    n = len(scores)
    _check_alpha_and_n_samples(alphas, score.get_effective_calibration_samples(scores))
    betas = alphas / 2
    alpha_low = alphas if score.sym else betas
    alpha_up = 1 - alphas if score.sym else 1 - alphas + betas
    # MAPIE's finite-sample corrected levels (homevision.valuation.quantiles); reverse=True
    # for the lower side takes the quantile of the negated values at 1 - alpha_low.
    low_levels = np.ceil((1 - alpha_low) * (n + 1)) / n
    up_levels = np.ceil(alpha_up * (n + 1)) / n
    if (low_levels > 1).any() or (up_levels > 1).any():
        return None
    fold_of = masks.argmax(axis=1)
    signed = -1.0 if score.sym else 1.0
    k = masks.shape[1]
    up = Side.of(np.add(1, scores), fold_of, k)
    low = up if signed == 1.0 else Side.of(np.add(1, signed * scores), fold_of, k)
    return CvPlusPlan(
        models=tuple(ensemble.estimators_),
        low=low,
        up=up,
        low_ranks=np.array([n - 1 - order_rank(n, q) for q in low_levels]),
        up_ranks=np.array([order_rank(n, q) for q in up_levels]),
    )
