"""`homevision train` refuses what it cannot finish before any work, in one sentence (review 3:
too few sales for the price ranges, impossible settings in params.yaml)."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pytest
import yaml

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


@pytest.mark.parametrize(
    ("given", "sentence"),
    [
        (
            {"train": {"budget_shares": {"procedure": 1.0}}},
            "params.yaml train.budget_shares.procedure is 1; it must be in [0, 1)",
        ),
        (
            {"intervals": {"confidence": 0.85}},
            "params.yaml intervals.confidence 0.85 must be one of intervals.levels "
            "[0.5, 0.8, 0.9, 0.95]",
        ),
        (
            {"intervals": {"levels": [0.5, 1.2], "confidence": 0.5}},
            "params.yaml intervals.levels has 1.2; each must be in (0, 1)",
        ),
        ({"train": {"folds": 1}}, "params.yaml train.folds is 1; it must be a whole number >= 2"),
        (
            {
                "feature_sets": {
                    "mine": {
                        "numeric": ["SqFtTotal"],
                        "baths": "BathsTotal",
                        "schol": "ElementarySchoolName",
                    }
                }
            },
            "params.yaml feature_sets.mine has no school (required: numeric, baths, school); "
            "it has unknown key(s) schol",
        ),
    ],
)
def test_an_impossible_setting_is_refused_before_any_work_naming_its_key(
    project, tmp_path, monkeypatch, given, sentence
):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(given))
    monkeypatch.setenv("HOMEVISION_PARAMS", str(params))
    export = write_listings(generate_listings(200, seed=3), tmp_path / "listings.csv")
    with pytest.raises(ValueError) as err:
        train_module.train(export, "mine" if "feature_sets" in given else "task6", budget=5)
    assert str(err.value) == sentence
    assert _runs(project) == 0
