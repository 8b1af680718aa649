"""Fixtures for model tests: labelled synthetic listings with a known price structure."""

from __future__ import annotations

import pandas as pd
import pytest

from homevision.data.listings import coerce_types
from homevision.data.synthetic import generate_listings
from homevision.training.candidates import build_blend, build_model, build_stack
from homevision.training.evaluation import CVPlan
from homevision.training.selection import SelectionSettings
from homevision.valuation.engine import RawEncoder, compile_model

# A selection procedure small enough for tests: 3 folds, 2 candidates, 2 trials.
SMALL = SelectionSettings(
    plan=CVPlan(folds=3, repeats=1, seed=0),
    candidates=("median_ppsf", "ridge"),
    tune_top=1,
    tuning_trials=2,
    tuning_timeout=None,
    blend_top=2,
)


@pytest.fixture(scope="session")
def labelled() -> tuple[pd.DataFrame, pd.Series]:
    frame = coerce_types(generate_listings(1500, seed=11).astype(object))
    sold = frame[frame["Status"] == "Sold"].reset_index(drop=True)
    return sold, sold["ClosePrice"].astype(float)


@pytest.fixture(scope="module")
def small(labelled) -> tuple[pd.DataFrame, pd.Series]:
    """The first 240 labelled rows: enough for a 3-fold procedure."""
    X, y = labelled
    return X.head(240).reset_index(drop=True), y.head(240).reset_index(drop=True)


@pytest.fixture(scope="module")
def train(labelled) -> tuple[pd.DataFrame, pd.Series]:
    """The first 300 labelled rows: what the engine's coalition tests fit on."""
    X, y = labelled
    return X.head(300).reset_index(drop=True), y.head(300).reset_index(drop=True)


def compiled(model, fs, X, y):
    """Return (engine, encoder) of `model` fitted on X, y over feature set `fs`."""
    encoder = RawEncoder.fit(X, fs)
    return compile_model(model.fit(X, y), encoder, X), encoder


def build_kind(kind: str, fs):
    """Return an unfitted model of `kind` over feature set `fs`: one model, a blend (SVR and
    MLP) or a stack (SVR and ridge), what the engine's coalition tests compile."""
    if kind == "blend":
        return build_blend([("svr", {}), ("mlp", {})], fs)
    if kind == "stack":
        return build_stack([("svr", {}), ("ridge", {})], fs)
    return build_model(kind, fs)
