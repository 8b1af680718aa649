"""The champion rule: promoted only when better beyond the fold-to-fold noise, on fresh folds."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from homevision.training.evaluation import CVPlan
from homevision.training.promotion import decide
from homevision.training.selection import single_spec

PLAN = CVPlan(folds=5, repeats=2, seed=1009)


def _current(version: str = "3"):
    return SimpleNamespace(version=version)


def _logged(spec):
    return {"spec": spec, "feature_set": "task6"}


def test_a_tuned_challenger_no_better_than_noise_is_not_promoted(labelled):
    X, y = labelled
    champion = single_spec("ridge", {"alpha": 3.0})
    challenger = single_spec("ridge", {"alpha": 2.9})  # "tuned": a hair different
    decision = decide(challenger, "task6", X, y, _current(), _logged(champion), PLAN, 0.05)
    assert not decision.promote
    assert decision.note.startswith("kept champion v3: not better beyond noise")
    assert decision.comparison is not None and len(decision.comparison.champion_rmse) == 10
    assert decision.champion_version == "3"


def test_a_clearly_better_challenger_is_promoted(labelled):
    X, y = labelled
    decision = decide(
        single_spec("ridge"),
        "task6",
        X,
        y,
        _current(),
        _logged(single_spec("median_ppsf")),
        PLAN,
        0.05,
    )
    assert decision.promote, decision.note
    assert decision.comparison.mean_gain > 0 and decision.comparison.p_value < 0.05
    assert decision.note.startswith("promoted over v3")


def test_the_comparison_uses_fresh_folds_not_the_selection_ones(labelled):
    _X, y = labelled
    selection_folds = CVPlan(folds=5, repeats=2, seed=0).splits(y)
    fresh = PLAN.splits(y)
    assert any(
        a[1].tolist() != b[1].tolist()
        for ra, rb in zip(selection_folds, fresh, strict=True)
        for a, b in zip(ra, rb, strict=True)
    )


def test_a_champion_that_cannot_be_rescored_is_kept_and_reported(labelled):
    X, y = labelled
    renamed = {"kind": "single", "name": "a_candidate_renamed_since", "params": {}}
    decision = decide(
        single_spec("ridge"), "task6", X, y, _current("7"), _logged(renamed), PLAN, 0.05
    )
    assert not decision.promote
    assert "cannot be re-scored" in decision.note and "--promote" in decision.note
    missing = X.drop(columns=["CDOM"])
    decision = decide(
        single_spec("ridge"),
        "task6",
        missing,
        y,
        _current("7"),
        _logged(single_spec("ridge")),
        PLAN,
        0.05,
    )
    assert not decision.promote and "CDOM" in decision.note


def test_promote_forces_and_no_champion_promotes(labelled):
    X, y = labelled
    assert decide(
        single_spec("ridge"), "task6", X, y, _current(), None, PLAN, 0.05, force=True
    ).promote
    first = decide(single_spec("ridge"), "task6", X, y, None, None, PLAN, 0.05)
    assert first.promote and first.champion_version is None
    unknown = decide(single_spec("ridge"), "task6", X, y, _current(), None, PLAN, 0.05)
    assert not unknown.promote and "spec is unknown" in unknown.note


def _deployed_on(X, y, fresh):
    """A ridge champion fitted on the rows that are not fresh (what it saw when deployed)."""
    from homevision.features import get_feature_set
    from homevision.training.candidates import build_from_spec
    from homevision.training.promotion import Deployed

    model = build_from_spec(single_spec("ridge"), get_feature_set("task6"))
    return Deployed(model.fit(X[~fresh], y[~fresh]), fresh)


def test_a_deployed_champion_gone_stale_is_replaced_by_the_same_procedure_refitted(labelled):
    X, y = labelled
    fresh = np.asarray(X.index % 3 == 0)  # a third of the sales arrived after it was fitted
    moved = y.where(~fresh, y * 1.15)  # ... in a market 15% up
    deployed = _deployed_on(X, y, fresh)
    spec = single_spec("ridge")
    decision = decide(
        spec, "task6", X, moved, _current(), _logged(spec), PLAN, 0.05, deployed=deployed
    )
    assert decision.promote, decision.note
    assert "sales the champion never saw" in decision.comparison.folds
    # Without the deployed model, the same procedure against itself is never "better".
    refit = decide(spec, "task6", X, moved, _current(), _logged(spec), PLAN, 0.05)
    assert not refit.promote


def test_a_deployed_champion_still_current_is_kept(labelled):
    X, y = labelled
    fresh = np.asarray(X.index % 3 == 0)
    deployed = _deployed_on(X, y, fresh)
    spec = single_spec("ridge")
    decision = decide(spec, "task6", X, y, _current(), _logged(spec), PLAN, 0.05, deployed=deployed)
    assert not decision.promote, decision.note


def test_a_champions_listings_under_contract_are_not_fresh_when_they_sell():
    """The reference names the homes the champion was fitted on: its sales (an out-of-fold
    valuation) and its listings under contract. Before, a contract that sold later counted as
    a sale the champion never saw, though it had been fitted on it."""
    from homevision.training.promotion import fresh_sales, learnt_from

    reference = pd.DataFrame(
        {
            "MLSNumber": ["1", "2", "3", "4", "5"],
            "Status": ["Sold", "Sold", "Pending", "Active Option Contract", "Active"],
            "oof_valuation": [300_000.0, 410_000.0, np.nan, np.nan, np.nan],
        }
    )
    statuses = ("Pending", "Active Option Contract", "Active Contingent")
    seen = learnt_from(reference, statuses, "oof_valuation", "MLSNumber", "Status")
    assert seen == {"1", "2", "3", "4"}  # an Active listing was never fitted on
    new_export = pd.Series(["1", "3", "4", "5", "6"])
    assert fresh_sales(new_export, seen).tolist() == [False, False, False, True, True]
    # A feature set without contracts as evidence: only the sales were fitted on.
    assert learnt_from(reference, (), "oof_valuation", "MLSNumber", "Status") == {"1", "2"}


def _unseen(X, y, folds: int = 5):
    """What the honest estimate hands the champion rule: out-of-fold valuations of the
    procedure (here a ridge re-fitted per outer fold) and each row's outer fold."""
    from homevision.features import get_feature_set
    from homevision.training.candidates import build_from_spec
    from homevision.training.evaluation import cross_validate_model
    from homevision.training.promotion import Unseen

    plan = CVPlan(folds=folds, repeats=1, seed=7)
    splits = plan.splits(y)
    model = build_from_spec(single_spec("ridge"), get_feature_set("task6"))
    oof = cross_validate_model(model, X, y, splits, n_jobs=1).oof[0]
    fold_of = np.full(len(X), -1)
    for i, (_, test) in enumerate(splits[0]):
        fold_of[test] = i
    return Unseen(oof, fold_of, folds)


def test_a_deployed_champion_meets_the_challengers_honest_valuations(labelled, monkeypatch):
    """With the honest estimate's out-of-fold valuations, the challenger is scored on sales its
    procedure never saw, like the champion: its chosen spec is not re-fitted on fresh splits of
    the sales that chose it (which flattered it)."""
    from homevision.training import promotion

    X, y = labelled
    fresh = np.asarray(X.index % 3 == 0)
    moved = y.where(~fresh, y * 1.15)
    deployed = _deployed_on(X, y, fresh)
    spec = single_spec("ridge")

    def never(*args, **kwargs):
        raise AssertionError("the challenger's spec was re-scored on the sales that chose it")

    monkeypatch.setattr(promotion, "compare_deployed", never)
    unseen = _unseen(X, moved)

    def against(challenger):
        return decide(
            spec, "task6", X, moved, _current(), _logged(spec), PLAN, 0.05,
            deployed=deployed, unseen=challenger,
        )  # fmt: skip

    stale = against(unseen)
    assert stale.promote, stale.note
    assert "160 sales the champion never saw, valued by the challenger's procedure" in (
        stale.comparison.folds
    )
    assert len(stale.comparison.champion_rmse) == 5  # per outer fold, for the record
    # A challenger whose procedure values the fresh sales as the champion does: no gain.
    tie = against(promotion.Unseen(deployed.model.predict(X), unseen.fold_of, unseen.folds))
    assert not tie.promote and tie.note.startswith("kept champion v3"), tie.note


def test_an_honest_estimate_cut_short_falls_back_to_fresh_splits(labelled):
    from homevision.training.promotion import Unseen

    X, y = labelled
    fresh = np.asarray(X.index % 3 == 0)
    deployed = _deployed_on(X, y, fresh)
    spec = single_spec("ridge")
    full = _unseen(X, y)
    few = np.flatnonzero(fresh & (full.fold_of == 0))[:9]  # 9 fresh sales valued: too few
    one_fold = Unseen(np.where(np.isin(np.arange(len(X)), few), full.oof, np.nan), full.fold_of, 5)
    decision = decide(
        spec,
        "task6",
        X,
        y,
        _current(),
        _logged(spec),
        PLAN,
        0.05,
        deployed=deployed,
        unseen=one_fold,
    )
    assert decision.comparison.folds.endswith(PLAN.describe())  # the fresh-splits path
