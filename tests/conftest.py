"""Shared fixtures: the real sample when ../shared has it, small synthetic exports otherwise."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

# Under pytest-xdist (`make test`) each worker is one of two busy processes on CI's two cores:
# native thread pools sized for the whole machine (OpenMP in HistGradientBoosting, LightGBM and
# XGBoost; BLAS) would spin against the other worker's (a stacking test took 6x as long). One
# thread per pool, here and in the commands the tests start; joblib's processes still run.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_pool, "1")

import pandas as pd
import pytest

from homevision.data.synthetic import generate_listings, write_listings

if os.environ.get("PYTEST_XDIST_WORKER"):  # for the libraries a plugin loaded before this file
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)

ROOT = Path(__file__).resolve().parents[1]
REAL_CANDIDATES = (
    ROOT / "data" / "raw" / "home-listings-example.csv",
    ROOT.parent / "shared" / "data" / "home-listings-example.csv",
)


def pytest_addoption(parser):
    parser.addoption("--real-data", default=None, help="Path to the real MLS sample export.")


@pytest.fixture(scope="session")
def real_data_path(request) -> Path:
    """The real Frisco sample; tests that need it skip (with the reason) when it is absent."""
    given = request.config.getoption("--real-data")
    for path in ([Path(given)] if given else []) + list(REAL_CANDIDATES):
        if path.exists():
            return path
    pytest.skip(
        "real sample not found: put ../shared/data/home-listings-example.csv beside the repo"
    )


@pytest.fixture(scope="session")
def synthetic_frame() -> pd.DataFrame:
    return generate_listings(600, seed=7)


@pytest.fixture
def synthetic_csv(tmp_path, synthetic_frame) -> Path:
    return write_listings(synthetic_frame, tmp_path / "listings.csv")


@pytest.fixture(autouse=True)
def _isolated_project(tmp_path, monkeypatch):
    """Every test runs with its own project root so nothing writes into the checkout."""
    monkeypatch.setenv("HOMEVISION_HOME", str(tmp_path))
    monkeypatch.setenv("HOMEVISION_PARAMS", str(ROOT / "params.yaml"))
    monkeypatch.delenv("HOMEVISION_DATA", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("HOMEVISION_OPTUNA_STORAGE", raising=False)
    monkeypatch.delenv("HOMEVISION_API_KEYS", raising=False)
    # The services' secrets (signing key, credentials) are found through the project root: a
    # test sees them only where it asks for them (SERVICES_DIR, the `server` fixtures).
    monkeypatch.delenv("HOMEVISION_SERVICES_DIR", raising=False)
    monkeypatch.delenv("HOMEVISION_SIGNING_KEY", raising=False)
    # pytest-xdist sets COLUMNS=80 in its workers; a command run off a terminal has none.
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)


# Services (`make services`): tests marked `server` use the running MLflow server and PostgreSQL.
# A laptop without them skips those tests knowingly; CI sets HOMEVISION_REQUIRE_SERVICES=1 so a
# service that is down fails them instead.
MLFLOW_SERVER = os.environ.get("HOMEVISION_TEST_MLFLOW_URI", "http://127.0.0.1:5000")
OPTUNA_POSTGRES = os.environ.get(
    "HOMEVISION_TEST_OPTUNA_STORAGE", "postgresql://homevision@127.0.0.1:5433/optuna"
)


def _service_missing(what: str) -> None:
    message = f"{what} is not running: start it with `make services`"
    if os.environ.get("HOMEVISION_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


SERVICES_DIR = Path(os.environ.get("HOMEVISION_TEST_SERVICES_DIR", ROOT / ".services"))


def _use_service_credentials() -> None:
    """Give this test process (and the commands it starts) the services' credentials: the
    MLflow server's user and libpq's password file, as `scripts/services.sh env` would."""
    from homevision.service_secrets import MLFLOW_PASSWORD, MLFLOW_USER, PGPASS, read_secret

    password = read_secret(MLFLOW_PASSWORD, SERVICES_DIR)
    if password and "MLFLOW_TRACKING_PASSWORD" not in os.environ:
        os.environ["MLFLOW_TRACKING_USERNAME"] = MLFLOW_USER
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    pgpass = SERVICES_DIR / "secrets" / PGPASS
    if pgpass.is_file():
        os.environ.setdefault("PGPASSFILE", str(pgpass))


@pytest.fixture(scope="session")
def tracking_server() -> str:
    """The MLflow tracking server's URI (skip, or fail in CI, when it does not answer); the
    session then holds its credentials."""
    try:
        with urllib.request.urlopen(f"{MLFLOW_SERVER}/health", timeout=5) as response:
            if response.status == 200:
                _use_service_credentials()
                return MLFLOW_SERVER
    except OSError:
        pass
    _service_missing(f"the MLflow server at {MLFLOW_SERVER}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def optuna_postgres() -> str:
    """The PostgreSQL URL that holds Optuna studies (skip, or fail in CI, when it is down)."""
    import psycopg

    _use_service_credentials()
    try:
        psycopg.connect(OPTUNA_POSTGRES, connect_timeout=5).close()
    except psycopg.OperationalError:
        _service_missing(f"PostgreSQL at {OPTUNA_POSTGRES}")
    return OPTUNA_POSTGRES


@pytest.fixture
def workers_start_first(monkeypatch):
    """Batch valuation on worker processes, made deterministic: the pool is started and a
    worker holds the model before any job is sent, and workers start after 2 jobs, so every
    job from the third on runs on a worker (in use, the caller goes on valuing while they
    start)."""
    from homevision.valuation import parallel

    start = parallel._start_pool

    def started(model, workers):
        pool, ready, starter = start(model, workers)
        assert ready.wait(120), "no worker started within two minutes"
        return pool, ready, starter

    monkeypatch.setattr(parallel, "_start_pool", started)
    monkeypatch.setattr(parallel, "START_AFTER", 2)
