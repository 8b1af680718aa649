"""MAPIE's conformal quantile, vectorised: the same numbers, without a Python loop per row.

MAPIE (1.x) computes every conformal bound with `mapie.utils._compute_regression_quantile`,
which calls `numpy.nanquantile(..., axis=1)`. numpy implements that with `apply_along_axis`: one
Python call per row and level. For the CV+/minmax/jackknife+ ranges (a distribution of
calibration-sized width per valued home) that loop was 80,000 calls per 10,000 homes at four
levels: about 4 s, nine tenths of a batch valuation (`predict --engine spark` ran at 810
rows/s). Without NaN in the scores, `numpy.quantile` with all levels at once gives the identical
order statistics in one vectorised partition.

`install()` swaps MAPIE's function for `regression_quantile` in the two modules that call it;
anything this cannot do exactly as MAPIE does (NaN in the scores, a level whose corrected
quantile does not exist) is handed to MAPIE's own function, so its results and errors are
unchanged. tests/unit/test_quantiles.py holds the two to equality, and fails if MAPIE moves it.
"""

from __future__ import annotations

import threading

import numpy as np
from mapie import utils as mapie_utils

_MAPIE_QUANTILE = mapie_utils._compute_regression_quantile
_CALLERS = ("mapie.conformity_scores.regression", "mapie.conformity_scores.bounds.std_normalised")
_lock = threading.Lock()


def regression_quantile(
    conformity_scores: np.ndarray,
    alpha_np: np.ndarray,
    axis: int = 0,
    reverse: bool = False,
    unbounded: bool = False,
) -> np.ndarray:
    """Return what MAPIE's `_compute_regression_quantile` returns, shape (n_ref, n_alpha): the
    finite-sample corrected quantiles (numpy method "lower") along `axis`, all levels in one
    vectorised call; MAPIE's own function where the scores hold NaN or a level's corrected
    quantile exceeds 1."""
    scores = np.asarray(conformity_scores, dtype=float)
    alpha_np = np.asarray(alpha_np, dtype=float)
    n_calib = scores.shape[axis] if scores.size else 0
    signed = 1 - 2 * reverse
    alpha_ref = (1 - 2 * alpha_np) * reverse + alpha_np
    alpha_cor = np.ceil(alpha_ref * (n_calib + 1)) / max(n_calib, 1)
    if n_calib == 0 or np.isnan(scores).any() or (alpha_cor > 1.0).any():
        return _MAPIE_QUANTILE(conformity_scores, alpha_np, axis, reverse, unbounded)
    quantiles = np.quantile(signed * scores, alpha_cor, axis=axis, method="lower")
    return signed * np.asarray(quantiles).reshape(len(alpha_np), -1).T


def install() -> None:
    """Make MAPIE's conformal bounds use `regression_quantile` (idempotent, thread-safe)."""
    import importlib

    with _lock:
        for name in _CALLERS:
            module = importlib.import_module(name)
            if getattr(module, "_compute_regression_quantile", None) is _MAPIE_QUANTILE:
                module._compute_regression_quantile = regression_quantile
