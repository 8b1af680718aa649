"""Training on many rows: which candidates cannot scale, and what happens to them.

Kernel and neighbour methods (SVR, kNN) and the lbfgs MLP cost quadratically or worse in rows;
a single decision tree and the forests (random forest, extra trees) grow full-depth trees whose
size (and pickle, and engine tables) grows with the rows. Above `train.large_data.rows` these are
skipped, and the card says so; the boosted ensembles (hist_gb, xgboost, lightgbm, catboost) are
bounded by construction (a fixed number of trees of bounded depth or leaves) and the linear
models and baselines are linear in rows, so they stay. The nested estimate, the interval
comparison and the promotion check already scale their work to the budget (budget.py).
"""

from __future__ import annotations

from typing import Any


def large_data_plan(
    rows: int, candidates: tuple[str, ...], cfg: dict[str, Any]
) -> tuple[tuple[str, ...], list[str]]:
    """Return (the candidates kept for `rows` training rows, notes for the card): above
    cfg['rows'], those listed in cfg['skip'] are dropped, with why."""
    limit = int(cfg["rows"])
    if rows <= limit:
        return candidates, []
    skip = [name for name in candidates if name in set(cfg["skip"])]
    if not skip:
        return candidates, []
    kept = tuple(name for name in candidates if name not in skip)
    note = (
        f"{rows:,} training rows > {limit:,}: skipped {', '.join(skip)} (cost or model size "
        "grows faster than the rows; the boosted, linear and baseline candidates remain)"
    )
    return kept, [note]
