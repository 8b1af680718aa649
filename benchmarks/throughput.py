"""Benchmark (issue 25, "Value a whole country overnight"): where the seconds of a batch
valuation go, on one core, beside a floor and beside MLflow's own path, all in one run.

One synthetic export (default 2,000,000 rows, cached under --cache) valued by one model (the
ridge candidate, log price beyond the living-area trend, fitted here on a few thousand synthetic
sales of the same market, with --variant ranges) three ways, chunk by chunk (--chunk-rows, the
CLI's default):

1. today's path, `homevision predict --data`: stream_valuations over read_export_chunks (the
   columns of predict.export_columns, as the CLI reads them), run twice. Once with each
   function it calls wrapped by a clock (the functions themselves, not a copy: the stages
   partition the run), once bare for the end-to-end time. Each stage's seconds
   are its own (a stage timed inside another counts for the inner one only):
   read (read_export_chunks: Arrow/CSV decode to pandas), read: values as text (_as_strings,
   Parquet only), parse (coerce_types), validate (validate_listings), encode (RawEncoder.encode),
   model (Engine.predict_matrix, the point), ranges (ValuationModel._with_range), refusals and
   warnings (the rest of value_matrix: matrix_support_values, _flags), output frame (the rest of
   value_listings and value_frame: _frame and the row assignments), duplicate ids (the rest of
   value_chunks: mls_ids, SeenIds, refuse_repeated), write (write_chunks: _arrow, the writer,
   summarize).
2. the floor: pyarrow reading only the model's raw columns plus MLSNumber, the fitted model's
   numpy arithmetic (exp(X @ w + b) on the ridge's feature matrix), a constant-factor range,
   pyarrow writing the output columns. Encoding to the feature matrix is done between the timed
   stages: the floor is what reading, arithmetic and writing cost at the least.
3. MLflow's path, what a user would do without homevision: the model saved as homevision logs
   it (train.pyfunc_arguments), `mlflow.pyfunc.load_model(path).predict` on the same chunks
   (read with pandas, cast to the signature's types), the output written with pyarrow.

With --format csv, the path is run once more with the CSV read by pandas (read_csv with
usecols, the reader before Arrow's) and its output compared byte for byte; with --wide the
export is 250 columns wide, as an MLS export is.

    .venv/bin/python benchmarks/throughput.py [--rows 2000000] [--features task6|offmarket]
        [--variant cv_plus|cv_base] [--format parquet|csv] [--wide] [--no-mlflow]

One core: the BLAS pools are set to one thread before numpy loads, the process is pinned to one
CPU and Arrow to one thread. Figures are printed, never asserted; run it on an idle machine.
"""

from __future__ import annotations

import os

# One core, set before numpy (and its BLAS) is first imported.
for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_pool] = "1"

import argparse  # noqa: E402
import functools  # noqa: E402
import logging  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Callable, Iterable, Iterator  # noqa: E402
from contextlib import ExitStack, contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402
from unittest import mock  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pa_csv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.exports import MARKET_SEED, WIDE_COLUMNS, export_file  # noqa: E402
from homevision.config import DEFAULT_CHUNK_ROWS  # noqa: E402
from homevision.data import listings  # noqa: E402
from homevision.data.listings import coerce_types, read_export_chunks  # noqa: E402
from homevision.data.schema import MLS_ID  # noqa: E402
from homevision.data.synthetic import (  # noqa: E402
    generate_listings,
)
from homevision.features import get_feature_set  # noqa: E402
from homevision.training.candidates import build_model  # noqa: E402
from homevision.valuation import predict, stream  # noqa: E402
from homevision.valuation.engine.programs import Chain, Elasticity, Linear  # noqa: E402
from homevision.valuation.estimators import LOG_PRICE_MAX, LOG_PRICE_MIN  # noqa: E402
from homevision.valuation.model import ValuationModel  # noqa: E402
from homevision.valuation.predict import PRICE_COLUMNS, export_columns  # noqa: E402

log = logging.getLogger("throughput")
TRAIN_ROWS, TRAIN_SEED = 10_000, 3  # about 3,000 sales
FLOOR_RANGE = (0.85, 1.15)  # a constant-factor range where the model carries none
CSV_BLOCK_BYTES = 32 << 20  # pyarrow's CSV reader yields a batch per block
# How a user maps a yes/no flag held as text (PoolYN) to the number the signature asks for.
USER_FLAGS = {"true": 1.0, "yes": 1.0, "y": 1.0, "false": 0.0, "no": 0.0, "n": 0.0}

READ, TEXT, PARSE, VALIDATE, ENCODE = "read", "read: as text", "parse", "validate", "encode"
MODEL, RANGES, REFUSALS, FRAME = "model", "ranges", "refusals and warnings", "output frame"
DUPLICATES, WRITE, OTHER = "duplicate ids", "write", "other"
STAGES = {  # the table's rows, in the order, with what each stage times
    READ: "read_export_chunks (decode to pandas)",
    TEXT: "_as_strings (Parquet values as text)",
    PARSE: "coerce_types",
    VALIDATE: "validate_listings",
    ENCODE: "RawEncoder.encode",
    MODEL: "Engine.predict_matrix (point)",
    RANGES: "ValuationModel._with_range",
    REFUSALS: "value_matrix: matrix_support_values, _flags",
    FRAME: "value_listings, value_frame: _frame, .loc",
    DUPLICATES: "value_chunks: mls_ids, SeenIds, refuse_repeated",
    WRITE: "write_chunks: _arrow, writer, summarize",
    OTHER: "not inside any stage",
}


class StageClock:
    """Seconds per stage, each stage's own: time in a stage timed inside another one counts
    for the inner stage only, so the stages of one run add up to its wall time."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._inner: list[float] = []  # per open stage: seconds of the stages inside it

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        self._inner.append(0.0)
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[stage] += elapsed - self._inner.pop()
            if self._inner:
                self._inner[-1] += elapsed

    def timed(self, stage: str, function: Callable) -> Callable:
        """Return `function` with its calls timed as `stage`."""

        @functools.wraps(function)
        def run(*args, **kwargs):
            with self(stage):
                return function(*args, **kwargs)

        return run

    def each(self, stage: str, items: Iterable) -> Iterator:
        """Yield `items` with the time taken to produce each one timed as `stage`."""
        iterator, done = iter(items), object()
        while True:
            with self(stage):
                item = next(iterator, done)
            if item is done:
                return
            yield item


class Progress:
    """One line on stderr per chunk: rows so far, seconds, rows per second."""

    def __init__(self, name: str, rows: int) -> None:
        self.name, self.rows, self.start = name, rows, time.perf_counter()
        log.info("%s: %s rows...", name, f"{rows:,}")

    def __call__(self, done: int) -> None:
        seconds = time.perf_counter() - self.start
        log.info(
            "  %s: %s of %s rows, %.1f s (%s rows/s)",
            self.name,
            f"{done:,}",
            f"{self.rows:,}",
            seconds,
            f"{done / seconds:,.0f}",
        )


def one_core() -> str:
    """Pin this process to one CPU and Arrow to one thread; return what was done."""
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity here): BLAS and Arrow on one thread"


def warm(model, path: Path, block: int = 1 << 24) -> None:
    """Read the file once, so every run finds it in the page cache, and value a few of its
    rows, so no run pays the first call's costs (imports, schemas built once)."""
    with path.open("rb") as file:
        while file.read(block):
            pass
    predict.value_listings(model, next(read_export_chunks(path, 1000)))


def fit_model(features: str, variant: str) -> tuple[ValuationModel, pd.DataFrame]:
    """Return the ridge model fitted on the synthetic market's sales, and those sales."""
    fs = get_feature_set(features)
    frame = coerce_types(generate_listings(TRAIN_ROWS, TRAIN_SEED, MARKET_SEED).astype(object))
    sold = frame[frame["Status"] == "Sold"].reset_index(drop=True)
    estimator = build_model("ridge", fs)
    model = ValuationModel(estimator, feature_set=fs.name, interval_variant=variant)
    return model.fit(sold, sold["ClosePrice"]), sold


def path_hooks(model: ValuationModel) -> list[tuple[object, str, str]]:
    """(owner, attribute, stage) of every function of today's path that is timed."""
    return [
        (listings.ArrowChunk, "frame", READ),
        (listings, "_as_strings", TEXT),
        (predict, "validate_listings", VALIDATE),
        (predict, "coerce_types", PARSE),
        (model.encoder_, "encode", ENCODE),
        (model.engine_, "predict_matrix", MODEL),
        (model, "_with_range", RANGES),
        (predict, "value_matrix", REFUSALS),
        (predict, "value_frame", FRAME),
        (stream, "value_listings", FRAME),
        (stream, "write_chunks", WRITE),
    ]


def staged_path(model, export: Path, target: Path, chunk_rows: int, rows: int) -> dict:
    """Run stream_valuations on `export` with each stage's functions timed; return the seconds
    per stage (OTHER: what no stage holds) and the wall time."""
    clock = StageClock()
    value_chunks = stream.value_chunks
    with ExitStack() as hooks:
        for owner, name, stage in path_hooks(model):
            timed = clock.timed(stage, getattr(owner, name))
            hooks.enter_context(mock.patch.object(owner, name, timed))
        chunked = functools.wraps(value_chunks)(
            lambda *args, **kwargs: clock.each(DUPLICATES, value_chunks(*args, **kwargs))
        )
        hooks.enter_context(mock.patch.object(stream, "value_chunks", chunked))
        progress = Progress("today's path, stages timed", rows)
        with clock(READ):
            chunks = read_export_chunks(
                export, chunk_rows, export_columns(model), numbers=True, lazy=True
            )
        stream.stream_valuations(model, clock.each(READ, chunks), target, on_chunk=progress)
    wall = time.perf_counter() - progress.start
    seconds = {stage: clock.seconds.get(stage, 0.0) for stage in STAGES}
    seconds[OTHER] = wall - sum(seconds.values())
    return {"stages": seconds, "wall_s": wall}


def whole_path(
    model, export: Path, target: Path, chunk_rows: int, rows: int, workers: int = 1
) -> dict:
    """Run stream_valuations on `export` as `homevision predict --data --workers N` does;
    return its wall time and summary."""
    progress = Progress(f"today's path, end to end, {workers} process(es)", rows)
    chunks = read_export_chunks(export, chunk_rows, export_columns(model), True, lazy=True)
    summary = stream.stream_valuations(model, chunks, target, on_chunk=progress, workers=workers)
    return {"wall_s": time.perf_counter() - progress.start, "summary": summary}


class ArrowSink:
    """Appends tables to one Parquet file (a row group each) or one CSV file (one header)."""

    def __init__(self, path: Path) -> None:
        self.path, self._writer = path, None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            if self.path.suffix == ".parquet":
                self._writer = pq.ParquetWriter(self.path, table.schema)
            else:
                self._writer = pa_csv.CSVWriter(self.path, table.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def arrow_batches(export: Path, columns: list[str], chunk_rows: int, text: list[str]):
    """Yield `export`'s `columns` as Arrow record batches (`text` columns read as strings)."""
    if export.suffix == ".parquet":
        yield from pq.ParquetFile(export).iter_batches(batch_size=chunk_rows, columns=columns)
        return
    reader = pa_csv.open_csv(
        export,
        read_options=pa_csv.ReadOptions(use_threads=False, block_size=CSV_BLOCK_BYTES),
        convert_options=pa_csv.ConvertOptions(
            include_columns=columns, column_types=dict.fromkeys(text, pa.string())
        ),
    )
    yield from reader


def floor_arithmetic(model) -> tuple[Callable, Callable, str]:
    """Return (prepare, arithmetic, what): `prepare` turns a frame of raw columns into the
    arithmetic's input (not timed), `arithmetic` gives the fitted model's dollars. For the ridge
    in log price beyond the living-area trend: exp(clip([features, log sqft] @ [coef,
    elasticity] + intercept)); for another model, its compiled program on the raw matrix."""
    encode, program = model.encoder_.encode, model.engine_.program
    ridge = isinstance(program, Elasticity) and isinstance(program.inner, Chain)
    if not (ridge and isinstance(program.inner.model, Linear)):
        return encode, model.engine_.predict_matrix, "the compiled program on the raw matrix"
    features, linear = program.inner.features, program.inner.model
    weights = np.append(linear.coef, program.elasticity)

    def prepare(frame: pd.DataFrame) -> np.ndarray:
        raw = encode(frame)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.column_stack([features(raw), np.log(raw[:, program.sqft])])

    def arithmetic(design: np.ndarray) -> np.ndarray:
        log_price = design @ weights + linear.intercept
        return np.exp(np.clip(log_price, LOG_PRICE_MIN, LOG_PRICE_MAX, out=log_price))

    return prepare, arithmetic, "exp(clip(X @ w + b)) on the ridge's feature matrix"


def floor(model, export: Path, target: Path, chunk_rows: int, rows: int) -> dict:
    """Read the model's columns plus MLSNumber, value them with the bare arithmetic and a
    constant-factor range, write the output columns; return seconds per stage and notes."""
    encoder = model.encoder_
    columns = [MLS_ID, *encoder.columns]
    text = [MLS_ID, encoder.baths, *encoder.text, *encoder.tokens]
    prepare, arithmetic, what = floor_arithmetic(model)
    factors = (model.factors_ or {}).get(model.confidence, FLOOR_RANGE)
    clock, sink, done, gap = StageClock(), ArrowSink(target), 0, 0.0
    progress = Progress("floor", rows)
    for batch in clock.each(READ, arrow_batches(export, columns, chunk_rows, text)):
        design = prepare(batch.to_pandas())
        with clock(MODEL):
            point = arithmetic(design)
        with clock(RANGES):
            low, high = point * factors[0], point * factors[1]
        with clock(WRITE):
            prices = dict(zip(PRICE_COLUMNS, (point, low, high), strict=True))
            sink.write(pa.table({MLS_ID: batch.column(MLS_ID), **prices}))
        if done == 0:  # the arithmetic must be the model's: checked on the first batch
            engine = model.engine_.predict_matrix(encoder.encode(batch.to_pandas()))
            gap = float(np.nanmax(np.abs(point - engine)))
        done += batch.num_rows
        progress(done)
    with clock(WRITE):
        sink.close()
    stages = {stage: clock.seconds.get(stage, 0.0) for stage in (READ, MODEL, RANGES, WRITE)}
    return {"stages": stages, "wall_s": sum(stages.values()), "what": what, "gap": gap}


@contextmanager
def saved_pyfunc(model, sold: pd.DataFrame) -> Iterator[Path]:
    """Yield a folder holding `model` saved as an MLflow pyfunc, as homevision logs it."""
    import mlflow

    from homevision.training.train import pyfunc_arguments

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="hv-throughput-mlflow-") as folder:
        example = sold[model.raw_columns_].head(5)
        arguments = pyfunc_arguments(model, example, Path(folder))
        mlflow.pyfunc.save_model(str(Path(folder) / "model"), **arguments)
        yield Path(folder) / "model"


def user_chunks(export: Path, chunk_rows: int, text: list[str]) -> Iterator[pd.DataFrame]:
    """Yield the export in frames as a pandas user reads it (text columns as text)."""
    if export.suffix == ".parquet":
        for batch in pq.ParquetFile(export).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
        return
    with pd.read_csv(export, chunksize=chunk_rows, dtype=dict.fromkeys(text, str)) as reader:
        yield from reader


def user_cast(chunk: pd.DataFrame, types: dict[str, object]) -> pd.DataFrame:
    """Return the signature's columns of `chunk` in its types, as a user casts them: numbers
    as they are, a number held as text (a yes/no flag) mapped by USER_FLAGS or read as one."""
    frame = chunk[list(types)].copy()
    for name, kind in types.items():
        if kind is not object and frame[name].dtype.kind not in "biuf":
            text = frame[name].astype(object).str.strip().str.lower()
            flags = text.map(USER_FLAGS)
            frame[name] = flags.fillna(pd.to_numeric(text, errors="coerce")).astype(float)
    return frame.astype(types)


def mlflow_path(model, sold: pd.DataFrame, export: Path, target: Path, chunk_rows: int, rows: int):
    """Value `export` through mlflow.pyfunc.load_model(...).predict, chunk by chunk: read with
    pandas, cast to the signature, predict, write with pyarrow; return seconds per stage."""
    import mlflow

    clock, sink = StageClock(), ArrowSink(target)
    with saved_pyfunc(model, sold) as folder:
        start = time.perf_counter()
        loaded = mlflow.pyfunc.load_model(str(folder))
        load_s = time.perf_counter() - start
        inputs = loaded.metadata.get_input_schema().inputs
        types = {c.name: c.type.to_pandas() for c in inputs}
        text = [MLS_ID, *(name for name, kind in types.items() if kind is object)]
        progress, done = Progress("MLflow pyfunc", rows), 0
        for chunk in clock.each(READ, user_chunks(export, chunk_rows, text)):
            with clock("cast"):
                frame = user_cast(chunk, types)
            with clock("predict"):
                valued = loaded.predict(frame)
            with clock(WRITE):
                valued.insert(0, MLS_ID, chunk[MLS_ID].to_numpy())
                sink.write(pa.Table.from_pandas(valued, preserve_index=False))
            done += len(chunk)
            progress(done)
        with clock(WRITE):
            sink.close()
    stages = dict(clock.seconds)
    return {"stages": stages, "wall_s": sum(stages.values()), "load_s": load_s}


def prices(path: Path) -> np.ndarray:
    """Return the (rows, 3) prices of a valuations file."""
    if path.suffix == ".parquet":
        frame = pq.read_table(path, columns=PRICE_COLUMNS).to_pandas()
    else:
        frame = pd.read_csv(path, usecols=PRICE_COLUMNS)
    return frame[PRICE_COLUMNS].to_numpy(dtype=float)


def equal_rows(one: Path, other: Path) -> int:
    """Return how many rows of two valuations files have the same three prices (or none)."""
    a, b = prices(one), prices(other)
    return int(((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1).sum())


def ratio(value: float | None) -> str:
    """1.23 -> "1.2"; 1234.5 -> "1,234"; None -> ""."""
    if value is None:
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def stage_table(rows: int, path: dict, bottom: dict) -> str:
    """Return the stages of today's path beside the floor's, as a markdown table."""
    head = [
        "stage",
        "what is timed",
        "seconds",
        "rows/s",
        "share",
        "floor (s)",
        "time ÷ floor's",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    total = path["wall_s"]
    entries = [(stage, STAGES[stage], s) for stage, s in path["stages"].items()]
    entries.append(("**all (stages timed)**", "stream_valuations", total))
    for stage, what, seconds in entries:
        low = bottom["wall_s"] if stage.startswith("**") else bottom["stages"].get(stage)
        cells = [
            stage,
            what,
            f"{seconds:.2f}",
            f"{rows / seconds:,.0f}" if seconds > 0 and stage != OTHER else "",
            f"{seconds / total:.1%}",
            "" if low is None else f"{low:.4f}",
            ratio(seconds / low if low else None),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paths_table(rows: int, runs: list[tuple[str, float]], against: float | None) -> str:
    """Return the end-to-end runs (name, seconds) as a markdown table, with each one's time
    against the floor's and MLflow's time against it (when MLflow ran)."""
    floor_s = dict(runs)["floor"]
    head = ["path", "seconds", "rows/s", "time ÷ floor's"]
    head += ["MLflow's time ÷ this"] if against else []
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for name, seconds in runs:
        cells = [name, f"{seconds:.2f}", f"{rows / seconds:,.0f}", ratio(seconds / floor_s)]
        cells += [f"{against / seconds:.2f}"] if against else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", default="task6", choices=["task6", "offmarket"])
    parser.add_argument("--variant", default="cv_plus", choices=["cv_plus", "cv_base"])
    parser.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    parser.add_argument(
        "--wide",
        action="store_true",
        help=f"An export {WIDE_COLUMNS} columns wide, as an MLS export is (the real sample's other "
        "columns and values when it is here, else filler text).",
    )
    parser.add_argument("--mlflow", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    parser.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2,
        help="Processes of the last run (predict --data --workers), on every core here.",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "hv-throughput-cache",
        help="Where the synthetic exports are kept between runs.",
    )
    args = parser.parse_args()
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    pinned = one_core()
    export = export_file(args.rows, args.format, args.cache, args.wide)
    log.info("fitting the model (%s, %s)", args.features, args.variant)
    model, sold = fit_model(args.features, args.variant)
    if not model.uses_engine:
        log.warning("the model is off the engine (%s): stages differ", model.engine_note_)
    warm(model, export)
    rows, chunk_rows, suffix = args.rows, args.chunk_rows, f".{args.format}"
    with tempfile.TemporaryDirectory(prefix="hv-throughput-") as tmp:
        out = Path(tmp)
        bottom = floor(model, export, out / f"floor{suffix}", chunk_rows, rows)
        staged = staged_path(model, export, out / f"staged{suffix}", chunk_rows, rows)
        whole = whole_path(model, export, out / f"valuations{suffix}", chunk_rows, rows)
        summary = whole["summary"]
        runs = [
            ("today's path: stream_valuations, end to end", whole["wall_s"]),
            ("today's path: stream_valuations, stages timed", staged["wall_s"]),
            ("floor", bottom["wall_s"]),
        ]
        if args.format == "csv":  # the reader before Arrow's: pandas read_csv with usecols
            with mock.patch.object(listings, "_arrow_csv_chunks", lambda *_: None):
                before = whole_path(model, export, out / f"pandas{suffix}", chunk_rows, rows)
            same = (out / f"pandas{suffix}").read_bytes() == (
                out / f"valuations{suffix}"
            ).read_bytes()
            runs.insert(
                1,
                (
                    "before: the same, CSV read by pandas read_csv (usecols), end to end "
                    f"(same file: {'yes' if same else 'NO'})",
                    before["wall_s"],
                ),
            )
        if args.workers > 1:  # every core again: the workers inherit this process's CPUs
            if cores is not None:
                os.sched_setaffinity(0, cores)
            spread = whole_path(
                model, export, out / f"spread{suffix}", chunk_rows, rows, args.workers
            )
            if cores is not None:
                one_core()
            same = (out / f"spread{suffix}").read_bytes() == (
                out / f"valuations{suffix}"
            ).read_bytes()
            runs.insert(
                1,
                (
                    f"today's path: predict --workers {args.workers} on {len(cores or [])} "
                    f"cores, end to end (same file: {'yes' if same else 'NO'})",
                    spread["wall_s"],
                ),
            )
        against, notes = None, []
        if args.mlflow:
            flow = mlflow_path(model, sold, export, out / f"mlflow{suffix}", chunk_rows, rows)
            against = flow["wall_s"]
            runs.append(("MLflow: pyfunc.load_model(...).predict", against))
            same = equal_rows(out / f"mlflow{suffix}", out / f"valuations{suffix}")
            parts = ", ".join(f"{k} {v:.2f} s" for k, v in flow["stages"].items())
            notes.append(
                f"MLflow's run: {parts} (load_model {flow['load_s']:.2f} s, not counted); its "
                f"prices equal today's on {same:,} of {summary.rows:,} rows."
            )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"## Throughput: {summary.rows:,} rows, {args.format}, features {args.features}, "
        f"ranges {args.variant}, chunks of {chunk_rows:,}, one core ({pinned})\n\n"
        f"Model: ridge ({model.engine_note_}); {summary.failed:,} rows refused, "
        f"{summary.warned:,} with a warning.\n\n{stage_table(summary.rows, staged, bottom)}\n\n"
        f"{paths_table(summary.rows, runs, against)}\n\n"
        f"Floor: pyarrow reading {', '.join([MLS_ID, *model.encoder_.columns])}; "
        f"{bottom['what']} (largest gap to the engine on the first chunk: "
        f"${bottom['gap']:.2g}); a constant-factor range; pyarrow writing MLSNumber and the "
        f"prices.\n"
        + "".join(f"\n{note}\n" for note in notes)
        + f"\nPeak RSS of the run: {peak:,.0f} MiB; of the largest worker process: "
        f"{worker_peak:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
