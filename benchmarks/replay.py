"""Replayable training (issue 28): one `homevision train` records its plan; two replays of that
plan (`homevision train --plan`), each in a fresh project, must give the same model. Prints the
time of each run and the largest difference in dollars between the valuations (point, low,
high) of every listing of the data, and between the leaderboards and honest estimates.

    .venv/bin/python benchmarks/replay.py [--features offmarket] [--data PATH] [--budget 180]

Default data: the real sample (../shared/data/home-listings-example.csv) when it is there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import ROOT, project

REAL = ROOT.parent / "shared" / "data" / "home-listings-example.csv"


def run_train(home: Path, data: Path, features: str, budget: float, plan: Path | None) -> dict:
    """Train in `home` (its own store); return wall seconds, the run id, the plan it wrote,
    the leaderboard (timing columns aside) and the honest metrics."""
    home.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "homevision.cli", "train", "--data", str(data),
               "--features", features, "--budget", str(budget)]  # fmt: skip
    if plan is not None:
        command += ["--plan", str(plan)]
    start = time.perf_counter()
    done = subprocess.run(command, env=project(home), cwd=home, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"train failed in {home}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    reports = home / "reports"
    model = json.loads((reports / "model.json").read_text())
    board = pd.read_csv(reports / "leaderboard.csv", index_col=0)
    board = board.drop(columns=[c for c in board.columns if "seconds" in c])
    honest = json.loads((reports / "honest_estimate.json").read_text())
    return {
        "seconds": seconds,
        "run_id": model.get("run_id"),
        "plan": reports / "plan.json",
        "board": board,
        "honest": {k: v for k, v in honest.items() if isinstance(v, float)},
        "home": home,
    }


def valuations(home: Path, run_id: str, data: Path) -> np.ndarray:
    """Return point, low and high of every listing of `data`, valued by the run's model."""
    script = (
        "import sys, numpy as np\n"
        "from homevision.tracking import load_model\n"
        "from homevision.data.listings import load_listings\n"
        "rows = load_listings(sys.argv[2]).typed\n"
        "m = load_model(f'runs:/{sys.argv[1]}/model')\n"
        "np.save(sys.argv[3], np.column_stack(m.predict_interval(rows, m.confidence)))\n"
    )
    out = home / "valuations.npy"
    subprocess.run([sys.executable, "-c", script, run_id, str(data), str(out)],
                   env=project(home), cwd=home, check=True)  # fmt: skip
    return np.load(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", default="offmarket")
    parser.add_argument("--data", type=Path, default=REAL if REAL.exists() else None)
    parser.add_argument("--budget", type=float, default=180)
    args = parser.parse_args()
    if args.data is None:
        raise SystemExit("no data: pass --data (the real sample is not beside the project)")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        print("recording the plan (a budgeted train)...", file=sys.stderr)
        recorded = run_train(base / "record", args.data, args.features, args.budget, None)
        plan = base / "plan.json"
        shutil.copyfile(recorded["plan"], plan)
        runs = {"recording run": recorded}
        for name in ("replay 1", "replay 2"):
            print(f"{name}...", file=sys.stderr)
            runs[name] = run_train(base / name.replace(" ", ""), args.data, args.features,
                                   args.budget, plan)  # fmt: skip
        values = {n: valuations(r["home"], r["run_id"], args.data) for n, r in runs.items()}
        print(
            f"\nReplays of one {args.features} plan on {args.data.name} "
            f"({len(values['replay 1'])} listings)"
        )
        print(
            "| run | seconds | leaderboard top | max valuation difference vs replay 1 ($) "
            "| leaderboard equal | honest estimate equal |"
        )
        print("|---|---|---|---|---|---|")
        ref = runs["replay 1"]
        for name, run in runs.items():
            diff = float(np.nanmax(np.abs(values[name] - values["replay 1"])))
            board_equal = run["board"].equals(ref["board"])
            honest_equal = run["honest"] == ref["honest"]
            print(f"| {name} | {run['seconds']:.0f} | {run['board'].index[0]} | {diff:,.2f} | "
                  f"{board_equal} | {honest_equal} |")  # fmt: skip
        plan_data = json.loads(plan.read_text())
        print(f"\nplan: {len(plan_data['candidates'])} candidates, trials {plan_data['trials']}, "
              f"{plan_data['outer_folds_run']}/{plan_data['outer_folds']} outer folds, "
              f"stack {plan_data['stack']}, variants {plan_data['interval_variants']}")  # fmt: skip


if __name__ == "__main__":
    main()
