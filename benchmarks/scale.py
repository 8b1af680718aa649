"""Benchmark: valuing millions of listings. Prints a markdown table of time, rows/s and peak
memory (RSS) per step, each step a `homevision` command in its own process.

The pandas path (`pandas_rows`): `sample-data` writing N rows of Parquet chunk by chunk, then
`predict --data` streaming them through a small model trained here (`train --budget 30` on a
2,000-row sample, in a temporary project). Target: peak memory flat as the file grows. The Spark
path adds its rows to the same table (another section).

    python benchmarks/scale.py                       # 1M and 4M rows (long: see --predict-rows)
    python benchmarks/scale.py --sample-rows 1000000 4000000 --predict-rows 100000 400000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]
SIZES = (1_000_000, 4_000_000)
# Runs a command and prints its wall time and the peak RSS of it and its children, in KiB.
_MEASURE = (
    "import json, resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(json.dumps({'code': code, 'seconds': time.perf_counter() - start, 'peak_kib': peak}))\n"
)


def measure(args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Return {seconds, peak_rss_mb} of `homevision ARGS` run in a fresh process (measured by a
    wrapper process of its own, so one step's peak never hides another's)."""
    command = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "homevision.cli", *args]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["code"] != 0:
        raise RuntimeError(f"homevision {' '.join(args)} exited {result['code']}")
    return {"seconds": result["seconds"], "peak_rss_mb": result["peak_kib"] / 1024}


def row(step: str, rows: int, measured: dict[str, float]) -> dict[str, object]:
    """Return one table row: the step, its rows, seconds, rows/s and peak RSS."""
    seconds = measured["seconds"]
    return {
        "step": step,
        "rows": rows,
        "seconds": round(seconds, 1),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mb": round(measured["peak_rss_mb"]),
    }


def project_env(home: Path) -> dict[str, str]:
    """Return the environment of a temporary project in `home` (its own tracking store)."""
    env = {**os.environ, "HOMEVISION_HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    env.setdefault("HOMEVISION_PARAMS", str(ROOT / "params.yaml"))
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def pandas_rows(
    path: Path,
    sample_sizes: tuple[int, ...] = SIZES,
    predict_sizes: tuple[int, ...] = SIZES,
    chunk_rows: int = 100_000,
) -> dict[str, dict[str, object]]:
    """Return the pandas path's rows, keyed by step, measured in the project folder `path`:
    sample-data (Parquet) per size in `sample_sizes`; after training a small model, chunked
    predict of each size in `predict_sizes` (rows/s and peak memory)."""
    env = project_env(path)
    out: dict[str, dict[str, object]] = {}
    for rows in sorted(set(sample_sizes) | set(predict_sizes)):
        data = path / f"listings-{rows}.parquet"
        measured = measure(["sample-data", "--rows", str(rows), "--output", str(data)], env)
        if rows in sample_sizes:
            out[f"sample-data {rows:,} (parquet)"] = row("sample-data (parquet)", rows, measured)
    export = path / "train.csv"
    measure(["sample-data", "--rows", "2000", "--output", str(export)], env)
    log.info("Training a small model in %s", path)
    measure(["train", "--data", str(export), "--budget", "30"], env)
    for rows in predict_sizes:
        args = ["predict", "--data", str(path / f"listings-{rows}.parquet")]
        args += ["--output", str(path / f"valued-{rows}.parquet"), "--chunk-rows", str(chunk_rows)]
        out[f"predict {rows:,} (pandas, chunked)"] = row(
            "predict, pandas chunked", rows, measure(args, env)
        )
    return out


def markdown(rows: dict[str, dict[str, object]]) -> str:
    """Return the rows as a markdown table."""
    lines = [
        "| step | rows | seconds | rows/s | peak RSS (MB) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in rows.values():
        lines.append(
            f"| {r['step']} | {r['rows']:,} | {r['seconds']:,} | {r['rows_per_s']:,} "
            f"| {r['peak_rss_mb']:,} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample-rows", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--predict-rows", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        rows = pandas_rows(
            Path(tmp), tuple(args.sample_rows), tuple(args.predict_rows), args.chunk_rows
        )
    print(markdown(rows))


if __name__ == "__main__":
    main()
