"""Benchmark: methods considered for issue 26 and left out, each beside what the procedure does.

Every row compares a method with the procedure's own way on the same folds of the real sample,
paired fold by fold, and gives the change in MAPE and MdAPE with its standard error across the
folds (a change within about two of them is noise), plus the time-ordered figure (fitted on the
sales before the cut, with only the contracts signed before it, scored on the later 30%).

- `tuning` (nested, so the tuning never sees the sales it is scored on): outer KFold(5) with
  seeds 0..3 (20 outer folds); in each, the SVR is tuned as the procedure tunes it (Optuna TPE,
  the defaults as the first trial, the set's ranking metric over 3 x 5-fold inner CV: RMSE for
  task6, MAPE for offmarket) and scored on the outer fold. Against it: the best 5 trials
  averaged in log price, tuning on each other metric, and a tuned weight on the encoded days on
  market (sets that read CDOM; the weight a kernel gives a column is its scale).
- `models` (default settings, issue 26's 25 folds: KFold(5) with seeds 0..4): a bag of 5 MLP
  seeds against one MLP, alone and as the blend's member beside the SVR; a Gaussian process with
  one length scale per encoded column (ARD, fitted by marginal likelihood) against one shared
  length scale; an SVR fitted on the residuals of a ridge trend (a full linear hedonic model)
  against the SVR alone.
- `evidence` (default settings, 25 folds): the 178 Active listings fitted beside the listings
  under contract, priced like them (asking price x the training sales' sale-to-list ratio; the
  time-ordered check uses those listed before the cut), against the contracts alone.

Usage: python benchmarks/method_value.py [--data PATH] [--features task6 offmarket]
       [--sections tuning models evidence] [--trials 25]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CDOM_COLUMN = "log__CDOM"  # days on market after the linear family's log and scaling
TOP_TRIALS = 5
INNER_REPEATS = 3
OUTER_SEEDS = range(4)
SVR_SPACE = {"C": (0.3, 300.0), "gamma": (1e-3, 0.3), "epsilon": (0.005, 0.2)}
SVR_DEFAULTS = {"C": 3.0, "gamma": 0.01, "epsilon": 0.02}
METRICS = ("rmse", "mape", "mdape")  # fold_metrics' order


@dataclass
class Scores:
    """Per-fold (RMSE, MAPE, MdAPE) of one method, and its time-ordered (MAPE, MdAPE)."""

    folds: np.ndarray
    later: tuple[float, float]
    seconds: float


def fold_metrics(price: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Return (RMSE, MAPE, MdAPE) of predicted prices against the sale prices."""
    ape = np.abs(price - truth) / truth
    return float(np.sqrt(np.mean((price - truth) ** 2))), float(ape.mean()), float(np.median(ape))


def weighted(matrix, columns: list[str], weight: float | None) -> np.ndarray:
    """Return the encoded matrix as floats, the days-on-market column times `weight`."""
    out = np.asarray(matrix, dtype=float).copy()
    if weight is not None:
        out[:, columns.index(CDOM_COLUMN)] *= weight
    return out


def svr_log_price(fold, params: dict, weight: float | None = None) -> np.ndarray:
    """Return the SVR's log prices for a prepared fold's test rows (trend added back)."""
    from sklearn.svm import SVR

    cols = list(fold.train.columns)
    model = SVR(**params).fit(weighted(fold.train, cols, weight), fold.target)
    return model.predict(weighted(fold.test, cols, weight)) + fold.offset


def tuned_variants(
    X, y, fs, feat, trials: int, seed: int, split, metric: str
) -> dict[str, tuple[np.ndarray, float]]:
    """Tune the SVR on the training rows of `split` in each way (`metric`: the set's ranking
    metric, what the procedure tunes on); return {method: (prices of the test rows, seconds its
    tuning and fits took)}."""
    import optuna
    from sklearn.model_selection import KFold

    from homevision.training.fold_cache import prepare_fold
    from homevision.valuation.estimators import to_price

    train = split[0]
    Xi, yi = X.iloc[train].reset_index(drop=True), y[train]
    inner = [
        prepare_fold(Xi, yi, feat, s, fs.evidence)
        for r in range(INNER_REPEATS)
        for s in KFold(5, shuffle=True, random_state=100 + r).split(Xi)
    ]
    truth = np.concatenate([yi[f.test_rows] for f in inner])

    def study(metric: str, with_weight: bool):
        def objective(trial):
            params = {
                k: trial.suggest_float(k, lo, hi, log=True) for k, (lo, hi) in SVR_SPACE.items()
            }
            w = trial.suggest_float("w", 0.05, 1.0, log=True) if with_weight else None
            price = np.concatenate([to_price(svr_log_price(f, params, w)) for f in inner])
            return dict(zip(METRICS, fold_metrics(price, truth), strict=True))[metric]

        s = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        s.enqueue_trial({**SVR_DEFAULTS, **({"w": 1.0} if with_weight else {})})
        s.optimize(objective, n_trials=trials)
        return s

    outer = prepare_fold(X, y, feat, split, fs.evidence)

    def price(params: dict) -> np.ndarray:
        params = dict(params)
        return to_price(svr_log_price(outer, params, params.pop("w", None)))

    timed: dict[str, tuple[np.ndarray, float]] = {}
    start = time.perf_counter()
    plain = study(metric, False)
    took = time.perf_counter() - start
    timed[f"tuned SVR, {metric} (the procedure)"] = price(plain.best_params), took
    done = sorted((t for t in plain.trials if t.value is not None), key=lambda t: t.value)
    averaged = np.mean([svr_log_price(outer, dict(t.params)) for t in done[:TOP_TRIALS]], axis=0)
    timed[f"best {TOP_TRIALS} trials averaged"] = to_price(averaged), time.perf_counter() - start
    others = [(f"tuned on {m}", m, False) for m in METRICS if m != metric]
    if CDOM_COLUMN in outer.train.columns:
        others.append(("+ tuned weight on days on market", metric, True))
    for name, metric, with_weight in others:
        start = time.perf_counter()
        timed[name] = price(study(metric, with_weight).best_params), time.perf_counter() - start
    return timed


def tuning_rows(X, y, fs, feat, trials, outer_splits, later, metric) -> dict[str, Scores]:
    """Return each tuning method's Scores over the outer folds and on the later sales."""
    from homevision.feature_sets import evidence_as_of

    per: dict[str, list] = {}
    seconds: dict[str, float] = {}
    for i, split in enumerate(outer_splits):
        done = tuned_variants(X, y, fs, feat, trials, i // 5, split, metric)
        for name, (price, took) in done.items():
            per.setdefault(name, []).append(fold_metrics(price, y[split[1]]))
            seconds[name] = seconds.get(name, 0.0) + took
        print(f"  tuning: outer fold {i + 1}/{len(outer_splits)}", flush=True)
    (earlier, late), cut = later
    dated = evidence_as_of(fs, cut)
    last = tuned_variants(X, y, dated, feat, trials, 0, (earlier, late), metric)
    return {
        name: Scores(np.array(rows), fold_metrics(last[name][0], y[late])[1:], seconds[name])
        for name, rows in per.items()
    }


def cv_scores(make: Callable, X, y, fs, feat, splits, later) -> Scores:
    """Return the Scores of a model made by `make(n_columns)` on prepared folds."""
    from joblib import Parallel, delayed

    from homevision.feature_sets import evidence_as_of
    from homevision.training.fold_cache import prepare_fold
    from homevision.valuation.estimators import to_price

    def one(split, evidence):
        warnings.simplefilter("ignore")
        f = prepare_fold(X, y, feat, split, evidence)
        model = make(f.train.shape[1]).fit(f.train, f.target)
        return fold_metrics(to_price(model.predict(f.test) + f.offset), y[split[1]])

    start = time.perf_counter()
    (earlier, late), cut = later
    dated = evidence_as_of(fs, cut).evidence
    jobs = [(s, fs.evidence) for s in splits] + [((earlier, late), dated)]
    rows = Parallel(n_jobs=2)(delayed(one)(s, e) for s, e in jobs)
    return Scores(np.array(rows[:-1]), rows[-1][1:], time.perf_counter() - start)


def _mlp(seed: int):
    from sklearn.neural_network import MLPRegressor

    return MLPRegressor(
        hidden_layer_sizes=(16,), alpha=1.0, solver="lbfgs", max_iter=2000, random_state=seed
    )


def _bag(*members) -> object:
    """Return the equal-weight average of `members` (a VotingRegressor, as blends are)."""
    from sklearn.ensemble import VotingRegressor

    return VotingRegressor([(f"m{i}", m) for i, m in enumerate(members)])


def _gp(n_columns: int, ard: bool):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, DotProduct, Matern, WhiteKernel

    scale = np.full(n_columns, 5.0) if ard else 5.0
    kernel = ConstantKernel(0.1, (1e-4, 1e2)) * Matern(scale, (1e-1, 1e4), nu=2.5)
    kernel += ConstantKernel(0.01, (1e-5, 1e1)) * DotProduct(1.0, sigma_0_bounds="fixed")
    kernel += WhiteKernel(0.01, (1e-5, 1.0))
    return GaussianProcessRegressor(kernel, normalize_y=True, random_state=0)


def _svr():
    from sklearn.svm import SVR

    return SVR(**SVR_DEFAULTS)


def _trend_svr():
    """Return a ridge (alpha by leave-one-out on the training rows) with an SVR on its
    residuals: the kernel model then reverts to a full linear hedonic trend far from the sales,
    not to the living-area trend alone."""
    from sklearn.base import BaseEstimator, RegressorMixin, clone
    from sklearn.linear_model import RidgeCV

    class TrendSVR(RegressorMixin, BaseEstimator):
        def __init__(self, trend, kernel):
            self.trend, self.kernel = trend, kernel

        def fit(self, X, y):
            self.trend_ = clone(self.trend).fit(X, y)
            self.kernel_ = clone(self.kernel).fit(X, y - self.trend_.predict(X))
            return self

        def predict(self, X):
            return self.trend_.predict(X) + self.kernel_.predict(X)

    return TrendSVR(RidgeCV(alphas=np.logspace(-1, 3, 13)), _svr())


MODEL_PAIRS: list[tuple[str, str, Callable, Callable]] = [
    ("MLP", "bag of 5 MLP seeds", lambda d: _mlp(0), lambda d: _bag(*(_mlp(s) for s in range(5)))),
    (
        "blend(SVR, MLP)",
        "blend(SVR, bag of 5 MLP seeds)",
        lambda d: _bag(_svr(), _mlp(0)),
        lambda d: _bag(_svr(), _bag(*(_mlp(s) for s in range(5)))),
    ),
    ("SVR", "SVR on a ridge trend's residuals", lambda d: _svr(), lambda d: _trend_svr()),
    (
        "Gaussian process",
        "Gaussian process, ARD",
        lambda d: _gp(d, False),
        lambda d: _gp(d, True),
    ),
]


def with_active(fs, listings, X):
    """Return `fs` whose evidence adds the Active listings, each dated by its listing date."""
    import pandas as pd

    from homevision.feature_sets import with_evidence
    from homevision.valuation.evidence import PENDING_DATE, AskingEvidence

    active = with_evidence(replace(fs, evidence_statuses=("Active",)), listings.to_value, X)
    frame = active.evidence.frame.copy()
    listed = listings.to_value.set_index("MLSNumber")["ListingContractDate"]
    frame[PENDING_DATE] = frame["MLSNumber"].map(listed).to_numpy()
    both = pd.concat([fs.evidence.frame, frame], ignore_index=True)
    return replace(fs, evidence=AskingEvidence(both))


def row(name: str, base: str, method: str, a: Scores, b: Scores) -> str:
    """Return one table row: `method` against `base`, the change paired fold by fold."""
    d = 100 * (b.folds - a.folds)
    se = d.std(axis=0, ddof=1) / np.sqrt(len(d))
    cells = [
        name,
        method,
        base,
        str(len(d)),
        f"${a.folds[:, 0].mean():,.0f} → ${b.folds[:, 0].mean():,.0f}",
        f"{100 * a.folds[:, 1].mean():.2f} → {100 * b.folds[:, 1].mean():.2f}%",
        f"{d[:, 1].mean():+.2f} ± {se[1]:.2f}",
        f"{100 * a.folds[:, 2].mean():.2f} → {100 * b.folds[:, 2].mean():.2f}%",
        f"{d[:, 2].mean():+.2f} ± {se[2]:.2f}",
        f"{100 * a.later[1]:.2f} → {100 * b.later[1]:.2f}%",
        f"{a.seconds:.0f} / {b.seconds:.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data" / "home-listings-example.csv"
    )
    parser.add_argument("--features", nargs="+", default=["task6", "offmarket"])
    parser.add_argument(
        "--sections", nargs="+", default=["tuning", "models", "evidence"], help="what to run"
    )
    parser.add_argument("--trials", type=int, default=25, help="Optuna trials per tuning")
    args = parser.parse_args()
    os.environ.setdefault("HOMEVISION_PARAMS", str(ROOT / "params.yaml"))
    warnings.filterwarnings("ignore")
    import optuna
    from sklearn.model_selection import KFold

    from homevision.config import load_params
    from homevision.data.listings import load_listings
    from homevision.feature_sets import with_evidence
    from homevision.features import build_preprocessor, get_feature_set
    from homevision.training.evaluation import time_ordered_split
    from homevision.training.train import close_dates, select_by

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    listings = load_listings(args.data)
    X = listings.labelled.reset_index(drop=True)
    y = X["ClosePrice"].to_numpy(float)
    later = time_ordered_split(close_dates(X), 0.3)
    folds25 = [f for r in range(5) for f in KFold(5, shuffle=True, random_state=r).split(X)]
    outer = [f for r in OUTER_SEEDS for f in KFold(5, shuffle=True, random_state=r).split(X)]
    print(f"{len(X)} sales; later: sales from {later[1]:%Y-%m-%d} ({len(later[0][1])})")
    out = []
    for name in args.features:
        fs = with_evidence(get_feature_set(name), listings.to_value, X)
        feat = build_preprocessor(fs, "linear")
        if "tuning" in args.sections:
            metric = select_by(load_params()["train"], fs)
            scores = tuning_rows(X, y, fs, feat, args.trials, outer, later, metric)
            base, *others = scores
            out += [row(name, base, m, scores[base], scores[m]) for m in others]
        if "models" in args.sections:
            for base, method, make_a, make_b in MODEL_PAIRS:
                a = cv_scores(make_a, X, y, fs, feat, folds25, later)
                b = cv_scores(make_b, X, y, fs, feat, folds25, later)
                out.append(row(name, base, method, a, b))
                print(out[-1], flush=True)
        if "evidence" in args.sections:
            more = with_active(fs, listings, X)
            for label, make in [("SVR", lambda d: _svr()), ("MLP", lambda d: _mlp(0))]:
                a = cv_scores(make, X, y, fs, feat, folds25, later)
                b = cv_scores(make, X, y, more, feat, folds25, later)
                base = f"{label}, {len(fs.evidence)} contracts"
                added = f"+ {len(more.evidence) - len(fs.evidence)} Active"
                out.append(row(name, base, added, a, b))
                print(out[-1], flush=True)
    head = [
        "set",
        "method",
        "against",
        "folds",
        "RMSE",
        "MAPE",
        "MAPE change ± SE",
        "MdAPE",
        "MdAPE change ± SE",
        "later MdAPE",
        "seconds",
    ]
    print("\n| " + " | ".join(head) + " |\n" + "|---" * len(head) + "|")
    print("\n".join(out))


if __name__ == "__main__":
    main()
