"""The compiled engine equals the scikit-learn path, family by family, ranges and explanations
included; what it cannot compile falls back to scikit-learn, visibly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.svm import SVR

from homevision.data.listings import coerce_types
from homevision.data.synthetic import generate_listings
from homevision.features import get_feature_set, split_tokens
from homevision.training.candidates import CANDIDATES, build_blend, build_model, build_stack
from homevision.valuation.engine import RawEncoder
from homevision.valuation.engine.raw import FEW_RECORDS, token_bits
from homevision.valuation.engine.trees import NATIVE_ROWS
from homevision.valuation.intervals import interval_bounds
from homevision.valuation.model import ValuationModel

TOLERANCE = 1.0  # dollars


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """4,000 synthetic listings of another market draw: the rows both paths value."""
    return coerce_types(generate_listings(4_000, seed=5).astype(object))


@pytest.fixture(scope="module")
def train(labelled) -> tuple[pd.DataFrame, pd.Series]:
    X, y = labelled
    return X.head(400).reset_index(drop=True), y.head(400).reset_index(drop=True)


def _model(name: str, fs):
    if name == "blend":
        return build_blend([("svr", {}), ("hist_gb", {}), ("ridge", {})], fs)
    if name == "stack":
        return build_stack([("svr", {}), ("hist_gb", {}), ("ridge", {})], fs)
    return build_model(name, fs)


FAMILIES = [*CANDIDATES, "blend", "stack"]


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_engine_equals_scikit_learn_with_ranges(name, train, rows):
    X, y = train
    variant = "cv_base" if CANDIDATES.get(name) and CANDIDATES[name].family is None else "cv_plus"
    model = ValuationModel(
        _model(name, get_feature_set("task6")), interval_variant=variant, background_rows=8
    ).fit(X, y)
    assert model.uses_engine, model.engine_note_
    point = model.predict(rows)
    assert np.abs(point - model.predict(rows, engine=False)).max() <= TOLERANCE
    if model.conformal_ is None:  # constant factors: the range is the point times a factor
        fast = np.column_stack(model.predict_interval(rows))
        slow = np.column_stack(model.predict_interval(rows, engine=False))
        assert np.abs(fast - slow).max() <= TOLERANCE
    else:  # every level in one MAPIE call per path: compiled fold models vs scikit-learn's
        levels = list(model.levels)
        fast = interval_bounds(model.fast_conformal_, model.encoder_.encode(rows), levels)
        slow = interval_bounds(model.conformal_, rows, levels)
        for level in levels:
            assert np.abs(fast[level] - slow[level]).max() <= TOLERANCE, (name, level)
    small = rows.head(NATIVE_ROWS // 2)  # trees: the numpy walk, not the library's predict
    np.testing.assert_allclose(
        model.predict(small), model.predict(small, engine=False), atol=TOLERANCE, rtol=0
    )
    homes = rows.head(4)
    fast_shap = model.explain(homes)
    slow_shap = model.explain(homes, engine=False)
    np.testing.assert_allclose(
        fast_shap.values.to_numpy(), slow_shap.values.to_numpy(), atol=TOLERANCE, rtol=0
    )
    total = fast_shap.base_values + fast_shap.values.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, model.predict(homes, engine=False), atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("feature_set", ["offmarket", "onmarket"])
def test_engine_covers_text_columns_of_the_wider_feature_sets(feature_set, train, rows):
    X, y = train
    fs = get_feature_set(feature_set)
    model = build_blend([("ridge", {}), ("hist_gb", {})], fs).fit(X, y)
    from homevision.valuation.engine import compile_model

    engine = compile_model(model, RawEncoder.fit(X, fs), X)
    odd = rows.head(300).copy()
    odd.loc[:5, "SubdivisionName"] = "A subdivision nobody has seen"
    odd.loc[6:10, ["City", "ElementarySchoolName"]] = None
    odd.loc[11:15, "ElementarySchoolName"] = "Unknown"  # the imputers' own fill value
    if fs.fee:  # a frequency never seen, a missing one, and no fee at all
        odd.loc[16:18, fs.fee[1]] = "Biweekly"
        odd.loc[19:21, fs.fee[1]] = None
        odd.loc[22:24, fs.fee[0]] = None
    for column in fs.token_lists:  # unseen items and unseen combinations of known items
        known = sorted({t for v in X[column] for t in split_tokens(v)})
        odd.loc[25:27, column] = f"An item nobody has listed, {known[0]}"
        odd.loc[28:30, column] = ", ".join(reversed(known))
        odd.loc[31:33, column] = None
    np.testing.assert_allclose(engine.predict(odd), model.predict(odd), atol=TOLERANCE, rtol=0)


def test_unsupported_model_falls_back_to_scikit_learn_and_says_so(train, rows):
    X, y = train
    estimator = build_model("svr", get_feature_set("task6"))
    estimator.estimator.steps[-1] = ("model", SVR(kernel="poly", degree=2))
    model = ValuationModel(estimator, interval_variant="cv_base", background_rows=8).fit(X, y)
    assert not model.uses_engine
    assert "SVR with a 'poly' kernel" in model.engine_note_
    homes = rows.head(50)
    np.testing.assert_array_equal(model.predict(homes), model.predict(homes, engine=False))
    shap = model.explain(homes.head(2))
    total = shap.base_values + shap.values.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, model.predict(homes.head(2)), atol=TOLERANCE, rtol=0)


def test_raw_encoder_round_trips_what_the_models_read(train):
    X, _ = train
    fs = get_feature_set("task6")
    encoder = RawEncoder.fit(X, fs)
    frame = X[fs.raw_columns].head(5).copy()
    frame.loc[0, "BathsTotal"] = "2.1"
    frame.loc[1, "BathsTotal"] = None
    frame.loc[2, "ElementarySchoolName"] = "Not a school in training"
    frame.loc[3, "ElementarySchoolName"] = None
    matrix = encoder.encode(frame)
    assert matrix[0, encoder.index("BathsTotal")] == 21.0
    assert np.isnan(matrix[1, encoder.index("BathsTotal")])
    school = encoder.index("ElementarySchoolName")
    assert matrix[2, school] == encoder.unseen_code("ElementarySchoolName")
    assert matrix[3, school] == encoder.missing_code("ElementarySchoolName")
    back = encoder.decode(matrix)
    assert back["BathsTotal"].iloc[0] == "2.1"
    assert back["BathsTotal"].iloc[1] is None
    assert back["SqFtTotal"].tolist() == frame["SqFtTotal"].astype(float).tolist()
    assert back["ElementarySchoolName"].iloc[4] == frame["ElementarySchoolName"].iloc[4]
    # Small batches (Python lookups) and large ones (vectorised) encode alike.
    big = pd.concat([frame] * 30, ignore_index=True)
    np.testing.assert_array_equal(encoder.encode(big)[:5], matrix)


def test_raw_encoder_keeps_known_items_of_any_feature_list(train):
    X, _ = train
    fs = get_feature_set("offmarket")
    assert fs.token_lists, "offmarket reads feature lists"
    column = fs.token_lists[0]
    encoder = RawEncoder.fit(X, fs)
    known = encoder.tokens[column]
    frame = X[fs.raw_columns].head(4).copy()
    frame[column] = [f"{known[1]}, Never listed, {known[0]}", None, "Never listed", known[0]]
    masks = encoder.encode(frame)[:, encoder.index(column)]
    assert masks.tolist() == [3.0, 0.0, 0.0, 1.0]  # bits of known items only
    # Small batches (Python splits), large ones (factorised) and the API's parsed records
    # encode alike.
    big = pd.concat([frame] * 30, ignore_index=True)
    np.testing.assert_array_equal(encoder.encode(big)[:4], encoder.encode(frame))
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    np.testing.assert_array_equal(encoder.encode_records(records), encoder.encode(frame))
    # A missing mask (NaN) has no item set, like an empty list.
    assert token_bits(np.array([np.nan, 3.0]), [0, 1, 2]).tolist() == [[0, 0, 0], [1, 1, 0]]
    back = encoder.decode(encoder.encode(frame))[column].tolist()
    assert back == [f"{known[0]}, {known[1]}", None, None, known[0]]
    # A decoded list reads as the same items again: the fallback path sees what the engine saw.
    np.testing.assert_array_equal(
        encoder.encode(encoder.decode(encoder.encode(frame))), encoder.encode(frame)
    )


def test_parsed_records_encode_as_a_frame_of_them_row_by_row_or_column_by_column(train):
    """The API's records are read row by row up to FEW_RECORDS and column by column beyond:
    both give the frame's matrix, missing values, unseen names and feature lists included,
    and a number sent as text ("2400") is read as the frame reads it."""
    X, _ = train
    fs = get_feature_set("offmarket")
    encoder = RawEncoder.fit(X, fs)
    frame = X[fs.raw_columns].head(FEW_RECORDS + 3).copy()
    frame.iloc[0, frame.columns.get_loc("ElementarySchoolName")] = "Never Heard Of"
    frame.iloc[1, frame.columns.get_loc("BathsTotal")] = None
    frame.iloc[2, frame.columns.get_loc("SqFtTotal")] = np.nan
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    expected = encoder.encode(frame)
    for count in (1, FEW_RECORDS, FEW_RECORDS + 1, len(records)):
        np.testing.assert_array_equal(encoder.encode_records(records[:count]), expected[:count])
    texted = [{**records[3], "SqFtTotal": "2400"}, records[4]]
    matrix = encoder.encode_records(texted)
    assert matrix[0, encoder.index("SqFtTotal")] == 2400.0
    np.testing.assert_array_equal(matrix, encoder.encode(pd.DataFrame(texted)))
    np.testing.assert_array_equal(matrix[1], expected[4])
    assert encoder.encode_records([]).shape == (0, len(fs.raw_columns))


def test_engine_survives_pickling(train, rows):
    import pickle

    X, y = train
    model = ValuationModel(
        build_model("ridge", get_feature_set("task6")), interval_variant="cv_plus"
    ).fit(X, y)
    again = pickle.loads(pickle.dumps(model))
    assert again.uses_engine
    np.testing.assert_array_equal(
        np.column_stack(again.predict_interval(rows.head(200))),
        np.column_stack(model.predict_interval(rows.head(200))),
    )


def test_engine_covers_the_tax_record_and_the_garage(train, rows):
    import dataclasses

    X, y = train
    fs = dataclasses.replace(
        get_feature_set("offmarket"), tax="UnexemptTaxes", garage=("GarageLength", "GarageWidth")
    )
    rng = np.random.default_rng(3)

    def with_garage(frame):
        frame = frame.copy()
        frame["GarageLength"] = rng.choice([0.0, 20.0, 22.0, np.nan], len(frame))
        frame["GarageWidth"] = rng.choice([0.0, 19.0, 24.0, np.nan], len(frame))
        return frame

    X = with_garage(X)
    model = build_blend([("ridge", {}), ("hist_gb", {})], fs).fit(X, y)
    from homevision.valuation.engine import compile_model

    engine = compile_model(model, RawEncoder.fit(X, fs), X)
    odd = with_garage(rows.head(200))
    odd.loc[:5, "UnexemptTaxes"] = 0.0  # no bill
    odd.loc[6:10, "UnexemptTaxes"] = 150.0  # land only
    odd.loc[11:15, "UnexemptTaxes"] = None
    np.testing.assert_allclose(engine.predict(odd), model.predict(odd), atol=TOLERANCE, rtol=0)
