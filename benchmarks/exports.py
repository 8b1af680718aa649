"""The synthetic exports the batch benchmarks value (throughput, memory, scale): written once
into a cache folder and named by what is in them, so a run never picks up a file of another
make. Importing this module changes nothing in the process (no thread pools, no pinning)."""

from __future__ import annotations

import itertools
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from homevision.data.listings import read_export  # noqa: E402
from homevision.data.sources import resolve_data_path  # noqa: E402
from homevision.data.synthetic import (  # noqa: E402
    export_csv_bytes,
    listing_chunks,
    parquet_schema,
    write_listings_chunked,
)

log = logging.getLogger("exports")
MARKET_SEED = 0  # the export and the training sales come from one synthetic market
EXPORT_SEED = 11
WIDE_COLUMNS = 250  # an MLS export's width (--wide), as the real sample's


def export_file(rows: int, fmt: str, cache: Path, wide: bool = False) -> Path:
    """Return the synthetic export of `rows` listings in `fmt`, written once into `cache`; with
    `wide`, as wide as an MLS export (wide_source). A wide export made from filler text, where
    the real sample is not found, is named apart (about half the bytes a row)."""
    chunks = listing_chunks(rows, EXPORT_SEED, MARKET_SEED)
    first = next(chunks)
    extras = wide_source(list(first.columns)) if wide else None
    kind = "" if extras is None else "-wide" if extras.attrs["real"] else "-wide-filler"
    path = cache / f"listings-{rows}-seed{EXPORT_SEED}-market{MARKET_SEED}{kind}.{fmt}"
    if path.exists():
        return path
    log.info("writing %s synthetic listings to %s", f"{rows:,}", path)
    if extras is None:
        return write_listings_chunked(rows, path, seed=EXPORT_SEED, market_seed=MARKET_SEED)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial, writer = path.with_name(path.name + ".partial"), None
    with partial.open("wb") as out:
        for index, chunk in enumerate(itertools.chain([first], chunks)):
            rng = np.random.default_rng([EXPORT_SEED, index])
            drawn = extras.iloc[rng.integers(0, len(extras), len(chunk))]
            frame = pd.concat([chunk, drawn.set_axis(chunk.index)], axis=1)
            if fmt == "csv":
                out.write(export_csv_bytes(frame, header=index == 0))
                continue
            writer = writer or pq.ParquetWriter(out, parquet_schema(frame))
            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer.write_table(table.cast(writer.schema))
        if writer is not None:
            writer.close()
    partial.replace(path)
    return path


def wide_source(have: list[str]) -> pd.DataFrame:
    """Return rows of the columns an MLS export carries beyond `have` (as text, line breaks as
    spaces): the real sample's other columns and values when it is here (250 columns, about
    3.2 KB a row), else WIDE_COLUMNS - len(have) columns of filler text (about 1.7 KB a row);
    `attrs["real"]` says which. The sample is looked for as the CLI looks for it
    (HOMEVISION_DATA, else data/raw under the working folder): run from the project's root."""
    real = read_export(resolve_data_path(None))
    if len(real.columns) >= WIDE_COLUMNS:
        extra = real[[c for c in real.columns if c not in have]]
        extra = extra.apply(lambda c: c.str.replace(r"[\r\n]+", " ", regex=True))
        extra.attrs["real"] = True
        return extra
    log.warning(
        "no %d-column sample here: the wide export's other columns are filler", WIDE_COLUMNS
    )
    rng = np.random.default_rng(0)
    width = WIDE_COLUMNS - len(have)
    words = np.array(["Frisco", "Yes", "No", "Ceiling Fan(s)", "Attached", "Public", "TX"])
    filler = rng.choice(words, size=(1000, width))
    blanks = rng.random((1000, width)) < 0.45  # an export leaves many fields empty
    text = np.where(blanks, None, filler)
    frame = pd.DataFrame(text, columns=[f"Extra{i:03d}" for i in range(width)], dtype=object)
    frame.attrs["real"] = False
    return frame
