"""`homevision train` refuses what it cannot finish before any work, in one sentence (review 3:
too few sales for the price ranges, impossible settings in params.yaml)."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest

from homevision.data.synthetic import generate_listings, write_listings
from homevision.training import train as train_module

from .conftest import empty_store


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """An empty project (no runs) whose CV workers are not started: every refusal here comes
    before them."""
    home = tmp_path / "project"
    home.mkdir()
    shutil.copyfile(empty_store(), home / "mlflow.db")
    monkeypatch.setenv("HOMEVISION_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(train_module, "warm_workers", lambda: None)
    return home


def _runs(home: Path) -> int:
    client = mlflow.tracking.MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    return sum(len(client.search_runs([e.experiment_id])) for e in client.search_experiments())


def test_47_sales_are_refused_up_front_naming_the_50_the_ranges_need(project, tmp_path):
    export = write_listings(generate_listings(160, seed=3), tmp_path / "small.csv")  # 47 sales
    with pytest.raises(ValueError) as err:
        train_module.train(export, "task6", budget=5)
    said = str(err.value)
    assert said.startswith("only 47 labelled rows") and "need at least 50" in said, said
    assert "95% price range" in said and "5 outer folds" in said
    assert _runs(project) == 0  # refused before any run started
