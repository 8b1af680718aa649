"""A school (or any category) spelt with another case or inner spaces than in training is the
same category on every path: the engine's lookups, scikit-learn's pipeline, the comparables and
the explanations. "VAUGHN" was a school the model never saw, valued like a new one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from homevision.data.listings import coerce_types
from homevision.data.synthetic import generate_listings
from homevision.features import get_feature_set
from homevision.training.candidates import build_model
from homevision.valuation.engine.raw import SMALL_BATCH, RawEncoder, fold
from homevision.valuation.model import ValuationModel

FS = get_feature_set("task6")
SCHOOL = FS.school


def _encoder(*schools: str) -> RawEncoder:
    return RawEncoder.fit(pd.DataFrame({SCHOOL: list(schools)}), FS)


def test_fold_leaves_case_and_inner_spaces_aside():
    assert fold("VAUGHN") == fold("Vaughn") == fold("vaughn")
    assert fold("Lone  Star") == fold("lone star")
    assert fold("Vaughn") != fold("Vaughan")
    assert fold(3.0) == 3.0


@pytest.mark.parametrize("copies", [1, SMALL_BATCH + 1])  # dict lookups, then the index
def test_every_lookup_codes_another_case_as_the_training_name(copies):
    encoder = _encoder("Vaughn", "Lone Star")
    code = {name: i for i, name in enumerate(encoder.text[SCHOOL])}
    asked = ["VAUGHN", "lone  star", "vaughn", "Nope", None] * copies
    expected = [
        code["Vaughn"],
        code["Lone Star"],
        code["Vaughn"],
        encoder.unseen_code(SCHOOL),
        encoder.missing_code(SCHOOL),
    ] * copies
    column = encoder.index(SCHOOL)
    frame = pd.DataFrame({c: [np.nan] * len(asked) for c in FS.raw_columns}).assign(
        **{SCHOOL: asked}
    )
    assert encoder.encode(frame)[:, column].tolist() == expected
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    assert encoder.encode_records(records)[:, column].tolist() == expected  # row by row
    many = records * 3  # past FEW_RECORDS: column by column
    assert encoder.encode_records(many)[:, column].tolist() == expected * 3


def test_a_name_two_training_spellings_share_is_not_guessed():
    encoder = _encoder("Vaughn", "VAUGHN")
    code = {name: i for i, name in enumerate(encoder.text[SCHOOL])}
    frame = pd.DataFrame({c: [np.nan] * 3 for c in FS.raw_columns}).assign(
        **{SCHOOL: ["Vaughn", "VAUGHN", "vaughn"]}
    )
    codes = encoder.encode(frame)[:, encoder.index(SCHOOL)].tolist()
    assert codes == [code["Vaughn"], code["VAUGHN"], encoder.unseen_code(SCHOOL)]
    assert encoder.respell(frame)[SCHOOL].tolist() == ["Vaughn", "VAUGHN", "vaughn"]


def test_respell_writes_the_training_name_and_keeps_a_frame_without_any():
    encoder = _encoder("Vaughn", "Lone Star")
    frame = pd.DataFrame({SCHOOL: ["VAUGHN", "Lone Star", None, "Nope"], "SqFtTotal": 1.0})
    spelled = encoder.respell(frame)
    assert spelled[SCHOOL].tolist()[:2] == ["Vaughn", "Lone Star"]
    assert pd.isna(spelled[SCHOOL].iloc[2]) and spelled[SCHOOL].iloc[3] == "Nope"
    assert frame[SCHOOL].iloc[0] == "VAUGHN"  # the caller's frame is left alone
    clean = frame.head(0)
    assert encoder.respell(clean) is clean


@pytest.fixture(scope="module")
def fitted() -> tuple[ValuationModel, pd.DataFrame]:
    frame = coerce_types(generate_listings(900, seed=4, market_seed=0).astype(object))
    sold = frame[frame["Status"] == "Sold"].reset_index(drop=True)
    model = ValuationModel(
        build_model("svr", FS), feature_set="task6", interval_variant="cv_plus", background_rows=12
    ).fit(sold, sold["ClosePrice"])
    assert model.uses_engine
    return model, sold.head(12).reset_index(drop=True)


def _shouted(homes: pd.DataFrame) -> pd.DataFrame:
    """The same homes with their schools in capitals and a doubled inner space."""
    loud = homes[SCHOOL].map(lambda s: s.upper().replace(" ", "  ") if isinstance(s, str) else s)
    return homes.assign(**{SCHOOL: loud})


@pytest.mark.parametrize("engine", [True, False])
def test_a_shouted_school_is_valued_as_its_training_spelling(fitted, engine):
    model, homes = fitted
    loud = _shouted(homes)
    assert not loud[SCHOOL].isin(model.encoder_.text[SCHOOL]).any()  # no name as in training
    for got, expected in zip(
        model.predict_interval(loud, engine=engine),
        model.predict_interval(homes, engine=engine),
        strict=True,
    ):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(
        model.predict(loud, engine=engine), model.predict(homes, engine=engine)
    )


@pytest.mark.parametrize("engine", [True, False])
def test_a_shouted_school_gets_the_same_reasons_and_comparables(fitted, engine):
    model, homes = fitted
    loud = _shouted(homes)
    got, expected = model.explain(loud, engine=engine), model.explain(homes, engine=engine)
    np.testing.assert_allclose(got.values.to_numpy(), expected.values.to_numpy())
    np.testing.assert_allclose(got.base_values, expected.base_values)
    for a, b in zip(model.comparable_sales(loud), model.comparable_sales(homes), strict=True):
        pd.testing.assert_frame_equal(a, b)
        assert b["same_school"].any()  # the school's own sales come first, as for the home


OFF = get_feature_set("offmarket")
LISTS = OFF.token_lists


def _token_encoder(*lists: str) -> RawEncoder:
    return RawEncoder.fit(pd.DataFrame({LISTS[0]: list(lists)}), OFF)


def test_a_feature_list_item_in_another_case_sets_the_training_items_bit():
    """Feature-list items were matched by exact spelling: "POOL" set no bit, so a home shouted
    by an API client lost its pool. An item folding to one training item now sets its bit, once
    even when both spellings are listed; an item two training spellings share is not guessed."""
    encoder = _token_encoder("Park, Playground", "Park", "Lake", "lake")
    bit = {t: 1 << i for i, t in enumerate(encoder.tokens[LISTS[0]])}
    asked = ["PARK,  playground", "park, Park", "LAKE", "Nope, park", None]
    expected = [bit["Park"] | bit["Playground"], bit["Park"], 0, bit["Park"], 0]
    column = encoder.index(LISTS[0])
    for copies in (1, SMALL_BATCH + 1):  # one by one, then each distinct list once
        frame = pd.DataFrame({c: [np.nan] * len(asked) * copies for c in OFF.raw_columns})
        frame[LISTS[0]] = pd.Series(asked * copies, dtype=object)
        assert encoder.encode(frame)[:, column].tolist() == expected * copies
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        assert encoder.encode_records(records)[:, column].tolist() == expected * copies
    spelled = encoder.respell(pd.DataFrame({LISTS[0]: asked}))[LISTS[0]].tolist()
    assert spelled[:4] == ["Park, Playground", "Park, Park", "LAKE", "Nope, Park"]
    assert pd.isna(spelled[4])


@pytest.fixture(scope="module")
def fitted_offmarket() -> tuple[ValuationModel, pd.DataFrame]:
    frame = coerce_types(generate_listings(900, seed=4, market_seed=0).astype(object))
    sold = frame[frame["Status"] == "Sold"].reset_index(drop=True)
    model = ValuationModel(
        build_model("ridge", OFF), feature_set="offmarket", interval_variant="cv_plus",
        background_rows=12,
    ).fit(sold, sold["ClosePrice"])  # fmt: skip
    assert model.uses_engine
    homes = sold[sold[list(LISTS)].notna().all(axis=1)].head(12).reset_index(drop=True)
    return model, homes


@pytest.mark.parametrize("engine", [True, False])
def test_shouted_feature_lists_are_valued_as_their_training_spelling(fitted_offmarket, engine):
    model, homes = fitted_offmarket
    loud = homes.assign(**{c: homes[c].str.upper().str.replace(", ", ",  ") for c in LISTS})
    assert (loud[list(LISTS)] != homes[list(LISTS)]).all().all()
    for got, expected in zip(
        model.predict_interval(loud, engine=engine),
        model.predict_interval(homes, engine=engine),
        strict=True,
    ):
        np.testing.assert_array_equal(got, expected)
    got, expected = model.explain(loud, engine=engine), model.explain(homes, engine=engine)
    np.testing.assert_allclose(got.values.to_numpy(), expected.values.to_numpy())
