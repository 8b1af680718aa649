"""Benchmark: the compiled valuation engine against the scikit-learn path (printed, never asserted).

One run, side by side, on the same model:
1. HTTP: `homevision serve` on the scikit-learn path (HOMEVISION_ENGINE=0), `homevision serve` on
   the engine, and `mlflow models serve` (whose pyfunc uses the engine), each with one worker per
   core, at 1, 8 and 32 concurrent clients (wrk, else an asyncio + httpx load generator on the
   same machine), single-listing POSTs, with and without ?explain=true; p50/p99 latency,
   requests/s, errors. Beside them the ceiling: a FastAPI endpoint on as many uvicorn workers
   that only parses a two-field pydantic body and multiplies (benchmarks/ceiling_app.py). One
   server runs at a time, so work left queued in one cannot slow the next.
2. In process: valuations with ranges per second, explanations per second, comparable sales per
   second, for both paths.
3. `homevision predict --explain` end to end on 10,000 synthetic listings (engine; the old path
   is extrapolated from its measured explanation rate, as it takes hours).
4. How stable the explanations are: the reference homes used (k-medoids, weighted) against the
   whole training set as background, and against other k-means seeds.
5. With `--before REF`: `homevision serve` on the engine from commit REF (a temporary worktree)
   and from this checkout, alternating for `--rounds` rounds at 1 and 8 clients, each round
   with the ceiling's rate; "per call" is listings per call of the valuation (above 1:
   concurrent requests valued together; "-" for code without that metric).

Usage (after `make run` has registered a champion in this project):
    python benchmarks/serving.py [--model REF] [--seconds 10] [--home .] [--before REF]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CLIENTS = (1, 8, 32)
CEILING = "ceiling: FastAPI, parse 2 fields, multiply"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, seconds: float = 240) -> None:
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


async def load(url: str, body: object, clients: int, seconds: float) -> dict[str, float]:
    """Each client POSTs `body` back to back for `seconds`; return latency and throughput."""
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

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

        # Warm up: the first requests pay for imports and caches in each worker.
        for _ in range(20):
            await client.post(url, json=body)
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


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("HV_BODY"), "r")
wrk.body = f:read("*a")
f:close()
"""
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    """'850.00us' / '1.18ms' / '1.02s' -> milliseconds."""
    match = re.fullmatch(r"([0-9.]+)(us|ms|s)", text.strip())
    if match is None:
        raise ValueError(f"unreadable wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def load_wrk(url: str, body: object, clients: int, seconds: float) -> dict[str, float]:
    """Run wrk (C, event-driven: it leaves the CPU to the servers) for `seconds`; return the
    same figures as `load`. A warm-up second is run first and not counted."""
    with tempfile.TemporaryDirectory() as tmp:
        script, data = Path(tmp) / "post.lua", Path(tmp) / "body.json"
        script.write_text(WRK_SCRIPT)
        data.write_text(json.dumps(body))
        env = {**os.environ, "HV_BODY": str(data)}
        threads = str(min(clients, 2))
        base = ["wrk", "-t", threads, "-c", str(clients), "-s", str(script), "--latency"]
        subprocess.run([*base, "-d", "1s", url], env=env, capture_output=True, check=True)
        out = subprocess.run(
            [*base, "-d", f"{seconds:.0f}s", "--timeout", "60s", url],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    percentile = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, flags=re.M))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": requests,
        "p50": _ms(percentile["50"]),
        "p99": _ms(percentile["99"]),
        "rps": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
        "errors": errors + (int(non_2xx.group(1)) if non_2xx else 0),
    }


def server_commands(args, home: Path, env: dict[str, str]) -> dict[str, tuple]:
    """Return {name: (command, environment, base url)} of the servers to measure."""
    from homevision.tracking import resolve_model_uri

    model = ["--model", args.model] if args.model else []
    ports = {name: free_port() for name in ("old", "engine", "mlflow", "ceiling")}
    hv = [sys.executable, "-m", "homevision.cli", "serve", "--workers", str(args.workers)]
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    mlflow = [sys.executable, "-m", "mlflow", "models", "serve", "-m"]
    return {
        "scikit-learn path (homevision serve)": (
            [*hv, "--port", str(ports["old"]), *model],
            {**env, "HOMEVISION_ENGINE": "0"},
            url["old"],
        ),
        "engine (homevision serve)": (
            [*hv, "--port", str(ports["engine"]), *model],
            env,
            url["engine"],
        ),
        "engine (mlflow models serve)": (
            [
                *mlflow,
                resolve_model_uri(args.model),
                *("--env-manager", "local", "-h", "127.0.0.1", "-p", str(ports["mlflow"])),
                *("-w", str(args.workers)),
            ],
            env,
            url["mlflow"],
        ),
        CEILING: (
            [
                *(sys.executable, "-m", "uvicorn", "ceiling_app:app", "--app-dir", str(HERE)),
                *("--host", "127.0.0.1", "--port", str(ports["ceiling"]), "--log-level", "warning"),
                *("--workers", str(args.workers)),
            ],
            env,
            url["ceiling"],
        ),
    }


@contextmanager
def running(name: str, command: list[str], env: dict[str, str], base: str, home: Path):
    """Run one server while its rows are measured, then stop it. One at a time: a server left
    running keeps valuing what a finished load left in its queue (the scikit-learn path's
    explanations take seconds each) and would slow the next server's rows."""
    quiet = {"cwd": home, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    proc = subprocess.Popen(command, env=env, **quiet)
    try:
        wait_ready(base + ("/ping" if "mlflow" in name else "/health"), proc)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def call_listings(base: str) -> tuple[float, float]:
    """Return (calls, listings) of the valuation so far, every worker's (GET /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base}/metrics", timeout=30).text
    name = "homevision_valuation_call_listings"
    found = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    return found.get(f"{name}_count", 0.0), found.get(f"{name}_sum", 0.0)


def measure(url: str, body: object, clients: int, seconds: float) -> dict[str, float]:
    """Load `url` with wrk when it is installed, else with the asyncio load generator."""
    if shutil.which("wrk"):
        return load_wrk(url, body, clients, seconds)
    return asyncio.run(load(url, body, clients, seconds))


def per_call(base: str, before: tuple[float, float]) -> str:
    """Listings per call of the valuation since `before` (call_listings), "-" if none."""
    done = [b - a for a, b in zip(before, call_listings(base), strict=True)]
    return f"{done[1] / done[0]:.2f}" if done[0] else "-"


def before_table(args, home: Path, env: dict[str, str], listing: dict) -> None:
    """Print the engine server of commit `args.before` and of this checkout, alternating round
    by round (the host's speed drifts between rounds, so only a round's pair compares), with
    the ceiling app's rate at 8 clients each round as the host's yardstick."""
    from accuracy import checkout
    from ceiling_app import BODY

    model = ["--model", args.model] if args.model else []
    print(
        f"\n{'round':>5s} {'code':24s} {'clients':>7s} {'p50 ms':>8s} {'req/s':>8s} "
        f"{'errors':>6s} {'per call':>8s}"
    )
    with checkout(args.before) as tree:
        codes = ((f"before ({args.before})", tree), ("this checkout", ROOT))
        for round_ in range(1, args.rounds + 1):
            for code, cwd in codes:  # each runs its own package: `-m` imports from cwd
                port = free_port()
                base = f"http://127.0.0.1:{port}"
                hv = [sys.executable, "-m", "homevision.cli", "serve", "--port", str(port)]
                command = [*hv, "--workers", str(args.workers), *model]
                with running(code, command, env, base, cwd):
                    for clients in (1, 8):
                        calls = call_listings(base)
                        r = measure(f"{base}/valuations", listing, clients, args.seconds)
                        print(
                            f"{round_:>5d} {code:24s} {clients:>7d} {r['p50']:>8.2f} "
                            f"{r['rps']:>8.0f} {r['errors']:>6d} {per_call(base, calls):>8s}",
                            flush=True,
                        )
            ceiling, _, base = server_commands(args, home, env)[CEILING]
            with running(CEILING, ceiling, env, base, home):
                r = measure(f"{base}/valuations", BODY, 8, args.seconds)
            print(f"{round_:>5d} {'ceiling':24s} {8:>7d} {r['p50']:>8.2f} {r['rps']:>8.0f}")


def http_table(args, home: Path, env: dict[str, str], listing: dict) -> None:
    """Print one row per server, explain and client count. `per call`: listings per call of
    the valuation in homevision's rows (above 1: concurrent requests valued together)."""
    print(
        f"\n{'server':40s} {'explain':>7s} {'clients':>7s} {'p50 ms':>8s} {'p99 ms':>8s} "
        f"{'req/s':>8s} {'requests':>8s} {'errors':>6s} {'per call':>8s}"
    )
    from ceiling_app import BODY

    for name, (command, server_env, base) in server_commands(args, home, env).items():
        mlflow, ceiling = "mlflow" in name, name == CEILING
        url = base + ("/invocations" if mlflow else "/valuations")
        body = {"dataframe_records": [listing]} if mlflow else BODY if ceiling else listing
        with running(name, command, server_env, base, home):
            for explain in (False,) if mlflow or ceiling else (False, True):
                target = url + ("?explain=true" if explain else "")
                for clients in CLIENTS:
                    counted = not (mlflow or ceiling)
                    calls = call_listings(base) if counted else (0.0, 0.0)
                    r = measure(target, body, clients, args.seconds)
                    joined = per_call(base, calls) if counted else ""
                    print(
                        f"{name:40s} {'yes' if explain else 'no':>7s} {clients:>7d} "
                        f"{r['p50']:>8.1f} {r['p99']:>8.1f} {r['rps']:>8.1f} "
                        f"{r['requests']:>8d} {r['errors']:>6d} {joined:>8s}",
                        flush=True,
                    )


def rate(fn, rows: int, repeat: int = 1) -> float:
    """Return rows per second of `fn()` (best of `repeat`)."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return rows / best


def in_process(args, model, raw: pd.DataFrame) -> float:
    """Print rows/s of both paths; return the old path's seconds per explained home."""
    print(f"\n{'in process':44s} {'scikit-learn':>14s} {'engine':>14s} {'speed-up':>9s}")

    def line(what: str, old: float, new: float) -> None:
        print(f"{what:44s} {old:>14,.0f} {new:>14,.0f} {new / old:>8.0f}x", flush=True)

    big = raw.sample(args.batch_rows, replace=True, random_state=0).reset_index(drop=True)
    small = big.head(args.batch_rows // 20)
    old = rate(lambda: model.predict_interval(small, engine=False), len(small))
    new = rate(lambda: model.predict_interval(big), len(big), repeat=3)
    line(f"valuations with ranges /s ({len(big):,} rows)", old, new)
    one = raw.head(1)
    old = rate(lambda: [model.predict_interval(one, engine=False) for _ in range(50)], 50)
    new = rate(lambda: [model.predict_interval(one) for _ in range(500)], 500)
    line("single-home valuations with ranges /s", old, new)
    homes = big.head(args.explain_rows)
    old_homes = homes.head(10)
    old = rate(lambda: model.explain(old_homes, engine=False), len(old_homes))
    new = rate(lambda: model.explain(homes), len(homes))
    line(f"explanations /s ({len(homes):,} homes)", old, new)
    comps = big.head(args.explain_rows)
    new = rate(lambda: model.comparable_sales(comps), len(comps))
    print(f"{'comparable sales /s (k-d tree index)':44s} {'':>14s} {new:>14,.0f}")
    return 1.0 / old


def predict_explain(args, home: Path, env: dict[str, str], old_seconds_per_home: float) -> None:
    """Time `homevision predict --explain` on synthetic listings, end to end."""
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "listings.csv", Path(tmp) / "valued.csv"
        cli = [sys.executable, "-m", "homevision.cli"]
        subprocess.run(
            [*cli, "sample-data", "--rows", str(args.predict_rows), "--output", str(data)],
            env=env,
            cwd=home,
            check=True,
            capture_output=True,
        )
        model = ["--model", args.model] if args.model else []
        start = time.perf_counter()
        subprocess.run(
            [*cli, "predict", "--data", str(data), "--explain", "--output", str(out), *model],
            env=env,
            cwd=home,
            check=True,
            capture_output=True,
        )
        seconds = time.perf_counter() - start
        valued = pd.read_csv(out)
    explained = int(valued["top_contributions"].fillna("").astype(bool).sum())
    print(
        f"\n`homevision predict --explain` on {args.predict_rows:,} synthetic listings: "
        f"{seconds:.1f} s end to end ({explained:,} explained); the scikit-learn path would need "
        f"about {old_seconds_per_home * explained / 60:,.0f} min for the explanations alone "
        f"(its measured {old_seconds_per_home:.2f} s per home)"
    )


def stability(model, labelled: pd.DataFrame, homes: pd.DataFrame) -> None:
    """Print how far the explanations move with the reference homes."""
    from homevision.valuation.explain import DollarExplainer, summarize_background

    raw = labelled[model.raw_columns_].reset_index(drop=True)
    f = model.engine_.predict_matrix if model.uses_engine else None
    if f is None:
        print("\n(stability: skipped, the model is on the scikit-learn path)")
        return
    full = DollarExplainer(f, model.encoder_, raw).explain(homes).values.to_numpy()
    used = model.explain(homes).values.to_numpy()
    scale = np.abs(full).mean()
    size = len(model.background_)
    print(
        f"\nexplanation stability on {len(homes)} homes (mean |contribution| ${scale:,.0f}; "
        "gap = mean |difference| per home and feature):"
    )
    print(
        f"  served reference homes ({size}, k-medoids, weighted) vs all {len(raw)} sales as "
        f"background: ${np.abs(used - full).mean():,.0f} ({np.abs(used - full).mean() / scale:.1%})"
    )
    points = model.comps_._embed(labelled.reset_index(drop=True))
    for seed in (1, 2):
        rows, weights = summarize_background(points, size, seed)
        other = DollarExplainer(f, model.encoder_, raw.iloc[rows], weights).explain(homes)
        gap = np.abs(other.values.to_numpy() - used).mean()
        print(f"  k-means seed {seed} vs the served seed: ${gap:,.0f} ({gap / scale:.1%})")
    sample = raw.sample(size, random_state=0)
    gap = np.abs(DollarExplainer(f, model.encoder_, sample).explain(homes).values - full).mean()
    print(
        f"  (a random sample of {size} sales instead: ${gap.mean():,.0f} "
        f"({gap.mean() / scale:.1%}) from the full background)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--home", type=Path, default=Path.cwd())
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch-rows", type=int, default=200_000)
    parser.add_argument("--explain-rows", type=int, default=1_000)
    parser.add_argument("--predict-rows", type=int, default=10_000)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument(
        "--before",
        default=None,
        help="also serve this commit's engine and this checkout's, alternating (REF: a commit)",
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds for --before")
    args = parser.parse_args()
    home = args.home.resolve()
    os.environ["HOMEVISION_HOME"] = str(home)

    from homevision.data.listings import coerce_types, load_listings
    from homevision.data.sources import resolve_data_path
    from homevision.tracking import describe_model, load_model, tracking_uri
    from homevision.valuation.model import engine_note

    model = load_model(args.model)
    info = describe_model(args.model)
    listings = load_listings(resolve_data_path(None))
    typed = coerce_types(listings.to_value).reset_index(drop=True)
    raw = typed[model.raw_columns_]
    listing = {
        k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v))
        for k, v in raw.iloc[0].items()
    }
    print(
        f"model {info.get('name')} v{info.get('version')} (feature set {info.get('feature_set')}, "
        f"ranges {model.interval_variant}, {engine_note(model)}); {os.cpu_count()} CPUs; "
        f"{args.workers} server workers; load generator on the same machine ("
        + ("wrk" if shutil.which("wrk") else "httpx asyncio: `make bench-tools` installs wrk")
        + "); "
        f"{args.seconds:.0f} s per HTTP row"
    )
    # mlflow models serve execs `uvicorn`: put this interpreter's scripts folder on PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(), "PATH": path}
    if not args.skip_http:
        http_table(args, home, env, listing)
    if args.before:
        before_table(args, home, env, listing)
    old_seconds = in_process(args, model, raw)
    predict_explain(args, home, env, old_seconds)
    stability(model, listings.labelled, raw.head(200))


if __name__ == "__main__":
    main()
