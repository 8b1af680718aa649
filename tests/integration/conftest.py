"""A model trained once per test session (tiny settings, synthetic data), for the API and app."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from homevision.data.synthetic import generate_listings, write_listings

ROOT = Path(__file__).resolve().parents[2]


def tiny_params(folder: Path, candidates: list[str]) -> Path:
    """Write a params.yaml that trains in seconds: few candidates, folds and trials, and two
    outer folds for the honest estimate and the ranges' coverage (the least that measures)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update(
        candidates=candidates,
        folds=3,
        repeats=1,
        tune_top=1,
        tuning_trials=2,
        blend_top=2,
        nested_outer_folds=2,
    )
    params["intervals"].update(variants=["cv_plus"], outer_folds=2)
    params["explain"].update(background_rows=20)
    path = folder / f"params-{'-'.join(candidates)}.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def cli(
    home: Path, *args: str, env: dict[str, str] | None = None, unset: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """Run `homevision ARGS` in a subprocess in its own project folder (the local tracking
    store unless `env` names another; `unset` variables removed); return the finished process,
    whatever its exit code."""
    full = {**os.environ, "HOMEVISION_HOME": str(home)}
    # As off a terminal: no COLUMNS (pytest-xdist sets COLUMNS=80 in its workers).
    for name in ("MLFLOW_TRACKING_URI", "COLUMNS", "LINES", *unset):
        full.pop(name, None)
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "homevision.cli", *args],
        env=full,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def run_cli(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run `homevision ARGS` as `cli` does; return its stdout, or fail with its output's tail."""
    proc = cli(home, *args, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@functools.cache
def empty_store() -> Path:
    """An empty MLflow SQLite store, made once per test process (removed at exit): creating one
    runs MLflow's schema migrations (about 3 s), which each training in a fresh project folder
    would otherwise repeat."""
    from mlflow.tracking import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="homevision-store-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


def train_in(home: Path, export: Path, candidates: list[str], *extra: str) -> None:
    """Train through the CLI in a subprocess, in its own project folder (a fresh one starts from
    a copy of the session's empty store); what it printed (stdout then stderr) is kept in
    `home`/train.log for the tests that read a command's output."""
    params = tiny_params(home, candidates)
    if not (home / "mlflow.db").exists():
        shutil.copyfile(empty_store(), home / "mlflow.db")
    env = {"HOMEVISION_PARAMS": str(params)}
    proc = cli(home, "train", "--data", str(export), *extra, env=env)
    (home / "train.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory) -> Path:
    """A project folder with a synthetic export and a champion model (ridge/extra trees)."""
    home = tmp_path_factory.mktemp("served")
    export = write_listings(generate_listings(500, seed=3), home / "data" / "raw" / "listings.csv")
    train_in(home, export, ["median_ppsf", "ridge"])
    return home


@pytest.fixture
def served_home(trained_home, monkeypatch) -> Path:
    """Point this test's project (and default data) at the trained session folder."""
    monkeypatch.setenv("HOMEVISION_HOME", str(trained_home))
    monkeypatch.setenv("HOMEVISION_DATA", str(trained_home / "data" / "raw" / "listings.csv"))
    return trained_home


@pytest.fixture
def admin_headers(tmp_path, monkeypatch) -> dict[str, str]:
    """An admin API key in this test's own key file (HOMEVISION_API_KEYS), as request headers:
    with a key configured every data route needs one, and reload needs an admin one."""
    from homevision.api_keys import Scope, create_key

    path = tmp_path / "api-keys" / "api-keys.json"
    monkeypatch.setenv("HOMEVISION_API_KEYS", str(path))
    key, _ = create_key(Scope.admin, "tests", path=path)
    return {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A `homevision serve` started by `served_api`: its base URL and, once stopped, stderr."""

    base: str
    proc: subprocess.Popen
    stderr: str = ""


@contextmanager
def served_api(
    home: Path, env: dict[str, str], *args: str, seconds: float = 90
) -> Iterator[Server]:
    """Start `homevision serve --port P ARGS` in `home` with environment `env`; yield it once
    /health answers 200; stop it (SIGTERM) and keep its stderr when the block ends."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "homevision.cli", "serve", "--port", str(port), *args],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = Server(f"http://127.0.0.1:{port}", proc)
    try:
        wait_until_up(f"{server.base}/health", proc, seconds=seconds)
        yield server
    finally:
        proc.terminate()
        server.stderr = proc.communicate(timeout=60)[1].decode()


def wait_until_up(url: str, proc: subprocess.Popen, seconds: float = 90) -> httpx.Response:
    """Poll `url` until it answers 200 (or fail with the server's stderr tail)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    err = proc.stderr.read().decode()[-2000:] if proc.stderr and proc.poll() is not None else ""
    pytest.fail(f"{url} did not come up: {err}")


@pytest.fixture(scope="module")
def flow_template(tmp_path_factory) -> Path:
    """A project with one export in its drop folder (tests/integration/flow_faults.py)."""
    from .flow_faults import make_template

    return make_template(tmp_path_factory)


@pytest.fixture(scope="module")
def flow_uninterrupted(flow_template, tmp_path_factory) -> bytes:
    """The history an uninterrupted flow run commits from flow_template."""
    from .flow_faults import run_uninterrupted

    return run_uninterrupted(flow_template, tmp_path_factory)
