"""Value an export too big for memory: read it in chunks, value each chunk with `value_listings`,
append each chunk's valuations to the output. Memory is bounded by the chunk, not the file.

The output equals one `value_listings` over the whole file, row for row: the only rule that
looks across rows (an MLSNumber already used by an earlier row) is carried between chunks by the
MLS numbers read so far (homevision.valuation.seen_ids: a bit or 8 bytes a listing). With
explanations (`top`), each chunk's rows also get predict.explanation_columns: a home's
explanation and comparables do not depend on the other homes of its chunk.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from homevision.data.fields import check_ids
from homevision.data.listings import REASON_COLUMN, ArrowChunk, as_frame, validate_listings
from homevision.data.schema import MLS_ID
from homevision.valuation.parallel import value_in_order
from homevision.valuation.predict import (
    EXPLANATION_COLUMNS,
    PRICE_COLUMNS,
    explanation_columns,
    value_listings,
)
from homevision.valuation.seen_ids import SeenIds

log = logging.getLogger(__name__)
Chunk = pd.DataFrame | ArrowChunk  # what read_export_chunks yields
# The Parquet schema of streamed valuations: the same for every chunk, whatever it holds.
VALUATION_SCHEMA = pa.schema(
    [
        ("MLSNumber", pa.large_string()),
        *((column, pa.float64()) for column in PRICE_COLUMNS),
        ("error", pa.large_string()),
        ("warning", pa.large_string()),
    ]
)
# ... and with explanations (predict.explanation_columns).
EXPLAINED_SCHEMA = pa.schema(
    [
        *VALUATION_SCHEMA,
        ("base_value", pa.float64()),
        ("top_contributions", pa.large_string()),
        ("comparables", pa.large_string()),
    ]
)


@dataclass(frozen=True)
class StreamSummary:
    """What a streamed valuation did: rows written, rows with an error or a warning, level."""

    rows: int
    failed: int
    warned: int
    confidence: float


def summarize(frame: pd.DataFrame, confidence: float) -> StreamSummary:
    """Return the summary of valuations (OUTPUT_COLUMNS) valued at `confidence`."""
    failed = int(frame["error"].ne("").sum())
    return StreamSummary(len(frame), failed, int(frame["warning"].ne("").sum()), confidence)


def mls_ids(raw: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Return (ids, valid): every row's MLSNumber as the duplicate check reads it (0 where it
    has none or an invalid one) and whether it has a valid one."""
    ids = check_ids(raw[MLS_ID].to_numpy())[0] if MLS_ID in raw else []
    valid = np.array([i is not None for i in ids], dtype=bool)
    return np.array([i or 0 for i in ids], dtype=np.int64), valid


def refuse_repeated(raw: pd.DataFrame, frame: pd.DataFrame, repeated: np.ndarray) -> pd.DataFrame:
    """Return the chunk's valuations `frame` with the `repeated` rows (an MLSNumber an earlier
    chunk used) refused as one pass over the file refuses them: no price, warning or
    explanation, and every reason the row breaks (its other rules too) in `error`."""
    if not repeated.any():
        return frame
    again = validate_listings(raw[repeated], repeated=np.ones(int(repeated.sum()), dtype=bool))
    out = frame.copy()
    out.loc[repeated, PRICE_COLUMNS] = np.nan
    out.loc[repeated, "warning"] = ""
    out.loc[repeated, "error"] = again.rejected[REASON_COLUMN].to_numpy()
    base, *texts = EXPLANATION_COLUMNS
    if base in out:
        out.loc[repeated, base] = np.nan
        out.loc[repeated, texts] = ""
    return out


def value_chunks(
    model,
    chunks: Iterable[pd.DataFrame],
    confidence: float | None = None,
    workers: int = 1,
    top: int | None = None,
) -> Iterator[tuple[pd.DataFrame, float]]:
    """Yield (valuations, range level) per chunk of an export (OUTPUT_COLUMNS, in row order;
    with `top`, the explanation columns of its `top` contributions after them): together,
    exactly value_listings over the whole export. With `workers` > 1, chunks are
    valued on that many processes (homevision.valuation.parallel), in the same order, when
    the chunks come as Arrow read them (ArrowChunk): a frame's Python strings cost more to send
    to a worker than to value here (200k rows of CSV as pandas frames: 24,896 rows/s on two
    workers, 32,656 here)."""
    chunks = iter(chunks)
    first = next(chunks, None)
    if first is None:
        return
    if not isinstance(first, ArrowChunk):
        workers = 1
    chunks = itertools.chain([first], chunks)
    jobs = ((raw, repeated, confidence, top) for raw, repeated in repeated_ids(chunks))
    yield from value_in_order(model, jobs, value_chunk, workers)


def repeated_ids(chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, np.ndarray]]:
    """Yield (chunk, repeated) per chunk, `repeated` marking the rows whose MLSNumber an
    earlier chunk used: the one rule that looks across chunks, decided in file order (of an
    ArrowChunk, only the id column is turned into a frame here)."""
    seen = SeenIds()
    for chunk in chunks:
        if isinstance(chunk, ArrowChunk):
            ids, valid = mls_ids(chunk.frame([MLS_ID] if MLS_ID in chunk.columns else []))
        else:
            chunk = chunk.reset_index(drop=True)
            ids, valid = mls_ids(chunk)
        repeated = valid & seen.contains(ids)
        seen.add(ids[valid])
        yield chunk, repeated


def value_chunk(
    model,
    chunk: Chunk,
    repeated: np.ndarray,
    confidence: float | None = None,
    top: int | None = None,
) -> tuple[pd.DataFrame, float]:
    """Return (valuations, range level) of one chunk, its `repeated` rows refused; with `top`,
    explained (predict.explanation_columns)."""
    raw = as_frame(chunk).reset_index(drop=True)
    valued = value_listings(model, raw, confidence=confidence, explain=top is not None)
    frame = valued.frame if top is None else explanation_columns(valued, top)
    return refuse_repeated(raw, frame, repeated), valued.confidence


@contextmanager
def replacing(target: Path) -> Iterator[BinaryIO]:
    """Yield a new file beside `target`, this call's own, that replaces `target` in one step when
    the block ends without an error and is removed when it does not. A reader never finds half
    an output under the name, and two runs writing the same target no longer share one partial
    file (before, the second truncated the first's, both wrote into it, and the output mixed the
    two runs)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
    try:
        with partial.open("xb") as out:
            yield out
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def write_frame(frame: pd.DataFrame, target: Path) -> Path:
    """Write valuations in one go, Parquet for a .parquet target, else CSV; return the path.
    The file appears complete or not at all, as write_chunks' does."""
    with replacing(target) as out:
        if _is_parquet(target):
            frame.to_parquet(out, index=False)
        else:
            frame.to_csv(out, index=False)
    return target


def write_chunks(
    valued: Iterable[tuple[pd.DataFrame, float]],
    target: Path,
    on_chunk: Callable[[int], None] | None = None,
    schema: pa.Schema = VALUATION_SCHEMA,
) -> StreamSummary:
    """Append each chunk's valuations to `target` (CSV with one header, the same bytes as
    write_frame of the whole; or Parquet in `schema`, one row group a chunk) and return the
    summary. `on_chunk` gets the rows written so far. The file appears complete or not at
    all (`replacing`)."""
    total = StreamSummary(0, 0, 0, float("nan"))
    with replacing(target) as out:
        writer = pq.ParquetWriter(out, schema) if _is_parquet(target) else None
        for frame, level in valued:
            if writer is not None:
                writer.write_table(as_arrow(frame, schema=schema))
            else:
                frame.to_csv(out, index=False, header=total.rows == 0)
            chunk = summarize(frame, level)
            total = StreamSummary(
                total.rows + chunk.rows,
                total.failed + chunk.failed,
                total.warned + chunk.warned,
                level,
            )
            if on_chunk:
                on_chunk(total.rows)
        if writer is not None:
            writer.close()
    log.info("Valued %d listings in chunks -> %s", total.rows, target)
    return total


def stream_valuations(
    model,
    chunks: Iterable[pd.DataFrame],
    target: Path,
    confidence: float | None = None,
    on_chunk: Callable[[int], None] | None = None,
    workers: int = 1,
    top: int | None = None,
) -> StreamSummary:
    """Value an export's chunks (from read_export_chunks) into `target`, on `workers`
    processes, explained with their `top` contributions when given; return the summary."""
    valued = value_chunks(model, chunks, confidence, workers, top)
    schema = VALUATION_SCHEMA if top is None else EXPLAINED_SCHEMA
    return write_chunks(valued, target, on_chunk, schema)


def as_arrow(
    frame: pd.DataFrame, text: pa.DataType | None = None, schema: pa.Schema = VALUATION_SCHEMA
) -> pa.Table:
    """Return one chunk of valuations in `schema` (MLS numbers as text, as read), its text
    columns as `text` when given (Spark's Arrow batches take pa.string())."""
    ids = frame["MLSNumber"].astype(object)
    frame = frame.assign(MLSNumber=ids.where(ids.isna(), ids.astype(str)))
    if text is not None:
        schema = pa.schema(
            [pa.field(f.name, text) if pa.types.is_large_string(f.type) else f for f in schema]
        )
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"
