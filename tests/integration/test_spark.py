"""`predict --engine spark`: the same valuations, errors and warnings as the pandas path.

Needs Java 17+ and pyspark (the `spark` extra): skipped with the reason when either is missing,
failed instead in CI (HOMEVISION_REQUIRE_SERVICES=1). One SparkSession serves the module; the
model is the session's `trained_home` (shared with the API tests).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from homevision.data.listings import read_export
from homevision.data.synthetic import generate_listings, write_listings
from homevision.valuation.predict import OUTPUT_COLUMNS, PRICE_COLUMNS
from tests.integration.conftest import run_cli

pytestmark = [pytest.mark.spark, pytest.mark.slow]
ROWS = 10_000


def _spark_missing() -> str | None:
    """Why Spark cannot run here (None when it can)."""
    if shutil.which("java") is None:
        return "java not found: install a Java 17+ runtime (e.g. openjdk-17-jre-headless)"
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark not installed: uv sync --extra spark"
    return None


@pytest.fixture(scope="module")
def spark_home(trained_home) -> Path:
    """The session's trained project folder (conftest), or skip/fail when Spark cannot run."""
    reason = _spark_missing()
    if reason:
        if os.environ.get("HOMEVISION_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return trained_home


@pytest.fixture(scope="module")
def spark(spark_home):
    """One local[2] session for the module (no UI, small Arrow batches: several per file)."""
    from homevision.valuation.spark import create_session

    session = create_session(
        "local[2]", conf={"spark.sql.execution.arrow.maxRecordsPerBatch": "2500"}
    )
    yield session
    session.stop()


@pytest.fixture
def in_home(spark_home, monkeypatch) -> Path:
    monkeypatch.setenv("HOMEVISION_HOME", str(spark_home))
    return spark_home


def _hostile_export(path: Path) -> Path:
    """10,000 listings, a few of them bad: not a number, negative, missing, an id repeated in
    another Arrow batch and in the same one, a home far outside the training data; in the CSV,
    remarks with line breaks in them. A .parquet
    `path` keeps the generator's types (numbers as numbers, as a data warehouse writes them),
    with a missing area where the CSV has text."""
    frame = generate_listings(ROWS, seed=11)
    if path.suffix == ".parquet":
        frame["SqFtTotal"] = frame["SqFtTotal"].astype(float)
        frame.loc[3, "SqFtTotal"] = np.nan
        frame.loc[5, "SqFtTotal"] = -5.0
        frame.loc[9, "BathsTotal"] = None
        frame.loc[10, "SqFtTotal"] = 90000.0
        frame.loc[7, "MLSNumber"] = frame.loc[2, "MLSNumber"]
        frame.loc[ROWS - 1, "MLSNumber"] = frame.loc[1, "MLSNumber"]
        frame.to_parquet(path, index=False)
        return path
    frame = frame.astype(object)
    # Remarks typed on several lines, in a column no valuation reads, on both sides of an Arrow
    # batch: Spark's line reader split such rows in two.
    frame["PublicRemarks"] = "Updated kitchen."
    frame.loc[20, "PublicRemarks"] = "Corner lot.\r\nNew roof 2019."
    frame.loc[2600, "PublicRemarks"] = 'Pool, "resort style"\nand spa'
    frame.loc[3, "SqFtTotal"] = "abc"
    frame.loc[5, "SqFtTotal"] = "-5"
    frame.loc[9, "BathsTotal"] = "NA"
    frame.loc[10, "SqFtTotal"] = "90000"
    frame.loc[7, "MLSNumber"] = frame.loc[2, "MLSNumber"]
    frame.loc[ROWS - 1, "MLSNumber"] = " " + str(frame.loc[1, "MLSNumber"])
    return write_listings(frame, path)


def _assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The Spark output equals the pandas path's: columns, ids, errors, warnings, prices."""
    assert list(got.columns) == OUTPUT_COLUMNS
    assert got["MLSNumber"].tolist() == expected["MLSNumber"].astype(str).tolist()
    assert got["error"].tolist() == expected["error"].tolist()
    assert got["warning"].tolist() == expected["warning"].tolist()
    for column in PRICE_COLUMNS:
        np.testing.assert_allclose(got[column], expected[column], rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_spark_equals_pandas_on_10k_rows(in_home, spark, tmp_path, suffix):
    from homevision.tracking import load_model
    from homevision.valuation.predict import value_listings
    from homevision.valuation.spark import value_on_spark

    export = _hostile_export(tmp_path / f"listings{suffix}")
    expected = value_listings(load_model(), read_export(export)).frame
    summary = value_on_spark(export, tmp_path / "out.parquet", spark=spark)
    got = pd.read_parquet(tmp_path / "out.parquet")

    assert len(got) == ROWS == summary.rows
    _assert_same(got, expected)
    errors = got["error"]
    assert errors.iloc[3].startswith("SqFtTotal") and errors.iloc[5].startswith("SqFtTotal")
    assert "already used" in errors.iloc[7] and "already used" in errors.iloc[ROWS - 1]
    assert "outside what this model supports" in errors.iloc[10]
    assert summary.failed == int((errors != "").sum()) >= 5
    assert summary.warned == int((got["warning"] != "").sum()) > 0


def test_spark_values_the_unsold_rows_as_pandas_does(in_home, spark, tmp_path):
    """`predict --engine spark` without --data values the unsold rows only (unsold_rows' rule),
    the duplicate rule applying among them, as on pandas."""
    from homevision.tracking import load_model
    from homevision.valuation.predict import unsold_rows, value_listings
    from homevision.valuation.spark import value_on_spark

    export = _hostile_export(tmp_path / "listings.csv")
    unsold = unsold_rows(read_export(export))
    expected = value_listings(load_model(), unsold).frame
    summary = value_on_spark(export, tmp_path / "out.parquet", spark=spark, unsold_only=True)
    got = pd.read_parquet(tmp_path / "out.parquet")

    assert 0 < summary.rows == len(unsold) < ROWS
    _assert_same(got, expected)


def test_cli_predict_engine_spark_writes_parquet(in_home, tmp_path):
    frame = generate_listings(300, seed=5).astype(object)
    frame.loc[0, "SqFtTotal"] = "abc"
    export = write_listings(frame, tmp_path / "small.csv")
    out = tmp_path / "valued.parquet"
    stdout = run_cli(
        in_home,
        "predict",
        "--engine",
        "spark",
        "--spark-master",
        "local[1]",
        "--data",
        str(export),
        "--output",
        str(out),
    )
    written = pd.read_parquet(out)
    assert list(written.columns) == OUTPUT_COLUMNS
    assert len(written) == 300
    assert written.loc[0, "error"].startswith("SqFtTotal")
    assert "Valued 299 of 300 listings" in stdout


def test_only_the_columns_a_valuation_reads_leave_the_file(spark, tmp_path):
    """read_listings with columns (what value_on_spark passes: predict.export_columns) keeps
    those the file has, in file order; the required-columns check still reads the header."""
    from homevision.data.listings import NotAnExportError
    from homevision.valuation.spark import read_listings

    frame = generate_listings(20, seed=2).astype(object)
    export = write_listings(frame, tmp_path / "few.csv")
    wanted = {"SqFtTotal", "MLSNumber", "NotInTheFile"}
    read = read_listings(spark, export, wanted)
    assert read.columns == [c for c in frame.columns if c in wanted]
    assert read.count() == 20
    parquet = tmp_path / "few.parquet"
    frame.astype(str).to_parquet(parquet)
    assert read_listings(spark, parquet, wanted).columns == read.columns
    without_beds = write_listings(frame.drop(columns="BedsTotal"), tmp_path / "bad.csv")
    with pytest.raises(NotAnExportError, match="required column"):
        read_listings(spark, without_beds, wanted)  # not wanted, yet required


def test_a_valuation_needs_only_the_columns_its_model_reads(spark, tmp_path):
    """An off-market export without CDOM: refused against the contract's full header (what
    `validate` checks), read for a model that does not read CDOM (predict.required_columns),
    as the pandas path reads it."""
    from homevision.data.listings import NotAnExportError
    from homevision.data.schema import ROW_REQUIRED_COLUMNS
    from homevision.valuation.spark import read_listings

    frame = generate_listings(20, seed=2).astype(object).drop(columns="CDOM")
    export = write_listings(frame, tmp_path / "offmarket.csv")
    with pytest.raises(NotAnExportError, match="required column\\(s\\) missing: CDOM"):
        read_listings(spark, export)
    read = read_listings(spark, export, {"MLSNumber", "SqFtTotal"}, ROW_REQUIRED_COLUMNS)
    assert read.count() == 20
