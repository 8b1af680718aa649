"""The leaderboard's words (review 3, defect 8): dropped candidates listed weakest first for
real, and no "± $0" spread for a candidate that ran one repeat."""

from __future__ import annotations

import numpy as np
import pandas as pd

from homevision.training.card import leaderboard_markdown
from homevision.training.evaluation import CVPlan, CVResult
from homevision.training.selection import SelectionResult
from homevision.training.train import halving_text

METRICS = ["rmse", "mae", "r2", "mape", "mdape", "within_10"]


def _result(rmses: list[float]) -> CVResult:
    rows = [
        {"rmse": r, "mae": r / 2, "r2": 0.9, "mape": r / 1e6, "mdape": r / 2e6, "within_10": 0.6}
        for r in rmses
    ]
    return CVResult(pd.DataFrame(rows, columns=METRICS), np.zeros((len(rmses), 3)), 1.0)


def _selection() -> SelectionResult:
    results = {
        "xgboost": _result([60_000.0, 62_000.0, 61_000.0]),
        "comparables": _result([69_947.0]),  # the best of the three dropped
        "elasticnet": _result([74_131.0]),
        "ridge": _result([76_006.0]),
    }
    reached = {"xgboost": 3, "comparables": 1, "elasticnet": 1, "ridge": 1}
    return SelectionResult(
        results, {}, "xgboost", None, CVPlan(folds=3, repeats=3), reached=reached
    )


def test_dropped_candidates_are_listed_worst_score_first_not_by_name():
    said = halving_text(_selection())
    assert "ridge, elasticnet, comparables;" in said, said
    assert "worst CV RMSE" in said


def test_a_candidate_with_one_repeat_shows_no_spread_instead_of_zero():
    selection = _selection()
    card = leaderboard_markdown(selection.table, selection.repeats_run)
    lines = {line.split(" | ")[0].strip("| "): line for line in card.splitlines()[2:]}
    assert "$69,947 ± n/a" in lines["comparables"] and "± $0" not in card
    assert "$61,000 ± $816" in lines["xgboost"]  # three repeats: their spread
