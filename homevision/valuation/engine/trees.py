"""Tree ensembles as flat node arrays, walked for a whole batch at once in numpy.

scikit-learn's decision trees, random forests and extra trees (which compare features cast to
float32, as scikit-learn does) and HistGradientBoosting's predictors become one set of arrays:
feature, threshold, children, leaf value and where a missing value goes. A leaf points to itself,
so walking `depth` steps lands every row on its leaf without a per-row loop. Large batches go to
the library's own compiled predict instead, which is faster once its call overhead is paid.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn import config_context

from homevision.valuation.engine.errors import UnsupportedError

# At this many rows or more the library's compiled predict beats the per-call-free numpy walk.
NATIVE_ROWS = 256
_CELLS = 1_000_000  # rows x trees walked per chunk (memory bound)


@dataclass
class FlatTrees:
    """Every tree's nodes in one set of arrays (children as global node indices)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    missing_left: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    depth: int
    float32: bool  # compare features rounded to float32 (scikit-learn's trees do)
    offset: float  # added to the summed leaf values (boosting's baseline)
    scale: float  # multiplies the sum (1 / n_trees for a forest's mean)
    native: object = None  # the fitted estimator, for large batches

    def walk(self, X: np.ndarray) -> np.ndarray:
        """Return the ensemble's output for each row of X (the numpy walk)."""
        if self.float32:
            X = X.astype(np.float32).astype(np.float64)
        n = X.shape[0]
        out = np.empty(n)
        step = max(1, _CELLS // len(self.roots))
        for start in range(0, n, step):
            rows = X[start : start + step]
            node = np.broadcast_to(self.roots, (len(rows), len(self.roots))).copy()
            index = np.arange(len(rows))[:, None]
            for _ in range(self.depth):
                x = rows[index, self.feature[node]]
                go_left = (x <= self.threshold[node]) | (np.isnan(x) & self.missing_left[node])
                node = np.where(go_left, self.left[node], self.right[node])
            out[start : start + step] = self.value[node].sum(axis=1)
        return out * self.scale + self.offset

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.native is not None and X.shape[0] >= NATIVE_ROWS:
            with warnings.catch_warnings(), config_context(assume_finite=True):
                warnings.simplefilter("ignore", UserWarning)  # fitted with feature names
                return np.asarray(self.native.predict(X), dtype=float)
        return self.walk(X)


def _flatten(trees: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("feature", "threshold", "left", "right", "missing_left", "value")
    }
    roots, offset = [], 0
    for t in trees:
        size = len(t["value"])
        leaf = t["is_leaf"]
        own = np.arange(size) + offset
        parts["left"].append(np.where(leaf, own, t["left"] + offset))
        parts["right"].append(np.where(leaf, own, t["right"] + offset))
        parts["feature"].append(np.where(leaf, 0, t["feature"]).astype(np.intp))
        parts["threshold"].append(np.where(leaf, np.inf, t["threshold"]).astype(float))
        parts["missing_left"].append(t["missing_left"].astype(bool) & ~leaf)
        parts["value"].append(t["value"].astype(float))
        roots.append(offset)
        offset += size
    flat = {k: np.concatenate(v) for k, v in parts.items()}
    flat["left"] = flat["left"].astype(np.intp)
    flat["right"] = flat["right"].astype(np.intp)
    flat["roots"] = np.asarray(roots, dtype=np.intp)
    return flat


def _depth(left: np.ndarray, right: np.ndarray, roots: np.ndarray) -> int:
    """Return the largest root-to-leaf path length (edges)."""
    depth, frontier = 0, roots
    while True:
        nxt = np.concatenate([left[frontier], right[frontier]])
        nxt = np.unique(nxt[~np.isin(nxt, frontier)])
        if nxt.size == 0:
            return depth
        depth, frontier = depth + 1, nxt


def _sklearn_tree(tree) -> dict[str, np.ndarray]:
    t = tree.tree_
    missing = getattr(t, "missing_go_to_left", np.zeros(t.node_count, dtype=np.uint8))
    return {
        "is_leaf": t.children_left == -1,
        "left": t.children_left,
        "right": t.children_right,
        "feature": t.feature,
        "threshold": t.threshold,
        "missing_left": np.asarray(missing),
        "value": t.value[:, 0, 0],
    }


def _build(trees, float32: bool, offset: float, scale: float, native) -> FlatTrees:
    flat = _flatten(trees)
    depth = _depth(flat["left"], flat["right"], flat["roots"])
    return FlatTrees(
        **flat, depth=depth, float32=float32, offset=offset, scale=scale, native=native
    )


def compile_sklearn_trees(estimator) -> FlatTrees:
    """Return a decision tree, random forest or extra-trees regressor as FlatTrees."""
    members = estimator.estimators_ if hasattr(estimator, "estimators_") else [estimator]
    trees = [_sklearn_tree(m) for m in members]
    return _build(trees, True, 0.0, 1.0 / len(trees), estimator)


def compile_hist_gb(estimator) -> FlatTrees:
    """Return a fitted HistGradientBoostingRegressor (squared error, numeric splits) as
    FlatTrees; categorical splits are not compiled."""
    categorical = getattr(estimator, "is_categorical_", None)
    if estimator.loss != "squared_error" or (categorical is not None and categorical.any()):
        raise UnsupportedError("HistGradientBoosting with another loss or categories")
    trees = []
    for (predictor,) in estimator._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise UnsupportedError("HistGradientBoosting categorical splits")
        trees.append(
            {
                "is_leaf": nodes["is_leaf"].astype(bool),
                "left": nodes["left"].astype(np.intp),
                "right": nodes["right"].astype(np.intp),
                "feature": nodes["feature_idx"],
                "threshold": nodes["num_threshold"],
                "missing_left": nodes["missing_go_to_left"],
                "value": nodes["value"],
            }
        )
    baseline = float(np.asarray(estimator._baseline_prediction).ravel()[0])
    return _build(trees, False, baseline, 1.0, estimator)
