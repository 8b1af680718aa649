"""Comparable sales: the sold listings nearest to a home in a scaled feature space, same
elementary school first, never the listing itself."""

from __future__ import annotations

import numpy as np
import pandas as pd

from homevision.features import FeatureSet, build_preprocessor, split_baths

COMP_COLUMNS = [
    "MLSNumber",
    "ClosePrice",
    "distance",
    "same_school",
    "ElementarySchoolName",
    "sqft_diff",
    "beds_diff",
    "baths_diff",
    "lot_diff",
]


class ComparablesIndex:
    """Index of sold listings; `query` returns the k most similar to each home asked about."""

    def __init__(self, feature_set: FeatureSet, k: int = 5):
        self.feature_set = feature_set
        self.k = k

    def fit(self, X: pd.DataFrame, y: pd.Series) -> ComparablesIndex:
        """Learn the scaled space (log sizes, standardised) on the sold rows and store them."""
        self.space_ = build_preprocessor(self.feature_set, "linear").fit(X, y)
        self.columns_ = [
            c for c in self.space_.get_feature_names_out() if c.startswith(("log__", "num__"))
        ]
        self.points_ = self._embed(X)
        self.sold_ = self._attributes(X).assign(ClosePrice=np.asarray(y, dtype=float))
        return self

    def _embed(self, X: pd.DataFrame) -> np.ndarray:
        return self.space_.transform(X)[self.columns_].to_numpy(float)

    def _attributes(self, X: pd.DataFrame) -> pd.DataFrame:
        baths = [split_baths(v) for v in X[self.feature_set.baths].to_numpy()]
        return pd.DataFrame(
            {
                "MLSNumber": X["MLSNumber"].to_numpy() if "MLSNumber" in X else np.arange(len(X)),
                "school": X[self.feature_set.school].astype(object).to_numpy(),
                "sqft": pd.to_numeric(X["SqFtTotal"], errors="coerce").to_numpy(float),
                "beds": pd.to_numeric(X["BedsTotal"], errors="coerce").to_numpy(float),
                "baths": [f + 0.5 * h for f, h in baths],
                "lot": pd.to_numeric(X["LotSizeAreaSQFT"], errors="coerce").to_numpy(float),
            }
        )

    def query(self, X: pd.DataFrame, k: int | None = None) -> list[pd.DataFrame]:
        """Return, per row of X, a frame of its k comparable sales (COMP_COLUMNS), best first."""
        k = k or self.k
        points, attrs = self._embed(X), self._attributes(X)
        sold = self.sold_
        out = []
        for i in range(len(X)):
            distance = np.sqrt(((self.points_ - points[i]) ** 2).sum(axis=1))
            same = (sold["school"] == attrs.at[i, "school"]).to_numpy()
            itself = (sold["MLSNumber"].astype(str) == str(attrs.at[i, "MLSNumber"])).to_numpy()
            order = np.lexsort((distance, ~same))  # same school first, then nearest
            order = order[~itself[order]][:k]
            comps = sold.iloc[order]
            out.append(
                pd.DataFrame(
                    {
                        "MLSNumber": comps["MLSNumber"].to_numpy(),
                        "ClosePrice": comps["ClosePrice"].to_numpy(),
                        "distance": distance[order].round(3),
                        "same_school": same[order],
                        "ElementarySchoolName": comps["school"].to_numpy(),
                        "sqft_diff": comps["sqft"].to_numpy() - attrs.at[i, "sqft"],
                        "beds_diff": comps["beds"].to_numpy() - attrs.at[i, "beds"],
                        "baths_diff": comps["baths"].to_numpy() - attrs.at[i, "baths"],
                        "lot_diff": comps["lot"].to_numpy() - attrs.at[i, "lot"],
                    }
                )
            )
        return out
