"""Per-valuation SHAP contributions in dollars, for the raw export columns a user knows.

The explained function is the whole valuation model, from raw listing columns to dollars, so
the contributions are already per raw feature (no encoded columns to sum back, no ratio to
attribute) and additive in dollars: base value + contributions = the valuation, exactly. Text
columns are given integer codes for SHAP's masker and decoded before each prediction. Up to
`EXACT_MAX_FEATURES` features SHAP's Exact explainer enumerates every coalition; beyond that the
Permutation explainer keeps additivity exact by construction.
"""

from __future__ import annotations

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
                known = self.categories[col]
                data[col] = pd.Series([known[int(c)] for c in matrix[:, j]], dtype=object)
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
        masker = shap.maskers.Independent(self.background, max_samples=len(self.background))
        if len(self.columns) <= EXACT_MAX_FEATURES:
            explainer = shap.explainers.Exact(self._f, masker)
            # All 2^M coalitions in one model call per home: far fewer pipeline passes.
            result = explainer(matrix, silent=True, batch_size=2 ** len(self.columns))
        else:
            explainer = shap.explainers.Permutation(self._f, masker, seed=0)
            result = explainer(matrix, max_evals=4 * (2 * len(self.columns) + 1), silent=True)
        values = pd.DataFrame(result.values, columns=self.columns)
        return Contributions(values, np.asarray(result.base_values, dtype=float).reshape(-1), rows)


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
