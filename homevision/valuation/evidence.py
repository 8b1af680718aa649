"""Listings under contract as training evidence: the freshest prices a market has.

A listing that is Pending (or under an option or contingent contract) has a buyer who agreed to a
price close to its asking price, weeks before the sale closes and the price is recorded. An
appraiser reads such "pending sales" beside the closed ones. Here they join a model's training
rows with a price of asking price x the sale-to-list ratio of the training sales (the median of
ClosePrice / ListPrice over the rows being fitted, so a fold's ratio comes from that fold's
training sales alone). They are never scored: every evaluation, range and check is computed on
closed sales, and a listing of a home that also appears as a sale in the export (same parcel or
MLS number) is left out, so no sale is ever evidence for itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from homevision.data.fields import parse_dates

LIST_PRICE = "ListPrice"
PENDING_DATE = "PendingDate"  # when the listing went under contract (not a model input)
MIN_SALES_FOR_RATIO = 10  # fewer training sales with an asking price: no evidence is used
# Below this asking price a listing is a lease, a lot or a typo, not a home under contract.
MIN_ASKING_PRICE = 10_000.0
SAME_HOME = ("ParcelNumber", "MLSNumber")


@dataclass(frozen=True, eq=False)
class AskingEvidence:
    """Homes under contract: their model columns, asking price and pending date."""

    frame: pd.DataFrame

    def __len__(self) -> int:
        return len(self.frame)

    @classmethod
    def from_listings(
        cls,
        unsold: pd.DataFrame,
        sold: pd.DataFrame,
        statuses: tuple[str, ...],
        columns: list[str],
        status: str = "Status",
    ) -> AskingEvidence:
        """Return the evidence among `unsold` rows: `statuses` (stripped, exact), an asking price
        of at least MIN_ASKING_PRICE, and not the same home as any row of `sold`; keeping only
        `columns` (what the model reads) with the identity, asking price and pending date."""
        rows = unsold
        if status in rows.columns:
            rows = rows[rows[status].astype("string").str.strip().isin(statuses).fillna(False)]
        else:
            rows = rows.iloc[:0]
        if LIST_PRICE in rows.columns:
            asking = pd.to_numeric(rows[LIST_PRICE], errors="coerce")
            rows = rows[asking.ge(MIN_ASKING_PRICE).fillna(False)]
        else:
            rows = rows.iloc[:0]
        for key in SAME_HOME:
            if key in rows.columns and key in sold.columns:
                seen = set(sold[key].dropna().astype(str))
                rows = rows[~rows[key].astype("string").isin(seen).fillna(False)]
        wanted = list(dict.fromkeys([*SAME_HOME, *columns, LIST_PRICE, PENDING_DATE]))
        return cls(rows[[c for c in wanted if c in rows.columns]].reset_index(drop=True))

    def before(self, cut: pd.Timestamp) -> AskingEvidence:
        """Return the evidence a valuation made on `cut` could have used: listings that went
        under contract before it (a listing without a pending date is left out)."""
        if PENDING_DATE not in self.frame.columns:
            return AskingEvidence(self.frame.iloc[:0])
        pending = parse_dates(self.frame[PENDING_DATE])
        return AskingEvidence(self.frame[(pending < cut).fillna(False)].reset_index(drop=True))

    def ratio(self, X: pd.DataFrame, y) -> float | None:
        """Return the median sale-to-list ratio of the training sales (X, y), or None when
        fewer than MIN_SALES_FOR_RATIO of them carry an asking price."""
        if LIST_PRICE not in X.columns:
            return None
        asking = pd.to_numeric(X[LIST_PRICE], errors="coerce").to_numpy(float)
        ratio = np.asarray(y, dtype=float) / asking
        ratio = ratio[np.isfinite(ratio) & (asking >= MIN_ASKING_PRICE)]
        return float(np.median(ratio)) if len(ratio) >= MIN_SALES_FOR_RATIO else None

    def augment(self, X: pd.DataFrame, y) -> tuple[pd.DataFrame, np.ndarray]:
        """Return the training rows (X, y) followed by the evidence, priced at asking price x
        the training sales' sale-to-list ratio; (X, y) unchanged when there is no evidence or
        no ratio. Only the columns X and the evidence share are kept."""
        y = np.asarray(y, dtype=float)
        ratio = self.ratio(X, y) if len(self.frame) else None
        if ratio is None:
            return X, y
        shared = [c for c in X.columns if c in self.frame.columns]
        extra = self.frame[shared]
        priced = pd.to_numeric(self.frame[LIST_PRICE], errors="coerce").to_numpy(float) * ratio
        rows = pd.concat([X[shared], extra], ignore_index=True)
        return rows, np.concatenate([y, priced])


def as_of(estimator, cut: pd.Timestamp):
    """Return a clone of `estimator` whose evidence is what was under contract before `cut`
    (time-ordered checks: a valuation made on `cut` knew no later contract); `estimator` itself
    when it takes no evidence."""
    from sklearn.base import clone

    evidence = estimator.get_params(deep=False).get("evidence")
    if evidence is None:
        return estimator
    return clone(estimator).set_params(evidence=evidence.before(cut))
