"""Every optimised stage of a batch valuation (issue 25) against the path it replaced, on one
fixed 50,000-row Parquet export with hostile and repeated rows: the same output file, byte for
byte (prices to the cent, errors, warnings, order).

Optimised (what `homevision predict --data` runs)    Reference (the path before it)
- chunks valued on two worker processes               one process
- numeric fields kept as the file's numbers           every value turned into text and back
- ids read in one Arrow pass (fields.check_ids)       fields.check_id value by value
- each column's problems shared within a validation   every check computing its own
- the contract's checks applied directly               pandera's lazy validation of its schema
- CV+ bounds by order selection (valuation.cv_plus)   MAPIE's (rows x sales) matrix
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest

from homevision.data import listings, schema
from homevision.data.fields import check_id
from homevision.data.listings import coerce_types, read_export_chunks
from homevision.data.pandera_api import pa as pandera
from homevision.data.synthetic import generate_listings
from homevision.features import get_feature_set
from homevision.training.candidates import build_model
from homevision.valuation import cv_plus, stream
from homevision.valuation.model import ValuationModel
from homevision.valuation.predict import export_columns
from homevision.valuation.stream import stream_valuations

ROWS, CHUNK_ROWS = 50_000, 7_000


@pytest.fixture(scope="module")
def model() -> ValuationModel:
    frame = coerce_types(generate_listings(1500, seed=2, market_seed=0).astype(object))
    sold = frame[frame["Status"] == "Sold"].reset_index(drop=True)
    estimator = build_model("ridge", get_feature_set("task6"))
    return ValuationModel(estimator, feature_set="task6", interval_variant="cv_plus").fit(
        sold, sold["ClosePrice"]
    )


def hostile_export(rows: int = ROWS) -> pd.DataFrame:
    """The synthetic market's listings with numbers as numbers (int64, float64, nullable Int64
    and Float64) and hostile values planted every few rows, in numbers and in text."""
    frame = generate_listings(rows, seed=21, market_seed=0)
    rng = np.random.default_rng(5)

    def plant(column: str, values: list, dtype: object | None = None) -> None:
        if dtype is not None:
            frame[column] = frame[column].astype(dtype)
        at = rng.choice(rows, size=len(values) * 40, replace=False)
        planted = list(np.resize(np.array(values, dtype=object), len(at)))
        frame.loc[at, column] = pd.array(planted, dtype=frame[column].dtype)

    plant(
        "SqFtTotal",
        [np.inf, -np.inf, np.nan, -0.0, 0.0, -5.0, 2.5, 1e308, 90_000.0, 1e-300],
        "float64",
    )
    plant("LotSizeAreaSQFT", [np.inf, np.nan, -0.0, -1.0, 1e22, 0.1 + 0.2])
    plant("BedsTotal", [0, -1, 99, 2**62, 3])  # stays int64
    plant("CDOM", [-3, 0, 10**9])
    plant("ListPrice", [500, 0, -1, 10**12])
    plant("ClosePrice", [1, 425_000_000, -5, 0, pd.NA])  # nullable Int64, on any status
    plant("BathsTotal", ["2.7", "x", "", None, " 3 ", "2.10"])
    ids = frame["MLSNumber"].astype(str).to_numpy(dtype=object)
    early = rng.choice(CHUNK_ROWS, size=200, replace=False)
    later = rng.choice(np.arange(CHUNK_ROWS, rows), size=200, replace=False)
    ids[later[:100]] = ids[early[:100]]  # repeated in a later chunk
    ids[later[100:]] = [" " + ids[i] + ".0" for i in early[100:]]  # the same id, spelled apart
    ids[early[:50] + 1] = ids[early[:50]]  # repeated within a chunk
    ids[rng.choice(rows, size=60, replace=False)] = ["abc", "", None, "0", "-4", "1e3"] * 10
    frame["MLSNumber"] = ids
    return frame


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("hostile") / "export.parquet"
    frame = hostile_export()
    frame.to_parquet(path, index=False)
    numeric = {"SqFtTotal", "LotSizeAreaSQFT", "BedsTotal", "CDOM", "ListPrice", "ClosePrice"}
    first = next(read_export_chunks(path, 10, numbers=True))
    assert all(first[c].dtype.kind in "iuf" for c in numeric), "the file holds these as numbers"
    return str(path)


def pandera_failures(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the failure cases of pandera's lazy validation of the contract's schema."""
    try:
        schema.build_schema(list(frame.columns)).validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as err:
        return err.failure_cases
    return pd.DataFrame(columns=["column", "check", "index"])


def _reference_ids(values) -> tuple[list, list]:
    read = [check_id(v) for v in np.asarray(values, dtype=object)]
    return [r[0] for r in read], [r[1] for r in read]


def test_optimised_stages_write_the_same_file(
    model, export, tmp_path, monkeypatch, workers_start_first
):
    """Optimised as `predict --data` runs it: numbers kept, chunks read lazily and valued on
    two worker processes (every chunk after the first two, the workers started first)."""
    columns = export_columns(model)
    fast = tmp_path / "fast.csv"
    chunks = read_export_chunks(export, CHUNK_ROWS, columns, numbers=True, lazy=True)
    fast_summary = stream_valuations(model, chunks, fast, workers=2)
    assert cv_plus.plan(model.fast_conformal_) is not None, "the CV+ ranges took the fast path"
    with monkeypatch.context() as old:
        old.setattr(cv_plus, "plan", lambda conformal: None)
        for module in (schema, listings, stream):
            old.setattr(module, "check_ids", _reference_ids)
        old.setattr(schema, "shared_problems", contextlib.nullcontext)
        old.setattr(listings, "find_failures", pandera_failures)
        slow = tmp_path / "slow.csv"
        slow_summary = stream_valuations(
            model, read_export_chunks(export, CHUNK_ROWS, columns, numbers=False), slow
        )
    assert fast.read_bytes() == slow.read_bytes()
    assert fast_summary == slow_summary
    valued = pd.read_csv(fast, dtype=str, keep_default_na=False)
    assert len(valued) == ROWS
    refused, warned = (valued["error"] != "").sum(), (valued["warning"] != "").sum()
    assert refused > 1_000 and warned > 10, (refused, warned)  # the hostile rows did bite
    assert valued["error"].str.contains("MLSNumber").sum() >= 250  # repeats and bad ids
