"""The selection procedure: its nested replay never sees outer test rows, its studies never mix
data or search spaces, and the budget trims it instead of overrunning."""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pandas as pd
import pytest

from homevision.features import get_feature_set
from homevision.training import selection as sel
from homevision.training import tuning
from homevision.training.budget import Prices, plan_halving, plan_trials, plan_variants
from homevision.training.candidates import CANDIDATES
from homevision.training.evaluation import CVPlan

from .conftest import SMALL

FS = get_feature_set("task6")


def test_outer_test_rows_never_reach_selection_or_tuning(small, monkeypatch):
    X, y = small
    seen_select, seen_tune = [], []
    real_select, real_tune = sel.select_and_tune, sel.tune

    def spy_select(Xs, ys, *args, **kwargs):
        seen_select.append(set(Xs.index))
        return real_select(Xs, ys, *args, **kwargs)

    def spy_tune(candidate, fs, Xt, *args, **kwargs):
        seen_tune.append(set(Xt.index))
        return real_tune(candidate, fs, Xt, *args, **kwargs)

    monkeypatch.setattr(sel, "select_and_tune", spy_select)
    monkeypatch.setattr(sel, "tune", spy_tune)
    outer = CVPlan(folds=3, repeats=1, seed=7)
    estimate = sel.nested_estimate(X, y, FS, SMALL, outer)
    folds = outer.splits(y)[0]
    assert len(seen_select) == 3 and len(seen_tune) == 3
    for (train, test), rows, tuned in zip(folds, seen_select, seen_tune, strict=True):
        assert rows == set(train) and not rows & set(test)
        assert tuned <= set(train) and not tuned & set(test)
    assert estimate.folds_done == 3 and estimate.rows_scored == len(X)


def test_the_honest_estimate_replays_what_the_deployed_run_did(small):
    X, y = small
    done = sel.select_and_tune(X, y, FS, SMALL)
    replay = sel.replay_settings(SMALL, done)
    assert replay.candidates == SMALL.candidates and replay.plan == SMALL.plan
    assert replay.tune_top == len(done.tuned) == 1
    assert replay.tuning_trials == done.tuned["ridge"] == 2
    assert replay.tuning_timeout is None and replay.storage is None
    assert "2 Optuna trials" in sel.describe_procedure(replay)


def test_nested_estimate_stops_on_its_clock_and_says_so(small):
    X, y = small
    estimate = sel.nested_estimate(X, y, FS, SMALL, CVPlan(folds=4, repeats=1), seconds=0.01)
    assert estimate.folds_done == 1 and estimate.folds_planned == 4
    assert estimate.rows_scored == len(X) // 4
    assert "allowed 1 of them" in estimate.method


def test_a_replay_runs_as_many_trials_as_the_run_ran_pruned_ones_included(small):
    """A plan records each candidate's trial count and its replay runs that many (Optuna's
    n_trials counts every trial, pruned ones too). Recording only the completed ones made a
    replay stop early: on the real sample a run's tuned MLP (7 completed of more trials run)
    joined a blend that won, and its replay's did not, so the replay deployed another model."""
    from homevision.training.evaluation import CVResult

    X, y = small
    splits = CVPlan(folds=3, repeats=2, seed=0).splits(y)

    def evaluate(params, report):  # a trial's two repeats: far from alpha = 10 scores worse
        score = (np.log10(params["alpha"]) - 1.0) ** 2
        for step in range(2):
            report(step, score + step)
        return CVResult(pd.DataFrame({"rmse": [score, score + 2]}), np.zeros((2, 1)), 0.0)

    def run(n_trials):
        return tuning.tune(
            "ridge", FS, X, y, splits, n_trials, None, None, "s", evaluate=evaluate, data_key="k"
        )

    first = run(25)
    assert first.trials < 25  # some trials were pruned
    assert first.ran == 25
    assert run(first.trials).params != first.params  # the completed count does not replay
    again = run(first.ran)
    assert (again.params, again.value, again.trials) == (first.params, first.value, first.trials)


def test_two_trains_on_different_data_sharing_one_storage_never_mix_trials(small, tmp_path):
    X, y = small
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    settings = dataclasses.replace(SMALL, storage=storage)
    first = sel.select_and_tune(X, y, FS, settings)
    other_X = X.iloc[::-1].head(200).reset_index(drop=True)
    other_y = y.iloc[::-1].head(200).reset_index(drop=True)
    second = sel.select_and_tune(other_X, other_y, FS, settings)
    again = sel.select_and_tune(X, y, FS, settings)  # same data: same study, continued
    assert first.studies["ridge"] != second.studies["ridge"]
    assert again.studies["ridge"] == first.studies["ridge"]
    names = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage)}
    assert names[second.studies["ridge"]] == 2
    assert names[first.studies["ridge"]] == 4
    # The continued run chose among all 4 trials, so its honest estimate and its plan replay 4
    # (before: the 2 it ran, a lighter procedure than the one that chose the model).
    assert (first.tuned, again.tuned) == ({"ridge": 2}, {"ridge": 4})
    assert (first.earlier, again.earlier) == ({}, {"ridge": 2})
    assert sel.replay_settings(settings, again).tuning_trials == 4
    # A budgeted run re-plans each fold's trials from the prices, unless it continued a study
    # (review 3: the deployed winner was chosen among 12 trials, its honest estimate tuned 7).
    priced = dataclasses.replace(settings, costs={"median_ppsf": 0.01, "ridge": 0.1})
    priced = dataclasses.replace(priced, tuning_seconds=1.0)
    assert sel.replay_settings(priced, first).trials_by_candidate is None
    assert sel.replay_settings(priced, again).trials_by_candidate == {"ridge": 4}


def test_a_changed_search_space_gets_a_new_study_and_an_explicit_one_is_refused(
    small, tmp_path, monkeypatch
):
    X, y = small
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    splits = CVPlan(folds=3, repeats=1).splits(y)
    tuning.tune("ridge", FS, X, y, splits, n_trials=2, storage=storage, study_name="mine")
    before = tuning.study_name("homevision", "task6", "ridge", "k")
    changed = dataclasses.replace(
        CANDIDATES["ridge"], space=lambda t: {"alpha": t.suggest_int("alpha", 1, 50)}
    )
    monkeypatch.setitem(CANDIDATES, "ridge", changed)
    assert tuning.study_name("homevision", "task6", "ridge", "k") != before
    with pytest.raises(ValueError, match="another search space"):
        tuning.tune("ridge", FS, X, y, splits, n_trials=1, storage=storage, study_name="mine")
    settings = dataclasses.replace(SMALL, storage=storage)
    assert sel.select_and_tune(X, y, FS, settings).tuned == {"ridge": 2}


def test_an_explicit_study_made_on_other_data_is_refused(small, tmp_path):
    X, y = small
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    splits = CVPlan(folds=3, repeats=1).splits(y)
    tuning.tune("ridge", FS, X, y, splits, n_trials=1, storage=storage, study_name="s")
    half = X.head(120)
    with pytest.raises(ValueError, match="other data"):
        tuning.tune(
            "ridge", FS, half, y.head(120), CVPlan(3, 1).splits(y.head(120)), 1, None, storage, "s"
        )


COSTS = {
    "median_ppsf": 0.01,
    "ridge": 0.1,
    "svr": 0.1,
    "knn": 0.1,
    "xgboost": 0.5,
    "random_forest": 1.0,
    "catboost": 2.0,
}


PRICES = Prices(
    full={n: c + 0.05 for n, c in COSTS.items()},
    model=COSTS,
    prepare={"linear": 0.05, "tree": 0.05},
)


def test_the_halving_plan_trims_repeats_then_the_costliest_and_always_leaves_tuning_time():
    names = list(COSTS)
    full = plan_halving(PRICES, names, 5, 5, 1e6)
    assert full.rungs == (1, 5) and full.candidates == names and not full.degraded
    assert full.stack and full.tuning_seconds > 0.4 * 1e6 * 0.9
    tight = plan_halving(PRICES, names, 5, 5, 12.0)
    assert tight.rungs[-1] < 5 and tight.degraded[0].startswith("CV repeats 5 ->")
    assert tight.predicted_seconds <= 12.0 * 0.6 + 1e-9 or "catboost" not in tight.candidates
    assert tight.tuning_seconds >= 12.0 * 0.4 - 1e-9  # Optuna keeps its share
    floor = plan_halving(PRICES, names, 5, 5, 0.0)
    assert "median_ppsf" in floor.candidates and len(floor.candidates) == 5  # 4 learned left
    assert "catboost" not in floor.candidates and not floor.stack


def test_successive_halving_drops_the_weakest_and_prices_only_what_overruns():
    from homevision.training.evaluation import CVResult

    def result(rmse):
        return CVResult(pd.DataFrame({"rmse": [rmse]}), np.zeros((1, 3)), 0.0)

    scores = {"knn": 90.0, "svr": 60.0, "random_forest": 58.0, "catboost": 55.0}
    results = {n: result(v) for n, v in scores.items()}
    alive = list(scores)
    plain = dataclasses.replace(SMALL, keep=0.5)  # SMALL: 3 folds
    assert sel.promote(alive, results, plain, more=2) == ["random_forest", "catboost"]
    roomy = dataclasses.replace(SMALL, keep=0.75, costs=COSTS, rung_seconds=1e3)
    assert sel.promote(alive, results, roomy, more=2) == ["svr", "random_forest", "catboost"]
    # 2 more repeats x 3 folds: catboost 12 s, random_forest 6 s, svr 0.6 s, knn 0.6 s. The
    # best stays although slow; random_forest would overrun 13 s, so svr behind it goes on.
    tight = dataclasses.replace(roomy, rung_seconds=13.0)
    assert sel.promote(alive, results, tight, more=2) == ["svr", "catboost"]


def test_the_winner_is_picked_within_one_standard_error_blend_then_simplest():
    from homevision.training.evaluation import CVResult

    y = np.array([100.0, 200.0, 300.0, 400.0])
    splits = [[(np.array([2, 3]), np.array([0, 1])), (np.array([0, 1]), np.array([2, 3]))]]

    def result(pred):
        pred = np.asarray(pred, dtype=float)
        rmse = float(np.sqrt(np.mean((pred - y) ** 2)))
        return CVResult(pd.DataFrame({"rmse": [rmse]}), pred[None, :], 0.0)

    results = {
        "svr": result([105, 195, 320, 380]),  # best: RMSE 14.6 (folds 5 and 20: SE 7.5)
        "ridge": result([115, 185, 315, 385]),  # 15: within noise of the best
        "knn": result([150, 250, 350, 450]),  # 50: not
    }
    order, why = sel.preference_order(results, splits, y, repeats=1)
    assert order[0] == "ridge" and order[-1] == "knn" and "one standard error" in why
    assert sel.preference_order(results, splits, y, repeats=1, one_se=False)[0][0] == "svr"
    results["blend"] = result([118, 182, 318, 382])  # 18: a little worse, still within noise
    assert sel.preference_order(results, splits, y, repeats=1)[0][0] == "blend"


def test_the_selection_metric_ranks_blends_and_sets_the_noise_band():
    from homevision.training.fold_cache import LogCVResult

    y = np.array([100.0, 200.0, 1000.0, 2000.0])
    splits = [[(np.array([2, 3]), np.array([0, 1])), (np.array([0, 1]), np.array([2, 3]))]]

    def result(pred):
        pred = np.asarray(pred, dtype=float)
        ape = np.abs(pred - y) / y
        rows = {"rmse": [float(np.sqrt(np.mean((pred - y) ** 2)))], "mape": [float(ape.mean())]}
        return LogCVResult(pd.DataFrame(rows), pred[None, :], 0.0, log_oof=np.log(pred)[None, :])

    results = {
        # Off by 30% on the cheap homes, exact on the dear ones: best in dollars, worst in %.
        "xgboost": result([130, 260, 1000, 2000]),
        # 5% off everywhere: best in percent.
        "svr": result([105, 210, 1050, 2100]),
    }
    assert sel.preference_order(results, splits, y, 1, False, "rmse")[0][0] == "xgboost"
    order, why = sel.preference_order(results, splits, y, 1, False, "mape")
    assert order[0] == "svr" and why == "best CV MAPE (svr)"
    _, why = sel.preference_order(results, splits, y, 1, True, "mape")
    assert "one standard error (0.00%) of the best CV MAPE (svr)" in why
    assert sel.forward_blend(["svr", "xgboost"], results, y, 2, "mape") == ["svr"]


def test_a_blend_member_joins_only_when_its_gain_beats_the_fold_noise():
    from homevision.training.fold_cache import LogCVResult

    y = np.full(8, 100.0)
    # Four folds of two homes; the three candidates were scored on the same splits.
    splits = [[(np.setdiff1d(np.arange(8), t), t) for t in np.arange(8).reshape(4, 2)]]

    def result(pred):
        pred = np.asarray(pred, dtype=float)
        rmse = float(np.sqrt(np.mean((pred - y) ** 2)))
        return LogCVResult(
            pd.DataFrame({"rmse": [rmse]}), pred[None, :], 0.0, log_oof=np.log(pred)[None, :]
        )

    results = {
        "svr": result([110, 110, 110, 110, 110, 110, 110, 110]),
        # Cancels svr's error on every fold: a steady gain, far beyond its noise.
        "mlp": result([91, 91, 91, 91, 91, 91, 91, 91]),
        # Helps on one fold only: the blend's mean gain is under its fold-to-fold noise.
        "knn": result([91, 91, 110, 110, 110, 110, 110, 110]),
    }
    ranked = ["svr", "knn"]
    # Without the folds, any gain counts (the old rule): knn joins.
    assert sel.forward_blend(ranked, results, y, 2) == ["svr", "knn"]
    assert sel.forward_blend(ranked, results, y, 2, splits=splits) == ["svr"]
    assert sel.forward_blend(["svr", "mlp"], results, y, 2, splits=splits) == ["svr", "mlp"]


def test_an_unknown_selection_metric_is_refused_in_one_sentence():
    from homevision.training.train import select_by

    assert select_by({"select_by": "mdape"}) == "mdape" and select_by({}) == "rmse"
    with pytest.raises(ValueError, match=r"train.select_by is 'r2'; choose one of rmse, mae"):
        select_by({"select_by": "r2"})
    # A feature set's own metric wins: task6 keeps the take-home's RMSE, offmarket inherits.
    assert select_by({"select_by": "mape"}, get_feature_set("task6")) == "rmse"
    assert select_by({"select_by": "mape"}, get_feature_set("offmarket")) == "mape"
    odd = dataclasses.replace(get_feature_set("task6"), select_by="r2")
    with pytest.raises(ValueError, match=r"feature_sets.task6.select_by is 'r2'"):
        select_by({"select_by": "mape"}, odd)


def test_trials_are_planned_to_the_time_left():
    assert plan_trials(COSTS, ["ridge", "svr"], 5, 2, 40, 1e6) == (["ridge", "svr"], 40)
    names, trials = plan_trials(COSTS, ["ridge", "catboost"], 5, 2, 40, 30.0)
    assert names == ["ridge"] and 4 <= trials < 40
    assert plan_trials(COSTS, ["catboost"], 5, 2, 40, 1.0) == ([], 0)
    assert plan_trials(COSTS, ["ridge"], 5, 1, 2, 1e6) == (["ridge"], 2)


def test_interval_variants_are_planned_to_the_time_left():
    variants = ["cv_base", "cv_plus", "jackknife_plus_ab"]
    assert plan_variants(0.1, variants, 5, 1e6) == variants
    assert plan_variants(1.0, variants, 5, 40.0) == ["cv_base", "cv_plus"]
    assert plan_variants(100.0, variants, 5, 0.0) == ["cv_base"]


def test_budget_helpers_are_deterministic():
    a = plan_halving(PRICES, list(COSTS), 5, 5, 12.0)
    b = plan_halving(PRICES, list(COSTS), 5, 5, 12.0)
    assert a == b and np.isfinite(a.predicted_seconds)


def test_the_stack_is_tried_beside_the_blend_with_non_negative_weights(small):
    X, y = small
    settings = dataclasses.replace(SMALL, candidates=("ridge", "hist_gb"), tune_top=0, stack=True)
    done = sel.select_and_tune(X, y, FS, settings)
    assert "stack" in set(done.results)
    assert [m[0] for m in done.specs["stack"]["members"]] == ["ridge", "hist_gb"]
    stack = sel.build_from_spec(done.specs["stack"], FS).fit(X, y)
    meta = stack.estimator_.final_estimator_
    assert (meta.coef_ >= 0).all() and len(meta.coef_) == 2
    assert "and the stack of the best 2" in sel.describe_procedure(settings)


def test_the_tuning_in_words_is_what_each_outer_fold_ran():
    assert sel.tuning_text([{}, {}]) == "no tuning"
    said = sel.tuning_text([{"elasticnet": 7}, {"elasticnet": 7}, {}, {"ridge": 1}])
    assert said == (
        "tuned with Optuna (elasticnet 7 trials in 2 of 4 folds; ridge 1 trial in 1 of 4 "
        "folds; no tuning in 1)"
    )


def test_the_honest_method_says_no_tuning_when_the_folds_budget_allowed_none(small):
    # Review 3: the card said "the best 1 tuned with 40 Optuna trials each" (the cap) where
    # each fold's prices left no trial.
    X, y = small
    settings = dataclasses.replace(
        SMALL, tuning_trials=40, costs={"median_ppsf": 0.01, "ridge": 5.0}, tuning_seconds=0.01
    )
    assert "40 Optuna trials" in sel.describe_procedure(settings)
    estimate = sel.nested_estimate(X, y, FS, settings, CVPlan(folds=2, repeats=1, seed=7))
    assert "no tuning" in estimate.method and "40" not in estimate.method


def test_the_study_key_changes_with_the_evidence_and_the_feature_set_definition(small):
    # Review 3: the export with every listing under contract at 1.6x its asking price got the
    # same study name as the original, so --storage continued trials scored on other evidence.
    from homevision.valuation.evidence import AskingEvidence

    X, y = small
    splits = CVPlan(3, 1).splits(y)
    rows = X.head(20).assign(ListPrice=X["ClosePrice"].head(20))
    evidence = dataclasses.replace(FS, evidence=AskingEvidence(rows))
    dearer = dataclasses.replace(
        FS, evidence=AskingEvidence(rows.assign(ListPrice=1.6 * rows["ListPrice"]))
    )
    wider = dataclasses.replace(FS, numeric=(*FS.numeric, "NumberOfStories"))
    keys = [tuning.rows_key(X, y, splits, fs) for fs in (FS, evidence, dearer, wider)]
    assert len(set(keys)) == 4
    assert tuning.rows_key(X, y, splits, dataclasses.replace(FS)) == keys[0]
