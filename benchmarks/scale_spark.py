"""Does `predict --engine spark` scale with cores? local[1] against local[2] on synthetic
listings (default 2,000,000, written once as Parquet by write_listings_chunked).

    .venv/bin/python benchmarks/scale_spark.py [--rows 2000000] [--masters local[1] local[2]]

A tiny model is trained once in a temporary project; each master then runs the whole CLI
command in a subprocess (JVM start, model load, validation, spark_udf, Parquet out): wall time,
rows per second, and peak memory of the process tree (driver Python + JVM + Python workers,
summed RSS, sampled every 0.2 s with psutil). The target is local[2] >= 1.7x local[1]. Figures
are printed as a markdown table, never asserted; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from homevision.data.synthetic import write_listings_chunked  # noqa: E402
from tests.integration.conftest import tiny_params  # noqa: E402

TARGET_SPEEDUP = 1.7


def project(home: Path) -> dict[str, str]:
    """Return the environment of a CLI run in `home` (its own MLflow store)."""
    env = {**os.environ, "HOMEVISION_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def train_model(home: Path) -> None:
    """Train a tiny champion (median_ppsf, ridge) on 2,000 synthetic listings in `home`."""
    data = write_listings_chunked(2000, home / "train.csv", seed=3)
    env = {**project(home), "HOMEVISION_PARAMS": str(tiny_params(home, ["median_ppsf", "ridge"]))}
    command = [sys.executable, "-m", "homevision.cli", "train", "--data", str(data)]
    subprocess.run(command, env=env, cwd=home, check=True, capture_output=True)


def peak_tree_rss(proc: subprocess.Popen, every: float = 0.2) -> int:
    """Wait for `proc`; return the peak summed RSS (bytes) of it and all its descendants."""
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(every)
    return peak


def run_master(home: Path, data: Path, master: str, rows: int) -> dict:
    """Value `data` with `predict --engine spark` on `master`; return its figures."""
    name = "".join(ch for ch in master if ch.isalnum())
    output = home / f"valued-{name}.parquet"
    command = [sys.executable, "-m", "homevision.cli", "predict", "--engine", "spark"]
    command += ["--spark-master", master, "--data", str(data), "--output", str(output)]
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, env=project(home), cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    peak = peak_tree_rss(proc)
    wall = time.perf_counter() - start
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{master} failed: {err.decode()[-2000:]}")
    return {
        "master": master,
        "rows": rows,
        "wall_s": wall,
        "rows_per_s": rows / wall,
        "peak_rss_mib": peak / 2**20,
        "summary": out.decode().strip().splitlines()[-1],
    }


def table(results: list[dict]) -> str:
    """Return the figures as a markdown table, speed-up against the first master."""
    base = results[0]["rows_per_s"]
    lines = [
        "| master | rows | wall (s) | rows/s | speed-up | peak RSS, driver+JVM+workers (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['master']} | {r['rows']:,} | {r['wall_s']:.1f} | {r['rows_per_s']:,.0f} | "
            f"{r['rows_per_s'] / base:.2f}x | {r['peak_rss_mib']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--masters", nargs="+", default=["local[1]", "local[2]"])
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="hv-spark-scale-"))
    train_model(home)
    start = time.perf_counter()
    data = write_listings_chunked(args.rows, home / "listings.parquet", seed=11)
    print(f"{args.rows:,} listings -> {data} in {time.perf_counter() - start:.0f} s", flush=True)
    results = []
    for master in args.masters:
        results.append(run_master(home, data, master, args.rows))
        print(results[-1], flush=True)
    print(table(results))
    speedup = results[-1]["rows_per_s"] / results[0]["rows_per_s"]
    verdict = "met" if speedup >= TARGET_SPEEDUP else "missed"
    print(
        f"\n{args.masters[-1]} vs {args.masters[0]}: {speedup:.2f}x "
        f"(target {TARGET_SPEEDUP}x: {verdict})"
    )


if __name__ == "__main__":
    main()
