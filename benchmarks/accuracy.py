"""Benchmark: for each feature set, train end to end on the real sample and print the CV
leaderboard, the winner's honest (nested CV) estimate and the wall time.

Usage: python benchmarks/accuracy.py [--data PATH] [--features task6 offmarket onmarket]
Each run uses a throw-away project folder, so the benchmark leaves no runs behind.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from homevision.config import REAL_SAMPLE_NAME
from homevision.training.card import fmt_metric

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {
    "task6": "RMSE <= $65,000 and MAPE <= 9.5%",
    "offmarket": "MAPE <= 7%",
    "onmarket": "MdAPE <= 1.5%",
}
METRICS = ("rmse", "mae", "r2", "mape", "mdape", "within_5", "within_10", "within_20")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = ROOT / "data" / "raw" / REAL_SAMPLE_NAME
    parser.add_argument("--data", type=Path, default=default)
    parser.add_argument("--features", nargs="+", default=list(TARGETS))
    parser.add_argument("--budget", type=float, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HOMEVISION_PARAMS", str(ROOT / "params.yaml"))
    from homevision.training.train import train

    summary = []
    for name in args.features:
        with tempfile.TemporaryDirectory() as home:
            os.environ["HOMEVISION_HOME"] = home
            os.environ.pop("MLFLOW_TRACKING_URI", None)
            start = time.perf_counter()
            outcome = train(args.data.resolve(), name, budget=args.budget)
            seconds = time.perf_counter() - start
        table = outcome.selection.table
        print(f"\n=== feature set {name}: leaderboard ({outcome.selection.plan.describe()}) ===")
        print(f"{'candidate':22s}" + "".join(f"{m:>12s}" for m in METRICS))
        for cand, row in table.iterrows():
            print(f"{cand:22s}" + "".join(f"{fmt_metric(m, row[m]):>12s}" for m in METRICS))
        honest = outcome.honest
        print(f"winner: {outcome.selection.winner}; honest estimate ({honest['method']}):")
        print("  " + ", ".join(f"{m} {fmt_metric(m, honest[m])}" for m in METRICS))
        print(f"train wall time: {seconds:.0f} s; target: {TARGETS.get(name, '-')}")
        summary.append(
            (name, outcome.selection.winner, honest, table.loc[outcome.selection.winner], seconds)
        )

    print("\n=== summary (honest = nested CV; CV = selection CV of the winner, optimistic) ===")
    print(
        f"{'set':10s} {'winner':18s} {'honest RMSE':>12s} {'MAPE':>7s} {'MdAPE':>7s} "
        f"{'CV RMSE':>10s} {'CV MAPE':>8s} {'time':>6s}  target"
    )
    for name, winner, honest, cv, seconds in summary:
        print(
            f"{name:10s} {winner:18s} {fmt_metric('rmse', honest['rmse']):>12s} "
            f"{fmt_metric('mape', honest['mape']):>7s} {fmt_metric('mdape', honest['mdape']):>7s} "
            f"{fmt_metric('rmse', cv['rmse']):>10s} {fmt_metric('mape', cv['mape']):>8s} "
            f"{seconds:>5.0f}s  {TARGETS.get(name, '-')}"
        )


if __name__ == "__main__":
    main()
