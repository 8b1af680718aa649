"""Prometheus metrics of the API, served at GET /metrics (text exposition format).

Metrics:

- `homevision_http_requests_total{method, route, status}` (counter): requests answered, by HTTP
  method (GET, POST...; any other is "other"), the route's template ("/valuations", never the
  URL as sent; "<unmatched>" for a path no route serves) and status code. The 413s of the body
  size limit count too (they never reach a route, so their route is matched here).
- `homevision_http_request_duration_seconds{method, route}` (histogram): seconds from the request
  to the end of its answer, 1 ms to 10 s buckets.
- `homevision_valuations_total` (counter): listings valued (a price returned).
- `homevision_valuation_price_dollars` (histogram): the valued prices (point valuations), $50k to
  $5M buckets.
- `homevision_listings_refused_total{reason}` (counter): listings sent to /valuations and not
  valued. reason="invalid": the request was a 422 (a field breaks its rule, the model's feature
  set needs a field the listing lacks, or the confidence is not carried), every listing of it
  counts; "unsupported": the valuation falls outside the prices the model supports; "failed":
  the model gave no valuation.
- `homevision_listings_extrapolated_total` (counter): listings flagged as an extrapolation (a value
  beyond what the model saw in training: the `warning` of a valuation), valued or refused.
- `homevision_valuation_call_listings` (histogram): listings per call of the valuation, 1 to
  10,000 buckets. Its count is the calls and its sum the listings, so sum / count above 1 says
  how much the worker joined concurrent requests into one call (serving.coalesce) or was sent
  batches.
- `homevision_model_info{name, version, feature_set, run_id}` (gauge): 1 for the model served, 0
  for one served before a reload.
- `homevision_model_loaded` (gauge): 1 when a model is loaded, 0 when none is (every request is a
  503 until POST /model/reload succeeds).
- `homevision_model_reloads_total{outcome}` (counter): POST /model/reload calls, "ok" or "failed".

Several worker processes (`homevision serve --workers N`): each counts in its own process, so a
scrape must add them up. When PROMETHEUS_MULTIPROC_DIR is set before the workers start
(`homevision serve` does it: see serving.app.multiprocess_metrics), prometheus_client keeps every
worker's values in files there, and /metrics reads them all (MultiProcessCollector): counters
and histograms are summed over the workers, a dead worker's counts included; the model info is
the max over live workers (both versions show 1 while workers serve different ones: a reload
reaches the one worker that answered it), model_loaded the min (0 if any worker has no model).
Uvicorn has no hook for a worker's death, so a dead worker's gauges are dropped when its
replacement starts (uvicorn restarts it), not at once. The process_* metrics are only there
with a single process.

Cost: the middleware keeps each (method, route, status)'s counter and histogram child, so a
request costs a dict look-up, one counter increment and one histogram observation; a batch's
prices go into their histogram buckets in one numpy pass.
"""

from __future__ import annotations

import glob
import math
import os
import re
import threading
import time
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from homevision.serving.app import METRIC_FILE
from homevision.valuation.predict import refusal_reason

CALL_BUCKETS = (1, 2, 4, 8, 16, 64, 256, 1024, 10_000)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PRICE_BUCKETS = tuple(
    float(v)
    for v in (
        *range(50_000, 300_000, 50_000),
        *range(300_000, 1_000_000, 100_000),
        1_250_000,
        1_500_000,
        2_000_000,
        3_000_000,
        5_000_000,
    )
)
REFUSAL_REASONS = ("invalid", "unsupported", "failed")
SMALL_BATCH = 8  # up to this many listings, prices are observed one by one
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    """The API's metrics (one set per process: prometheus_client's registry is global)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram
        from prometheus_client import values as prometheus_values

        self.multiprocess = bool(getattr(prometheus_values.ValueClass, "_multiprocess", False))
        if self.multiprocess:
            forget_dead_workers(os.environ[MULTIPROC_ENV])
        self.requests = Counter(
            "homevision_http_requests",
            "Requests answered, by method, route template and status code.",
            ["method", "route", "status"],
        )
        self.latency = Histogram(
            "homevision_http_request_duration_seconds",
            "Seconds from a request to the end of its answer, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
        )
        self.valuations = Counter("homevision_valuations", "Listings valued (a price returned).")
        self.prices = Histogram(
            "homevision_valuation_price_dollars",
            "Valued prices (point valuations), in dollars.",
            buckets=PRICE_BUCKETS,
        )
        self.call_listings = Histogram(
            "homevision_valuation_call_listings",
            "Listings per call of the valuation (concurrent requests joined, or a batch).",
            buckets=CALL_BUCKETS,
        )
        self.refused = Counter(
            "homevision_listings_refused",
            "Listings not valued: invalid (a 422), unsupported (outside the prices the model "
            "supports), failed (the model gave no valuation).",
            ["reason"],
        )
        self.extrapolated = Counter(
            "homevision_listings_extrapolated",
            "Listings flagged as an extrapolation (beyond the training data's ranges).",
        )
        self.model_info = Gauge(
            "homevision_model_info",
            "1 for the model served (0 for one served before a reload).",
            ["name", "version", "feature_set", "run_id"],
            multiprocess_mode="livemax",
        )
        self.model_loaded = Gauge(
            "homevision_model_loaded",
            "1 when a model is loaded (min over the workers).",
            multiprocess_mode="livemin",
        )
        self.reloads = Counter(
            "homevision_model_reloads", "POST /model/reload calls, by outcome.", ["outcome"]
        )
        self._refused = {reason: self.refused.labels(reason) for reason in REFUSAL_REASONS}
        for outcome in ("ok", "failed"):
            self.reloads.labels(outcome)  # the series exist (at 0) before the first reload
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._served: tuple[str, str, str, str] | None = None
        self._lock = threading.Lock()

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            label = method if method in METHODS else "other"
            children = self._children[key] = (
                self.requests.labels(label, route, str(status)),
                self.latency.labels(label, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def valued(self, points: np.ndarray, errors: Sequence[str], warnings: Sequence[str]) -> None:
        """Count a batch's outcome: `points` the point valuations (NaN where refused), `errors`
        and `warnings` one string per listing ("" when none), as valuation.predict returns."""
        if len(points) <= SMALL_BATCH:  # Python floats: cheaper than numpy for a few
            prices = [p for p in points.tolist() if math.isfinite(p)]
            if prices:
                self.valuations.inc(len(prices))
                for price in prices:
                    self.prices.observe(price)
        else:
            valued = points[np.isfinite(points)]
            if valued.size:
                self.valuations.inc(valued.size)
                observe_many(self.prices, valued)
        for error in errors:
            if error:
                self._refused[refusal_reason(error)].inc()
        extrapolated = sum(1 for warning in warnings if warning)
        if extrapolated:
            self.extrapolated.inc(extrapolated)

    def called(self, listings: int) -> None:
        """Count one call of the valuation for `listings` listings."""
        self.call_listings.observe(listings)

    def invalid(self, listings: int) -> None:
        """Count `listings` refused by a 422."""
        if listings:
            self._refused["invalid"].inc(listings)

    def serving(self, info: Any | None) -> None:
        """Record the model now served (a ModelInfo), or that none is."""
        with self._lock:
            if info is None:
                self.model_loaded.set(0)
                return
            labels = tuple(
                str(getattr(info, f) or "") for f in ("name", "version", "feature_set", "run_id")
            )
            if self._served is not None and self._served != labels:
                self.model_info.labels(*self._served).set(0)
            self.model_info.labels(*labels).set(1)
            self.model_loaded.set(1)
            self._served = labels

    def reloaded(self, ok: bool) -> None:
        self.reloads.labels("ok" if ok else "failed").inc()

    def exposition(self) -> tuple[bytes, str]:
        """Return the text exposition of every metric (every worker's, in multiprocess mode)
        and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

        if not self.multiprocess:
            return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry()
        registry.register(WorkerFiles(os.environ[MULTIPROC_ENV]))
        return generate_latest(registry), CONTENT_TYPE_LATEST


class WorkerFiles:
    """A Prometheus collector of the workers' metric files in `folder`: prometheus_client's
    MultiProcessCollector, reading only the files that prometheus_client writes there. Its own
    collector reads every `*.db` in the folder, so one other program's database there (the
    folder may be any the operator names) made every scrape a 500."""

    def __init__(self, folder: str):
        self.folder = folder

    def collect(self):
        """Return the metric families of every worker's files, added up."""
        from prometheus_client.multiprocess import MultiProcessCollector

        files = [
            path
            for path in glob.glob(os.path.join(glob.escape(self.folder), "*.db"))
            if METRIC_FILE.fullmatch(os.path.basename(path))
        ]
        return MultiProcessCollector.merge(files, accumulate=True)


@cache
def metrics() -> Metrics:
    """The process's metrics, made on first use (after PROMETHEUS_MULTIPROC_DIR is set)."""
    return Metrics()


def observe_many(histogram: Any, values: np.ndarray) -> None:
    """Observe every value of `values` in `histogram` (no labels): one bucket increment per
    bucket hit, not one observe() per value. Falls back to observe() if prometheus_client's
    Histogram ever stops keeping per-bucket values in `_buckets` and the sum in `_sum`."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:
        for value in values:
            histogram.observe(float(value))
        return
    # observe() counts a value in the first bucket whose upper bound is >= it
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, count in zip(buckets, counts, strict=True):
        if count:
            bucket.inc(int(count))
    total.inc(float(values.sum()))


_PID_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def forget_dead_workers(path: str) -> list[int]:
    """Drop the live gauges of worker processes that no longer run (prometheus_client's
    mark_process_dead), so the model info and model_loaded describe live workers only; return
    their pids. Run by each worker as it starts: a restarted worker clears up after the dead
    one it replaces."""
    from prometheus_client.multiprocess import mark_process_dead

    dead = set()
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        match = _PID_FILE.search(os.path.basename(name))
        if match and not _alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        mark_process_dead(pid, path)
    return sorted(dead)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class RequestMetrics:
    """Pure ASGI middleware: count each HTTP request by method, route template and status, and
    time it. Outermost, so the body size limit's 413s count; an exception that escapes (the
    server answers 500) counts as a 500."""

    def __init__(self, app: ASGIApp, recorder: Metrics, routes: Sequence[Any]):
        self.app = app
        self.recorder = recorder
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = route.path if route is not None else self._match(scope)
            self.recorder.request(scope["method"], template, status, time.perf_counter() - start)

    def _match(self, scope: Scope) -> str:
        """The template of the route a request that never reached the router would have gone
        to (a 413 of the body limit), or UNMATCHED (a 404)."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match != Match.NONE:
                return route.path
        return UNMATCHED
