"""Does training scale? `homevision train --features offmarket` on 20k, 50k and 200k synthetic
listings (about 30% of them sales), within the default budget, against the generator's noise
floor (homevision.data.synthetic.noise_floor_rmse: the RMSE of the true price model).

    .venv/bin/python benchmarks/scale_training.py [--rows 20000 50000 200000] [--budget S]

Each size trains in a subprocess in its own temporary project (its own MLflow store): wall
time, peak memory (RSS of the process), the winner, CV and honest (nested) RMSE as multiples of
the floor, and what the budget and the large-data rule did to the candidates. Figures are
printed, never asserted. Run it on an idle machine: the budget is wall-clock time, so a busy
machine trains less in it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from homevision.data.synthetic import generate_listings, noise_floor_rmse, write_listings

SEED = 5


def train_once(rows: int, budget: float | None) -> dict:
    """Train on `rows` synthetic listings in a fresh project; return the figures."""
    home = Path(tempfile.mkdtemp(prefix=f"hv-scale-{rows}-"))
    data = write_listings(generate_listings(rows, seed=SEED), home / "listings.csv")
    env = {**os.environ, "HOMEVISION_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("HOMEVISION_OPTUNA_STORAGE", None)
    # GNU time prints the process's peak RSS (KiB) as the last line of stderr.
    command = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "homevision.cli", "train"]
    command += ["--data", str(data)]
    command += ["--features", "offmarket"] + (["--budget", str(budget)] if budget else [])
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=home, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"train on {rows} rows failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
        )
    metrics = json.loads((home / "reports" / "metrics.json").read_text())
    text = " ".join(proc.stdout.split())
    trims = (
        text.split("Trimmed to the budget: ", 1)[-1].split(" Model ", 1)[0]
        if ("Trimmed to the budget" in text)
        else "none"
    )
    winner = text.split(" Model ", 1)[-1].split(":", 1)[0] if " Model " in text else "?"
    return {
        "rows": rows,
        "wall": wall,
        "peak_mb": int(proc.stderr.strip().splitlines()[-1]) / 1024,
        "winner": winner,
        "cv_rmse": metrics["cv"]["rmse"],
        "honest_rmse": metrics["honest"]["rmse"],
        "floor": noise_floor_rmse(rows, seed=SEED),
        "trims": trims,
    }


def training_table(results: list[dict]) -> str:
    """Return the training figures as a markdown table, then what was trimmed at each size."""
    lines = [
        "| rows | sales | wall s | peak RSS MB | winner | CV RMSE | honest RMSE | floor | "
        "CV / floor | honest / floor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['rows']:,} | ~{int(0.3 * r['rows']):,} | {r['wall']:.0f} | "
            f"{r['peak_mb']:,.0f} | {r['winner']} | ${r['cv_rmse']:,.0f} | "
            f"${r['honest_rmse']:,.0f} | ${r['floor']:,.0f} | {r['cv_rmse'] / r['floor']:.3f} | "
            f"{r['honest_rmse'] / r['floor']:.3f} |"
        )
    lines += ["", "What the budget and the large-data rule did:"]
    lines += [f"- {r['rows']:,} rows: {r['trims']}" for r in results]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 50_000, 200_000])
    parser.add_argument("--budget", type=float, default=None, help="default: params.yaml")
    args = parser.parse_args()
    results = []
    for rows in args.rows:
        result = train_once(rows, args.budget)
        results.append(result)
        print(
            f"{rows:,} rows: {result['wall']:.0f} s, CV RMSE/floor "
            f"{result['cv_rmse'] / result['floor']:.3f}",
            flush=True,
        )
    print("\n" + training_table(results))


if __name__ == "__main__":
    main()
