"""Benchmark: conformal price ranges, per MAPIE variant.

Prints, at 90% confidence (and the other carried levels for the chosen variant):
- real sample: coverage and median relative width ((high - low) / valuation) by 5-fold outer CV,
  the ranges calibrated on the training folds only;
- synthetic sample: coverage and width on 10,000 fresh homes of the same synthetic market.

Usage: python benchmarks/intervals.py [--data PATH] [--candidate svr] [--features task6]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT / "data/raw/home-listings-example.csv")
    parser.add_argument("--candidate", default="svr", help="Point model (the task6 winner).")
    parser.add_argument("--features", default="task6")
    parser.add_argument("--level", type=float, default=0.9)
    args = parser.parse_args()
    os.environ.setdefault("HOMEVISION_PARAMS", str(ROOT / "params.yaml"))
    warnings.filterwarnings("ignore")

    from homevision.data.listings import coerce_types, load_listings
    from homevision.data.synthetic import generate_listings
    from homevision.features import get_feature_set
    from homevision.training.candidates import build_model
    from homevision.training.interval_choice import compare_variants
    from homevision.valuation.intervals import VARIANTS, interval_bounds, make_conformal

    fs = get_feature_set(args.features)
    estimator = build_model(args.candidate, fs)
    print(f"point model: {args.candidate} on {fs.name}; confidence {100 * args.level:.0f}%")

    if args.data.exists():
        listings = load_listings(args.data)
        X = listings.labelled.reset_index(drop=True)
        y = X["ClosePrice"].astype(float)
        print(f"\nreal sample ({len(X)} sales), 5-fold outer CV:")
        print(f"{'variant':20s} {'coverage':>9s} {'median width':>13s} {'seconds':>8s}")
        for variant in VARIANTS:
            start = time.perf_counter()
            score = compare_variants(estimator, X, y, [variant], args.level, 5)[0]
            print(
                f"{variant:20s} {100 * score.coverage:>8.1f}% "
                f"{100 * score.median_relative_width:>12.1f}% "
                f"{time.perf_counter() - start:>8.1f}"
            )
    else:
        print(f"\n(real sample not found at {args.data}: skipped)")

    frame = coerce_types(generate_listings(7000, seed=1, market_seed=0).astype(object))
    train = frame[frame["Status"] == "Sold"].reset_index(drop=True)
    fresh_all = coerce_types(generate_listings(34_000, seed=2, market_seed=0).astype(object))
    fresh = fresh_all[fresh_all["Status"] == "Sold"].head(10_000).reset_index(drop=True)
    levels = [0.5, 0.8, 0.9, 0.95]
    truth = fresh["ClosePrice"].to_numpy(float)
    print(f"\nsynthetic: {len(train)} training sales, {len(fresh):,} fresh sales, same market")
    print(f"{'variant':20s} {'level':>6s} {'coverage':>9s} {'median width':>13s}")
    for variant in VARIANTS:
        conformal = make_conformal(variant, estimator, levels).fit_conformalize(
            train, train["ClosePrice"]
        )
        point = conformal.predict(fresh)
        for level, bounds in interval_bounds(conformal, fresh, levels).items():
            covered = ((truth >= bounds[:, 0]) & (truth <= bounds[:, 1])).mean()
            width = np.median((bounds[:, 1] - bounds[:, 0]) / point)
            print(
                f"{variant:20s} {100 * level:>5.0f}% {100 * covered:>8.1f}% {100 * width:>12.1f}%"
            )


if __name__ == "__main__":
    main()
