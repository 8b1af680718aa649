"""Shared fixtures: the real sample when ../shared has it, small synthetic exports otherwise."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from homevision.data.synthetic import generate_listings, write_listings

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
