"""Value an export on Spark (`homevision predict --engine spark`): millions of listings, on
`local[*]` or any cluster, with the same output and per-row errors as the pandas path.

Design. The logged pyfunc (ValuationPyfunc) returns prices only: no validation, no `error`, no
`warning`, and it raises on a batch it cannot value. So `mlflow.pyfunc.spark_udf` values the
prices (point, low, high as one struct, as the issue asks), and the project's own rules run
around it, per partition, in pandas (mapInPandas), so nothing is re-implemented:

1. clean   - CSV cells pandas reads as missing ("", "NA", ...) become null (Spark SQL);
             optionally keep only the unsold rows (what `predict` without --data values).
2. ids     - the one rule that spans rows, "MLSNumber already used by an earlier row", is
             decided over the whole file: each duplicated id's first position (a small
             aggregate, broadcast back onto the rows).
3. prepare - validate_listings + coerce_types + the extrapolation warnings, per Arrow batch
             (an id first used in another batch is put in front of the batch as a stand-in row,
             so the validator words the duplicate exactly as on pandas); out come `error`,
             `warning` and the model's typed input columns (its signature).
4. prices  - spark_udf(model) on the accepted rows' inputs -> struct of the three prices.
5. finish  - the refusal rule (non-finite, or outside the supported prices), prices blanked
             where there is an error, rounded to dollars: exactly value_matrix's last steps.

Stages 3 to 5 need only the model's small facts (encoder, training ranges, price range), sent
from the driver; the pyfunc itself is loaded by spark_udf once per worker. All stages run in one
Spark stage except the id aggregate. Not reproduced: when the pyfunc fails on a whole batch, the
pandas path retries row by row; here the Spark job fails with the model's exception.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from homevision.data.fields import check_ids
from homevision.data.listings import (
    REASON_COLUMN,
    NotAnExportError,
    coerce_types,
    is_labelled,
    validate_listings,
)
from homevision.data.schema import MLS_ID, REQUIRED_COLUMNS
from homevision.valuation.model import matrix_support_values
from homevision.valuation.predict import (
    OUTPUT_COLUMNS,
    PRICE_COLUMNS,
    export_columns,
    extrapolation_warnings,
    refusals,
    support_factor,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)
DEFAULT_MASTER = "local[*]"
PRICES = "prices"
RESULT_TYPE = ", ".join(f"{c} double" for c in PRICE_COLUMNS)
# What pandas.read_csv reads as missing by default (read_export keeps that default).
CSV_MISSING = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND"}
    | {"1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)
_POS, _ID, _FIRST = "_pos", "_id", "_first"  # helper columns, never written


@dataclass(frozen=True)
class ModelFacts:
    """What stages 3 and 5 need of the model, small enough to ship with every task. Its
    attribute names are the model's, so predict.py's rules take it in the model's place."""

    encoder_: Any
    training_ranges_: dict[str, tuple[float, float]]
    price_range_: tuple[float, float] | None
    factor: float
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (column, "double"|"string")
    filler: dict[str, Any] = field(default_factory=dict)  # a training home's inputs

    @classmethod
    def of(cls, model, inputs: list[tuple[str, str]]) -> ModelFacts:
        """Return the facts of a fitted ValuationModel, with the pyfunc's input columns and, as
        the filler, the inputs of its first reference home (a row it can surely value)."""
        home = model.background_.iloc[0]
        filler = {name: home.get(name) for name, _ in inputs}
        return cls(
            model.encoder_,
            dict(getattr(model, "training_ranges_", None) or {}),
            getattr(model, "price_range_", None),
            support_factor(),
            inputs,
            {k: None if pd.isna(v) else v for k, v in filler.items()},
        )


@dataclass(frozen=True)
class SparkSummary:
    """What `predict --engine spark` reports: rows written, errors, warnings, range level."""

    rows: int
    failed: int
    warned: int
    confidence: float


def create_session(
    master: str = DEFAULT_MASTER, ui: bool = False, conf: dict[str, str] | None = None
) -> SparkSession:
    """Return a SparkSession on `master` with Arrow on and Python workers on this interpreter
    (so they have pandas and homevision). A local master binds the driver to 127.0.0.1; a
    cluster master keeps Spark's own address choice (its executors must reach the driver)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName("homevision-predict")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "true" if ui else "false")
    )
    if master.startswith("local"):
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def read_listings(
    spark: SparkSession, path: str | Path, columns: Collection[str] | None = None
) -> DataFrame:
    """Return the export (CSV or Parquet) as a DataFrame of strings, header names as columns,
    file order kept; with `columns`, only those of them the file has (predict.export_columns:
    what a valuation reads, as the pandas path reads it; Spark then parses, casts and sends to
    Python those alone, not the 250 of an MLS export). Raises NotAnExportError when it cannot
    be a listings export."""
    from pyspark.sql import functions as sf

    path = Path(path)
    if not path.exists():
        raise NotAnExportError(f"{path}: no such file.")
    parallelism = spark.sparkContext.defaultParallelism
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(split_bytes(path, parallelism)))
    if _is_parquet(path):
        frame = spark.read.parquet(str(path))
        frame = frame.select([sf.col(f"`{c}`").cast("string").alias(c) for c in frame.columns])
        # Spark prunes the columns the projection below leaves out: they are never read.
    else:
        frame = spark.read.csv(
            str(path),
            header=True,
            inferSchema=False,
            quote='"',
            escape='"',
            multiLine=False,
            encoding="UTF-8",
        )
        frame = frame.toDF(*[c.lstrip("\ufeff") for c in frame.columns])
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise NotAnExportError(
            f"{path}: not a listings export, required column(s) missing: {', '.join(missing)}."
        )
    if columns is not None:
        wanted = frozenset(columns)
        frame = frame.select([sf.col(f"`{c}`") for c in frame.columns if c in wanted])
    return frame


def split_bytes(path: Path, parallelism: int) -> int:
    """Return the bytes per input split that give every core about two splits (1 to 128 MiB):
    Spark's default (128 MiB) reads a 100 MB export as one partition, i.e. on one core. Splits
    keep file order, so the output's row order stays the input's."""
    files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
    size = sum(f.stat().st_size for f in files)
    return int(min(max(size // max(2 * parallelism, 1), 1 << 20), 128 << 20))


def _is_parquet(path: Path) -> bool:
    """True for a .parquet file or folder (Spark's output), or a file that starts with PAR1."""
    if path.suffix.lower() == ".parquet" or path.is_dir():
        return True
    with path.open("rb") as handle:
        return handle.read(4) == b"PAR1"


def model_inputs(model_uri: str) -> list[tuple[str, str]]:
    """Return the pyfunc's input columns and their MLflow types, from its signature."""
    import mlflow

    signature = mlflow.models.get_model_info(model_uri).signature
    if signature is None or signature.inputs is None:
        raise ValueError(f"{model_uri} has no input signature: Spark cannot feed it")
    return [
        (spec.name, getattr(spec.type, "name", str(spec.type))) for spec in signature.inputs.inputs
    ]


# ---- stage 1: clean -------------------------------------------------------------------------


def unsold_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Yield each batch's unsold rows only (unsold_rows' rule: not a labelled sale)."""
    for batch in batches:
        yield text_for_arrow(batch[~is_labelled(coerce_types(batch)).to_numpy()])


def text_for_arrow(frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` as object columns with None for missing: what Arrow takes for Spark
    string columns (a NaN among strings is refused)."""
    return frame.astype(object).where(frame.notna(), None)


def as_read(batch: pd.DataFrame, csv: bool) -> pd.DataFrame:
    """Return a batch of strings typed as read_export returns the file: pandas' text dtype
    (CSV), or objects with missing values as they are (Parquet)."""
    return batch.astype("str") if csv else batch.astype(object)


# ---- stage 2: ids ---------------------------------------------------------------------------


def normalised_ids(values: pd.Series) -> pd.Series:
    """Return each MLSNumber as the duplicate check compares it (text of an int; None when
    missing or invalid)."""
    ids = check_ids(values.to_numpy())[0]
    return pd.Series([None if i is None else str(i) for i in ids], dtype=object)


def mark_duplicates(frame: DataFrame) -> DataFrame:
    """Return `frame` with _pos (file order) and _first: for a row whose id an earlier row used,
    that earlier row's _pos (else null). One small aggregate over the ids, broadcast back."""
    from pyspark.sql import functions as sf
    from pyspark.sql.functions import pandas_udf

    ids = pandas_udf(normalised_ids, "string")
    frame = frame.withColumn(_POS, sf.monotonically_increasing_id()).withColumn(
        _ID, ids(sf.col(MLS_ID))
    )
    firsts = (
        frame.where(sf.col(_ID).isNotNull())
        .groupBy(_ID)
        .agg(sf.min(_POS).alias(_FIRST), sf.count(sf.lit(1)).alias("_n"))
        .where(sf.col("_n") > 1)
        .select(_ID, _FIRST)
    )
    joined = frame.join(sf.broadcast(firsts), on=_ID, how="left")
    later = sf.when(sf.col(_POS) > sf.col(_FIRST), sf.col(_FIRST))
    return joined.withColumn(_FIRST, later).drop(_ID)


# ---- stage 3: prepare -----------------------------------------------------------------------


def prepare_batch(batch: pd.DataFrame, facts: ModelFacts, csv: bool = True) -> pd.DataFrame:
    """Return, per row of `batch` (strings + _pos, _first): _pos, MLSNumber, `error` (the data
    contract's reasons, or why the model cannot read the export), `warning` (extrapolation) and
    the model's typed input columns. A row with an error gets the filler's inputs instead: the
    pyfunc values a batch as a whole and fails on one row it cannot read (its price is dropped)."""
    batch = batch.reset_index(drop=True)
    raw = as_read(batch.drop(columns=[_POS, _FIRST]), csv)
    stand_ins = as_read(_stand_ins(batch), csv)
    result = validate_listings(pd.concat([stand_ins, raw], ignore_index=True))
    offset = len(stand_ins)
    error = np.array([""] * len(raw), dtype=object)
    warning = np.array([""] * len(raw), dtype=object)
    rejected = result.rejected.index.to_numpy() - offset
    keep = rejected >= 0
    error[rejected[keep]] = result.rejected[REASON_COLUMN].to_numpy()[keep]
    accepted = result.accepted.iloc[result.accepted.index.to_numpy() >= offset]
    typed = coerce_types(accepted)
    rows = typed.index.to_numpy() - offset
    inputs = pd.DataFrame(
        {
            name: pd.Series([facts.filler.get(name)] * len(raw), dtype=_dtype(kind))
            for name, kind in facts.inputs
        }
    )
    if len(typed):
        try:
            encoded = facts.encoder_.encode(typed)
        except KeyError as err:  # value_frame's rule: the export lacks a column the model reads
            error[rows] = f"could not be valued: {err.args[0]}"
        else:
            seen = {
                c: matrix_support_values(facts.encoder_, encoded, c) for c in facts.training_ranges_
            }
            warning[rows] = extrapolation_warnings(facts, seen, len(typed))
            for name, kind in facts.inputs:
                values = typed[name] if name in typed else pd.Series(np.nan, index=typed.index)
                inputs.loc[rows, name] = values.astype(_dtype(kind)).to_numpy()
    for name, _kind in facts.inputs:  # inputs kept only where the row can be valued
        filler = facts.filler.get(name)
        inputs.loc[error != "", name] = np.nan if filler is None else filler
    text = [MLS_ID] + [name for name, kind in facts.inputs if _dtype(kind) == "object"]
    out = pd.DataFrame(
        {
            _POS: batch[_POS].to_numpy(),
            MLS_ID: raw[MLS_ID].to_numpy(),
            "error": error,
            "warning": warning,
            **{name: inputs[name] for name, _ in facts.inputs},
        }
    )
    out[text] = text_for_arrow(out[text])
    return out


def _stand_ins(batch: pd.DataFrame) -> pd.DataFrame:
    """Return one row per id that this batch's rows repeat from an earlier batch: the id alone,
    put in front so validate_listings reports the repeat as "already used by an earlier row"."""
    first = batch[_FIRST]
    elsewhere = first.notna() & ~first.isin(batch[_POS])
    ids = batch.loc[elsewhere, [MLS_ID, _FIRST]].drop_duplicates(subset=_FIRST)
    columns = [c for c in batch.columns if c not in (_POS, _FIRST)]
    return pd.DataFrame({c: ids[MLS_ID].to_numpy() if c == MLS_ID else None for c in columns})


def _dtype(kind: str) -> str:
    """pandas dtype of an MLflow column type: numbers as float64 (NaN for missing), else text."""
    return "float64" if kind in ("double", "float", "long", "integer") else "object"


def prepare_batches(
    batches: Iterator[pd.DataFrame], facts: ModelFacts, csv: bool
) -> Iterator[pd.DataFrame]:
    """mapInPandas face of prepare_batch."""
    for batch in batches:
        yield prepare_batch(batch, facts, csv)


# ---- stage 5: finish ------------------------------------------------------------------------


def finish_batch(batch: pd.DataFrame, facts: ModelFacts) -> pd.DataFrame:
    """Return OUTPUT_COLUMNS for prepared rows with their prices (the flattened struct): the
    refusal rule on the rows without an error, prices blank wherever there is one, rounded to
    dollars (value_matrix's order)."""
    prices = batch[PRICE_COLUMNS].to_numpy(dtype=float)
    error = batch["error"].to_numpy(dtype=object).copy()
    open_rows = np.flatnonzero(error == "")
    if open_rows.size:
        chosen = prices[open_rows]
        error[open_rows] = refusals(facts, chosen[:, 0], chosen, facts.factor)
    prices[error != ""] = np.nan
    prices = prices.round(0)
    out = pd.DataFrame(
        {
            MLS_ID: batch[MLS_ID].to_numpy(dtype=object),
            **{c: prices[:, i] for i, c in enumerate(PRICE_COLUMNS)},
            "error": error,
            "warning": batch["warning"].to_numpy(dtype=object),
        },
        columns=OUTPUT_COLUMNS,
    )
    out[[MLS_ID]] = text_for_arrow(out[[MLS_ID]])
    return out


def finish_batches(batches: Iterator[pd.DataFrame], facts: ModelFacts) -> Iterator[pd.DataFrame]:
    """mapInPandas face of finish_batch."""
    for batch in batches:
        yield finish_batch(batch, facts)


# ---- the whole job --------------------------------------------------------------------------


def score(
    frame: DataFrame,
    model_uri: str,
    facts: ModelFacts,
    confidence: float,
    csv: bool = True,
    unsold_only: bool = False,
) -> DataFrame:
    """Return the valuations (OUTPUT_COLUMNS, file order) of the string DataFrame `frame`:
    clean, ids, prepare, prices (spark_udf), finish."""
    import mlflow
    from pyspark.sql import functions as sf

    if csv:  # in Spark SQL: no Python worker for the common case
        missing = list(CSV_MISSING)
        frame = frame.select(
            [
                sf.when(sf.col(f"`{c}`").isin(missing), None).otherwise(sf.col(f"`{c}`")).alias(c)
                for c in frame.columns
            ]
        )
    if unsold_only:
        strings = ", ".join(f"`{c}` string" for c in frame.columns)
        frame = frame.mapInPandas(_bind(unsold_batches), strings)
    frame = mark_duplicates(frame)
    inputs = ", ".join(f"`{n}` {_spark_type(k)}" for n, k in facts.inputs)
    prepared_schema = f"{_POS} long, {MLS_ID} string, error string, warning string, {inputs}"
    prepared = frame.mapInPandas(_bind(prepare_batches, facts=facts, csv=csv), prepared_schema)
    udf = mlflow.pyfunc.spark_udf(
        frame.sparkSession,
        model_uri,
        result_type=RESULT_TYPE,
        env_manager="local",
        params={"confidence": float(confidence), "checked": True},  # rows prepared above
    )
    args = sf.struct(*[sf.col(f"`{n}`") for n, _ in facts.inputs])
    valued = prepared.withColumn(PRICES, udf(args)).select(
        _POS, MLS_ID, "error", "warning", *[sf.col(f"{PRICES}.{c}").alias(c) for c in PRICE_COLUMNS]
    )
    out_schema = (
        f"{MLS_ID} string, "
        + ", ".join(f"{c} double" for c in PRICE_COLUMNS)
        + ", error string, warning string"
    )
    return valued.mapInPandas(_bind(finish_batches, facts=facts), out_schema)


def _bind(fn: Callable[..., Iterator[pd.DataFrame]], **kwargs) -> Callable:
    """Return fn with keyword arguments fixed, as mapInPandas wants (a plain closure pickles)."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return fn(batches, **kwargs)

    return run


def _spark_type(kind: str) -> str:
    """Spark SQL type of a pyfunc input column as prepare_batch emits it."""
    return "double" if _dtype(kind) == "float64" else "string"


def value_on_spark(
    data: str | Path,
    output: str | Path,
    model_ref: str | None = None,
    master: str = DEFAULT_MASTER,
    confidence: float | None = None,
    unsold_only: bool = False,
    spark: SparkSession | None = None,
    overwrite: bool = False,
) -> SparkSummary:
    """Value every row of `data` (CSV or Parquet) with the model behind `model_ref` on Spark and
    write OUTPUT_COLUMNS as Parquet to `output` (Spark's folder of part files, file order
    kept); return the counts. Uses `spark` when given, else a session on `master` (stopped at
    the end). An `output` that holds anything but an earlier valuation's part files is refused
    (ValueError) unless `overwrite`: Spark's overwrite deletes the whole path first."""
    import mlflow

    check_output(Path(output), overwrite)
    from homevision.tracking import fetch_verified, load_local, tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    with tempfile.TemporaryDirectory(prefix="homevision-spark-model-") as tmp:
        # One download, checked against its signature when a key is configured; the driver and
        # spark_udf both load that copy, so what was checked is what values.
        local = str(fetch_verified(model_ref, Path(tmp)))
        model = load_local(local)
        level = model.confidence if confidence is None else confidence
        if level not in model.levels:
            levels = ", ".join(str(v) for v in model.levels)
            raise ValueError(f"this model carries ranges at {levels} only")
        facts = ModelFacts.of(model, model_inputs(local))
        own = spark is None
        session = create_session(master) if own else spark
        try:
            frame = read_listings(session, data, export_columns(model))
            csv = not _is_parquet(Path(data))
            valued = score(frame, local, facts, level, csv=csv, unsold_only=unsold_only)
            valued.write.mode("overwrite").parquet(str(output))
            return summarize(session, output, level)
        finally:
            if own:
                session.stop()


# What Spark writes into a Parquet folder: part files, their checksums and the success marker.
SPARK_OUTPUT_FILE = re.compile(r"\.?(part-.*|_SUCCESS)(\.crc)?")


def check_output(output: Path, overwrite: bool) -> None:
    """Raise ValueError when writing to `output` would delete something that is not an earlier
    Spark valuation (a file, or a folder holding other files), unless `overwrite`."""
    if overwrite or not output.exists():
        return
    if output.is_dir():
        others = [p.name for p in output.iterdir() if not SPARK_OUTPUT_FILE.fullmatch(p.name)]
        if not others:
            return
        shown = ", ".join(sorted(others)[:3]) + (", ..." if len(others) > 3 else "")
        raise ValueError(
            f"{output} holds other files than an earlier valuation ({shown}): Spark would delete "
            "everything in it; choose an empty or new path, or pass --overwrite"
        )
    raise ValueError(
        f"{output} is a file: Spark writes a folder there and would delete it; choose a new "
        "path, or pass --overwrite"
    )


def summarize(spark: SparkSession, output: str | Path, confidence: float) -> SparkSummary:
    """Return the counts of a written valuation folder (one cheap pass over two columns)."""
    from pyspark.sql import functions as sf

    row = (
        spark.read.parquet(str(output))
        .agg(
            sf.count(sf.lit(1)).alias("rows"),
            sf.sum((sf.col("error") != "").cast("long")).alias("failed"),
            sf.sum((sf.col("warning") != "").cast("long")).alias("warned"),
        )
        .first()
    )
    return SparkSummary(
        int(row["rows"]), int(row["failed"] or 0), int(row["warned"] or 0), confidence
    )
