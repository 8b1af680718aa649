"""Does tuning in 2 worker processes on one PostgreSQL study pay? The same candidate and trial
count on fresh studies: 1 process with CV on 1 core, 1 process with CV on 2 cores (what
`homevision tune` does without --workers), and 2 workers with CV on 1 core each.

    .venv/bin/python benchmarks/distributed_tuning.py [--candidate xgboost] [--trials 24]
        [--storage postgresql://homevision@127.0.0.1:5433/optuna] [--data CSV]

Wall time includes creating the study and, for the workers, starting them (spawned processes
import the model code). Trials are not logged to MLflow here. Run it on an otherwise idle
machine: it prints how many cores two busy processes found free before and after (on a shared
2-core machine often 1, and then no row can be faster than another). Figures are printed, never
asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from homevision.config import load_params
from homevision.data.listings import load_listings
from homevision.data.sources import resolve_data_path
from homevision.features import get_feature_set
from homevision.training.evaluation import CVPlan
from homevision.training.tuning import rows_key, tune
from homevision.training.workers import tune_in_workers

POSTGRES = "postgresql://homevision@127.0.0.1:5433/optuna"
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "home-listings-example.csv"
SPIN = "x = 0\nfor i in range(20_000_000): x += i"


def free_cores() -> float:
    """How many cores two CPU-bound processes found free: 2.0 on an idle 2-core machine, about
    1.0 when something else holds a core (then no parallel row can beat the others)."""

    def spin(n: int) -> float:
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(n)]
        for proc in procs:
            proc.wait()
        return time.perf_counter() - start

    return 2 * spin(1) / spin(2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidate", default="xgboost")
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--storage", default=POSTGRES)
    parser.add_argument("--data", type=Path, default=REAL if REAL.exists() else None)
    args = parser.parse_args()

    source = resolve_data_path(args.data)
    X = load_listings(source).labelled.reset_index(drop=True)
    y = X["ClosePrice"].astype(float)
    cfg = load_params()["train"]
    plan = CVPlan(folds=int(cfg["folds"]), repeats=int(cfg["repeats"]), seed=int(cfg["seed"]))
    splits = plan.splits(y)
    fs = get_feature_set("task6")
    key = rows_key(X, y, splits)
    print(
        f"{args.candidate} on {source.name}: {len(X)} labelled rows, {plan.describe()}, "
        f"{args.trials} trials per row; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f}, {free_cores():.1f} cores free at start\n"
    )

    def run(workers: int, n_jobs: int) -> tuple[float, float, int]:
        name = f"bench-{args.candidate}-w{workers}-j{n_jobs}-{uuid.uuid4().hex[:8]}"
        common = {"n_trials": args.trials, "seed": plan.seed, "n_jobs": n_jobs, "data_key": key}
        start = time.perf_counter()
        if workers == 1:
            result = tune(
                args.candidate, fs, X, y, splits, storage=args.storage, study_name=name, **common
            )
        else:
            result = tune_in_workers(
                args.candidate, fs, X, y, splits, storage=args.storage, study_name=name,
                workers=workers, **common,
            )  # fmt: skip
        return time.perf_counter() - start, result.rmse, result.trials

    rows = [(1, 1), (1, 2), (2, 1)]
    results = {row: run(*row) for row in rows}
    baseline = results[(1, 2)][0]
    print("| workers | CV jobs each | trials (completed) | wall s | best CV RMSE | wall / 1x2 |")
    print("|---|---|---|---|---|---|")
    for (workers, n_jobs), (wall, rmse, done) in results.items():
        print(
            f"| {workers} | {n_jobs} | {args.trials} ({done}) | {wall:.1f} | ${rmse:,.0f} "
            f"| {wall / baseline:.2f} |"
        )
    print(f"\nload average {os.getloadavg()[0]:.2f}, {free_cores():.1f} cores free at the end")


if __name__ == "__main__":
    main()
