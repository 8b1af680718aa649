"""Replayable training (issue 28): one recorded plan gives the same model on any clock."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from homevision.data.listings import coerce_types, read_export
from homevision.data.synthetic import generate_listings, write_listings
from homevision.tracking import load_model
from homevision.training.plan import FILE_NAME, TrainPlan, load_plan
from homevision.training.train import train

from .conftest import cli, empty_store, tiny_params

pytestmark = [pytest.mark.slow]
TIMINGS = ["fit_seconds"]  # leaderboard columns that measure the clock, not the model


def _outcome(outcome) -> tuple[pd.DataFrame, dict]:
    table = outcome.selection.table.drop(columns=TIMINGS, errors="ignore")
    honest = {k: v for k, v in outcome.honest.items() if k != "method"}
    return table, honest


def _train_in(home: Path, monkeypatch, export: Path, **options):
    """Train in-process in its own project (a copy of the empty store: no champion, so no
    promotion check), and value 60 homes with the model; return (outcome, prices)."""
    home.mkdir()
    shutil.copyfile(empty_store(), home / "mlflow.db")
    monkeypatch.setenv("HOMEVISION_HOME", str(home))
    outcome = train(export, **options)
    rows = coerce_types(read_export(export)).head(60)
    prices = load_model(f"runs:/{outcome.run_id}/model").predict_interval(rows, 0.9)
    return outcome, prices


def test_a_recorded_plan_replays_to_the_same_model_however_short_the_budget(tmp_path, monkeypatch):
    export = write_listings(generate_listings(450, seed=5), tmp_path / "listings.csv")
    params = tiny_params(tmp_path, ["median_ppsf", "ridge"])
    monkeypatch.setenv("HOMEVISION_PARAMS", str(params))
    first, first_prices = _train_in(tmp_path / "first", monkeypatch, export, budget=40)
    plan = load_plan(tmp_path / "first" / "reports" / FILE_NAME)
    assert plan.source_run == first.run_id and plan.trials == {"ridge": 2}, plan

    table, honest = _outcome(first)
    for name, budget in (("replay", 40), ("hurried", 1)):  # a tiny budget: the clock is ignored
        again, prices = _train_in(tmp_path / name, monkeypatch, export, budget=budget, plan=plan)
        assert again.selection.winner == first.selection.winner
        again_table, again_honest = _outcome(again)
        pd.testing.assert_frame_equal(again_table, table)
        assert again_honest == honest
        for mine, theirs in zip(prices, first_prices, strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=0, atol=0.005)  # to the cent
        recorded = load_plan(tmp_path / name / "reports" / FILE_NAME)  # recorded again
        assert recorded.source_run == first.run_id
        assert recorded.budget_notes[0].startswith("replays the plan of run")
        assert recorded.blend_noise  # blend members had to beat the fold noise
        assert recorded.trials_run  # the trials run, pruned ones included, were recorded
        assert not any("completed Optuna trials only" in n for n in recorded.budget_notes)


# A plan.json as written before the optional keys the tests below add or leave out.
OLD_PLAN = {
    "feature_set": "task6",
    "raw_columns": ["SqFtTotal"],
    "seed": 0,
    "folds": 5,
    "repeats": 2,
    "candidates": ["ridge", "svr"],
    "blend_top": 2,
    "stack": False,
    "outer_folds": 5,
    "outer_folds_run": 5,
    "interval_variants": ["cv_base"],
    "interval_outer_folds": 5,
    "promotion_repeats": 3,
    "shap_rows": 20,
}


def test_a_plan_recorded_before_the_blend_noise_rule_replays_without_it():
    from homevision.training.plan import replay_selection
    from homevision.training.selection import SelectionSettings

    recorded = {**OLD_PLAN, "trials": {}}
    old = TrainPlan.from_dict(recorded)  # written before the key existed
    assert replay_selection(old, SelectionSettings()).blend_noise is False
    new = TrainPlan.from_dict({**recorded, "blend_noise": True})
    assert replay_selection(new, SelectionSettings()).blend_noise is True


def test_a_plan_that_counted_completed_trials_only_says_its_replay_may_tune_with_fewer():
    from homevision.training.plan import replay_notes

    recorded = {**OLD_PLAN, "trials": {"svr": 7}, "source_run": "abc"}
    old = replay_notes(TrainPlan.from_dict(recorded))  # written before the key existed
    assert old[0] == "replays the plan of run abc: no timing decided"
    assert "completed Optuna trials only" in old[1]
    assert replay_notes(TrainPlan.from_dict({**recorded, "trials_run": True})) == old[:1]
    assert len(replay_notes(TrainPlan.from_dict({**recorded, "trials": {}}))) == 1


def test_a_plan_this_code_cannot_replay_is_refused_in_one_sentence(tmp_path):
    plan = TrainPlan(
        feature_set="task6",
        raw_columns=["SqFtTotal"],
        seed=0,
        folds=5,
        repeats=1,
        candidates=["ridge", "quantum_forest"],
        trials={},
        blend_top=2,
        stack=False,
        outer_folds=5,
        outer_folds_run=5,
        interval_variants=["cv_plus"],
        interval_outer_folds=5,
        promotion_repeats=3,
        shap_rows=20,
    )
    export = write_listings(generate_listings(60, seed=1), tmp_path / "listings.csv")
    path = tmp_path / "plan.json"
    path.write_text(plan.to_json())
    proc = cli(tmp_path, "train", "--data", str(export), "--plan", str(path))
    assert proc.returncode == 2
    assert "the plan's feature set task6 read other columns than this code's" in proc.stdout
    from homevision.features import get_feature_set

    task6 = get_feature_set("task6")
    columns = {**json.loads(plan.to_json()), "raw_columns": list(task6.raw_columns)}
    path.write_text(json.dumps(columns))
    proc = cli(tmp_path, "train", "--data", str(export), "--plan", str(path))
    assert proc.returncode == 2
    assert "fitted other listings beside the sales than this code's (the plan: none;" in " ".join(
        proc.stdout.split()
    )
    path.write_text(json.dumps({**columns, "evidence_statuses": list(task6.evidence_statuses)}))
    proc = cli(tmp_path, "train", "--data", str(export), "--plan", str(path))
    assert proc.returncode == 2
    said = " ".join(proc.stdout.split())
    assert said == "error: the plan names candidate(s) this code does not have: quantum_forest"
    path.write_text('{"feature_set": "task6"}')
    proc = cli(tmp_path, "train", "--data", str(export), "--plan", str(path))
    assert proc.returncode == 2 and "not a training plan (missing" in proc.stdout
