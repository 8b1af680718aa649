"""Every coalition hybrid valued at once: the SVR's kernel factors give the engine's own numbers,
and the column dependencies they rest on hold for every feature set."""

from __future__ import annotations

import numpy as np
import pytest

from homevision.features import get_feature_set
from homevision.training.candidates import build_blend, build_model
from homevision.valuation.engine.coalitions import (
    CoalitionValues,
    hybrid_values,
    kernel_groups,
)
from homevision.valuation.engine.programs import Chain
from homevision.valuation.explain import coalition_weights

from .conftest import build_kind, compiled


def _chains(node) -> list[Chain]:
    """The features -> model chains inside a program (blends, stacks, the living-area trend)."""
    if isinstance(node, Chain):
        return [node]
    inner = [node.inner] if hasattr(node, "inner") else list(getattr(node, "members", []))
    return [chain for part in inner for chain in _chains(part)]


@pytest.mark.parametrize("name", ["task6", "offmarket", "onmarket"])
def test_an_encoded_column_moves_only_with_the_raw_columns_it_is_said_to_depend_on(name, train):
    X, y = train
    fs = get_feature_set(name)
    engine, encoder = compiled(build_model("svr", fs), fs, X, y)
    (chain,) = _chains(engine.program)
    deps = chain.features.dependencies()
    assert deps is not None and len(deps) == chain.features.width
    frame = X[fs.raw_columns].astype(object)
    frame.iloc[::7] = None  # missing values take the imputers' and repairs' branches too
    raw = encoder.encode(frame)
    before = chain.features(raw)
    for j in range(raw.shape[1]):
        moved = raw.copy()
        moved[:, j] = np.roll(raw[:, j], 13)  # another home's value of column j
        after = chain.features(moved)
        changed = ~((after == before) | (np.isnan(after) & np.isnan(before))).all(axis=0)
        said = np.array([j in d for d in deps])
        assert not (changed & ~said).any(), (fs.raw_columns[j], np.flatnonzero(changed & ~said))
        assert changed[said].any(), fs.raw_columns[j]  # a column the model reads does move


def test_task6_kernel_falls_into_three_groups(train):
    X, y = train
    fs = get_feature_set("task6")
    engine, encoder = compiled(build_model("svr", fs), fs, X, y)
    (chain,) = _chains(engine.program)
    groups = [[encoder.columns[j] for j in cols] for cols, _ in kernel_groups(chain.features)]
    assert groups == [
        ["BedsTotal", "LotSizeAreaSQFT", "SqFtTotal", "BathsTotal"],  # tied by the ratios
        ["CDOM"],
        ["ElementarySchoolName"],
    ]
    encoded = np.concatenate([enc for _, enc in kernel_groups(chain.features)])
    assert sorted(encoded) == list(range(chain.features.width))


@pytest.mark.parametrize("kind", ["svr", "blend", "stack"])
def test_factored_kernel_values_every_hybrid_as_the_engine_does(kind, train):
    X, y = train
    fs = get_feature_set("task6")
    engine, encoder = compiled(build_kind(kind, fs), fs, X, y)
    coalitions = CoalitionValues.for_program(engine.program)
    assert coalitions is not None
    masks, _ = coalition_weights(len(encoder.columns))
    homes = X[fs.raw_columns].iloc[200:230].astype(object).reset_index(drop=True)
    homes.iloc[3] = None  # a home with nothing but missing values
    rows = encoder.encode(homes)
    background = encoder.encode(X[fs.raw_columns].head(7))
    got = coalitions(rows, background, masks)
    expected = hybrid_values(engine.predict_matrix, rows, background, masks)
    assert got.shape == (30, 7, len(masks))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-6)


def test_programs_without_an_svr_keep_the_plain_path(train):
    X, y = train
    fs = get_feature_set("task6")
    engine, _ = compiled(build_blend([("ridge", {}), ("mlp", {})], fs), fs, X, y)
    assert CoalitionValues.for_program(engine.program) is None
