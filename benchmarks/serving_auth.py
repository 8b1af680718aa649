"""What API keys cost a valuation over HTTP (issue 22): `homevision serve` without keys beside
the same server with keys configured and a `value` key sent as a bearer token, same model, one
worker each, 1 and 8 keep-alive clients, single-listing POST /valuations, alternating rounds
(A, B, A, B...) so that drift on the machine hits both; p50, p99, requests/s, and the key check's
own cost measured in process (what the HTTP figures cannot resolve below their noise).

    .venv/bin/python benchmarks/serving_auth.py [--seconds 5] [--rounds 3] [--clients 1 8]

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
        threads = str(min(2, clients))  # wrk needs a connection per thread
        base = ["wrk", "-t", threads, "-c", str(clients), "-s", str(script), "--latency"]
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


def key_check_microseconds(key: str, keys: Path, repeats: int = 20_000) -> float:
    """Microseconds the key check itself takes in process: the ring lookup, hash and
    constant-time compare that every authenticated request pays."""
    from homevision.api_keys import KeyRing, match_key

    ring = KeyRing(keys)
    began = time.perf_counter()
    for _ in range(repeats):
        record = match_key(key, ring.keys())
    assert record is not None and record.allows(Scope.value)
    return (time.perf_counter() - began) / repeats * 1e6


def load(url: str, key: str, clients: int, seconds: float) -> dict[str, float]:
    """One load round with wrk when installed, else the in-process httpx generator."""
    if shutil.which("wrk"):
        return with_wrk(url, key, clients, seconds)
    return asyncio.run(with_httpx(url, key, clients, seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per case")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    tool = "wrk" if shutil.which("wrk") else "httpx (asyncio)"
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        train_model(home)
        key, _ = create_key(Scope.value, "benchmark", path=home / "with-keys.json")
        cases = {
            "no keys configured": (home / "no-keys.json", ""),
            "value key sent": (home / "with-keys.json", key),
        }
        servers = {label: serve(home, keys) for label, (keys, _) in cases.items()}
        results: dict[tuple[str, int], list[dict[str, float]]] = {}
        try:
            for clients in args.clients:
                for _ in range(args.rounds):  # A, B, A, B...: drift on the machine hits both
                    for label, (_, sent) in cases.items():
                        url = servers[label][1]
                        results.setdefault((label, clients), []).append(
                            load(url, sent, clients, args.seconds)
                        )
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=60)
        check_us = key_check_microseconds(key, home / "with-keys.json")
    print(
        f"\nPOST /valuations, one worker each, single listing, {args.rounds} alternating rounds "
        f"of {args.seconds:.0f} s per row ({tool}; median of the rounds)"
    )
    print("| clients | server | p50 ms | p99 ms | req/s | non-200 |")
    print("|---|---|---|---|---|---|")
    summary = {}
    for (label, clients), rounds in results.items():
        med = {k: float(np.median([r[k] for r in rounds])) for k in ("p50", "p99", "rps")}
        errors = sum(int(r["errors"]) for r in rounds)
        summary[(label, clients)] = med
        print(
            f"| {clients} | {label} | {med['p50']:.2f} | {med['p99']:.2f} | "
            f"{med['rps']:,.0f} | {errors} |"
        )
    for clients in args.clients:
        added = (
            summary[("value key sent", clients)]["p50"]
            - summary[("no keys configured", clients)]["p50"]
        )
        print(f"auth adds {added:+.3f} ms to p50 at {clients} client(s) (target <= 0.2 ms)")
    print(f"the key check itself: {check_us:.1f} us per request, in process")


if __name__ == "__main__":
    main()
