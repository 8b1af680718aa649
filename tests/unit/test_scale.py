"""Which candidates a large training set keeps."""

from __future__ import annotations

from homevision.config import load_params
from homevision.training.scale import large_data_plan

ALL = tuple(load_params()["train"]["candidates"])
CFG = load_params()["train"]["large_data"]


def test_small_data_keeps_every_candidate():
    assert large_data_plan(608, ALL, CFG) == (ALL, [])
    assert large_data_plan(int(CFG["rows"]), ALL, CFG) == (ALL, [])


def test_large_data_drops_what_does_not_scale_and_says_why():
    kept, notes = large_data_plan(200_000, ALL, CFG)
    assert not {"svr", "knn", "mlp", "random_forest", "extra_trees"} & set(kept)
    assert {"ridge", "hist_gb", "xgboost", "lightgbm", "median_ppsf"} <= set(kept)
    assert len(notes) == 1 and "200,000 training rows" in notes[0] and "svr" in notes[0]


def test_nothing_to_drop_says_nothing():
    assert large_data_plan(200_000, ("ridge", "xgboost"), CFG) == (("ridge", "xgboost"), [])
