"""`homevision predict --data` streams the export chunk by chunk: the same valuations, row for
row, as valuing the whole file at once, damaged and repeated rows included."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from homevision import model_fetch
from homevision.cli import app
from homevision.config import load_params
from homevision.data.listings import coerce_types, read_export
from homevision.data.synthetic import generate_listings, write_listings, write_listings_chunked
from homevision.features import get_feature_set
from homevision.training.candidates import build_model
from homevision.valuation.model import ValuationModel
from homevision.valuation.predict import explanation_columns, value_listings
from homevision.valuation.stream import write_frame

runner = CliRunner()


@pytest.fixture(scope="module")
def fitted() -> ValuationModel:
    """A ridge model of the synthetic market, fitted here: no registry needed."""
    train = coerce_types(generate_listings(1500, 21, market_seed=11).astype(object))
    train = train[train["Status"] == "Sold"].reset_index(drop=True)
    estimator = build_model("ridge", get_feature_set("task6"))
    return ValuationModel(estimator, background_rows=10).fit(train, train["ClosePrice"])


@pytest.fixture
def champion(monkeypatch, fitted) -> ValuationModel:
    """The CLI's model is the fitted one (predict asks model_fetch.start_fetch for it)."""
    monkeypatch.setattr(model_fetch, "start_fetch", lambda ref=None: model_fetch.Fetched(fitted))
    return fitted


@pytest.fixture
def damaged(tmp_path):
    """5,000 listings with bad values and MLS numbers repeated within and across chunks."""
    path = write_listings_chunked(5000, tmp_path / "big.csv", seed=11, chunk_rows=2000)
    frame = read_export(path)
    frame.loc[10, "SqFtTotal"] = "abc"
    frame.loc[2000, "BathsTotal"] = "lots"
    frame.loc[3500, "MLSNumber"] = frame.loc[5, "MLSNumber"]  # an earlier chunk's number
    frame.loc[3600, ["MLSNumber", "SqFtTotal"]] = [frame.loc[6, "MLSNumber"] + ".0", "x"]
    frame.loc[702, "MLSNumber"] = frame.loc[701, "MLSNumber"]  # within one chunk
    return write_listings(frame, tmp_path / "damaged.csv")


def _predict(*args: str) -> None:
    result = runner.invoke(app, ["predict", *args])
    assert result.exit_code == 0, result.output


def test_streamed_valuations_equal_the_one_shot_valuations(champion, tmp_path, damaged):
    one_shot = value_listings(champion, read_export(damaged)).frame
    expected = write_frame(one_shot, tmp_path / "expected.csv")
    errors = one_shot["error"]
    assert errors[[10, 2000, 3500, 3600, 702]].str.len().gt(0).all()
    assert "already used" in errors[3500] and "SqFtTotal" in errors[3600]

    out = tmp_path / "streamed.csv"
    _predict("--data", str(damaged), "--output", str(out), "--chunk-rows", "700")
    assert out.read_bytes() == expected.read_bytes()

    parquet_in = tmp_path / "damaged.parquet"
    read_export(damaged).to_parquet(parquet_in, index=False)
    parquet_out = tmp_path / "streamed.parquet"
    _predict("--data", str(parquet_in), "--output", str(parquet_out), "--chunk-rows", "700")
    streamed = pd.read_parquet(parquet_out)
    assert streamed.shape == one_shot.shape and not (tmp_path / "streamed.parquet.partial").exists()
    pd.testing.assert_frame_equal(
        streamed.astype(object).fillna(""), one_shot.astype(object).fillna("")
    )


def test_streamed_explanations_equal_the_one_shot_explanations(champion, tmp_path, damaged):
    """`predict --explain --data` streams too (memory bounded by the chunk): every row's
    reasons and comparables as one pass over the file gives them, and none for a row refused
    for an MLSNumber an earlier chunk used."""
    top = int(load_params()["explain"]["top"])
    head = write_listings(read_export(damaged).head(1500), tmp_path / "head.csv")
    one_shot = explanation_columns(value_listings(champion, read_export(head), explain=True), top)
    expected = write_frame(one_shot, tmp_path / "expected.csv")
    assert "already used" in one_shot.loc[702, "error"] and one_shot.loc[702, "comparables"] == ""
    assert one_shot["top_contributions"].str.len().gt(0).sum() > 1400

    out = tmp_path / "streamed.csv"
    _predict("--data", str(head), "--output", str(out), "--explain", "--chunk-rows", "700")
    assert out.read_bytes() == expected.read_bytes()

    parquet_out = tmp_path / "streamed.parquet"
    _predict("--data", str(head), "--output", str(parquet_out), "--explain", "--chunk-rows", "700")
    pd.testing.assert_frame_equal(
        pd.read_parquet(parquet_out).astype(object).fillna(""),
        one_shot.astype(object).fillna(""),
    )


@pytest.fixture(scope="module")
def offmarket() -> ValuationModel:
    """A ridge model over the off-market feature set (no days on market): it reads no CDOM."""
    train = coerce_types(generate_listings(600, 21, market_seed=11).astype(object))
    train = train[train["Status"] == "Sold"].reset_index(drop=True)
    estimator = build_model("ridge", get_feature_set("offmarket"))
    model = ValuationModel(estimator, feature_set="offmarket", background_rows=10)
    return model.fit(train, train["ClosePrice"])


@pytest.mark.parametrize("reader", ["arrow", "pandas", "parquet", "whole"])
def test_an_export_without_a_column_the_model_does_not_read_is_valued(
    monkeypatch, tmp_path, offmarket, reader
):
    """An off-market export has no CDOM column: the offmarket model (which does not read it) values
    it as the same file with CDOM there and empty, on Arrow's and pandas' CSV readers, Parquet and
    the default data (read whole); the Python API and the REST API valued it, the CLI refused
    the file ("required column(s) missing: CDOM")."""
    from homevision.data import listings

    monkeypatch.setattr(model_fetch, "start_fetch", lambda ref=None: model_fetch.Fetched(offmarket))
    rows = generate_listings(60, 5, market_seed=11)
    rows = rows[rows["Status"] != "Sold"].reset_index(drop=True)
    if reader == "pandas":  # Arrow reads no such file: pandas reads it all
        monkeypatch.setattr(listings, "_arrow_csv_chunks", lambda *args: None)
    empty, without = rows.assign(CDOM=None), rows.drop(columns="CDOM")
    if reader == "parquet":
        empty.to_parquet(empty := tmp_path / "empty.parquet", index=False)
        without.to_parquet(without := tmp_path / "without.parquet", index=False)
    else:
        empty = write_listings(empty, tmp_path / "empty.csv")
        without = write_listings(without, tmp_path / "without.csv")
    outputs = []
    for source in (empty, without):
        out = tmp_path / f"{source.stem}-valued.csv"
        if reader == "whole":
            monkeypatch.setenv("HOMEVISION_DATA", str(source))
            _predict("--output", str(out))
        else:
            _predict(
                "--data", str(source), "--output", str(out), "--chunk-rows", "20", "--workers", "1"
            )
        outputs.append(pd.read_csv(out, dtype=str))
    pd.testing.assert_frame_equal(outputs[1], outputs[0])
    assert outputs[1]["predicted_close_price"].notna().all()


def test_an_export_without_a_column_the_model_reads_is_refused(champion, tmp_path):
    """The task6 model reads CDOM: a file without it is refused in one sentence, exit 2."""
    rows = generate_listings(40, 5, market_seed=11).drop(columns="CDOM")
    source = write_listings(rows, tmp_path / "no-cdom.csv")
    result = runner.invoke(app, ["predict", "--data", str(source)])
    assert result.exit_code == 2
    assert "required column(s) missing: CDOM." in " ".join(result.output.split())
