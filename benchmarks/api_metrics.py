"""Benchmark: what the Prometheus metrics cost each API request (printed, never asserted).

1. In process, through the ASGI interface itself (no sockets, no HTTP client: the figure is the
   app's own time): two apps on the same model, one with metrics and one without
   (`create_app(metrics=False)`), take turns in rounds so that machine noise falls on both
   alike: GET /health, single-listing POST /valuations (the lean path) and a 100-listing batch.
   Prints the median and the best round's time per request of each, and the difference.
2. The metrics' own calls, timed alone (timeit): counting one request, and one valuation answer
   of 1 and of 100 listings. On a busy machine the end-to-end difference drowns in noise; these
   are the cost itself.

Usage (after `make run`, or in any project folder with a champion):
    python benchmarks/api_metrics.py [--model REF] [--requests 2000] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import timeit

import numpy as np

from homevision.serving.api import create_app
from homevision.serving.metrics import metrics

HOME = {
    "MLSNumber": 1,
    "SqFtTotal": 2400,
    "BedsTotal": 4,
    "BathsTotal": "2.1",
    "CDOM": 30,
    "LotSizeAreaSQFT": 7000,
    "ElementarySchoolName": "Aspen",
}
CASES = {
    "GET /health": ("GET", "/health", None),
    "POST /valuations (1 listing)": ("POST", "/valuations", HOME),
    "POST /valuations (100 listings)": ("POST", "/valuations", [HOME] * 100),
}


def scope(method: str, path: str, body: bytes) -> dict:
    headers = [(b"host", b"bench"), (b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
    }


async def per_request(app, method: str, path: str, body: bytes, n: int) -> float:
    """Call the app `n` times; return the mean seconds per request."""
    statuses: list[int] = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    start = time.perf_counter()
    for _ in range(n):
        await app(scope(method, path, body), receive, send)
    seconds = (time.perf_counter() - start) / n
    assert set(statuses) == {200}, statuses[:5]
    return seconds


async def end_to_end(model: str | None, requests: int, rounds: int) -> None:
    apps = {"metrics": create_app(model), "no metrics": create_app(model, metrics=False)}
    contexts = [app.router.lifespan_context(app) for app in apps.values()]
    for context in contexts:
        await context.__aenter__()
    try:
        for case, (method, path, data) in CASES.items():
            body = b"" if data is None else json.dumps(data).encode()
            n = requests if "100" not in case else max(requests // 10, rounds)
            times: dict[str, list[float]] = {name: [] for name in apps}
            for app in apps.values():  # warm up
                await per_request(app, method, path, body, 20)
            for _ in range(rounds):
                for name, app in apps.items():
                    times[name].append(await per_request(app, method, path, body, n // rounds))
            median = {k: statistics.median(t) * 1e6 for k, t in times.items()}
            best = {k: min(t) * 1e6 for k, t in times.items()}
            print(
                f"{case:32s} {n:>5,} requests: median {median['no metrics']:,.1f} -> "
                f"{median['metrics']:,.1f} us ({median['metrics'] - median['no metrics']:+,.1f}); "
                f"best round {best['no metrics']:,.1f} -> {best['metrics']:,.1f} us "
                f"({best['metrics'] - best['no metrics']:+,.1f})"
            )
    finally:
        for context in reversed(contexts):
            await context.__aexit__(None, None, None)


def calls_alone() -> None:
    recorder = metrics()
    one, hundred = np.array([350_000.0]), np.full(100, 350_000.0)
    calls = {
        "count one request (counter + latency)": lambda: recorder.request(
            "POST", "/valuations", 200, 0.003
        ),
        "count a 1-listing answer": lambda: recorder.valued(one, [""], [""]),
        "count a 100-listing answer": lambda: recorder.valued(hundred, [""] * 100, [""] * 100),
    }
    for name, call in calls.items():
        runs = timeit.repeat(call, number=2000, repeat=7)
        print(f"{name:40s} {min(runs) / 2000 * 1e6:6.2f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(end_to_end(args.model, args.requests, args.rounds))
    calls_alone()
