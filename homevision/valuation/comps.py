"""Comparable sales: the sold listings nearest to a home in a scaled feature space, same
elementary school first, never the listing itself.

The sold homes are indexed once at fit time: one scikit-learn k-d tree (`KDTree`) over
all of them and one per elementary school. A query asks each school's index for the nearest homes
of that school and, only where a school has too few, the global index for the rest. Candidates
are re-ranked by the exact distance the brute-force lookup used (ties by sold row), and a search
widens until no home outside its candidates could rank among the chosen ones, so the result is
the brute-force one: same school first by distance, then other schools by distance.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import overload

import numpy as np
import pandas as pd
from sklearn.neighbors import KDTree, NearestNeighbors

from homevision.features import FeatureSet, build_preprocessor, split_baths
from homevision.valuation.engine.errors import UnsupportedError
from homevision.valuation.engine.features import compile_features
from homevision.valuation.engine.raw import RawEncoder, fold, folded_names
from homevision.valuation.records import Records, as_frame, field_values

log = logging.getLogger(__name__)

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

# How far (relative) the index's own distances may be from the exact ones before a search widens.
_TOLERANCE = 1e-9
_NO_SCHOOL = -1  # code of a missing school, which equals no school (not even a missing one)


@dataclass
class _SchoolIndex:
    """One school's sold homes: their rows in `sold_` (ascending) and an index over their points."""

    code: int
    rows: np.ndarray
    neighbours: KDTree | NearestNeighbors


def _index(points: np.ndarray) -> KDTree:
    """Return a k-d tree over `points`: exact search with the plain Euclidean arithmetic (no dot
    product shortcut), so its distances differ from the exact ones by rounding only. The tree is
    queried directly: NearestNeighbors would add a joblib dispatch (~1 ms) to every query."""
    return KDTree(points)


def _size(index: KDTree | NearestNeighbors) -> int:
    """Return how many points `index` holds."""
    if isinstance(index, NearestNeighbors):  # indexes pickled before the direct k-d tree
        return index.n_samples_fit_
    return index.get_arrays()[0].shape[0]


def _nearest(index: KDTree | NearestNeighbors, points: np.ndarray, k: int):
    """Return (distances, positions) of the k nearest points of `index`, nearest first."""
    if isinstance(index, NearestNeighbors):
        return index.kneighbors(points, n_neighbors=k)
    return index.query(points, k=k)


class ComparablesIndex:
    """Index of sold listings; `query` returns the k most similar to each home asked about."""

    def __init__(self, feature_set: FeatureSet, k: int = 5):
        self.feature_set = feature_set
        self.k = k

    def fit(self, X: pd.DataFrame, y: pd.Series) -> ComparablesIndex:
        """Learn the scaled space (log sizes, standardised) on the sold rows; store, index them."""
        self.space_ = build_preprocessor(self.feature_set, "linear").fit(X, y)
        names = [str(c) for c in self.space_.get_feature_names_out()]
        self.columns_ = [c for c in names if c.startswith(("log__", "num__"))]
        self.compiled_ = None
        try:  # the engine's numpy form of the same space: no pandas per query
            encoder = RawEncoder.fit(X, self.feature_set)
            compiled = compile_features(self.space_, encoder)
            self.compiled_ = (compiled, [names.index(c) for c in self.columns_])
        except UnsupportedError as err:
            log.warning("Comparable sales use the scikit-learn space: %s", err)
        self.points_ = self._embed(X)
        self.sold_ = pd.DataFrame(self._attributes(X)).assign(ClosePrice=np.asarray(y, float))
        self._build_index()
        return self

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_sold_columns", None)  # a cache of sold_, rebuilt on first use
        state.pop("_folded_schools", None)  # a cache of schools_, likewise
        return state

    @cached_property
    def _folded_schools(self) -> dict[object, str]:
        """Return {fold(school): school} of the sold homes' schools (the engine's rule)."""
        return folded_names(self.schools_)

    def _school(self, name: object) -> _SchoolIndex | None:
        """Return the index of school `name`'s sold homes, spelt as in training or differing
        only by case or inner spaces ("VAUGHN" is "Vaughn"); None for a school without sales."""
        found = self.schools_.get(name)
        if found is None and isinstance(name, str):
            found = self.schools_.get(self._folded_schools.get(fold(name)))
        return found

    @cached_property
    def _sold_columns(self) -> dict[str, np.ndarray]:
        """Return sold_'s columns as arrays: what every query reads (pandas' column access costs
        a single home's lookup about 0.3 ms)."""
        return {str(c): self.sold_[c].to_numpy() for c in self.sold_.columns}

    def _embed(self, X: pd.DataFrame | Records) -> np.ndarray:
        """Return the homes (a frame, or records) as points of the scaled space (the one map from
        homes to points): through the compiled features when the space compiled, else
        scikit-learn's transform."""
        compiled = getattr(self, "compiled_", None)
        if compiled is not None:
            features, columns = compiled
            encoder = features.encoder
            raw = encoder.encode(X) if isinstance(X, pd.DataFrame) else encoder.encode_records(X)
            return features(raw)[:, columns]
        X = as_frame(X, self.feature_set.raw_columns)
        return self.space_.transform(X)[self.columns_].to_numpy(float)

    def _attributes(self, X: pd.DataFrame | Records) -> dict[str, np.ndarray]:
        """Return what a comp shows of each home (a frame, or records), as arrays: id, school
        (missing as NaN), sqft, beds, baths, lot."""
        fs = self.feature_set
        known = X.columns if isinstance(X, pd.DataFrame) else (X[0] if X else {})
        ids = field_values(X, "MLSNumber") if "MLSNumber" in known else np.arange(len(X))
        baths = [split_baths(v) for v in field_values(X, fs.baths)]
        return {
            "MLSNumber": np.asarray(ids) if isinstance(ids, pd.Series) else _objects(ids),
            "school": np.array(
                [np.nan if _missing(v) else v for v in field_values(X, fs.school)], dtype=object
            ),
            "sqft": _numbers(field_values(X, "SqFtTotal")),
            "beds": _numbers(field_values(X, "BedsTotal")),
            "baths": np.array([f + 0.5 * h for f, h in baths], dtype=float),
            "lot": _numbers(field_values(X, "LotSizeAreaSQFT")),
        }

    def _build_index(self) -> None:
        """Index `points_`: globally and per school, with each sold home's id (as text, how a
        listing is recognised among them) and school code (-1: missing, matching no home)."""
        self.ids_ = self.sold_["MLSNumber"].astype(str).to_numpy(object)
        codes, schools = pd.factorize(self.sold_["school"].to_numpy(object))
        self.school_codes_ = codes
        self.index_ = _index(self.points_)
        by_school = pd.Series(np.arange(len(codes))).groupby(codes).indices  # ascending rows
        self.schools_ = {}
        for code, school in enumerate(schools):
            rows = by_school[code]
            self.schools_[school] = _SchoolIndex(code, rows, _index(self.points_[rows]))

    def query(self, X: pd.DataFrame | Records, k: int | None = None) -> ComparableFrames:
        """Return, per home of X (a frame, or records), a frame of its k comparable sales
        (COMP_COLUMNS), best first: homes of its school by distance, then other homes by
        distance, never the listing itself (same MLSNumber as text); fewer only when fewer sold
        homes remain."""
        k = k or self.k
        if not hasattr(self, "index_"):  # fitted before comps were indexed
            self._build_index()
        points, attrs = self._embed(X), self._attributes(X)
        ids = np.array([str(v) for v in attrs["MLSNumber"]], dtype=object)
        none = (np.empty(0, dtype=np.intp), np.empty(0))
        chosen: list[tuple[np.ndarray, np.ndarray, int]] = [(*none, 0)] * len(X)
        codes, schools = pd.factorize(attrs["school"])
        groups = [(np.flatnonzero(codes == c), self._school(s)) for c, s in enumerate(schools)]
        groups.append((np.flatnonzero(codes < 0), None))
        for rows, school in groups:
            if len(rows) == 0:
                continue
            want = np.full(len(rows), k)
            same = [none] * len(rows)
            if school is not None:
                same = self._search(school.neighbours, school.rows, points[rows], ids[rows], want)
            need = want - np.array([len(found) for found, _ in same])
            short = np.flatnonzero(need > 0)
            others = [none] * len(rows)
            if len(short):
                # Only homes of schools with too few sold homes get here, so skipping their
                # school's homes among the global neighbours costs few extra ones.
                found = self._search(
                    self.index_,
                    None,
                    points[rows[short]],
                    ids[rows[short]],
                    need[short],
                    skip=_NO_SCHOOL if school is None else school.code,
                    extra=0 if school is None else len(school.rows),
                )
                for j, pair in zip(short, found, strict=True):
                    others[j] = pair
            for j, row in enumerate(rows):
                chosen[row] = (
                    np.concatenate([same[j][0], others[j][0]]),
                    np.concatenate([same[j][1], others[j][1]]),
                    len(same[j][0]),
                )
        return _frames(self._sold_columns, attrs, chosen)

    def _search(
        self,
        neighbours: KDTree | NearestNeighbors,
        rows: np.ndarray | None,
        points: np.ndarray,
        ids: np.ndarray,
        want: np.ndarray,
        skip: int = _NO_SCHOOL,
        extra: int = 0,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Return, per point, (sold rows, exact distances) of its `want` nearest sold homes in
        `neighbours` (over `points_[rows]`; all of them when rows is None), leaving out the
        listing itself (`ids`) and homes of school code `skip`: ordered by exact distance, ties
        by sold row, as the brute-force sort did; fewer only when the index has no more.

        The first search asks for `want` + `extra` + 1 neighbours (`extra`: how many homes of
        `skip` the index holds). A point whose last chosen home is not strictly nearer than the
        farthest neighbour returned (less a rounding tolerance) is searched again with twice as
        many, since an unreturned home might tie with or beat it."""
        size = _size(neighbours)
        found: list[tuple[np.ndarray, np.ndarray]] = [None] * len(points)  # type: ignore[list-item]
        todo = np.arange(len(points))
        asked = min(size, int(want.max(initial=0)) + extra + 1)
        while len(todo):
            index_dist, local = _nearest(neighbours, points[todo], asked)
            candidates = local if rows is None else rows[local]
            again = []
            for j, q in enumerate(todo):
                cand = candidates[j]
                keep = self.ids_[cand] != ids[q]
                if skip != _NO_SCHOOL:
                    keep &= self.school_codes_[cand] != skip
                cand = cand[keep]
                dist = np.sqrt(((self.points_[cand] - points[q]) ** 2).sum(axis=1))
                order = np.lexsort((cand, dist))[: want[q]]
                cand, dist = cand[order], dist[order]
                bound = index_dist[j, -1] * (1.0 - _TOLERANCE) - _TOLERANCE
                if asked == size or (len(cand) == want[q] and (want[q] == 0 or dist[-1] < bound)):
                    found[q] = (cand, dist)
                else:
                    again.append(q)
            todo = np.asarray(again, dtype=int)
            asked = min(size, 2 * asked)
        return found


def model_comparables(
    index: ComparablesIndex, features, model, X: pd.DataFrame, k: int | None = None
) -> ComparableFrames:
    """Return, per row of X, the comparable sales the sales-comparison `model` (behind the
    fitted `features`) uses for it, as COMP_COLUMNS frames: nearest first in its learned metric
    (the `distance` column), never the listing itself; `same_school` says whether each shares
    the home's school. `index` (fitted on the same sales, in the same order) gives the rows.

    A model fitted with evidence holds the listings under contract after the sales: they are
    no sales (no close price), so the search asks for as many more neighbours as there are of
    them and keeps the sales among them, nearest first."""
    k = k or index.k
    attrs = index._attributes(X)
    ids = np.array([str(v) for v in attrs["MLSNumber"]], dtype=object)
    points = np.asarray(features.transform(X), dtype=float)
    sales = len(index.ids_)
    contracts = max(0, len(model.sales_) - sales)
    # One more: the listing itself may be among them; and every contract may be nearer.
    rows, d2 = model.nearest(points, k + 1 + contracts)
    chosen = []
    for i in range(len(X)):
        keep = rows[i] < sales
        keep[keep] = index.ids_[rows[i][keep]] != ids[i]
        chosen.append((rows[i][keep][:k], np.sqrt(d2[i][keep][:k]), 0))
    return _frames(index._sold_columns, attrs, chosen, match_schools=True)


def _frames(
    sold: dict[str, np.ndarray],
    homes: dict[str, np.ndarray],
    chosen: list[tuple[np.ndarray, np.ndarray, int]],
    match_schools: bool = False,
) -> ComparableFrames:
    """Return each home's comps frames (COMP_COLUMNS; diffs are comp minus home) from its chosen
    sold rows, their exact distances and how many of them (the first) share its school; with
    `match_schools`, `same_school` compares each comp's school with the home's instead (a
    missing school matches none), for comps not ranked by school."""
    sizes = np.array([len(rows) for rows, _, _ in chosen], dtype=np.intp)
    ends = np.cumsum(sizes)
    owner = np.repeat(np.arange(len(chosen)), sizes)
    rows = np.concatenate([np.empty(0, np.intp), *(rows for rows, _, _ in chosen)])
    rank = np.arange(len(rows)) - np.repeat(ends - sizes, sizes)
    schools = sold["school"][rows]
    if match_schools:
        same_school = (schools == homes["school"][owner]) & ~pd.isna(schools)
    else:
        same_school = rank < np.repeat([same for _, _, same in chosen], sizes)
    columns = {
        "MLSNumber": sold["MLSNumber"][rows],
        "ClosePrice": sold["ClosePrice"][rows],
        "distance": np.concatenate([np.empty(0), *(dist for _, dist, _ in chosen)]).round(3),
        "same_school": same_school,
        "ElementarySchoolName": schools,
    }
    for name in ("sqft", "beds", "baths", "lot"):
        columns[f"{name}_diff"] = sold[name][rows] - homes[name][owner]
    return ComparableFrames(columns, sizes)


def _missing(value: object) -> bool:
    """True for a missing value (None, NaN, pd.NA, NaT)."""
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _objects(values: list) -> np.ndarray:
    """Return values as a 1-d object array (np.array would nest sequences)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _numbers(values: pd.Series | list) -> np.ndarray:
    """Return values as floats: NaN where missing or not a number (pandas' to_numeric, which a
    record's plain numbers skip)."""
    if isinstance(values, list):
        if all(v is None or type(v) in (int, float) for v in values):
            return np.array([np.nan if v is None else v for v in values], dtype=float)
        values = pd.Series(values, dtype=object)
    return pd.to_numeric(values, errors="coerce").to_numpy(float)


class ComparableFrames(Sequence[pd.DataFrame]):
    """Each home's comps frame, built when first read: a batch of 10,000 homes reads them as
    text (`values`) and never needs the frames, which cost ~0.1 ms each.

    A frame is cut from one frame of all the comps. pandas infers a text column's dtype per
    frame (str when it holds text and nothing but text or missing values, else object): a home
    whose own frame would get another dtype than its cut (no text in it, or a value that is not
    text in the column) gets a frame of its own, built from its values."""

    def __init__(self, columns: dict[str, np.ndarray], sizes: np.ndarray) -> None:
        self.columns = columns
        self.ends = np.cumsum(sizes)
        self.starts = self.ends - sizes
        owner = np.repeat(np.arange(len(sizes)), sizes)
        alone = np.zeros(len(sizes), dtype=bool)
        for values in columns.values():
            if values.dtype == object:
                text = np.array([isinstance(v, str) for v in values], dtype=bool)
                if (~text & ~pd.isna(values)).any():
                    alone[:] = True
                alone |= np.bincount(owner, weights=text, minlength=len(sizes)) == 0
        self.alone = alone
        self._built: dict[int, pd.DataFrame] = {}
        self._lists: dict[str, list] = {}

    def __len__(self) -> int:
        return len(self.ends)

    @overload
    def __getitem__(self, i: int) -> pd.DataFrame: ...

    @overload
    def __getitem__(self, i: slice) -> list[pd.DataFrame]: ...

    def __getitem__(self, i):
        """Return home i's comps frame (the same object on every read)."""
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]  # negative positions; IndexError past the end
        frame = self._built.get(i)
        if frame is None:
            start, end = self.starts[i], self.ends[i]
            if self.alone[i]:
                frame = pd.DataFrame({c: v[start:end] for c, v in self.columns.items()})
            else:
                frame = self._whole.iloc[start:end].reset_index(drop=True)
            self._built[i] = frame
        return frame

    def values(self, i: int, column: str) -> list:
        """Return home i's comps' `column` as a list: what `self[i][column].tolist()` returns,
        without building the frame."""
        if self.alone[i] or i in self._built:
            return self[i][column].tolist()
        values = self.columns[column][self.starts[i] : self.ends[i]]
        if values.dtype.kind in "biuf":  # a frame keeps the dtype: the same Python values
            return values.tolist()
        if values.dtype == object:  # text or missing (else every home is alone): str dtype
            return [v if isinstance(v, str) else np.nan for v in values]
        whole = self._lists.get(column)
        if whole is None:
            whole = self._lists[column] = self._whole[column].tolist()
        return whole[self.starts[i] : self.ends[i]]

    @cached_property
    def _whole(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns)
