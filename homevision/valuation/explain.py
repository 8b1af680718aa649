"""Per-valuation SHAP contributions in dollars, for the raw export columns a user knows.

The explained function is the whole valuation model, from raw listing columns to dollars, so
the contributions are already per raw feature (no encoded columns to sum back, no ratio to
attribute) and additive in dollars: base value + contributions = the valuation, exactly. Text
columns are given integer codes for SHAP's masker and decoded before each prediction. Up to
`EXACT_MAX_FEATURES` features every coalition is enumerated in numpy (exact interventional
Shapley values, as SHAP's Exact explainer defines them, without its per-process JIT compile);
beyond that SHAP's Permutation explainer keeps additivity exact by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shap

EXACT_MAX_FEATURES = 10


@dataclass
class RawCodec:
    """Maps raw listing columns to a float matrix (text -> category code) and back."""

    columns: list[str]
    categories: dict[str, list[object]]

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns: list[str]) -> RawCodec:
        categories = {}
        for col in columns:
            if not pd.api.types.is_numeric_dtype(frame[col]) or frame[col].dtype == bool:
                categories[col] = list(pd.unique(frame[col].astype(object)))
        return cls(list(columns), categories)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), len(self.columns)))
        for j, col in enumerate(self.columns):
            if col in self.categories:
                known = self.categories[col]
                for value in pd.unique(frame[col].astype(object)):
                    if not any(_same(value, k) for k in known):
                        known.append(value)  # new school names etc. get a new code
                codes = {_key(v): i for i, v in enumerate(known)}
                out[:, j] = [codes[_key(v)] for v in frame[col].astype(object)]
            else:
                out[:, j] = pd.to_numeric(frame[col], errors="coerce").to_numpy(float)
        return out

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        data = {}
        for j, col in enumerate(self.columns):
            if col in self.categories:
                known = np.empty(len(self.categories[col]), dtype=object)
                known[:] = self.categories[col]
                data[col] = pd.Series(known[matrix[:, j].astype(int)], dtype=object)
            else:
                data[col] = matrix[:, j]
        return pd.DataFrame(data)


def _key(value: object) -> object:
    missing = value is None or (isinstance(value, float) and np.isnan(value))
    return "__missing__" if missing else value


def _same(a: object, b: object) -> bool:
    return _key(a) == _key(b)


@dataclass
class Contributions:
    """SHAP values in dollars: one row per explained home, one column per raw feature."""

    values: pd.DataFrame
    base_values: np.ndarray
    feature_values: pd.DataFrame

    def top(self, i: int, n: int) -> list[tuple[str, float]]:
        """Return the n largest contributions (by size) of row i as (feature, dollars)."""
        row = self.values.iloc[i]
        order = row.abs().sort_values(ascending=False).index[:n]
        return [(str(f), float(row[f])) for f in order]


class DollarExplainer:
    """SHAP explainer of a fitted price model over its raw input columns."""

    def __init__(self, predict, background: pd.DataFrame, columns: list[str]):
        self.predict = predict
        self.columns = list(columns)
        self.codec = RawCodec.fit(background, self.columns)
        self.background = self.codec.encode(background[self.columns])

    def _f(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict(self.codec.decode(matrix)), dtype=float)

    def explain(self, X: pd.DataFrame) -> Contributions:
        """Return the dollar contributions of each raw column to each row's valuation."""
        rows = X[self.columns].reset_index(drop=True)
        matrix = self.codec.encode(rows)
        if len(self.columns) <= EXACT_MAX_FEATURES:
            values, base = exact_shapley(self._f, matrix, self.background)
        else:
            masker = shap.maskers.Independent(self.background, max_samples=len(self.background))
            explainer = shap.explainers.Permutation(self._f, masker, seed=0)
            result = explainer(matrix, max_evals=4 * (2 * len(self.columns) + 1), silent=True)
            values, base = result.values, np.asarray(result.base_values, dtype=float).reshape(-1)
        return Contributions(pd.DataFrame(values, columns=self.columns), base, rows)


def coalition_weights(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (masks, weights): every coalition of d features as a boolean row, and the matrix
    W such that Shapley values = v @ W for coalition values v (one column per feature)."""
    masks = ((np.arange(2**d)[:, None] >> np.arange(d)) & 1).astype(bool)
    size = masks.sum(axis=1)
    fact = np.array([math.factorial(k) for k in range(d + 1)], dtype=float)

    def weight(s: np.ndarray) -> np.ndarray:  # |S|! (d - |S| - 1)! / d!
        return fact[s] * fact[d - s - 1] / fact[d]

    with_i = weight(np.clip(size - 1, 0, d - 1))[:, None]
    without_i = weight(np.clip(size, 0, d - 1))[:, None]
    return masks, np.where(masks, with_i, -without_i)


def exact_shapley(
    f, matrix: np.ndarray, background: np.ndarray, max_rows: int = 200_000
) -> tuple[np.ndarray, np.ndarray]:
    """Return (values, base) of exact interventional Shapley values of `f` for each row of
    `matrix` against `background` (the same definition as SHAP's Exact explainer with an
    Independent masker): every coalition of every row, all background rows, evaluated in as
    few calls of `f` as `max_rows` allows. base + values.sum(1) = f(row), exactly."""
    n, d = matrix.shape
    masks, weights = coalition_weights(d)
    per_row = len(masks) * len(background)
    chunk = max(1, max_rows // per_row)
    values, base = np.empty((n, d)), np.empty(n)
    for start in range(0, n, chunk):
        rows = matrix[start : start + chunk]
        # (rows, coalitions, background, features): the row's value where the coalition has
        # the feature, the background's elsewhere.
        grid = np.where(masks[None, :, None, :], rows[:, None, None, :], background[None, None])
        out = f(grid.reshape(-1, d)).reshape(len(rows), len(masks), len(background))
        v = out.mean(axis=2)
        values[start : start + len(rows)] = v @ weights
        base[start : start + len(rows)] = v[:, 0]
    return values, base


def global_importance(contributions: Contributions) -> pd.Series:
    """Return mean |SHAP| in dollars per raw feature, largest first."""
    return contributions.values.abs().mean().sort_values(ascending=False)


def summary_plot(contributions: Contributions, codec: RawCodec):
    """Return a matplotlib figure: SHAP beeswarm of dollar contributions per raw feature."""
    import matplotlib.pyplot as plt

    explanation = shap.Explanation(
        values=contributions.values.to_numpy(),
        base_values=contributions.base_values,
        data=codec.encode(contributions.feature_values),
        feature_names=list(contributions.values.columns),
    )
    shap.plots.beeswarm(explanation, show=False, max_display=len(contributions.values.columns))
    fig = plt.gcf()
    fig.axes[0].set_xlabel("Contribution to the valuation (USD)")
    fig.tight_layout()
    return fig
