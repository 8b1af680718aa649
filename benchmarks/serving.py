"""Benchmark: serving latency and throughput (printed; never asserted in tests).

Starts `homevision serve` and `mlflow models serve` on 127.0.0.1 with the same model, then for
1, 8 and 32 concurrent clients (a small asyncio + httpx load generator on the same machine)
sends single-listing POSTs for --seconds each and prints p50/p99 latency, throughput and errors;
then explain=true at 1 client; then in-process batch scoring in rows/s.

Usage (after `make run` has registered a champion in this project):
    python benchmarks/serving.py [--model REF] [--seconds 20] [--home .]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {seconds:.0f} s")


async def load(url: str, body: dict, clients: int, seconds: float) -> dict[str, float]:
    """Each client POSTs `body` back to back for `seconds`; return latency and throughput."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                start = time.perf_counter()
                try:
                    response = await client.post(url, json=body)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += 0 if ok else 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    ms = 1000 * np.asarray(latencies)
    return {
        "requests": len(ms),
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "rps": len(ms) / elapsed,
        "errors": errors,
    }


def row(name: str, clients: int, r: dict[str, float]) -> str:
    return (
        f"{name:28s} {clients:>7d} {r['p50']:>9.1f} {r['p99']:>9.1f} {r['rps']:>9.1f} "
        f"{r['requests']:>9d} {r['errors']:>7d}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--home", type=Path, default=Path.cwd())
    parser.add_argument("--batch-rows", type=int, default=100_000)
    args = parser.parse_args()
    home = args.home.resolve()
    os.environ["HOMEVISION_HOME"] = str(home)
    os.environ.setdefault("HOMEVISION_PARAMS", str(ROOT / "params.yaml"))

    from homevision.data.listings import coerce_types, read_export
    from homevision.data.sources import resolve_data_path
    from homevision.tracking import describe_model, load_model, resolve_model_uri, tracking_uri
    from homevision.valuation.predict import unsold_rows

    model = load_model(args.model)
    info = describe_model(args.model)
    typed = coerce_types(unsold_rows(read_export(resolve_data_path(None)))).reset_index(drop=True)
    raw = typed[model.raw_columns_]
    example = raw.iloc[0]
    listing = {
        k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v))
        for k, v in example.items()
    }
    print(
        f"model {info.get('name')} v{info.get('version')} (feature set "
        f"{info.get('feature_set')}, ranges {model.interval_variant}); {os.cpu_count()} CPUs; "
        f"load generator on the same machine; {args.seconds:.0f} s per row"
    )

    # mlflow models serve execs `uvicorn`: put this interpreter's scripts folder on PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(), "PATH": path}
    hv_port, ml_port = free_port(), free_port()
    servers = {
        "homevision serve": subprocess.Popen(
            [sys.executable, "-m", "homevision.cli", "serve", "--port", str(hv_port)]
            + (["--model", args.model] if args.model else []),
            env=env,
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        "mlflow models serve": subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "models",
                "serve",
                "-m",
                resolve_model_uri(args.model),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(ml_port),
            ],
            env=env,
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    }
    try:
        wait_ready(f"http://127.0.0.1:{hv_port}/health", servers["homevision serve"])
        wait_ready(f"http://127.0.0.1:{ml_port}/ping", servers["mlflow models serve"])
        print(
            f"\n{'server':28s} {'clients':>7s} {'p50 ms':>9s} {'p99 ms':>9s} {'req/s':>9s} "
            f"{'requests':>9s} {'errors':>7s}"
        )
        targets = [
            ("homevision serve", f"http://127.0.0.1:{hv_port}/valuations", listing),
            (
                "mlflow models serve",
                f"http://127.0.0.1:{ml_port}/invocations",
                {"dataframe_records": [listing]},
            ),
        ]
        for name, url, body in targets:
            for clients in (1, 8, 32):
                print(
                    row(name, clients, asyncio.run(load(url, body, clients, args.seconds))),
                    flush=True,
                )
        explained = asyncio.run(load(f"{targets[0][1]}?explain=true", listing, 1, args.seconds))
        print(row("homevision serve ?explain", 1, explained))
    finally:
        for proc in servers.values():
            proc.terminate()
            proc.wait(timeout=30)

    batch = raw.sample(args.batch_rows, replace=True, random_state=0).reset_index(drop=True)
    start = time.perf_counter()
    model.predict_interval(batch)
    seconds = time.perf_counter() - start
    print(
        f"\nin-process batch: {len(batch):,} rows with ranges in {seconds:.2f} s = "
        f"{len(batch) / seconds:,.0f} rows/s"
    )


if __name__ == "__main__":
    main()
