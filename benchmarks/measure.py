"""Measuring CLI runs for benchmarks/scale.py: a small model trained in a temporary project, then
one `homevision` command at a time in a subprocess, with its wall time, the peak summed RSS of
its process tree (sampled every 0.2 s with psutil: driver Python, JVM and Spark's Python workers
together) and the cores the machine kept busy meanwhile."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from homevision.data.synthetic import write_listings_chunked  # noqa: E402
from tests.integration.conftest import tiny_params  # noqa: E402


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


def cpu_ticks() -> tuple[int, int]:
    """Return (busy, total) CPU ticks of the whole machine since boot (Linux /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def measured_cli(home: Path, args: list[str]) -> dict:
    """Run `homevision ARGS` in `home`; return its wall time, the peak summed RSS (MiB) of its
    process tree, and how many cores the machine kept busy on average meanwhile (on an idle
    machine: the command's own parallelism). Raises with the output's tail when it fails."""
    command = [sys.executable, "-m", "homevision.cli", *args]
    before = cpu_ticks()
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, env=project(home), cwd=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    peak = peak_tree_rss(proc)
    wall = time.perf_counter() - start
    busy, total = (after - first for after, first in zip(cpu_ticks(), before, strict=True))
    _out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"homevision {' '.join(args)} failed: {err.decode()[-2000:]}")
    cores = os.cpu_count() or 1
    return {"wall_s": wall, "peak_rss_mib": peak / 2**20, "busy_cores": cores * busy / total}


def run_predict(home: Path, data: Path, rows: int, args: list[str]) -> dict:
    """Value `data` with `predict --data DATA ARGS` (an engine and its options); return rows,
    wall time, rows per second and peak memory."""
    name = "".join(ch for ch in "-".join(args) if ch.isalnum()) or "default"
    output = home / f"valued-{rows}-{name}.parquet"
    figures = measured_cli(home, ["predict", "--data", str(data), "--output", str(output), *args])
    return {"rows": rows, **figures, "rows_per_s": rows / figures["wall_s"]}
