"""Benchmark: for each feature set, train end to end on the real sample and print the CV
leaderboard, the winner's honest estimates (nested CV on random folds, and time-ordered: the
procedure run on the earlier sales, scored on the later ones), the targets and the wall time.

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
# Issue 14's targets, on the honest (nested) figures: metric -> most allowed.
TARGETS = {
    "task6": {"rmse": 65_000.0, "mdape": 0.064},
    "offmarket": {"mape": 0.070, "mdape": 0.050},
    "onmarket": {"mdape": 0.013},
}
SUMMARY = ("rmse", "mape", "mdape", "within_10")
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
        print(f"train wall time: {seconds:.0f} s; target: {target_text(name)}")
        later = outcome.time_ordered or {}
        summary.append((name, outcome.selection.winner, honest, later, seconds))
    print("\n" + summary_table(summary))


def target_text(name: str) -> str:
    """Return a feature set's targets in words."""
    goals = TARGETS.get(name, {})
    return " and ".join(f"{m.upper()} <= {fmt_metric(m, v)}" for m, v in goals.items()) or "-"


def met(name: str, honest: dict) -> str:
    """Return 'met' or 'missed (...)' for a feature set's targets on its honest figures."""
    misses = [m.upper() for m, v in TARGETS.get(name, {}).items() if honest[m] > v]
    return "met" if not misses else f"missed ({', '.join(misses)})"


def summary_table(summary: list[tuple]) -> str:
    """Return the per-feature-set summary as a markdown table: honest random-fold (nested) and
    honest time-ordered figures side by side, with the target and whether it was met."""
    head = ["set", "winner"] + [f"nested {m.upper()}" for m in SUMMARY]
    head += [f"later {m.upper()}" for m in SUMMARY] + ["train s", "target", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, winner, honest, later, seconds in summary:
        cells = [name, winner] + [fmt_metric(m, honest[m]) for m in SUMMARY]
        cells += [fmt_metric(m, later[m]) if m in later else "n/a" for m in SUMMARY]
        cells += [f"{seconds:.0f}", target_text(name), met(name, honest)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
