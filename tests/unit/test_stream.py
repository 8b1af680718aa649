"""Chunked synthetic data and chunked reading: the same listings as one pass, in bounded pieces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from homevision.data.listings import (
    NotAnExportError,
    load_listings,
    read_export,
    read_export_chunks,
    validate_listings,
)
from homevision.data.synthetic import (
    MarketDrift,
    generate_listings,
    write_listings,
    write_listings_chunked,
)
from homevision.valuation.stream import SeenIds


@pytest.mark.parametrize(
    ("rows", "seed", "drift"),
    [(2000, 0, None), (1, 3, None), (900, 4, MarketDrift(3, 0.01, 0.5, "Zen", 0.2))],
)
def test_one_chunk_is_byte_for_byte_the_one_shot_file(tmp_path, rows, seed, drift):
    one_shot = write_listings(generate_listings(rows, seed, None, drift), tmp_path / "a.csv")
    chunked = write_listings_chunked(rows, tmp_path / "b.csv", seed, drift=drift)
    assert chunked.read_bytes() == one_shot.read_bytes()


def test_chunks_keep_mls_numbers_unique_and_the_market(tmp_path):
    path = write_listings_chunked(2500, tmp_path / "s.csv", seed=1, chunk_rows=600)
    frame = pd.read_csv(path, dtype=str)
    assert len(frame) == 2500 and frame["MLSNumber"].is_unique
    assert frame.iloc[:600].equals(
        pd.read_csv(write_listings(generate_listings(600, 1), tmp_path / "o.csv"), dtype=str)
    )
    raw = path.read_bytes()
    assert raw.count(b'"MLSNumber"') == 1 and raw.count(b"\r\n") == 2501  # one header, CRLF


def test_same_seed_same_file_other_seed_other_file(tmp_path):
    a = write_listings_chunked(1200, tmp_path / "a.parquet", seed=5, chunk_rows=500)
    b = write_listings_chunked(1200, tmp_path / "b.parquet", seed=5, chunk_rows=500)
    c = write_listings_chunked(1200, tmp_path / "c.parquet", seed=6, chunk_rows=500)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_round_trip_through_load_listings(tmp_path, suffix):
    path = write_listings_chunked(1500, tmp_path / f"s.{suffix}", seed=2, chunk_rows=400)
    listings = load_listings(path)
    assert listings.validation.rows == 1500 and listings.validation.rejected.empty
    assert listings.typed["MLSNumber"].is_unique
    assert 0.25 < len(listings.labelled) / 1500 < 0.35


def test_parquet_and_csv_hold_the_same_listings(tmp_path):
    csv = read_export(write_listings_chunked(900, tmp_path / "s.csv", seed=8, chunk_rows=250))
    parquet = read_export(
        write_listings_chunked(900, tmp_path / "s.parquet", seed=8, chunk_rows=250)
    )
    assert len(csv) == len(parquet) == 900
    pd.testing.assert_frame_equal(csv.astype(object).fillna(""), parquet.astype(object).fillna(""))


def test_a_chunk_with_no_sales_still_fits_the_parquet_schema(tmp_path):
    """Chunks of one row: some have no CloseDate at all (an all-null column)."""
    path = write_listings_chunked(12, tmp_path / "tiny.parquet", seed=0, chunk_rows=1)
    frame = read_export(path)
    assert len(frame) == 12 and frame["CloseDate"].notna().any() and frame["CloseDate"].isna().any()


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_chunked_reading_equals_reading_at_once(tmp_path, suffix):
    path = write_listings_chunked(1000, tmp_path / f"s.{suffix}", seed=9, chunk_rows=300)
    chunks = list(read_export_chunks(path, 333))
    assert [len(c) for c in chunks] == [333, 333, 333, 1]
    whole = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(whole, read_export(path))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty"),
        (b"MLSNumber,Status\r\n1,Sold\r\n", "required column"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
        (b"PAR1garbagegarbage", "Parquet"),
    ],
)
def test_chunked_reading_refuses_what_read_export_refuses(tmp_path, content, match):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(NotAnExportError, match=match) as chunked:
        read_export_chunks(path, 10)
    with pytest.raises(NotAnExportError) as whole:
        read_export(path)
    assert str(chunked.value) == str(whole.value)


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_undecodable_byte_is_reported_at_the_same_position(tmp_path, bom):
    path = tmp_path / "latin1.csv"
    text = write_listings(generate_listings(300, 0), tmp_path / "ok.csv").read_bytes()
    path.write_bytes(bom + text[:-500] + "É".encode("latin-1") + text[-500:])
    with pytest.raises(NotAnExportError) as whole:
        read_export(path)
    with pytest.raises(NotAnExportError) as chunked:
        read_export_chunks(path, 50)
    assert "UTF-8" in str(whole.value) and str(chunked.value) == str(whole.value)


def test_a_csv_that_breaks_part_way_raises_the_same_sentence(tmp_path):
    path = tmp_path / "broken.csv"
    lines = write_listings(generate_listings(200, 0), tmp_path / "ok.csv").read_bytes()
    rows = lines.split(b"\r\n")
    rows[150] += b',"extra","cells"'
    path.write_bytes(b"\r\n".join(rows))
    with pytest.raises(NotAnExportError) as whole:
        read_export(path)
    with pytest.raises(NotAnExportError) as chunked:
        list(read_export_chunks(path, 40))  # pandas reads it: its rows are counted first
    assert str(chunked.value) == str(whole.value)


def test_seen_ids_are_remembered_across_chunks():
    seen = SeenIds()
    assert seen.contains(np.array([2])).tolist() == [False]
    seen.add(np.array([5, 3, 5]))
    assert seen.nbytes == 16  # unique ids only, 8 bytes each
    assert seen.contains(np.array([1, 3, 9, 5])).tolist() == [False, True, False, True]
    seen.add(np.array([4, 5, 1]))
    seen.add(np.array([], dtype=np.int64))
    assert seen.contains(np.array([1, 2, 3, 4, 5, 6])).tolist() == [
        True,
        False,
        True,
        True,
        True,
        False,
    ]


def test_repeated_rows_break_the_duplicate_rule_as_in_one_frame():
    raw = generate_listings(6, 0).astype(str)
    raw.loc[4, "SqFtTotal"] = "abc"
    whole = validate_listings(pd.concat([raw.iloc[[4]], raw], ignore_index=True))
    marked = validate_listings(raw, repeated=np.arange(6) == 4)
    assert marked.rejected.index.tolist() == [4]
    assert marked.rejected["rejection_reason"].iloc[0] == whole.rejected.loc[5, "rejection_reason"]
    assert "already used" in marked.rejected["rejection_reason"].iloc[0]


def test_parquet_text_is_read_as_the_csv_contract_reads_it():
    """_as_strings: Arrow text becomes the same Python objects as astype(object) and str()
    give (missing stays missing); with numbers=True, a numeric field held as numbers stays."""
    import pyarrow as pa

    from homevision.data.listings import _as_strings

    table = pa.table(
        {
            "City": pa.array(["Frisco", None, "", " x ", "nan"], pa.large_string()),
            "SubdivisionName": pa.array(["a", "b", None, "c", "d"], pa.string()),
            "SqFtTotal": pa.array([1500.0, None, float("inf"), -0.0, 2.5]),
            "BedsTotal": pa.array([3, 4, 0, -1, 2], pa.int64()),
        }
    )
    frame = table.to_pandas()
    for numbers in (False, True):
        got = _as_strings(frame, numbers)
        for name, col in frame.items():
            kept = numbers and name in ("SqFtTotal", "BedsTotal")
            expected = col if kept else col.astype(object).where(col.isna(), col.astype(str))
            assert got[name].dtype == expected.dtype
            assert [type(v) for v in got[name]] == [type(v) for v in expected]
            assert got[name].astype(str).tolist() == expected.astype(str).tolist()


def test_integer_ids_with_a_missing_one_read_the_same_in_any_chunks(tmp_path):
    """A Parquet export whose MLSNumber is an integer column without pandas' metadata (as
    Arrow, Spark or DuckDB write it) and holds a missing id: before, a chunk with the missing
    one read its ids as floats ("14215661.0", and 2**53 + 1 as 2**53, another home's id) and a
    chunk without it as integers, so the output and the duplicate rule hung on the chunk size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = generate_listings(12, seed=5)
    ids = [int(v) for v in frame["MLSNumber"]]
    ids[3], ids[5] = None, 2**53 + 1
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    column = table.column_names.index("MLSNumber")
    table = table.set_column(column, "MLSNumber", pa.array(ids, pa.int64()))
    path = tmp_path / "ids.parquet"
    pq.write_table(table, path)
    whole = read_export(path)["MLSNumber"]
    assert whole[5] == str(2**53 + 1) and whole[0] == str(ids[0]) and pd.isna(whole[3])
    for rows in (1, 2, 5, 100):
        chunked = pd.concat(list(read_export_chunks(path, rows)))["MLSNumber"]
        pd.testing.assert_series_equal(chunked.reset_index(drop=True), whole)
