"""What API keys cost a valuation over HTTP (issue 22): `homevision serve` without keys beside
the same server with keys configured and a `value` key sent as a bearer token, same model, one
worker each, 8 keep-alive clients, single-listing POST /valuations; p50, p99, requests/s.

    .venv/bin/python benchmarks/serving_auth.py [--seconds 10] [--clients 8]

A tiny champion (median $/sqft + ridge) is trained in a temporary project first. wrk (make
bench-tools) drives the load when installed, else an asyncio + httpx client in this process.
Targets: auth adds <= 0.2 ms to p50; p50 <= 2 ms and >= 1,000 req/s with a key.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_metrics import HOME as LISTING
from measure import project, train_model
from serving import _ms, free_port, wait_ready

from homevision.api_keys import Scope, create_key

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("HV_KEY")
if key ~= nil and key ~= "" then wrk.headers["Authorization"] = "Bearer " .. key end
local f = io.open(os.getenv("HV_BODY"), "r")
wrk.body = f:read("*a")
f:close()
"""


def with_wrk(url: str, key: str, clients: int, seconds: float) -> dict[str, float]:
    """wrk for `seconds` (after a 1 s warm-up); p50/p99 in ms, req/s, non-2xx count."""
    with tempfile.TemporaryDirectory() as tmp:
        script, body = Path(tmp) / "post.lua", Path(tmp) / "body.json"
        script.write_text(WRK_SCRIPT)
        body.write_text(json.dumps(LISTING))
        env = {**os.environ, "HV_BODY": str(body), "HV_KEY": key}
        base = ["wrk", "-t", "2", "-c", str(clients), "-s", str(script), "--latency"]
        subprocess.run([*base, "-d", "1s", url], env=env, capture_output=True, check=True)
        out = subprocess.run(
            [*base, "-d", f"{seconds:.0f}s", url], env=env, capture_output=True, text=True
        ).stdout
    percentile = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, flags=re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "p50": _ms(percentile["50"]),
        "p99": _ms(percentile["99"]),
        "rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
        "errors": int(bad.group(1)) if bad else 0,
    }


async def with_httpx(url: str, key: str, clients: int, seconds: float) -> dict[str, float]:
    """The same figures from an asyncio + httpx load generator in this process."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits, headers=headers) as client:
        for _ in range(50):
            await client.post(url, json=LISTING)
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                start = time.perf_counter()
                response = await client.post(url, json=LISTING)
                latencies.append(time.perf_counter() - start)
                errors += response.status_code != 200

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    ms = 1000 * np.asarray(latencies)
    return {
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
        "rps": len(ms) / elapsed,
        "errors": errors,
    }


def serve(home: Path, keys: Path) -> tuple[subprocess.Popen, str]:
    """Start `homevision serve --workers 1` in `home` with the key file `keys`."""
    port = free_port()
    env = {**project(home), "HOMEVISION_API_KEYS": str(keys)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "homevision.cli", "serve", "--workers", "1", "--port", str(port)],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    wait_ready(base + "/health", proc)
    return proc, base + "/valuations"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    tool = "wrk" if shutil.which("wrk") else "httpx (asyncio)"
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        train_model(home)
        key, _ = create_key(Scope.value, "benchmark", path=home / "with-keys.json")
        cases = {
            "no keys configured": (home / "no-keys.json", ""),
            "value key sent": (
                home / "with-keys.json",
                key,
            ),
        }
        rows = {}
        for label, (keys, sent) in cases.items():
            proc, url = serve(home, keys)
            try:
                if shutil.which("wrk"):
                    rows[label] = with_wrk(url, sent, args.clients, args.seconds)
                else:
                    rows[label] = asyncio.run(with_httpx(url, sent, args.clients, args.seconds))
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    print(f"\nPOST /valuations, one worker, {args.clients} clients, {args.seconds:.0f} s ({tool})")
    print("| server | p50 ms | p99 ms | req/s | non-200 |")
    print("|---|---|---|---|---|")
    for label, r in rows.items():
        print(f"| {label} | {r['p50']:.2f} | {r['p99']:.2f} | {r['rps']:,.0f} | {r['errors']} |")
    added = rows["value key sent"]["p50"] - rows["no keys configured"]["p50"]
    print(f"\nauth adds {added:+.3f} ms to p50 (target <= 0.2 ms)")


if __name__ == "__main__":
    main()
