"""`homevision serve --workers 2` over HTTP: two worker processes, each loading the model once at
start-up, share concurrent valuations, and stopping the server stops its workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from homevision.serving.api import WORKER_HEADER
from homevision.serving.app import native_threads

from .conftest import ROOT, free_port
from .test_api import HOME

pytestmark = pytest.mark.slow  # two workers import the package and load the model: ~20 s

WORKERS = 2
REQUESTS = 20


def _log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else ""


def wait_for_workers(
    base: str, server: subprocess.Popen, log: Path, seconds: float = 180
) -> set[int]:
    """Poll /health on fresh connections until `WORKERS` distinct workers have answered with
    the model loaded; return their pids (or fail with the server's log)."""
    ready: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and server.poll() is None:
        try:
            response = httpx.get(f"{base}/health", timeout=5)
            if response.status_code == 200 and response.json()["model_loaded"]:
                ready.add(int(response.headers[WORKER_HEADER]))
                if len(ready) == WORKERS:
                    return ready
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{WORKERS} workers did not come up ({ready} did): {_log_tail(log)}")


def start_workers(home: Path, port: int, log: Path, **env: str) -> subprocess.Popen:
    """Start `homevision serve --workers WORKERS` on 127.0.0.1:`port` for the project `home`
    (its local tracking store), with `env` added to the environment and its output in `log`."""
    full = {
        **os.environ,
        "HOMEVISION_HOME": str(home),
        "HOMEVISION_PARAMS": str(ROOT / "params.yaml"),
        **env,
    }
    full.pop("MLFLOW_TRACKING_URI", None)
    command = [sys.executable, "-m", "homevision.cli", "serve", "--workers", str(WORKERS)]
    with log.open("wb") as sink:
        return subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            env=full,
            cwd=home,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def value_and_name_worker(base: str, mls: int) -> tuple[int, int]:
    """POST one valuation, then ask /health on the same keep-alive connection (hence the same
    worker process); return the valuation's status code and that worker's pid."""
    with httpx.Client(base_url=base, timeout=60) as client:
        valued = client.post("/valuations", json={**HOME, "MLSNumber": mls})
        worker = client.get("/health").headers[WORKER_HEADER]
    return valued.status_code, int(worker)


def alive(pid: int) -> bool:
    """Return whether process `pid` still runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else (a reused pid)
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): signal 0 reached it


def test_two_workers_share_concurrent_valuations(trained_home, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    workers: set[int] = set()
    server = start_workers(trained_home, port, log)
    try:
        workers = wait_for_workers(base, server, log)
        assert server.pid not in workers  # the workers are processes of their own

        answered: set[int] = set()
        deadline = time.monotonic() + 120  # the kernel hands each connection to one worker
        while time.monotonic() < deadline:  # (a few rounds at most; more on a busy machine)
            with ThreadPoolExecutor(max_workers=8) as pool:
                results = list(
                    pool.map(lambda i: value_and_name_worker(base, i), range(1, REQUESTS + 1))
                )
            assert [status for status, _ in results] == [200] * REQUESTS
            answered |= {pid for _, pid in results}
            if len(answered) == WORKERS:
                break
        assert answered == workers, _log_tail(log)
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
            for pid in workers:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
    assert server.returncode == 0, _log_tail(log)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers), "a worker outlived the server"
    text = log.read_text(errors="replace")
    assert text.count("Started server process") == WORKERS  # uvicorn, once per worker
    assert text.count("Serving ") == WORKERS  # the API, once per model load
    # Each worker runs its share of the cores' BLAS and OpenMP threads (serving.app).
    share = f"Native threads (BLAS, OpenMP) in this worker: {native_threads(WORKERS)}\n"
    assert text.count(share) == WORKERS, text[-3000:]
