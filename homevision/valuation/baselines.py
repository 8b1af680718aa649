"""Baselines on the leaderboard: what an appraiser's rule of thumb gets without any learning."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted


class PricePerSqftBaseline(RegressorMixin, BaseEstimator):
    """Predict median $/sqft x SqFtTotal; with `by` set, the median of that group (a school),
    falling back to the overall median for groups seen fewer than `min_count` times."""

    def __init__(self, sqft: str = "SqFtTotal", by: str | None = None, min_count: int = 3):
        self.sqft = sqft
        self.by = by
        self.min_count = min_count

    def fit(self, X: pd.DataFrame, y):
        ppsf = np.asarray(y, dtype=float) / pd.to_numeric(X[self.sqft]).to_numpy(float)
        self.overall_ = float(np.median(ppsf))
        self.groups_: dict[str, float] = {}
        if self.by is not None:
            frame = pd.DataFrame({"g": X[self.by].astype(str).to_numpy(), "p": ppsf})
            stats = frame.groupby("g")["p"].agg(["median", "size"])
            self.groups_ = stats.loc[stats["size"] >= self.min_count, "median"].to_dict()
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "overall_")
        sqft = pd.to_numeric(X[self.sqft]).to_numpy(float)
        if self.by is None:
            return sqft * self.overall_
        rate = X[self.by].astype(str).map(self.groups_).fillna(self.overall_).to_numpy(float)
        return sqft * rate
