"""Value an export on Spark (`homevision predict --engine spark`): millions of listings, on
`local[*]` or any cluster, with the same output and per-row errors as the pandas path.

Design. Each row crosses from the JVM to Python once: one Arrow stage (mapInArrow) values each
batch with the streamed pandas path's own chunk function (stream.value_chunk: validation,
typing, the model, the ranges, the refusals), so the output is the pandas path's by
construction:

1. clean  - CSV cells pandas reads as missing ("", "NA", ...) become null (Spark SQL); a
            Parquet file's numbers, booleans and text keep their types, as pyarrow reads them
            for the pandas path; optionally keep only the unsold rows (what `predict` without
            --data values).
2. ids    - the one rule that spans rows, "MLSNumber already used by an earlier row", is
            decided over the whole file first: a small job reads the ids alone and collects,
            for each id used more than once, its first position in the file.
3. value  - per Arrow batch: the rows whose id was first used before the batch are marked as
            repeated (as the pandas path marks those an earlier chunk used) and the batch is
            valued by value_chunk with the model, broadcast once to every Python worker.

The model is the registered one, downloaded once and checked against its signature on the
driver (tracking.fetch_verified): what was checked is what values. Until issue 25 the prices
came from mlflow.pyfunc.spark_udf between a validating and a refusing pandas stage; that sent
every row through Python four times (ids, validation, prices, refusals) and ran at a quarter
of the pandas path's speed on two cores (docs/how-to/scale.md has the figures).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from homevision.config import SPARK_BATCH_ROWS
from homevision.data.listings import (
    ArrowChunk,
    NotAnExportError,
    check_columns,
    coerce_types,
    is_labelled,
)
from homevision.data.schema import MLS_ID, REQUIRED_COLUMNS
from homevision.data.sources import is_parquet
from homevision.valuation.predict import (
    OUTPUT_COLUMNS,
    PRICE_COLUMNS,
    export_columns,
    required_columns,
)
from homevision.valuation.stream import as_arrow, mls_ids, value_chunk

if TYPE_CHECKING:
    from pyspark.broadcast import Broadcast
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)
DEFAULT_MASTER = "local[*]"
# What pandas.read_csv reads as missing by default (read_export keeps that default).
CSV_MISSING = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND"}
    | {"1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)
# Spark types whose Arrow form is what pyarrow reads from Parquet; any other column (dates,
# timestamps, decimals, binary) is cast to text by Spark, as before.
KEPT_TYPES = frozenset(
    {"boolean", "tinyint", "smallint", "int", "bigint", "float", "double", "string"}
)
# OUTPUT_COLUMNS as Spark types: the ids and reasons as text, the prices as numbers.
OUTPUT_SCHEMA = ", ".join(
    f"{c} {'double' if c in PRICE_COLUMNS else 'string'}" for c in OUTPUT_COLUMNS
)
_POS, _ID, _FIRST = "_pos", "_id", "_first"  # helper columns, never written


@dataclass(frozen=True)
class SparkJob:
    """What every Python worker needs to value its batches: the fitted model, the range
    level, and the ids used more than once in the file (sorted) with their first positions."""

    model: Any
    confidence: float
    repeated_ids: np.ndarray
    first_at: np.ndarray

    def repeated(self, ids: np.ndarray, valid: np.ndarray, start: int) -> np.ndarray:
        """Return, per row of a batch starting at position `start`, whether its id was first
        used before the batch (an earlier batch holds that id's first row)."""
        if not self.repeated_ids.size:
            return np.zeros(len(ids), dtype=bool)
        at = np.minimum(np.searchsorted(self.repeated_ids, ids), self.repeated_ids.size - 1)
        found = valid & (self.repeated_ids[at] == ids)
        return found & (self.first_at[at] < start)


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
    """Return a SparkSession on `master` with Arrow on, batches of SPARK_BATCH_ROWS rows and
    Python workers on this interpreter (so they have pandas and
    homevision). A local master binds the driver to 127.0.0.1; a cluster master keeps Spark's
    own address choice (its executors must reach the driver)."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName("homevision-predict")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(SPARK_BATCH_ROWS))
        .config("spark.ui.enabled", "true" if ui else "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if master.startswith("local"):
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def read_listings(
    spark: SparkSession,
    path: str | Path,
    columns: Collection[str] | None = None,
    required: Collection[str] = REQUIRED_COLUMNS,
) -> DataFrame:
    """Return the export (CSV or Parquet) as a DataFrame, header names as columns, file order
    kept: a CSV as text, a Parquet file's numbers, booleans and text as they are (other types
    as text). With `columns`, only those of them the file has (predict.export_columns: what a
    valuation reads, as the pandas path reads it; Spark then parses and sends to Python those
    alone, not the 250 of an MLS export). Raises NotAnExportError when it cannot be a listings
    export: its header lacks a `required` column (a valuation: predict.required_columns)."""
    from pyspark.sql import functions as sf

    path = Path(path)
    if not path.exists():
        raise NotAnExportError(f"{path}: no such file.")
    parallelism = spark.sparkContext.defaultParallelism
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(split_bytes(path, parallelism)))
    if _is_parquet(path):
        frame = spark.read.parquet(str(path))
        frame = frame.select(
            [
                sf.col(f"`{name}`") if kind in KEPT_TYPES else sf.col(f"`{name}`").cast("string")
                for name, kind in frame.dtypes
            ]
        )
        # Spark prunes the columns the projection below leaves out: they are never read.
    else:
        # A quoted value with a line break (remarks typed on several lines) splits a row in
        # two unless Spark reads the file as one record stream, which it cannot split across
        # cores: so only such a file is read that way.
        multiline = has_quoted_line_break(path)
        if multiline:
            log.info("%s holds a quoted line break: Spark reads it as one partition", path)
        frame = spark.read.csv(
            str(path),
            header=True,
            inferSchema=False,
            quote='"',
            escape='"',
            multiLine=multiline,
            encoding="UTF-8",
        )
        frame = frame.toDF(*[c.lstrip("\ufeff") for c in frame.columns])
    check_columns(path, frame.columns, required)
    if columns is not None:
        wanted = frozenset(columns)
        frame = frame.select([sf.col(f"`{c}`") for c in frame.columns if c in wanted])
    return frame


def has_quoted_line_break(path: Path, block: int = 1 << 24) -> bool:
    """True when a line break (LF or CR) of the CSV file `path` lies inside double quotes, i.e.
    some value spans lines. Read block by block: the parity of the quotes seen so far says
    whether a byte is inside quotes (a doubled quote inside a value toggles twice). A stray
    quote in an unquoted value can only make it answer True, the safe side: Spark then reads
    the file whole, correctly, on one core.

    Spark's line-by-line CSV reader (multiLine=False, splittable) ends a row at every line
    break, quoted or not: such a value split its row in two, and Spark's output had a row more
    than the pandas path's, both halves refused."""
    inside = 0
    with open(path, "rb") as fh:
        while data := fh.read(block):
            raw = np.frombuffer(data, np.uint8)
            parity = np.bitwise_xor.accumulate((raw == ord('"')).view(np.uint8)) ^ inside
            breaks = (raw == ord("\n")) | (raw == ord("\r"))
            if parity[breaks].any():
                return True
            inside = int(parity[-1])
    return False


def split_bytes(path: Path, parallelism: int) -> int:
    """Return the bytes per input split that give every core about two splits (1 to 128 MiB):
    Spark's default (128 MiB) reads a 100 MB export as one partition, i.e. on one core. Splits
    keep file order, so the output's row order stays the input's."""
    files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
    size = sum(f.stat().st_size for f in files)
    return int(min(max(size // max(2 * parallelism, 1), 1 << 20), 128 << 20))


def _is_parquet(path: Path) -> bool:
    """True for a Parquet file (sources.is_parquet) or a folder (Spark's output)."""
    return path.is_dir() or is_parquet(path)


def as_chunk(batch: pa.RecordBatch, csv: bool) -> ArrowChunk:
    """Return a Spark Arrow batch as the pandas path reads the same rows (read_export_chunks):
    a CSV's text as pandas reads it, a Parquet file's numeric fields kept as numbers."""
    return ArrowChunk(batch, numbers=not csv, csv=csv)


# ---- stage 1: clean -------------------------------------------------------------------------


def unsold_batches(batches: Iterator[pa.RecordBatch], csv: bool) -> Iterator[pa.RecordBatch]:
    """Yield each batch's unsold rows only (unsold_rows' rule: not a labelled sale)."""
    for batch in batches:
        labelled = is_labelled(coerce_types(as_chunk(batch, csv).frame())).to_numpy(dtype=bool)
        yield batch.filter(pa.array(~labelled))


# ---- stage 2: ids ---------------------------------------------------------------------------


def id_batches(batches: Iterator[pa.RecordBatch], csv: bool) -> Iterator[pa.RecordBatch]:
    """Yield (_pos, _id) per row: its MLSNumber as the duplicate rule reads it (stream.mls_ids),
    null when it has no valid one."""
    for batch in batches:
        ids, valid = mls_ids(as_chunk(batch, csv).frame([MLS_ID]))
        yield pa.record_batch(
            {_POS: batch.column(_POS), _ID: pa.array(ids, pa.int64(), mask=~valid)}
        )


def first_uses(frame: DataFrame, csv: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return (ids, first positions) of the ids that `frame` (with _pos) uses more than once,
    sorted by id: one job over the MLSNumber column alone, a small aggregate collected."""
    from pyspark.sql import functions as sf

    ids = frame.select(_POS, MLS_ID).mapInArrow(
        _bind(id_batches, csv=csv), f"{_POS} long, {_ID} long"
    )
    firsts = (
        ids.where(sf.col(_ID).isNotNull())
        .groupBy(_ID)
        .agg(sf.min(_POS).alias(_FIRST), sf.count(sf.lit(1)).alias("_n"))
        .where(sf.col("_n") > 1)
        .select(_ID, _FIRST)
        .toArrow()
    )
    repeated = firsts.column(_ID).to_numpy()
    order = np.argsort(repeated, kind="stable")
    return repeated[order], firsts.column(_FIRST).to_numpy()[order]


# ---- stage 3: value -------------------------------------------------------------------------

_limits: Any = None  # a Python worker's BLAS thread limit, kept alive


def _job(shared: Broadcast) -> SparkJob:
    """Return the broadcast job (PySpark unpickles it once per Python worker and keeps it);
    the worker runs on one BLAS thread (a Spark task is one core; its tasks are the
    parallelism)."""
    global _limits
    if _limits is None:
        from threadpoolctl import threadpool_limits

        _limits = threadpool_limits(1)
    return shared.value


def value_batches(
    batches: Iterator[pa.RecordBatch], shared: Broadcast, csv: bool
) -> Iterator[pa.RecordBatch]:
    """Yield the valuations (OUTPUT_COLUMNS) of each batch (export columns + _pos), exactly as
    the streamed pandas path values the same rows as one chunk."""
    job = _job(shared)
    for batch in batches:
        if not batch.num_rows:
            continue
        start = pc.min(batch.column(_POS)).as_py()
        chunk = as_chunk(batch.drop_columns([_POS]), csv)
        ids, valid = mls_ids(chunk.frame([MLS_ID]))
        repeated = job.repeated(ids, valid, start)
        frame, _level = value_chunk(job.model, chunk, repeated, job.confidence)
        yield from as_arrow(frame, text=pa.string()).to_batches()


# ---- the whole job --------------------------------------------------------------------------


def score(
    frame: DataFrame, model, confidence: float, csv: bool = True, unsold_only: bool = False
) -> DataFrame:
    """Return the valuations (OUTPUT_COLUMNS, file order) of the export DataFrame `frame`:
    clean, ids (one small job, run here), value."""
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
        frame = frame.mapInArrow(_bind(unsold_batches, csv=csv), frame.schema)
    frame = frame.withColumn(_POS, sf.monotonically_increasing_id())
    repeated, first_at = first_uses(frame, csv)
    shared = frame.sparkSession.sparkContext.broadcast(
        SparkJob(model, confidence, repeated, first_at)
    )
    return frame.mapInArrow(_bind(value_batches, shared=shared, csv=csv), OUTPUT_SCHEMA)


def _bind(fn: Callable[..., Iterator[pa.RecordBatch]], **kwargs) -> Callable:
    """Return fn with keyword arguments fixed, as mapInArrow wants (a plain closure pickles)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return fn(batches, **kwargs)

    return run


def value_on_spark(
    data: str | Path,
    output: str | Path,
    model_ref: str | None = None,
    master: str = DEFAULT_MASTER,
    confidence: float | None = None,
    unsold_only: bool = False,
    spark: SparkSession | None = None,
    overwrite: bool = False,
    batch_rows: int | None = None,
) -> SparkSummary:
    """Value every row of `data` (CSV or Parquet) with the model behind `model_ref` on Spark and
    write OUTPUT_COLUMNS as Parquet to `output` (Spark's folder of part files, file order
    kept); return the counts. Uses `spark` when given, else a session on `master` (stopped at
    the end); `batch_rows`, when given, is the rows valued at a time (the Arrow batch). An
    `output` that holds anything but an earlier valuation's part files is refused
    (ValueError) unless `overwrite`: Spark's overwrite deletes the whole path first."""
    check_output(Path(output), overwrite)
    model = _checked_model(model_ref)
    level = model.confidence if confidence is None else confidence
    if level not in model.levels:
        levels = ", ".join(str(v) for v in model.levels)
        raise ValueError(f"this model carries ranges at {levels} only")
    own = spark is None
    session = create_session(master) if own else spark
    try:
        if batch_rows is not None:
            session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
        frame = read_listings(session, data, export_columns(model), required_columns(model))
        csv = not _is_parquet(Path(data))
        valued = score(frame, model, level, csv=csv, unsold_only=unsold_only)
        valued.write.mode("overwrite").parquet(str(output))
        return summarize(session, output, level)
    finally:
        if own:
            session.stop()


def _checked_model(model_ref: str | None):
    """Return the fitted model behind `model_ref`, downloaded once and checked against its
    signature when a key is configured: the model broadcast to the workers is the one that
    was checked."""
    import mlflow

    from homevision.tracking import fetch_verified, load_local, tracking_uri

    mlflow.set_tracking_uri(tracking_uri())
    with tempfile.TemporaryDirectory(prefix="homevision-spark-model-") as tmp:
        return load_local(str(fetch_verified(model_ref, Path(tmp))))


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
