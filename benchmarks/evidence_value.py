"""Benchmark: what listings under contract bought, candidate by candidate, on the real sample.

For each feature set and candidate (default settings), the same model is cross-validated twice
on the same folds: on the sales alone, and with the export's listings under contract fitted
beside them (homevision.valuation.evidence). Folds: issue 26's protocol, KFold(5, shuffle=True,
random_state=r) for r = 0..4, metrics averaged over the 25 folds; the gain is paired fold by fold
and shown with its standard error across the 25 folds (a gain within about two of them is
noise). "later" fits on the sales closed before the time-ordered cut (with only the contracts
signed before it) and scores the later 30%.

Usage: python benchmarks/evidence_value.py [--data PATH] [--features task6 offmarket]
       [--models svr gaussian_process ridge mlp]
"""

from __future__ import annotations

import argparse
import os
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def fold_errors(model, X, y, folds) -> np.ndarray:
    """Return per-fold (RMSE, MAPE, MdAPE) of `model` over `folds`."""
    from joblib import Parallel, delayed
    from sklearn.base import clone

    def one(train, test):
        warnings.simplefilter("ignore")
        pred = clone(model).fit(X.iloc[train], y[train]).predict(X.iloc[test])
        ape = np.abs(pred - y[test]) / y[test]
        return np.sqrt(np.mean((pred - y[test]) ** 2)), ape.mean(), np.median(ape)

    return np.array(Parallel(n_jobs=2)(delayed(one)(tr, te) for tr, te in folds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data" / "home-listings-example.csv"
    )
    parser.add_argument("--features", nargs="+", default=["task6", "offmarket"])
    parser.add_argument("--models", nargs="+", default=["svr", "gaussian_process", "ridge", "mlp"])
    args = parser.parse_args()
    os.environ.setdefault("HOMEVISION_PARAMS", str(ROOT / "params.yaml"))
    warnings.filterwarnings("ignore")
    from dataclasses import replace

    from sklearn.model_selection import KFold

    from homevision.data.listings import load_listings
    from homevision.feature_sets import evidence_as_of, with_evidence
    from homevision.features import get_feature_set
    from homevision.training.candidates import build_blend, build_model
    from homevision.training.evaluation import time_ordered_split
    from homevision.training.train import close_dates

    listings = load_listings(args.data)
    X = listings.labelled.reset_index(drop=True)
    y = X["ClosePrice"].to_numpy(float)
    folds = [f for r in range(5) for f in KFold(5, shuffle=True, random_state=r).split(X)]
    (earlier, later), cut = time_ordered_split(close_dates(X), 0.3)
    print(f"{len(X)} sales; 25 folds (5 x KFold(5), seeds 0-4); later: sales from {cut:%Y-%m-%d}")
    head = [
        "set",
        "model",
        "evidence rows",
        "RMSE sales only",
        "RMSE with evidence",
        "MAPE sales only",
        "MAPE with evidence",
        "MAPE gain ± SE",
        "MdAPE sales only",
        "MdAPE with evidence",
        "later MAPE sales only",
        "later MAPE with",
        "later MdAPE sales only",
        "later MdAPE with",
    ]
    print("| " + " | ".join(head) + " |\n" + "|---" * len(head) + "|", flush=True)
    for name in args.features:
        with_ev = with_evidence(get_feature_set(name), listings.to_value, X)
        plain = replace(with_ev, evidence=None)
        dated = evidence_as_of(with_ev, cut)
        for model in [*args.models, "blend(svr, gaussian_process)"]:

            def build(fs, model=model):
                if model.startswith("blend"):
                    return build_blend([("svr", {}), ("gaussian_process", {})], fs)
                return build_model(model, fs)

            a, b = fold_errors(build(plain), X, y, folds), fold_errors(build(with_ev), X, y, folds)
            gain = 100 * (a[:, 1] - b[:, 1])
            la = fold_errors(build(plain), X, y, [(earlier, later)])[0]
            lb = fold_errors(build(dated), X, y, [(earlier, later)])[0]
            cells = [
                name,
                model,
                f"{len(with_ev.evidence)} ({len(dated.evidence)} before the cut)",
                f"${a[:, 0].mean():,.0f}",
                f"${b[:, 0].mean():,.0f}",
                f"{100 * a[:, 1].mean():.2f}%",
                f"{100 * b[:, 1].mean():.2f}%",
                f"{gain.mean():+.2f} ± {gain.std(ddof=1) / np.sqrt(len(gain)):.2f}",
                f"{100 * a[:, 2].mean():.2f}%",
                f"{100 * b[:, 2].mean():.2f}%",
                f"{100 * la[1]:.2f}%",
                f"{100 * lb[1]:.2f}%",
                f"{100 * la[2]:.2f}%",
                f"{100 * lb[2]:.2f}%",
            ]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
