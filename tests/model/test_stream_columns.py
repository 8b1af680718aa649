"""A streamed valuation reads only the columns the contract and the model need (issue 25):
its output file is byte for byte the one reading every column gives, for CSV and Parquet, with
hostile values in checked columns and junk in columns nobody reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from homevision.data.listings import coerce_types, read_export_chunks
from homevision.data.synthetic import generate_listings
from homevision.features import get_feature_set
from homevision.training.candidates import build_model
from homevision.valuation.model import ValuationModel
from homevision.valuation.predict import export_columns
from homevision.valuation.stream import stream_valuations


@pytest.fixture(scope="module")
def model() -> ValuationModel:
    frame = coerce_types(generate_listings(1500, seed=2, market_seed=0).astype(object))
    sold = frame[frame["Status"] == "Sold"].reset_index(drop=True)
    estimator = build_model("ridge", get_feature_set("task6"))
    return ValuationModel(estimator, feature_set="task6", background_rows=8).fit(
        sold, sold["ClosePrice"]
    )


def _export(rows: int = 4_000) -> pd.DataFrame:
    frame = generate_listings(rows, seed=9, market_seed=0).astype(object)
    rng = np.random.default_rng(1)
    for i in range(40):  # columns no rule and no model reads, some with text nobody checks
        frame[f"Junk{i}"] = rng.choice(["x", "", "1e999", None, "a,b"], rows)
    frame.loc[3, "SqFtTotal"] = "abc"
    frame.loc[5, "ClosePrice"] = "-5"  # a rule on a column the model does not read
    frame.loc[7, "MLSNumber"] = frame.loc[2, "MLSNumber"]  # repeated in the same chunk
    frame.loc[rows - 1, "MLSNumber"] = " " + str(frame.loc[1, "MLSNumber"])  # a later chunk
    frame.loc[11, "BathsTotal"] = "2.7"
    frame.loc[13, "SqFtTotal"] = "90000"  # far outside the training data: a warning
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_reading_only_the_needed_columns_gives_the_same_file(model, tmp_path, suffix):
    frame = _export()
    path = tmp_path / f"export{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.astype(str).where(frame.notna(), None).to_parquet(path, index=False)
    wanted = export_columns(model)
    assert "Junk0" not in wanted and "ClosePrice" in wanted
    first = next(read_export_chunks(path, 1_000, wanted))
    assert "Junk0" not in first.columns and "SqFtTotal" in first.columns
    outputs = []
    for name, columns in (("all", None), ("needed", wanted)):
        target = tmp_path / f"{name}{suffix}"
        stream_valuations(model, read_export_chunks(path, 1_000, columns), target)
        outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1]
    valued = pd.read_csv(tmp_path / f"needed{suffix}") if suffix == ".csv" else None
    if valued is not None:  # the hostile rows are refused or warned, as without projection
        assert valued["error"].notna().sum() >= 4 and valued["warning"].notna().sum() >= 1
