"""Does `homevision train --budget S` end within S? Wall time of the whole command (imports and
store set-up included) and of the run itself, what was trimmed to fit, and what it cost in
accuracy, for several budgets on the real sample and on the synthetic default.

    .venv/bin/python benchmarks/training_budget.py [--budgets 60 180 default] [--synthetic]

Each run gets its own fresh project folder (new MLflow store): the first-run cost a new user
pays. Run it on an idle machine; figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "data" / "raw" / "home-listings-example.csv"


def run(data: Path, budget: str) -> dict:
    """Train once in a fresh folder; return wall seconds, in-run seconds and the card's facts."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HOMEVISION_HOME": home}
        env.pop("MLFLOW_TRACKING_URI", None)
        command = [sys.executable, "-m", "homevision.cli", "train", "--data", str(data)]
        if budget != "default":
            command += ["--budget", budget]
        start = time.perf_counter()
        proc = subprocess.run(command, env=env, cwd=home, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            return {"budget": budget, "error": proc.stderr[-500:]}
        card = (Path(home) / "reports" / "model_card.md").read_text()
        metrics = json.loads((Path(home) / "reports" / "metrics.json").read_text())
        in_run = re.search(r"\((\d+) s\)\s*$", proc.stdout.strip())
        trims = re.search(r"trimmed to fit: (.*)", card)
        model = re.search(r"\*\*Model\*\*: `([^`]+)`", card)
        return {
            "budget": budget,
            "wall": wall,
            "run": float(in_run.group(1)) if in_run else float("nan"),
            "winner": model.group(1) if model else "?",
            "honest_rmse": metrics["honest"]["rmse"],
            "honest_mape": metrics["honest"]["mape"],
            "cv_rmse": metrics["cv"]["rmse"],
            "trims": trims.group(1) if trims else "",
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", nargs="+", default=["60", "180", "default"])
    parser.add_argument("--synthetic", action="store_true", help="Also the synthetic default.")
    args = parser.parse_args()
    sets = []
    if REAL.exists():
        sets.append(("real sample", REAL))
    if args.synthetic or not sets:
        from homevision.data.synthetic import generate_listings, write_listings

        path = Path(tempfile.mkdtemp()) / "synthetic-listings.csv"
        sets.append(("synthetic 2,000 rows", write_listings(generate_listings(2000, 0), path)))
    print(
        "| data | --budget | command wall s | run s | winner | honest RMSE | honest MAPE "
        "| selection-CV RMSE | trimmed to fit |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label, path in sets:
        for budget in args.budgets:
            r = run(path, budget)
            if "error" in r:
                print(f"| {label} | {budget} | failed: {r['error']!r} |")
                continue
            print(
                f"| {label} | {budget} | {r['wall']:.0f} | {r['run']:.0f} | {r['winner']} | "
                f"${r['honest_rmse']:,.0f} | {100 * r['honest_mape']:.1f}% | "
                f"${r['cv_rmse']:,.0f} | {r['trims']} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
