"""Validation shares each column's per-value problems between the checks of its rule ids
(issue 25): the result must be exactly what one check at a time computed."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest

from homevision.data import schema
from homevision.data.listings import _as_strings, validate_listings
from homevision.data.synthetic import generate_listings

HOSTILE = {
    "MLSNumber": ["abc", "-3", "1.5", " 7", "0", "1e30", True, 2.5, None, "12"],
    "BathsTotal": ["2.7", "2.15", "x", "-1", 2.5, "99", True, None, "3.1", 3],
    "SqFtTotal": ["abc", "-5", "90000", "0", None, "1e9", True, "2,000", "nan", "inf"],
    "BedsTotal": ["2.5", "-1", "100", None, "x", "3", 0, "1e3", 2, "four"],
    "ClosePrice": ["1", "425000000", "-5", "x", None, "0", "350000", 1e12, "nan", "7"],
}


def _hostile_frame(rows: int = 3_000) -> pd.DataFrame:
    """Synthetic listings with hostile values scattered through every checked kind of column,
    repeated ids (in the same frame, also after normalising) and typed as well as text values."""
    frame = generate_listings(rows, seed=21).astype(object)
    rng = np.random.default_rng(5)
    for column, values in HOSTILE.items():
        where = rng.choice(rows, size=len(values) * 20, replace=False)
        for i, row in enumerate(where):
            frame.at[row, column] = values[i % len(values)]
    frame.loc[rows - 10 :, "MLSNumber"] = frame.loc[:9, "MLSNumber"].to_numpy()  # repeats
    frame.loc[rows - 20, "MLSNumber"] = " " + str(frame.loc[11, "MLSNumber"])
    return frame


def test_sharing_problems_between_checks_changes_no_result(monkeypatch):
    for frame in (_hostile_frame(), _as_strings(_hostile_frame())):
        shared = validate_listings(frame)
        monkeypatch.setattr(schema, "shared_problems", contextlib.nullcontext)
        alone = validate_listings(frame)
        monkeypatch.undo()
        assert len(shared.rejected) > 100  # the hostile values were found
        pd.testing.assert_frame_equal(shared.violations, alone.violations)
        pd.testing.assert_frame_equal(shared.rejected, alone.rejected)
        pd.testing.assert_frame_equal(shared.accepted, alone.accepted)
        assert shared.repaired == alone.repaired


def test_outside_a_validation_nothing_is_shared():
    memo = schema._Memo(lambda s: s * 2)
    first = memo(pd.Series([1, 2], name="a"))
    second = memo(pd.Series([3, 4], name="a"))
    assert first.tolist() == [2, 4] and second.tolist() == [6, 8]
    with schema.shared_problems():
        assert memo(pd.Series([1, 2], name="a")).tolist() == [2, 4]
        # Same name and index within one validation: the column's problems are reused.
        assert memo(pd.Series([1, 2], name="a")).tolist() == [2, 4]
        assert memo(pd.Series([5], name="a")).tolist() == [10]  # another index: recomputed


def test_checking_each_distinct_value_once_gives_every_rows_answer():
    from homevision.data.fields import baths_problem

    values = pd.Series(
        [*HOSTILE["BathsTotal"], *HOSTILE["BathsTotal"], 1, 1.0, True, "1", np.nan, float("nan")]
    )
    by_value = schema._by_value(baths_problem)(values)
    pd.testing.assert_series_equal(by_value, schema._elementwise(baths_problem)(values))
    assert by_value.iloc[-6:-2].tolist() == [None, None, "baths_format", None]  # 1 vs True


def _cases(failures: pd.DataFrame) -> set[tuple[object, str, int]]:
    """Return (column, check, row) per failure case; None as the column of a frame check
    (pandera repeats those under every column of the row)."""
    rows = failures.dropna(subset=["index"])
    frame_checks = {"sold_price_invalid", "sold_price_implausible"}
    return {
        (None if str(k) in frame_checks else c, str(k), int(i))
        for c, k, i in zip(rows["column"], rows["check"], rows["index"], strict=True)
    }


def test_the_contract_applied_directly_fails_what_pandera_fails():
    """find_failures runs the contract's checks without pandera's runner: on hostile frames,
    typed and as text, it reports exactly the failure cases of pandera's lazy validation of the
    same contract stated as a schema (build_schema)."""
    from homevision.data.pandera_api import pa

    frame = _hostile_frame()
    frame.loc[5, "BedsTotal"] = None  # a required field left empty: pandera's not_nullable
    for variant in (frame, _as_strings(frame), frame.drop(columns=["ClosePrice", "City"])):
        variant = variant.reset_index(drop=True)
        with pytest.raises(pa.errors.SchemaErrors) as err:
            schema.build_schema(list(variant.columns)).validate(variant, lazy=True)
        direct = _cases(schema.find_failures(variant))
        assert direct == _cases(err.value.failure_cases)
        assert len(direct) > 500
        assert ("BedsTotal", "not_nullable", 5) in direct


def test_a_clean_frame_has_no_failures():
    from tests.unit.test_fields import clean_export

    failures = schema.find_failures(clean_export(50))
    assert failures.empty and list(failures.columns) == ["column", "check", "index"]
