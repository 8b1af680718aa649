"""GET /metrics: the counters move with requests (in process), the model info follows reloads,
and with `homevision serve --workers 2` every scrape adds up both workers' counts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from homevision.serving.api import create_app, load_served

from .conftest import free_port
from .test_api import HOME
from .test_api_limits import MARK, _wild
from .test_serve_workers import _log_tail, start_workers, value_and_name_worker, wait_for_workers

Samples = dict[tuple[str, frozenset], float]


def parse(text: str) -> Samples:
    """Every sample of a text exposition, keyed by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, /, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def delta(before: Samples, after: Samples, name: str, /, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


VALUED = ("homevision_http_requests_total", {"method": "POST", "route": "/valuations"})


def test_counters_move_with_valuations_refusals_and_extrapolations(served_home):
    with TestClient(create_app(loader=lambda ref: _wild(load_served(ref)))) as c:
        before = scrape(c)
        assert c.post("/valuations", json=HOME).status_code == 200
        flagged = c.post("/valuations", json=[HOME, {**HOME, "MLSNumber": 2, "SqFtTotal": 60_000}])
        assert flagged.status_code == 200
        refused = c.post("/valuations", json=[HOME, {**HOME, "MLSNumber": 3, "SqFtTotal": MARK}])
        assert refused.status_code == 200
        assert c.post("/valuations", json=[HOME, {**HOME, "BedsTotal": -1}]).status_code == 422
        assert c.post("/valuations?confidence=0.99", json=HOME).status_code == 422
        assert c.get("/no-such-page").status_code == 404
        after = scrape(c)

    answers = [*flagged.json()["valuations"], *refused.json()["valuations"]]
    valued = 1 + sum(v["predicted_close_price"] is not None for v in answers)
    unsupported = sum("outside what this model supports" in (v["error"] or "") for v in answers)
    assert unsupported >= 1  # the marked listing (and the huge one, if it is refused too)
    assert delta(before, after, VALUED[0], **VALUED[1], status="200") == 3
    assert delta(before, after, VALUED[0], **VALUED[1], status="422") == 2
    assert delta(before, after, VALUED[0], method="GET", route="<unmatched>", status="404") == 1
    assert delta(before, after, VALUED[0], method="GET", route="/metrics", status="200") == 1
    latency = "homevision_http_request_duration_seconds"
    assert delta(before, after, f"{latency}_count", **VALUED[1]) == 5
    assert delta(before, after, f"{latency}_bucket", **VALUED[1], le="+Inf") == 5
    assert delta(before, after, f"{latency}_sum", **VALUED[1]) > 0
    assert delta(before, after, "homevision_valuations_total") == valued
    assert delta(before, after, "homevision_valuation_price_dollars_count") == valued
    assert delta(before, after, "homevision_valuation_price_dollars_sum") > 100_000 * valued
    refused_total = "homevision_listings_refused_total"
    assert delta(before, after, refused_total, reason="unsupported") == unsupported
    assert delta(before, after, refused_total, reason="invalid") == 3  # 2 + 1 listings
    assert delta(before, after, refused_total, reason="failed") == 0
    assert delta(before, after, "homevision_listings_extrapolated_total") == 1
    assert value(after, "homevision_model_loaded") == 1


def served_versions(samples: Samples, run_id: str) -> set[str]:
    """The versions of run `run_id` that homevision_model_info marks as served (value 1). The
    metrics are per process, and earlier tests' apps in this process served other labels."""
    return {
        dict(labels)["version"]
        for (name, labels), v in samples.items()
        if name == "homevision_model_info" and dict(labels)["run_id"] == run_id and v == 1
    }


def test_model_info_follows_reloads(served_home, admin_headers):
    loads = []

    def loader(ref):
        """Serve the trained model as version 1, then as version 2; the third load fails."""
        loads.append(ref)
        if len(loads) == 3:
            raise OSError("the registry is down")
        served = load_served(ref)
        served.info = served.info.model_copy(update={"version": str(len(loads))})
        return served

    with TestClient(create_app(loader=loader), headers=admin_headers) as c:
        info = c.get("/model").json()
        first = scrape(c)
        labels = {
            "name": "homevision-price",
            "version": "1",
            "feature_set": "task6",
            "run_id": info["run_id"],
        }
        assert info["name"] == "homevision-price" and info["run_id"]
        assert value(first, "homevision_model_info", **labels) == 1
        assert served_versions(first, info["run_id"]) == {"1"}
        assert value(first, "homevision_model_loaded") == 1

        assert c.post("/model/reload").json()["version"] == "2"
        second = scrape(c)
        assert value(second, "homevision_model_info", **{**labels, "version": "2"}) == 1
        assert value(second, "homevision_model_info", **labels) == 0  # served before the reload
        assert delta(first, second, "homevision_model_reloads_total", outcome="ok") == 1

        assert c.post("/model/reload").status_code == 503  # still serving version 2
        third = scrape(c)
        assert served_versions(third, info["run_id"]) == {"2"}
        assert delta(second, third, "homevision_model_reloads_total", outcome="failed") == 1
        assert value(third, "homevision_model_loaded") == 1


def test_metrics_can_be_left_out(served_home):
    with TestClient(create_app(metrics=False)) as c:
        assert c.post("/valuations", json=HOME).status_code == 200
        assert c.get("/metrics").status_code == 404


# -- several workers -------------------------------------------------------------------------


def stale_counts(folder: Path) -> None:
    """Leave an earlier server's counts in `folder`: 1,000 valuations by a worker long gone."""
    code = (
        "from prometheus_client import Counter\n"
        "Counter('homevision_http_requests', 'x', ['method', 'route', 'status'])"
        ".labels('POST', '/valuations', '200').inc(1000)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert list(folder.glob("counter_*.db"))


@pytest.mark.slow  # two workers import the package and load the model: ~20 s
def test_two_workers_metrics_add_up(trained_home, tmp_path):
    folder = tmp_path / "metrics"
    folder.mkdir()
    stale_counts(folder)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    server = start_workers(trained_home, port, log, PROMETHEUS_MULTIPROC_DIR=str(folder))
    try:
        workers = wait_for_workers(base, server, log)
        sent, answered = 0, set()
        deadline = time.monotonic() + 120  # new connections until both workers valued some
        while time.monotonic() < deadline:
            with ThreadPoolExecutor(max_workers=8) as pool:
                results = list(pool.map(lambda i: value_and_name_worker(base, i), range(1, 21)))
            assert [status for status, _ in results] == [200] * len(results)
            sent += len(results)
            answered |= {pid for _, pid in results}
            if answered == workers:
                break
        assert answered == workers, _log_tail(log)
        for _ in range(4):  # whichever worker answers the scrape, it reports both
            samples = parse(httpx.get(f"{base}/metrics", timeout=30).text)
            assert value(samples, VALUED[0], **VALUED[1], status="200") == sent
            latency = "homevision_http_request_duration_seconds_count"
            assert value(samples, latency, **VALUED[1]) == sent
            assert value(samples, "homevision_valuations_total") == sent
            assert value(samples, "homevision_valuation_price_dollars_count") == sent
            infos = [(dict(k), v) for (n, k), v in samples.items() if n == "homevision_model_info"]
            assert len(infos) == 1  # one series for both workers, no pid
            assert infos[0][0]["version"] == "1" and infos[0][1] == 1
            assert value(samples, "homevision_model_loaded") == 1
        assert {f"counter_{pid}.db" for pid in workers} <= {p.name for p in folder.iterdir()}
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert server.returncode == 0, _log_tail(log)
    assert "Metrics of the workers are gathered in" in _log_tail(log)
