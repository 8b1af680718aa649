"""Per-valuation SHAP contributions in dollars, for the raw export columns a user knows.

The explained function is the whole valuation model, from raw listing columns to dollars, so
the contributions are already per raw feature (no encoded columns to sum back, no ratio to
attribute) and additive in dollars: base value + contributions = the valuation, exactly. Rows
are the compiled engine's raw matrix (homevision.valuation.engine.raw: text as codes, baths as
one number), so a coalition swaps whole raw columns and all coalitions of a batch are valued in
one vectorised engine call. Up to `EXACT_MAX_FEATURES` features every coalition is enumerated
(exact interventional Shapley values, as SHAP's Exact explainer defines them, against a small
weighted set of reference homes). Beyond that, antithetic permutation sampling (the estimator of
SHAP's Permutation explainer) over a fixed plan of coalitions, valued by the same machinery:
additive exactly, against the same weighted reference homes.

TreeExplainer and LinearExplainer do not apply: the valuation is exp(trend + f(encoded
features)) of derived columns (ratios, one-hot schools), so their values would be in log price
over encoded columns, not dollars over the raw columns a user entered.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from homevision.valuation.engine.coalitions import hybrid_values
from homevision.valuation.engine.raw import RawEncoder
from homevision.valuation.records import Records, as_frame

EXACT_MAX_FEATURES = 10
# Permutations per home past EXACT_MAX_FEATURES: 2 x 4 passes of d + 1 coalitions, the budget
# SHAP's Permutation explainer was given here before (max_evals = 4 (2d + 1)).
PERMUTATIONS = 4
EXPLAIN_THREADS = 4  # a large explanation's threads at most
THREADS_ENV = "HOMEVISION_EXPLAIN_THREADS"  # explain_threads() when set
_THREADED = threading.Lock()


def samples(d: int) -> bool:
    """Return whether d raw columns are explained by permutation sampling: too many coalitions
    (2^d) to value every one."""
    return d > EXACT_MAX_FEATURES


@dataclass
class Contributions:
    """SHAP values in dollars: one row per explained home, one column per raw feature; `homes`:
    the explained homes (a frame of their raw columns among others, or records)."""

    values: pd.DataFrame
    base_values: np.ndarray
    homes: pd.DataFrame | Records

    @cached_property
    def feature_values(self) -> pd.DataFrame:
        """Return the explained rows' values of the raw features (built on first use: the API
        never reads them, and a frame costs a single home's explanation half a millisecond)."""
        columns = [str(c) for c in self.values.columns]
        return as_frame(self.homes, columns)[columns].reset_index(drop=True)

    def top(self, i: int, n: int) -> list[tuple[str, float]]:
        """Return the n largest contributions (by size) of row i as (feature, dollars)."""
        row = self.values.iloc[i]
        order = row.abs().sort_values(ascending=False).index[:n]
        return [(str(f), float(row[f])) for f in order]


class DollarExplainer:
    """Shapley values in dollars of a price function over the engine's raw matrix: exact up to
    EXACT_MAX_FEATURES columns, sampled by a fixed permutation plan past them.

    `predict_matrix` values rows of that matrix (the compiled engine, or the scikit-learn model
    behind a decode on fallback); `background` is a small fixed set of reference homes with
    `weights` (k-medoids of the training homes: `summarize_background`), so the base value is
    the weighted mean valuation of the training distribution and every call costs the same.
    `threads`: for shapley_values (1 where `predict_matrix` is not known to be thread-safe);
    `coalitions`: values every hybrid of rows and reference homes at once, for shapley_values
    (the engine's CoalitionValues for every coalition, its WalkValues for a permutation plan).
    """

    def __init__(
        self,
        predict_matrix: Callable[[np.ndarray], np.ndarray],
        encoder: RawEncoder,
        background: pd.DataFrame,
        weights: np.ndarray | None = None,
        threads: int | None = None,
        coalitions: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
    ):
        self.predict_matrix = predict_matrix
        self.threads = threads
        self.coalitions = coalitions
        self.encoder = encoder
        self.columns = list(encoder.columns)
        self.background = encoder.encode(background[self.columns])
        n = len(self.background)
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
        self.weights = w / w.sum()

    @property
    def sampled(self) -> bool:
        """True when explanations sample permutations (more than EXACT_MAX_FEATURES columns)."""
        return samples(len(self.columns))

    @cached_property
    def plan(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (masks, weights) of the coalitions valued per home: every coalition up to
        EXACT_MAX_FEATURES columns, else the fixed permutation plan (the same for every home, so
        a home's explanation does not depend on the batch it comes in)."""
        d = len(self.columns)
        return permutation_weights(d) if self.sampled else coalition_weights(d)

    def _f(self, matrix: np.ndarray) -> np.ndarray:
        return np.asarray(self.predict_matrix(matrix), dtype=float)

    def explain(self, X: pd.DataFrame | Records, matrix: np.ndarray | None = None) -> Contributions:
        """Return the dollar contributions of each raw column to each home's valuation
        (`matrix`: X already encoded, as the API has it; X may then be records)."""
        if matrix is None:
            X = as_frame(X, self.columns)
            matrix = self.encoder.encode(X[self.columns].reset_index(drop=True))
        values, base = shapley_values(
            self._f,
            matrix,
            self.background,
            self.weights,
            plan=self.plan,
            threads=self.threads,
            coalitions=self.coalitions,
        )
        return Contributions(pd.DataFrame(values, columns=self.columns), base, X)


def summarize_background(
    points: np.ndarray, size: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return (row indices, weights): `size` reference homes standing for all `points` (the
    training homes in a scaled feature space), by k-means, each centre replaced by the real home
    nearest to it (a medoid, so every reference value is one a real listing has) and weighted
    by its cluster's share of the homes. Fewer homes than `size`: all of them, equal weights."""
    n = len(points)
    if n <= size:
        return np.arange(n), np.full(n, 1.0 / max(n, 1))
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=size, n_init=4, random_state=seed).fit(points)
    medoids = np.empty(size, dtype=int)
    for c in range(size):
        members = np.flatnonzero(km.labels_ == c)
        gaps = ((points[members] - km.cluster_centers_[c]) ** 2).sum(axis=1)
        medoids[c] = members[np.argmin(gaps)]
    counts = np.bincount(km.labels_, minlength=size).astype(float)
    unique, first = np.unique(medoids, return_index=True)  # two centres, one nearest home
    weights = np.array([counts[medoids == m].sum() for m in unique])
    order = np.argsort(first)
    return unique[order], weights[order] / weights.sum()


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


def permutation_weights(
    d: int, permutations: int = PERMUTATIONS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return (masks, weights) like coalition_weights, for antithetic permutation sampling:
    for each of `permutations` random orders of the d features, the forward pass adds them one
    by one to the empty coalition and the backward pass removes them in the same order from the
    full one; each feature's value is its mean marginal gain over the 2 x `permutations` passes.
    Each pass's gains add up to v(all) - v(none), so the values are additive exactly. The first
    mask is the empty coalition (the base value), as in coalition_weights."""
    rng = np.random.default_rng(seed)
    index: dict[bytes, int] = {}
    masks: list[np.ndarray] = []

    def slot(mask: np.ndarray) -> int:
        key = mask.tobytes()
        if key not in index:
            index[key] = len(masks)
            masks.append(mask)
        return index[key]

    slot(np.zeros(d, dtype=bool))
    gains: list[tuple[int, int, int, float]] = []  # (coalition, feature, previous, sign)
    for _ in range(permutations):
        order = rng.permutation(d)
        for sign, start in ((1.0, False), (-1.0, True)):  # forward, then backward
            mask = np.full(d, start)
            previous = slot(mask.copy())
            for j in order:
                mask[j] = not start
                current = slot(mask.copy())
                gains.append((current, int(j), previous, sign))
                previous = current
    weights = np.zeros((len(masks), d))
    share = 1.0 / (2 * permutations)
    for current, j, previous, sign in gains:
        weights[current, j] += sign * share
        weights[previous, j] -= sign * share
    return np.array(masks), weights


def exact_shapley(
    f,
    matrix: np.ndarray,
    background: np.ndarray,
    weights: np.ndarray | None = None,
    max_rows: int = 400_000,
    threads: int | None = None,
    coalitions: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (values, base) of exact interventional Shapley values of `f` for each row of
    `matrix` against `background` rows with `weights` (uniform when None: the same definition as
    SHAP's Exact explainer with an Independent masker): every coalition, as shapley_values."""
    plan = coalition_weights(matrix.shape[1])
    return shapley_values(f, matrix, background, weights, plan, max_rows, threads, coalitions)


def shapley_values(
    f,
    matrix: np.ndarray,
    background: np.ndarray,
    weights: np.ndarray | None,
    plan: tuple[np.ndarray, np.ndarray],
    max_rows: int = 400_000,
    threads: int | None = None,
    coalitions: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (values, base) of interventional Shapley values of `f` for each row of `matrix`
    against `background` rows with `weights`, from the coalitions of `plan` (masks, W:
    coalition_weights or permutation_weights): the weighted mean over reference homes of each
    coalition's hybrid values v, then values = v @ W and base = v of the first (empty) mask;
    base + values.sum(1) = f(row). Hybrids are valued in blocks of about `max_rows`; blocks of
    rows run on `threads` threads (default: explain_threads()), so `f` must be safe to call from
    several threads at once (the engine's programs are pure).

    `coalitions(rows, background, masks)` values every hybrid home at once, (rows, background,
    coalitions); by default each distinct hybrid is valued once by `f` (engine.coalitions: the
    engine's own is faster for RBF SVRs)."""
    n, d = matrix.shape
    masks, coalition = plan
    m_count, b_count = len(masks), len(background)
    w = np.full(b_count, 1.0 / b_count) if weights is None else np.asarray(weights, dtype=float)
    chunk = block_rows(n, max(1, max_rows // (m_count * b_count)))
    values, base = np.empty((n, d)), np.empty(n)
    if coalitions is None:

        def coalitions(rows: np.ndarray, refs: np.ndarray, masks: np.ndarray) -> np.ndarray:
            return hybrid_values(f, rows, refs, masks)

    def explain_block(start: int) -> None:
        rows = matrix[start : start + chunk]
        v = np.einsum("rbm,b->rm", coalitions(rows, background, masks), w)
        values[start : start + len(rows)] = v @ coalition
        base[start : start + len(rows)] = v[:, 0]

    starts = range(0, n, chunk)
    workers = min(threads or explain_threads(), len(starts))
    if workers <= 1:
        for start in starts:
            explain_block(start)
    else:
        # The blocks are the same whatever the number of threads, so are the values, bit for
        # bit. numpy releases the GIL in the engine's exp and products; BLAS gets one thread
        # per block (its own threads on small products only add waiting). That limit is the
        # process's: one threaded explanation at a time sets and restores it.
        with _THREADED, threadpool_limits(1), ThreadPoolExecutor(workers) as pool:
            list(pool.map(explain_block, starts))
    return values, base


def block_rows(n: int, most: int) -> int:
    """Return the rows per block for `n` rows in blocks of at most `most`: the fewest blocks,
    rounded up to a multiple of EXPLAIN_THREADS where there is more than one, in blocks as
    equal as may be. Why: blocks are shared out to threads, and a last block left alone (23 blocks
    on two threads) kept one core idle for its whole length, at the end of every call. The
    blocks do not depend on the number of threads, so neither do the values, bit for bit."""
    blocks = -(-n // most) if n else 1
    if blocks > 1:
        blocks = min(n, -(-blocks // EXPLAIN_THREADS) * EXPLAIN_THREADS)
    return max(1, -(-n // blocks))


def explain_threads() -> int:
    """Return how many threads a large explanation runs on: HOMEVISION_EXPLAIN_THREADS when
    set (a worker process of a pool sets 1: the processes are the parallelism), else one per
    CPU this process may use, at most EXPLAIN_THREADS."""
    if os.environ.get(THREADS_ENV, "").strip().isdigit():
        return max(1, int(os.environ[THREADS_ENV]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, EXPLAIN_THREADS))


def global_importance(contributions: Contributions) -> pd.Series:
    """Return mean |SHAP| in dollars per raw feature, largest first."""
    return contributions.values.abs().mean().sort_values(ascending=False)


def summary_plot(contributions: Contributions, encoder: RawEncoder):
    """Return a matplotlib figure: SHAP beeswarm of dollar contributions per raw feature."""
    import matplotlib.pyplot as plt
    import shap

    explanation = shap.Explanation(
        values=contributions.values.to_numpy(),
        base_values=contributions.base_values,
        data=encoder.encode(contributions.feature_values),
        feature_names=list(contributions.values.columns),
    )
    shap.plots.beeswarm(explanation, show=False, max_display=len(contributions.values.columns))
    fig = plt.gcf()
    fig.axes[0].set_xlabel("Contribution to the valuation (USD)")
    fig.tight_layout()
    return fig
