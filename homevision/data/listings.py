"""Read an MLS export, validate it against the data contract, and split it for modelling.

Nothing is lost: `validate_listings` returns accepted + rejected rows that always add up to the
input, every violation with its MLSNumber, row, column, value and rule, and the per-rule count of
repairable quirks that the feature pipeline fixes later.
"""

from __future__ import annotations

import codecs
import collections
import csv
import io
import itertools
import logging
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from pandas._libs.parsers import STR_NA_VALUES  # pandas' default NA markers

from homevision.data.errors import NotAnExportError
from homevision.data.fields import FALSE_TOKENS, FIELDS, TRUE_TOKENS, check_ids, describe
from homevision.data.schema import (
    BOOLEAN_COLUMNS,
    MLS_ID,
    NUMERIC_COLUMNS,
    REPAIRABLE_RULES,
    REQUIRED_COLUMNS,
    SOLD,
    STATUS,
    TARGET,
    TEXT_COLUMNS,
    find_failures,
    to_number,
)

log = logging.getLogger(__name__)
REASON_COLUMN = "rejection_reason"
ROW_COLUMN = "row"  # in rejected.csv: the data row (1 = the first after the header)
CSV_BLOCK_BYTES = 1 << 20  # Arrow parses a CSV this much at a time (16 MB held 800 MB)
# How Arrow must parse a CSV to read it as pandas does: quoted line breaks are part of a value
# (an export's remarks hold them), empty lines are skipped.
_ARROW_PARSE = pa_csv.ParseOptions(newlines_in_values=True, ignore_empty_lines=True)
BOOLEAN_TOKENS = TRUE_TOKENS | FALSE_TOKENS
VIOLATION_COLUMNS = ["MLSNumber", "row", "column", "value", "rule", "fatal"]
# pandera's built-in check names, mapped to this project's rule ids.
_PANDERA_RULES = {"not_nullable": "missing_value"}
_FRAME_CHECK_COLUMNS = {"sold_price_invalid": TARGET, "sold_price_implausible": TARGET}


@dataclass
class ValidationResult:
    """The outcome of validating one export: rows kept, rows set aside, and why."""

    accepted: pd.DataFrame
    rejected: pd.DataFrame
    violations: pd.DataFrame
    rows: int
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 when every row was accepted or repaired, 1 when some were rejected."""
        return 1 if len(self.rejected) else 0


def read_export(path: str | Path, required: Collection[str] = REQUIRED_COLUMNS) -> pd.DataFrame:
    """Return the export as a frame of strings (missing cells NaN), row order kept.

    Raises NotAnExportError with one sentence when the file cannot be a listings export: one
    without rows or without a `required` column (by default the contract's full header; a
    valuation needs only predict.required_columns).
    """
    path = Path(path)
    frame = _read_parquet(path) if _is_parquet(path) else _read_csv(path)
    _check_listings(path, frame, required)
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class ArrowChunk:
    """Rows of an export as Arrow read them, before they become the frame read_export_chunks
    yields (`frame()`): Arrow buffers, which pickle without per-value work, so a chunk goes to
    another process for a fraction of what its frame of Python strings costs.

    A Parquet chunk's values become text as `_as_strings` makes them (`numbers` kept as
    numbers). A CSV chunk (`csv`) holds the file's text already, its missing cells where pandas
    sees them, so its frame is what pandas.read_csv(dtype=str) gives, index included
    (`start`: the chunk's first row in the file)."""

    batch: pyarrow.RecordBatch | pyarrow.Table
    numbers: bool = False
    csv: bool = False
    start: int = 0

    @property
    def columns(self) -> list[str]:
        return self.batch.schema.names

    @property
    def empty(self) -> bool:
        return self.batch.num_rows == 0

    def __len__(self) -> int:
        return self.batch.num_rows

    def frame(self, columns: list[str] | None = None) -> pd.DataFrame:
        """Return the rows as read_export_chunks yields them (only `columns` when given)."""
        data = self.batch if columns is None else self.batch.select(columns)
        table = data if isinstance(data, pyarrow.Table) else pyarrow.Table.from_batches([data])
        if self.csv:
            frame = table.to_pandas()
            return frame.set_axis(pd.RangeIndex(self.start, self.start + len(frame)))
        # An integer column with a missing value: Python ints, not floats. As floats the MLS
        # number 14215661 read "14215661.0" in a chunk with a missing one and "14215661" in a
        # chunk without, and an id above 2**53 became another id, so the output and the
        # duplicate rule depended on the chunk size (Arrow, Spark and DuckDB write integer ids
        # without pandas' metadata, which would otherwise make them pandas' Int64).
        frame = table.to_pandas(integer_object_nulls=True)
        return _as_strings(frame, self.numbers)


def as_frame(chunk: pd.DataFrame | ArrowChunk) -> pd.DataFrame:
    """Return a chunk of read_export_chunks as a frame (an ArrowChunk's `frame()`)."""
    return chunk.frame() if isinstance(chunk, ArrowChunk) else chunk


def read_export_chunks(
    path: str | Path,
    chunk_rows: int,
    columns: Collection[str] | None = None,
    numbers: bool = False,
    lazy: bool = False,
    required: Collection[str] = REQUIRED_COLUMNS,
) -> Iterator[pd.DataFrame | ArrowChunk]:
    """Return the export's rows as frames of at most `chunk_rows`, parsed exactly as read_export
    parses the whole file, so memory is bounded by the chunk, not the file. With `columns`, only
    those of them the file has are read (Parquet column projection, CSV `usecols`): a valuation
    needs the contract's fields and the model's columns, not all 250 of an MLS export.

    Everything read_export checks up front (a file, not empty, UTF-8, the required columns, some
    rows) is checked before this returns, with the same sentence; a CSV that stops parsing
    further on raises the same NotAnExportError when its chunk is reached (a row whose field
    count is not the header's: as soon as pandas takes the file over from Arrow, which counts
    every row's fields first, so at once when Arrow cannot read the first block). With
    `numbers`, the numeric fields a Parquet file holds as numbers are not turned into text (see
    _as_strings): for a reader that validates and types the rows, as a valuation does, with the
    same results.
    With `lazy`, chunks come as ArrowChunk where Arrow read them (as_frame gives the frame).
    `required`: the columns the header must hold, as read_export's.
    """
    path = Path(path)
    wanted = None if columns is None else frozenset(columns)
    chunks = (
        _parquet_chunks(path, chunk_rows, wanted, numbers, lazy)
        if _is_parquet(path)
        else _csv_chunks(path, chunk_rows, wanted, lazy)
    )
    first = next(chunks, None)
    _check_listings(path, pd.DataFrame() if first is None else first, required)
    return itertools.chain([first], chunks)


def _is_parquet(path: Path) -> bool:
    """Return whether the file is Parquet (else CSV); NotAnExportError when it cannot be an
    export at all: missing, a directory, empty, or binary that is not Parquet."""
    if not path.exists():
        raise NotAnExportError(f"{path}: no such file.")
    if path.is_dir():
        raise NotAnExportError(f"{path}: is a directory, not a listings export file.")
    with path.open("rb") as file:
        head = file.read(8192)
    if not head.strip():
        raise NotAnExportError(f"{path}: the file is empty.")
    if head.startswith(b"PAR1") or path.suffix.lower() == ".parquet":
        return True
    if b"\x00" in head:
        raise NotAnExportError(f"{path}: looks like a binary file, not a CSV export.")
    return False


def _check_listings(
    path: Path, frame: pd.DataFrame | ArrowChunk, required: Collection[str]
) -> None:
    """Raise NotAnExportError unless the (first) frame has rows and every `required` column.
    Rows are counted, not `empty`: read for a valuation's columns only, a file holding none of
    them has rows and no column, which pandas calls empty."""
    if len(frame) == 0:
        raise NotAnExportError(f"{path}: has a header but no listing rows.")
    check_columns(path, frame.columns, required)


def check_columns(path: str | Path, columns: Collection[str], required: Collection[str]) -> None:
    """Raise NotAnExportError naming the `required` columns the header (`columns`) lacks."""
    missing = [c for c in required if c not in columns]
    if missing:
        raise NotAnExportError(
            f"{path}: not a listings export, required column(s) missing: {', '.join(missing)}."
        )


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _undecodable(path, err.start) from None
    try:
        _check_field_counts(path, io.StringIO(text, newline=""))
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=True, index_col=False)
    except _CSV_ERRORS as err:
        raise _unreadable_csv(path, err) from None


def _check_field_counts(path: Path, text: io.TextIOBase) -> None:
    """Raise NotAnExportError naming the first row whose field count is not the header's (or
    the names the header repeats, see _check_names).

    pandas pads a short row (a copy cut off part way) with missing cells and, where the first
    row has one field more than the header (a trailing separator), takes the first column as
    the index, which read_export then dropped: every value moved one column over. Neither can
    be told from a real missing value later, so the file is refused here. Blank and space-only
    lines are skipped as pandas skips them; a value may be as long as pandas allows. A row
    next to a bare CR is not counted: pandas ends a line there and may drop the delimiter
    after it, which the csv module does not, so their counts differ (such a row reads as
    pandas reads it, as before)."""
    csv.field_size_limit(max(csv.field_size_limit(), _LARGEST_FIELD))
    lines = _Lines(text)
    reader = csv.reader(lines)
    width = row = 0
    line = 1  # where the next record starts
    for record in reader:
        start, line = line, reader.line_num + 1
        if not record or (len(record) == 1 and not record[0].strip(" \t")):
            continue
        if not width:
            _check_names(path, record)
            width = len(record)
            continue
        row += 1
        if len(record) != width and lines.bare_cr_at < start - 1:
            raise NotAnExportError(
                f"{path}: row {row} (line {start}) has {len(record)} fields where the header"
                f" has {width} (a row cut short or a stray separator); re-export the file."
            )


def _check_names(path: Path, names: list[str]) -> None:
    """Raise NotAnExportError naming the columns the header names more than once: pandas read
    the second SqFtTotal as SqFtTotal.1 and ignored it, and pyarrow refused a Parquet file
    without saying why. Blank names are not compared (Excel's trailing empty columns)."""
    counts = collections.Counter(n for n in names if n.strip())
    repeated = [n for n, count in counts.items() if count > 1]
    if repeated:
        raise NotAnExportError(
            f"{path}: the header names {', '.join(repeated)} more than once, so which column"
            " holds the values is unclear; re-export it with each column once."
        )


class _Lines:
    """The lines of a text opened with newline="", noting the last that ends in a bare CR."""

    def __init__(self, text: io.TextIOBase) -> None:
        self.text = text
        self.number = 0
        self.bare_cr_at = -1  # the number of the last line ending in a CR without a LF

    def __iter__(self) -> Iterator[str]:
        for line in self.text:
            self.number += 1
            if line.endswith("\r"):
                self.bare_cr_at = self.number
            yield line


def _csv_chunks(
    path: Path, chunk_rows: int, columns: frozenset[str] | None = None, lazy: bool = False
) -> Iterator[pd.DataFrame | ArrowChunk]:
    """Yield _read_csv's frames `chunk_rows` at a time (the file is checked as UTF-8 first),
    only `columns` when given (in the file's order).

    Arrow's CSV reader reads them (a quarter of pandas' time on a 250-column export) while the
    file is one it reads as pandas does: a header pandas keeps as it is, every row as wide as
    the header, no bare CR. Where Arrow stops (a short or long row, a bare CR, anything it
    cannot parse), pandas reads the rest of the file from the first row not yet yielded, after
    the field counts are checked as _read_csv checks them: a row shorter or longer than the
    header refuses the file, naming the row and its line."""
    position = _first_undecodable_byte(path)
    if position is not None:
        raise _undecodable(path, position)
    done = 0
    arrow = _arrow_csv_chunks(path, chunk_rows, columns)
    if arrow is not None:
        try:
            for chunk in arrow:
                yield chunk if lazy else chunk.frame()
                done += len(chunk)
            if done:
                return
        except (pyarrow.ArrowException, BareCarriageReturnError) as err:
            log.info("%s: pandas reads on from row %d (%s)", path, done + 1, _first_line(err))
    seen = 0  # `done` is whole chunks: pandas' chunks from there on are the ones to yield
    for frame in _pandas_csv_chunks(path, chunk_rows, columns):
        if seen >= done:
            yield frame
        seen += len(frame)


def _pandas_csv_chunks(
    path: Path, chunk_rows: int, columns: frozenset[str] | None
) -> Iterator[pd.DataFrame]:
    """Yield pandas' frames of `chunk_rows`, only `columns` when given (in the file's order).

    Every column is parsed and the others dropped after: given `usecols`, pandas no longer
    refuses a row wider than the header, it drops the extra cells, so a stray separator in one
    row shifted that row's later cells into the wrong columns, and the row was valued on them.
    Every row's field count is checked first (_check_field_counts)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as text:
            _check_field_counts(path, text)
        with pd.read_csv(
            path,
            dtype=str,
            keep_default_na=True,
            encoding="utf-8-sig",
            chunksize=chunk_rows,
            index_col=False,
        ) as reader:
            for frame in reader:
                if columns is not None:
                    frame = frame[[c for c in frame.columns if c in columns]]
                yield frame
    except _CSV_ERRORS as err:
        raise _unreadable_csv(path, err) from None


def _arrow_csv_chunks(
    path: Path, chunk_rows: int, columns: frozenset[str] | None
) -> Iterator[ArrowChunk] | None:
    """Return the file's rows as ArrowChunks of `chunk_rows` (text, NA where pandas' default NA
    markers are), None when Arrow would not read the file as pandas does: a header pandas renames
    (duplicate or blank names), or a first block Arrow cannot parse, or a single column."""
    try:
        header = pd.read_csv(
            path, dtype=str, encoding="utf-8-sig", nrows=0, index_col=False
        ).columns
        with (
            _blocks(path) as source,
            pa_csv.open_csv(source, _arrow_read_options(), _ARROW_PARSE) as probe,
        ):
            names = probe.schema.names
    except (*_CSV_ERRORS, pyarrow.ArrowException, BareCarriageReturnError):
        return None
    read = [n for n in names if columns is None or n in columns]
    # One column: a line of spaces is a value to Arrow, a blank line pandas skips (with two or
    # more, it is a short row, which Arrow stops at). No column: Arrow's [] reads every one.
    if names != list(header) or len(names) < 2 or not read:
        return None
    source = _blocks(path)
    reader = pa_csv.open_csv(
        source,
        read_options=_arrow_read_options(),
        parse_options=_ARROW_PARSE,
        convert_options=pa_csv.ConvertOptions(
            include_columns=read,
            column_types=dict.fromkeys(read, pyarrow.string()),
            null_values=sorted(STR_NA_VALUES),
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )
    return _rebatched(reader, chunk_rows, source)


class BareCarriageReturnError(Exception):
    """A CR not followed by LF: pandas ends a line there and then drops a delimiter that follows
    ("\r,,a" is two cells to it, three to Arrow), so such a file is pandas' to read."""


_BARE_CR = re.compile(rb"\r(?!\n)")


class _NoTrailingCR(io.RawIOBase):
    """A binary file whose reads never end in a carriage return (one is read on with the next
    byte). Arrow's CSV reader takes each read as a block, and where a block ends between the
    CR and LF of a quoted line break it drops the LF (pyarrow 25: "a\r\nb" read as "a\rb").
    A read holding a bare CR raises BareCarriageReturnError."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        super().__init__()
        self.raw = raw

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self.raw.read(size)
        while data.endswith(b"\r"):
            more = self.raw.read(1)
            if not more:
                break
            data += more
        if _BARE_CR.search(data):
            raise BareCarriageReturnError("a carriage return without a line feed")
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


def _blocks(path: Path) -> pyarrow.PythonFile:
    """Return the file as Arrow's CSV reader must read it (_NoTrailingCR)."""
    return pyarrow.PythonFile(_NoTrailingCR(path.open("rb")), mode="r")


def _arrow_read_options() -> pa_csv.ReadOptions:
    return pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES)


def _rebatched(
    reader: pa_csv.CSVStreamingReader, rows: int, source: pyarrow.NativeFile
) -> Iterator[ArrowChunk]:
    """Yield the reader's rows as ArrowChunks of exactly `rows` (the last may hold fewer);
    closes the reader and its source when done."""
    pending: list[pyarrow.RecordBatch] = []
    held = start = 0
    with source, reader:
        for batch in reader:
            pending.append(batch)
            held += batch.num_rows
            while held >= rows:
                table = pyarrow.Table.from_batches(pending, reader.schema)
                yield ArrowChunk(table.slice(0, rows).combine_chunks(), csv=True, start=start)
                pending, held, start = table.slice(rows).to_batches(), held - rows, start + rows
        if held:
            table = pyarrow.Table.from_batches(pending, reader.schema).combine_chunks()
            yield ArrowChunk(table, csv=True, start=start)


def _first_line(err: Exception, default: str | None = None) -> str:
    """Return the first line of the error's message (`default`, else its type, when empty)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else default or type(err).__name__


_LARGEST_FIELD = 2**31 - 1  # the csv module's limit is 128 KiB by default, pandas has none
_CSV_ERRORS = (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error)


def _unreadable_csv(path: Path, err: Exception) -> NotAnExportError:
    reason = _first_line(err, "unreadable CSV")
    return NotAnExportError(f"{path}: not a readable CSV export ({reason}).")


def _undecodable(path: Path, position: int) -> NotAnExportError:
    line = _line_at(path, position)
    return NotAnExportError(
        f"{path}: cannot be decoded as UTF-8 text (line {line}, byte {position}); re-export it"
        " as a UTF-8 CSV."
    )


def _line_at(path: Path, position: int, block: int = 1 << 24) -> int:
    """Return the file line holding byte `position` (counted after a BOM, as _read_csv and
    _undecodable_position count it): what a user can find in an editor."""
    with path.open("rb") as file:
        start = 3 if file.read(3) == codecs.BOM_UTF8 else 0
        file.seek(start)
        lines, left = 1, position
        while left > 0 and (data := file.read(min(block, left))):
            lines += data.count(b"\n")
            left -= len(data)
    return lines


def _first_undecodable_byte(path: Path, block: int = 1 << 24) -> int | None:
    """Return the position _read_csv reports for a file that is not UTF-8 (counted after a BOM,
    as decoding with utf-8-sig does), None when it is; reads the file a block at a time.
    Arrow checks the blocks (a sixth of the decoder's time on a 3 GB export); the decoder
    finds the position only in a file Arrow found invalid."""
    return None if _is_utf8(path, block) else _undecodable_position(path, block)


def _is_utf8(path: Path, block: int) -> bool:
    """Return whether the whole file is valid UTF-8, checked by Arrow a block at a time (a
    character cut by a block's end is checked with the next block)."""
    carry = b""
    with path.open("rb") as file:
        while data := file.read(block):
            data = carry + data if carry else data
            cut = _whole_characters(data)
            view = memoryview(data)[:cut]
            offsets = pyarrow.py_buffer(np.array([0, cut], dtype=np.int32))
            text = pyarrow.Array.from_buffers(
                pyarrow.binary(), 1, [None, offsets, pyarrow.py_buffer(view)]
            )
            try:
                text.cast(pyarrow.string())  # validates the bytes as UTF-8
            except pyarrow.ArrowInvalid:
                return False
            carry = data[cut:]
    return not carry


def _whole_characters(data: bytes) -> int:
    """Return the length of `data` without a multi-byte character its end cuts short."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # a continuation byte: the character starts further back
            continue
        needs = 2 if byte >= 0xC0 else 1
        needs = 3 if byte >= 0xE0 else needs
        needs = 4 if byte >= 0xF0 else needs
        return len(data) - back if needs > back else len(data)
    return len(data)


def _undecodable_position(path: Path, block: int) -> int | None:
    """Return the position of the first byte Python's UTF-8 decoder refuses (after a BOM)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, bom = 0, 0
    with path.open("rb") as file:
        while True:
            data = file.read(block)
            if offset == 0:
                bom = 3 if data.startswith(codecs.BOM_UTF8) else 0
            try:
                decoder.decode(data, final=not data)
            except UnicodeDecodeError as err:  # err.object: bytes held back + this block
                return offset + len(data) - len(err.object) + err.start - bom
            if not data:
                return None
            offset += len(data)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        _check_names(path, pq.read_schema(path).names)
        table = pq.read_table(path)
    except NotAnExportError:
        raise
    except Exception as err:  # pyarrow raises many types for a damaged file
        raise _unreadable_parquet(path, err) from None
    return ArrowChunk(table).frame()  # as its chunks read: the same text whatever the chunking


def _parquet_chunks(
    path: Path,
    chunk_rows: int,
    columns: frozenset[str] | None = None,
    numbers: bool = False,
    lazy: bool = False,
) -> Iterator[pd.DataFrame | ArrowChunk]:
    """Yield _read_parquet's frames `chunk_rows` at a time (pd.read_parquet's conversion), only
    `columns` when given (in the file's order)."""
    try:
        # pre_buffer=False: pre-buffered reads are cached until the file is closed, so memory
        # grew with every row group read (200 MB over 4M rows); local reads are as fast.
        file = pq.ParquetFile(path, pre_buffer=False)
        names = file.schema_arrow.names
        _check_names(path, names)
        read = None if columns is None else [n for n in names if n in columns]
        for batch in file.iter_batches(batch_size=chunk_rows, columns=read):
            chunk = ArrowChunk(batch, numbers)
            yield chunk if lazy else chunk.frame()
    except NotAnExportError:
        raise
    except Exception as err:  # pyarrow raises many types for a damaged file
        raise _unreadable_parquet(path, err) from None


def _unreadable_parquet(path: Path, err: Exception) -> NotAnExportError:
    return NotAnExportError(f"{path}: not a readable Parquet file ({type(err).__name__}).")


def _as_strings(frame: pd.DataFrame, numbers: bool = False) -> pd.DataFrame:
    """Same contract as CSV: strings in (missing stays missing), so the validator sees what the
    file holds. With `numbers`, a column of a numeric field (integer or number kind) that the
    file holds as ints or floats stays as it is: its text would be the shortest repr of each
    value, which every check and coerce_types read back to the same float, and a violation
    shows str() of it, the same text. Booleans and other fields are text either way."""

    def text(col: pd.Series) -> pd.Series:
        rule = FIELDS.get(col.name)
        if numbers and rule is not None and rule.is_numeric and col.dtype.kind in "iuf":
            return col
        if isinstance(col.dtype, pd.StringDtype):  # text already: the same objects, one pass
            return pd.Series(col.to_numpy(dtype=object), col.index, object, col.name)
        if rule is not None and rule.kind == "baths" and col.dtype.kind == "f":
            return _decimal_baths(col)
        return col.astype(object).where(col.isna(), col.astype(str))

    return frame.apply(text)


def _decimal_baths(col: pd.Series) -> pd.Series:
    """Return a BathsTotal column the file holds as floats: whole numbers as their text ("3"),
    others as the floats, which the contract refuses as baths_ambiguous as the API does. As
    text, 2.1 read as 2 full + 1 half, though it may have been "2.10" (ten half baths, refused
    in a CSV): the float cannot say which."""
    values = col.to_numpy(dtype=float)
    whole = np.isfinite(values) & (np.mod(values, 1) == 0)
    out = col.astype(object).where(col.notna(), np.nan)
    out[whole] = [str(int(v)) for v in values[whole]]
    return out


def validate_listings(raw: pd.DataFrame, repeated: np.ndarray | None = None) -> ValidationResult:
    """Validate every row and return accepted/rejected rows, violations and repair counts.

    Rows are identified by position: the result's frames are indexed 0..n-1 like `row - 1`.
    `repeated` (one bool per row) marks rows whose MLSNumber an earlier chunk of the same export
    used: they break the duplicate rule as they would with the whole export in one frame.
    """
    raw = raw.reset_index(drop=True)
    failures = find_failures(raw)
    if repeated is not None and np.any(repeated):
        failures = pd.concat([failures, _repeated_failures(raw, repeated)], ignore_index=True)
    violations = _violations(raw, failures)
    fatal_rows = violations.loc[violations["fatal"], "row"].unique() - 1
    reasons = _reasons(violations[violations["fatal"]])
    is_fatal = raw.index.isin(fatal_rows)
    rejected = raw[is_fatal].copy()
    rejected[REASON_COLUMN] = reasons.reindex(rejected.index + 1).to_numpy()
    repaired = violations.loc[~violations["fatal"], "rule"].value_counts().sort_index().to_dict()
    return ValidationResult(
        accepted=raw[~is_fatal].copy(),
        rejected=rejected,
        violations=violations,
        rows=len(raw),
        repaired={k: int(v) for k, v in repaired.items()},
    )


def _repeated_failures(raw: pd.DataFrame, repeated: np.ndarray) -> pd.DataFrame:
    """Return pandera-style failure cases: the duplicate rule broken by the `repeated` rows."""
    rows = np.flatnonzero(repeated)
    return pd.DataFrame(
        {
            "column": MLS_ID,
            "check": "duplicate",
            "failure_case": raw[MLS_ID].to_numpy()[rows],
            "index": rows,
        }
    )


def _reasons(fatal: pd.DataFrame) -> pd.Series:
    """Return one readable sentence per rejected row number, listing all its fatal violations."""
    if fatal.empty:  # the usual case; pandas 3.0.0-3.0.6 cannot add empty text Series
        return pd.Series(dtype=object)
    meanings = [describe(c, r) for c, r in zip(fatal["column"], fatal["rule"], strict=True)]
    text = (
        fatal["column"]
        + ": "
        + pd.Series(meanings, index=fatal.index, dtype=object)
        + " (got "
        + fatal["value"].replace("", "nothing")
        + ")"
    )
    return text.groupby(fatal["row"]).agg("; ".join)


def _violations(raw: pd.DataFrame, failures: pd.DataFrame) -> pd.DataFrame:
    if failures.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in VIOLATION_COLUMNS}).astype(
            {"row": "int64", "fatal": bool}
        )
    f = failures.dropna(subset=["index"]).copy()
    f["rule"] = f["check"].astype(str).map(lambda c: _PANDERA_RULES.get(c, c))
    frame_level = f["rule"].isin(_FRAME_CHECK_COLUMNS)
    f.loc[frame_level, "column"] = f.loc[frame_level, "rule"].map(_FRAME_CHECK_COLUMNS)
    f = f.drop_duplicates(subset=["index", "column", "rule"])
    idx = f["index"].astype("int64").to_numpy()
    columns = f["column"].to_numpy()
    values = np.empty(len(f), dtype=object)  # raw.at[i, column] of each, a column at a time
    for column in pd.unique(columns):
        at = columns == column
        values[at] = raw[column].to_numpy(dtype=object)[idx[at]]
    out = pd.DataFrame(
        {
            "MLSNumber": raw[MLS_ID].to_numpy()[idx],
            "row": idx + 1,
            "column": f["column"].astype(str).to_numpy(),
            "value": ["" if pd.isna(v) else str(v) for v in values],
            "rule": f["rule"].to_numpy(),
            "fatal": ~f["rule"].isin(REPAIRABLE_RULES).to_numpy(),
        }
    )
    out["MLSNumber"] = out["MLSNumber"].astype(object).where(out["MLSNumber"].notna(), "")
    return out.sort_values(["row", "column", "rule"], kind="stable").reset_index(drop=True)


def coerce_types(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with numeric and boolean columns typed; other columns stay strings.

    This is the frame every model sees: the raw export columns with their natural types, the
    contract's text columns without surrounding spaces (strip_text).
    MLSNumber is normalised as the duplicate check reads it ("1.0" and " 1" are 1). Never
    raises, whatever the text: a value that is not what its column holds becomes missing (rows
    that passed `validate_listings` have none).
    """
    out = frame.copy()
    for col in NUMERIC_COLUMNS:
        if col in out.columns:
            out[col] = to_number(out[col])
    for col in BOOLEAN_COLUMNS:
        if col in out.columns:
            text = out[col].astype("string").str.strip().str.lower()
            known = text.isin(BOOLEAN_TOKENS).fillna(False).astype(bool)
            flags = text.isin(TRUE_TOKENS).fillna(False).astype("float64")
            out[col] = flags.where(known, np.nan)
    for col in TEXT_COLUMNS:
        if col in out.columns:
            out[col] = strip_text(out[col])
    if MLS_ID in out.columns:
        out[MLS_ID] = pd.array(check_ids(out[MLS_ID].to_numpy())[0], dtype="Int64")
    return out


def strip_text(values: pd.Series) -> pd.Series:
    """Return text values without surrounding spaces (nothing left: missing), other values and
    the dtype as they are. 'Vaughn ' was a category the model never saw (5% off 'Vaughn''s
    value) while numbers, baths and booleans were read through their spaces; training and
    valuing both read the typed frame, so both see 'Vaughn'."""
    text = values.astype(object)
    is_text = text.map(lambda v: isinstance(v, str)).astype(bool)
    stripped = text[is_text].str.strip()
    out = text.copy()
    out[is_text] = stripped.where(stripped != "", np.nan)
    return out if values.dtype == object else out.astype(values.dtype)


def is_labelled(frame: pd.DataFrame) -> pd.Series:
    """True for rows that are learning examples: Status Sold with a positive ClosePrice."""
    if STATUS not in frame.columns or TARGET not in frame.columns:
        return pd.Series(False, index=frame.index)
    sold = frame[STATUS].astype("string").str.strip().eq(SOLD).fillna(False)
    return sold & (to_number(frame[TARGET]) > 0)


@dataclass
class Listings:
    """A validated export: the raw frame, its validation result, and the typed accepted rows."""

    source: Path
    raw: pd.DataFrame
    validation: ValidationResult
    typed: pd.DataFrame

    @property
    def labelled(self) -> pd.DataFrame:
        """Accepted rows with a sale price: what models learn from."""
        return self.typed[is_labelled(self.typed)]

    @property
    def to_value(self) -> pd.DataFrame:
        """Accepted rows without a sale price: the homes to value."""
        return self.typed[~is_labelled(self.typed)]


def load_listings(path: str | Path) -> Listings:
    """Read, validate and type an export in one step."""
    raw = read_export(path)
    result = validate_listings(raw)
    return Listings(Path(path), raw, result, coerce_types(result.accepted))


def write_rejected(result: ValidationResult, path: Path) -> Path:
    """Write the rejected rows (their row number, all original columns, the reason) and return
    the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    numbered(result.rejected, first=1).to_csv(path, index=False)
    return path


def numbered(rejected: pd.DataFrame, first: int) -> pd.DataFrame:
    """Return the rejected rows with their data row number (ROW_COLUMN, the violations' `row`)
    first, the row at index 0 being row `first`: a rejected row then leads back to the export
    (and its violations) without an MLSNumber, which it may lack. An export with its own `row`
    column keeps it, unnumbered."""
    if ROW_COLUMN in rejected.columns:
        return rejected
    return rejected.assign(**{ROW_COLUMN: rejected.index + first})[[ROW_COLUMN, *rejected.columns]]


def data_report(listings: Listings, used_columns: list[str]) -> dict[str, Any]:
    """Return the data report: counts, violations, and missingness/range of the used columns."""
    res = listings.validation
    raw = listings.raw
    by_status = (
        raw[STATUS].fillna("(missing)").value_counts().to_dict() if STATUS in raw.columns else {}
    )
    columns: dict[str, Any] = {}
    for col in used_columns:
        if col not in raw.columns:
            columns[col] = {"present": False}
            continue
        values = raw[col]
        entry: dict[str, Any] = {"present": True, "missing": int(values.isna().sum())}
        if col in NUMERIC_COLUMNS:  # the range of the finite values: "inf" is not a number
            num = to_number(values)
            num = num.where(np.isfinite(num))
            entry |= {"min": _num(num.min()), "median": _num(num.median()), "max": _num(num.max())}
        else:
            entry |= {"distinct": int(values.nunique())}
        columns[col] = entry
    return {
        "source": str(listings.source),
        "rows": res.rows,
        "accepted": len(res.accepted),
        "rejected": len(res.rejected),
        "labelled": len(listings.labelled),
        "to_value": len(listings.to_value),
        "repaired": res.repaired,
        "violations": [
            {**row, "row": int(row["row"]), "fatal": bool(row["fatal"])}
            for row in res.violations.to_dict(orient="records")
        ],
        "by_status": {str(k): int(v) for k, v in by_status.items()},
        "columns": columns,
    }


def _num(value: float) -> float | None:
    """Return the value as a float, None where it is missing or not finite (JSON has neither)."""
    return float(value) if np.isfinite(value) else None
