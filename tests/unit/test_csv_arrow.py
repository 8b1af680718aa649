"""A CSV export read by Arrow gives exactly pandas' frames: the same text, the same missing
cells, the same rows per chunk, the same index and dtypes, and the same error where pandas
stops, whatever the file holds."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from homevision.data import listings
from homevision.data.errors import NotAnExportError
from homevision.data.listings import ArrowChunk, read_export, read_export_chunks

# pandas' NA markers, and text that is almost one.
NA_TEXT = ["NA", "N/A", "nan", "None", "null", "<NA>", "#N/A", "-NaN", "NA ", "na"]
# Pieces a hostile export is made of: separators, quotes, line breaks of every kind, NA
# markers, spaces, a NUL.
TOKENS = [",", '"', '""', "\n", "\r\n", "\r", "a", "b c", " ", *NA_TEXT, "1.0", "é", "\x00"]
TOKENS += ['x"y', '"q,\n"', "#"]


def pandas_chunks(path, rows: int, columns) -> list[pd.DataFrame] | str:
    """What reading with pandas alone gives: its frames, or its error's sentence."""
    try:
        return list(listings._pandas_csv_chunks(path, rows, columns))
    except NotAnExportError as err:
        return str(err)


def chunks(path, rows: int, columns) -> list[pd.DataFrame] | str:
    try:
        return list(listings._csv_chunks(path, rows, columns))
    except NotAnExportError as err:
        return str(err)


def assert_same(ours, theirs) -> None:
    if isinstance(theirs, str) or isinstance(ours, str):
        assert ours == theirs
        return
    assert [len(c) for c in ours] == [len(c) for c in theirs]
    for mine, pandas in zip(ours, theirs, strict=True):
        pd.testing.assert_frame_equal(mine, pandas, check_exact=True)


# A cell as an export may hold it: plain, quoted (separators, line breaks, doubled quotes
# inside), one of pandas' NA markers quoted or not, spaces, almost a marker, or broken quoting.
CELLS = ["", "a", "1.0", " x ", '"NA"', *NA_TEXT, '""', '"a,b"', '"line\nbreak"', '"cr\r\nlf"']
CELLS += ['"say ""hi"""', "é", "\x00", 'x"y', '"q"z', ' "q"', "#c", "\t"]
LINE_ENDS = ["\n", "\r\n", "\r"]


@st.composite
def exports(draw) -> str:
    """A CSV of 2 to 4 columns whose rows mostly have the header's width: hostile cells, every
    line ending, and now and then a header pandas renames, a blank line, a line of spaces or a
    short or long row."""
    width = draw(st.integers(2, 4))
    names = st.sampled_from(["a", "b", "c", "a", "", "d e", "b.1"])
    header = draw(st.lists(names, min_size=width, max_size=width, unique=draw(st.booleans())))
    end = draw(st.sampled_from(LINE_ENDS))
    lines = [",".join(header)]
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["row"] * 40 + ["blank", "spaces", "short", "long"]))
        cells = width + {"short": -1, "long": 1}.get(kind, 0)
        row = ",".join(draw(st.lists(st.sampled_from(CELLS), min_size=cells, max_size=cells)))
        lines.append({"blank": "", "spaces": "  "}.get(kind, row))
    return end.join(lines) + draw(st.sampled_from(["", end]))


@settings(max_examples=300, deadline=None)
@given(
    text=exports(),
    rows=st.integers(1, 4),
    block=st.sampled_from([32, 64, 1 << 20]),
    bom=st.booleans(),
    subset=st.booleans(),
)
def test_arrow_reads_an_export_as_pandas_does(tmp_path_factory, text, rows, block, bom, subset):
    """Small blocks make Arrow stop part way through a file (a row it cannot take, a value
    longer than a block): pandas must go on from exactly there."""
    path = tmp_path_factory.mktemp("csv") / "export.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    columns = frozenset(["a", "d e"]) if subset else None
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(listings, "CSV_BLOCK_BYTES", block)
        ours = chunks(path, rows, columns)
    assert_same(ours, pandas_chunks(path, rows, columns))


@settings(max_examples=300, deadline=None)
@given(
    header=st.lists(st.sampled_from(["a", "b", "c", "a", "", "d e"]), min_size=1, max_size=4),
    body=st.lists(st.sampled_from(TOKENS), max_size=60),
    rows=st.integers(1, 4),
)
def test_arrow_reads_any_text_as_pandas_does(tmp_path_factory, header, body, rows):
    path = tmp_path_factory.mktemp("csv") / "export.csv"
    path.write_bytes((",".join(header) + "\r\n" + "".join(body)).encode())
    assert_same(chunks(path, rows, None), pandas_chunks(path, rows, None))


def test_a_regular_export_is_read_by_arrow_in_chunks_of_the_asked_size(tmp_path):
    path = tmp_path / "export.csv"
    lines = ['"MLSNumber","Remarks","Price"']
    lines += [f'"{i}","line one\r\nline ""two""","{i * 10}"' for i in range(1, 11)]
    lines += ['"11","NA",""']
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    got = list(listings._csv_chunks(path, 4, frozenset(["MLSNumber", "Remarks"]), lazy=True))
    assert all(isinstance(c, ArrowChunk) for c in got)
    assert [len(c) for c in got] == [4, 4, 3]
    assert [c.start for c in got] == [0, 4, 8]
    frames = [c.frame() for c in got]
    assert_same(frames, pandas_chunks(path, 4, frozenset(["MLSNumber", "Remarks"])))
    assert frames[0].loc[0, "Remarks"] == 'line one\r\nline "two"'
    assert pd.isna(frames[2].loc[10, "Remarks"])


def test_pandas_reads_on_from_the_row_arrow_stops_at(tmp_path, caplog, monkeypatch):
    path = tmp_path / "export.csv"
    rows = [f"{i},x{i}" for i in range(1, 4000)]
    rows[3600] = '3601,"a\r,b"'  # a bare CR in a value: Arrow stops, pandas reads on
    path.write_bytes(("MLSNumber,Remarks\n" + "\n".join(rows) + "\n").encode())
    monkeypatch.setattr(listings, "CSV_BLOCK_BYTES", 40)  # the bare CR is blocks in
    with caplog.at_level("INFO"):
        got = list(listings._csv_chunks(path, 300, lazy=True))
    assert isinstance(got[0], ArrowChunk) and isinstance(got[-1], pd.DataFrame)
    frames = [c.frame() if isinstance(c, ArrowChunk) else c for c in got]
    assert_same(frames, pandas_chunks(path, 300, None))
    assert frames[12].loc[3600, "Remarks"] == "a\r,b"
    assert "pandas reads on from row" in caplog.text


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize(
    ("bad", "sentence"),
    [
        ("7", "row 7 (line 9) has 1 fields where the header has 2"),  # cut short
        ("7,x7,", "row 7 (line 9) has 3 fields where the header has 2"),  # a trailing comma
    ],
)
def test_a_row_not_as_wide_as_the_header_refuses_the_file(
    tmp_path, monkeypatch, bad, sentence, lazy
):
    """pandas padded a short row with missing cells and the row was accepted without them; the
    row's file line is named, after a value with a line break in it."""
    path = tmp_path / "export.csv"
    rows = [f"{i},x{i}" for i in range(1, 10)]
    rows[0] = '1,"two\nlines"'
    rows[6] = bad
    path.write_text("MLSNumber,Remarks\n" + "\n".join(rows) + "\n")
    monkeypatch.setattr(listings, "CSV_BLOCK_BYTES", 40)  # the bad row is in the 2nd block
    for read in (lambda: read_export(path), lambda: list(read_export_chunks(path, 3, lazy=lazy))):
        with pytest.raises(NotAnExportError, match=re.escape(sentence)):
            read()


@pytest.mark.parametrize("extra", ["every", "first"])
def test_a_trailing_separator_never_moves_the_values_one_column_over(tmp_path, extra):
    """One more field than the header on the first data row made pandas take the first column
    as the index: MLSNumber was dropped and every value moved one column left."""
    header = "MLSNumber,City,SqFtTotal"
    rows = [f"{i},Frisco,{1500 + i}" + ("," if extra == "every" or i == 1 else "") for i in (1, 2)]
    path = tmp_path / "export.csv"
    path.write_text("\r\n".join([header, *rows]) + "\r\n")
    sentence = "row 1 (line 2) has 4 fields where the header has 3"
    with pytest.raises(NotAnExportError, match=re.escape(sentence)):
        read_export(path)
    with pytest.raises(NotAnExportError, match=re.escape(sentence)):
        list(read_export_chunks(path, 1, columns={"MLSNumber", "City"}))


def test_a_block_ending_inside_a_quoted_crlf_keeps_the_line_break(tmp_path, monkeypatch):
    """pyarrow drops the LF of a quoted CRLF that a block boundary splits; the reader's blocks
    never end in a CR, so the value arrives whole."""
    path = tmp_path / "export.csv"
    head = b'a,b\r\n1,"note'
    path.write_bytes(head + b'\r\nmore"\r\n2,x\r\n')
    monkeypatch.setattr(listings, "CSV_BLOCK_BYTES", len(head) + 1)  # a block ends at the CR
    got = list(listings._csv_chunks(path, 10, lazy=True))
    assert isinstance(got[0], ArrowChunk)
    assert got[0].frame().loc[0, "b"] == "note\r\nmore"


def test_a_bare_carriage_return_hands_the_file_to_pandas(tmp_path, caplog, monkeypatch):
    """pandas ends a line at a bare CR and drops a delimiter right after it ("\r,,a": two
    cells, not three): from the block that holds one, pandas reads, whether at the start or
    part way."""
    path = tmp_path / "export.csv"
    path.write_bytes(b"a,b,c\r\n\r,,a\r\n")
    assert listings._arrow_csv_chunks(path, 10, None) is None
    assert_same(chunks(path, 10, None), pandas_chunks(path, 10, None))
    path.write_bytes(b"a,b\r\n" + b"5,6\r\n" * 4000 + b'7,"x\ry"\r\n\r,,\r\n')
    monkeypatch.setattr(listings, "CSV_BLOCK_BYTES", 64)
    with caplog.at_level("INFO"):
        got = list(listings._csv_chunks(path, 400, lazy=True))
    assert isinstance(got[0], ArrowChunk) and isinstance(got[-1], pd.DataFrame)
    assert "a carriage return without a line feed" in caplog.text
    assert_same(chunks(path, 400, None), pandas_chunks(path, 400, None))


@pytest.mark.parametrize("header", ["a,a,b", "a,,b", "a,b.1,b"])
def test_a_header_pandas_renames_is_read_by_pandas(tmp_path, header):
    path = tmp_path / "export.csv"
    path.write_text(header + "\n1,2,3\n")
    assert listings._arrow_csv_chunks(path, 10, None) is None or header == "a,b.1,b"
    assert_same(chunks(path, 10, None), pandas_chunks(path, 10, None))


def test_a_generated_export_reads_the_same_through_arrow_and_read_export(tmp_path):
    from homevision.data.synthetic import generate_listings, write_listings

    path = write_listings(generate_listings(500, 4), tmp_path / "export.csv")
    got = list(read_export_chunks(path, 200, lazy=True))
    assert all(isinstance(c, ArrowChunk) for c in got)
    whole = pd.concat([c.frame() for c in got])
    pd.testing.assert_frame_equal(whole, read_export(path), check_exact=True)


VALID_UTF8 = [b"a", b",", b"\r\n", "é".encode(), "€".encode(), "𝄞".encode(), b"\xef\xbb\xbf"]
BROKEN_UTF8 = [b"\xff", b"\xc3", b"\xe2\x82", b"\xf0\x9d\x84", b"\x80", b"\xed\xa0\x80"]


@settings(max_examples=400, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(VALID_UTF8 + BROKEN_UTF8), max_size=40),
    block=st.integers(3, 9),  # from 3 bytes on: a BOM is seen in the first block
    bom=st.booleans(),
)
def test_arrow_finds_a_file_undecodable_where_the_decoder_does(
    tmp_path_factory, pieces, block, bom
):
    """Arrow's check (blocks cut through characters) agrees with Python's decoder on whether a
    file is UTF-8, and the position reported is the decoder's."""
    path = tmp_path_factory.mktemp("utf8") / "export.csv"
    data = (b"\xef\xbb\xbf" if bom else b"") + b"".join(pieces)
    path.write_bytes(data)
    try:
        data.decode("utf-8-sig")
        expected = None
    except UnicodeDecodeError as err:
        expected = err.start
    assert listings._first_undecodable_byte(path, block) == expected
    assert listings._undecodable_position(path, block) == expected


def test_a_row_wider_than_the_header_is_refused_when_some_columns_are_read(tmp_path):
    """A stray separator in one row: reading only some columns refuses the file at that line,
    as reading all of them does. pandas given `usecols` dropped the extra cell instead, and the
    row's later cells moved one column over, to be valued as they fell."""
    rows = ["MLSNumber,SqFtTotal,BedsTotal,City"]
    rows += [f"{i},{1500 + i},3,Frisco" for i in range(6)]
    rows.insert(4, "9,Main St, Apt 2,2100,4,Frisco")  # one field too many: line 5
    path = tmp_path / "export.csv"
    path.write_text("\r\n".join(rows) + "\r\n")
    whole = chunks(path, 2, None)
    assert isinstance(whole, str) and "row 4 (line 5) has 6 fields where the header has 4" in whole
    for columns in ({"MLSNumber", "SqFtTotal"}, {"City"}, {"BedsTotal", "City"}):
        assert chunks(path, 2, frozenset(columns)) == whole
        assert pandas_chunks(path, 2, frozenset(columns)) == whole


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_column_named_twice_is_named_in_one_sentence(tmp_path, kind):
    """pandas renamed the second SqFtTotal SqFtTotal.1 and ignored it (exit 0); pyarrow refused
    the Parquet file with only "ArrowInvalid"."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / f"export.{kind}"
    if kind == "csv":
        path.write_text("MLSNumber,SqFtTotal,City,SqFtTotal\n1,1500,Frisco,9999\n")
    else:
        arrays = [pa.array(["1"]), pa.array(["1500"]), pa.array(["Frisco"]), pa.array(["9999"])]
        pq.write_table(
            pa.table(arrays, names=["MLSNumber", "SqFtTotal", "City", "SqFtTotal"]), path
        )
    sentence = "the header names SqFtTotal more than once"
    with pytest.raises(NotAnExportError, match=sentence):
        read_export(path)
    for columns in (None, {"MLSNumber", "City"}):
        with pytest.raises(NotAnExportError, match=sentence):
            list(read_export_chunks(path, 1, columns=columns))


def test_a_file_that_is_not_utf8_names_the_line(tmp_path):
    """The byte offset alone could not be found in an editor."""
    path = tmp_path / "export.csv"
    path.write_bytes(b'\xef\xbb\xbfMLSNumber,City\r\n1,Frisco\r\n2,"two\nlines"\r\n3,Caf\xe9\r\n')
    for read in (lambda: read_export(path), lambda: list(read_export_chunks(path, 2))):
        with pytest.raises(NotAnExportError, match=r"\(line 5, byte 46\)"):
            read()
