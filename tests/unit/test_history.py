"""The training history's merge: one row per MLSNumber, the newest row wins, counts that add up,
and bytes that depend only on the inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from homevision.data.listings import load_listings
from homevision.data.synthetic import MarketDrift, generate_listings, write_listings
from homevision.flow.history import (
    empty_manifest,
    free_name,
    load_history,
    load_manifest,
    manifest_text,
    merge_export,
    processed_hashes,
    with_merges,
)


def _rows(*rows: tuple[str, str, str | None]) -> pd.DataFrame:
    """Return a string frame of (MLSNumber, Status, ClosePrice) rows, like read_export's."""
    return pd.DataFrame(
        [{"MLSNumber": m, "Status": s, "ClosePrice": p if p else np.nan} for m, s, p in rows]
    )


def test_first_merge_starts_from_the_export_alone():
    export = _rows(("3", "Active", None), ("1", "Sold", "300000"), ("2", "Sold", "410000"))
    merged, counts = merge_export(pd.DataFrame(), export)
    assert list(merged["MLSNumber"]) == ["1", "2", "3"]  # sorted by number
    assert (counts.added, counts.updated, counts.unchanged, counts.new_sales) == (3, 0, 0, 2)


def test_the_newest_status_wins_and_newly_sold_counts_as_a_new_sale():
    history = _rows(("1", "Active", None), ("2", "Sold", "410000"), ("3", "Pending", None))
    export = _rows(("1", "Sold", "305000"), ("2", "Sold", "410000"), ("4", "Active", None))
    merged, counts = merge_export(history, export)
    by_id = merged.set_index("MLSNumber")
    assert by_id.loc["1", "Status"] == "Sold" and by_id.loc["1", "ClosePrice"] == "305000"
    assert by_id.loc["3", "Status"] == "Pending"  # untouched rows stay
    assert len(merged) == 4
    assert counts.added == 1  # 4
    assert counts.updated == 1  # 1 sold since
    assert counts.unchanged == 1  # 2 the same
    assert counts.new_sales == 1  # 1 (2 was sold before)


def test_a_sale_taken_back_is_replaced_too():
    history = _rows(("1", "Sold", "300000"))
    merged, counts = merge_export(history, _rows(("1", "Active", None)))
    assert merged.loc[0, "Status"] == "Active" and pd.isna(merged.loc[0, "ClosePrice"])
    assert (counts.updated, counts.new_sales) == (1, 0)


def test_duplicates_within_one_file_keep_its_last_row():
    export = _rows(("7", "Active", None), ("7.0", "Sold", "500000"), (" 7", "Sold", "510000"))
    merged, counts = merge_export(pd.DataFrame(), export)
    assert len(merged) == 1 and merged.loc[0, "ClosePrice"] == "510000"
    assert (counts.added, counts.new_sales) == (1, 1)


def test_rows_without_an_mls_number_are_left_out():
    export = _rows(("1", "Sold", "300000"), ("", "Sold", "1"), ("abc", "Active", None))
    merged, counts = merge_export(pd.DataFrame(), export)
    assert list(merged["MLSNumber"]) == ["1"]
    assert counts.without_id == 2


def test_new_columns_are_added_and_missing_ones_left_empty():
    history = _rows(("1", "Sold", "300000")).assign(City="Frisco")
    export = _rows(("2", "Active", None)).assign(PoolYN="True")
    merged, _ = merge_export(history, export)
    assert list(merged.columns) == ["MLSNumber", "Status", "ClosePrice", "City", "PoolYN"]
    assert pd.isna(merged.set_index("MLSNumber").loc["2", "City"])


def test_merges_are_reproducible_to_the_byte_and_readable_by_train(tmp_path):
    base = write_listings(generate_listings(300, seed=1), tmp_path / "a.csv")
    later = generate_listings(200, seed=2, drift=MarketDrift(month=1))  # numbers of its own
    later.loc[:49, "MLSNumber"] = generate_listings(300, seed=1)["MLSNumber"][:50].to_numpy()
    later = write_listings(later, tmp_path / "b.csv")
    outputs = []
    for attempt in range(2):
        history = pd.DataFrame()
        for path in (base, later):
            history, _ = merge_export(history, load_listings(path).validation.accepted)
        outputs.append(write_listings(history, tmp_path / f"history-{attempt}.csv").read_bytes())
    assert outputs[0] == outputs[1]
    again = load_history(tmp_path / "history-0.csv")
    assert len(again) == len(history)
    merged_again, counts = merge_export(again, load_listings(later).validation.accepted)
    assert counts.added == 0 and counts.updated == 0  # the history round-trips exactly
    assert len(history) == 300 + 150  # 50 of the later numbers were already held
    assert write_listings(merged_again, tmp_path / "c.csv").read_bytes() == outputs[0]
    assert load_listings(tmp_path / "c.csv").validation.rejected.empty


def test_manifest_records_merges_without_changing_the_input(tmp_path):
    manifest = empty_manifest()
    entry = {"file": "a.csv", "sha256": "f" * 64, "rows_added": 3, "rows_updated": 0}
    after = with_merges(manifest, [entry], "0" * 64, 3)
    assert manifest["merges"] == [] and after["merges"] == [entry]
    assert processed_hashes(after) == {"f" * 64}
    path = tmp_path / "manifest.json"
    path.write_text(manifest_text(after))
    assert load_manifest(path) == after
    assert manifest_text(load_manifest(path)) == manifest_text(after)
    assert load_manifest(tmp_path / "absent.json") == empty_manifest()


def test_exports_are_taken_in_name_order_and_archive_names_are_free(tmp_path):
    from homevision.flow.intake import TAKE, survey

    for name in ("b.csv", "a.parquet", "notes.txt", ".hidden.csv"):
        (tmp_path / name).write_text("x")
    (tmp_path / "archive").mkdir()
    taken = [v.name for v in survey(tmp_path, settle_seconds=0, now=1e12) if v.action == TAKE]
    assert taken == ["a.parquet", "b.csv"]
    with pytest.raises(NotADirectoryError, match=r"the drop folder .*absent does not exist"):
        survey(tmp_path / "absent", settle_seconds=0)  # defect 9: it read as an empty drop
    assert free_name(tmp_path / "archive", "b.csv", "abcdef0123") == tmp_path / "archive/b.csv"
    (tmp_path / "archive" / "b.csv").write_text("x")
    assert free_name(tmp_path / "archive", "b.csv", "abcdef0123").name == "b.abcdef01.csv"


def _dated(*rows: tuple[str, str, str | None, str | None]) -> pd.DataFrame:
    """(MLSNumber, Status, ClosePrice, StatusChangeTimestamp) rows."""
    frame = _rows(*[(m, s, p) for m, s, p, _ in rows])
    frame["StatusChangeTimestamp"] = [t if t else np.nan for *_, t in rows]
    return frame


def test_a_late_older_export_never_turns_a_sale_back(tmp_path):
    """Issue 23, defect 3: June's sale stays when May's snapshot (Active) arrives after it."""
    june = _dated(("1", "Sold", "300000", "2020-06-20 10:00:00"), ("2", "Active", None, None))
    may = _dated(("1", "Active", None, "2020-05-02 09:00:00"), ("3", "Active", None, None))
    history, _ = merge_export(pd.DataFrame(), june, snapshot="2020-06-30 00:00:00")
    merged, counts = merge_export(history, may, snapshot="2020-05-31 00:00:00")
    by_id = merged.set_index("MLSNumber")
    assert by_id.loc["1", "Status"] == "Sold" and by_id.loc["1", "ClosePrice"] == "300000"
    assert by_id.loc["2", "SnapshotTimestamp"] == "2020-06-30 00:00:00"
    assert (counts.added, counts.stale, counts.sales_removed, counts.updated) == (1, 1, 0, 0)


def test_a_newer_non_sale_removes_a_sale_and_says_so():
    history = _dated(("1", "Sold", "300000", "2020-06-20 10:00:00"))
    later = _dated(("1", "Active", None, "2020-07-01 08:00:00"))  # relisted: the sale fell through
    merged, counts = merge_export(history, later)
    assert merged.loc[0, "Status"] == "Active"
    assert (counts.updated, counts.sales_removed, counts.stale) == (1, 1, 0)
    corrected = _dated(("1", "Sold", "301000", "2020-07-05 08:00:00"))
    _, counts = merge_export(history, corrected)
    assert (counts.sales_updated, counts.sales_removed, counts.new_sales) == (1, 0, 0)


def test_without_timestamps_the_snapshot_time_decides():
    history, _ = merge_export(pd.DataFrame(), _rows(("1", "Sold", "300000")), "2020-06-30")
    merged, counts = merge_export(history, _rows(("1", "Active", None)), "2020-05-31")
    assert merged.loc[0, "Status"] == "Sold" and counts.stale == 1
    merged, counts = merge_export(history, _rows(("1", "Active", None)), "2020-07-31")
    assert merged.loc[0, "Status"] == "Active" and counts.sales_removed == 1


def test_the_same_facts_again_change_nothing():
    export = _dated(("1", "Sold", "300000", "2020-06-20 10:00:00"), ("2", "Active", None, None))
    history, _ = merge_export(pd.DataFrame(), export, snapshot="2020-06-30 00:00:00")
    again, counts = merge_export(history, export, snapshot="2020-07-15 00:00:00")
    assert again.equals(history)
    assert (counts.unchanged, counts.updated, counts.added) == (2, 0, 0)


def test_snapshot_time_is_the_newest_status_change_else_the_file_time():
    from homevision.flow.history import snapshot_time

    export = _dated(("1", "Sold", "1", "2020-06-20 10:00:00"), ("2", "Active", None, "bad"))
    assert snapshot_time(export, 0.0) == "2020-06-20 10:00:00"
    assert snapshot_time(_rows(("1", "Active", None)), 86_400.0) == "1970-01-02 00:00:00"


def test_only_the_rows_that_changed_the_history_are_new():
    """What drift is checked on: a late, older export brings no new rows (found by the soak
    benchmark: it used to trigger a retrain on an unchanged history)."""
    from homevision.flow.history import merge_changes

    june = _dated(("1", "Sold", "300000", "2020-06-20 10:00:00"), ("2", "Active", None, None))
    history, _ = merge_export(pd.DataFrame(), june, snapshot="2020-06-30 00:00:00")
    may = _dated(("1", "Active", None, "2020-05-02 09:00:00"))
    _, _, changed = merge_changes(history, may, snapshot="2020-05-31 00:00:00")
    assert changed.empty
    july = _dated(("2", "Sold", "410000", "2020-07-02 09:00:00"), ("1", "Sold", "300000",
                  "2020-06-20 10:00:00"))  # fmt: skip
    _, counts, changed = merge_changes(history, july, snapshot="2020-07-31 00:00:00")
    assert list(changed["MLSNumber"]) == ["2"] and counts.unchanged == 1


def test_a_late_older_export_never_undoes_a_correction():
    """Defect 2: April's typo (40000) corrected in May (400000), the same StatusChangeTimestamp
    on both rows: April's export arriving after May's put the typo back, with no warning."""
    april = _dated(("1", "Sold", "40000", "2020-04-02 10:00:00"))
    may = _dated(("1", "Sold", "400000", "2020-04-02 10:00:00"))
    in_order, _ = merge_export(
        merge_export(pd.DataFrame(), april, "2020-04-10 00:00:00")[0], may, "2020-05-30 00:00:00"
    )
    history, _ = merge_export(pd.DataFrame(), may, snapshot="2020-05-30 00:00:00")
    late, counts = merge_export(history, april, snapshot="2020-04-10 00:00:00")
    assert late.loc[0, "ClosePrice"] == in_order.loc[0, "ClosePrice"] == "400000"
    assert late.loc[0, "SnapshotTimestamp"] == "2020-05-30 00:00:00"
    assert (counts.stale, counts.updated, counts.sales_updated) == (1, 0, 0)
    again, counts = merge_export(history, may, snapshot="2020-05-30 00:00:00")
    assert again.equals(history) and counts.unchanged == 1  # the same moment again: no change


def test_a_name_taken_again_and_again_still_gets_a_free_one(tmp_path):
    """Defect 7: the same refused bytes dropped a third time were given STEM.SHA8.SUFFIX,
    already taken, so the move was skipped and the file stayed in the drop folder for good."""
    failed = tmp_path / "failed"
    failed.mkdir()
    given = []
    for _ in range(4):
        target = free_name(failed, "latest.csv", "abcdef0123")
        target.write_text("")
        given.append(target.name)
    assert given == ["latest.csv", "latest.abcdef01.csv", "latest.abcdef01-2.csv",
                     "latest.abcdef01-3.csv"]  # fmt: skip
    (failed / "link.csv").symlink_to(tmp_path / "nowhere")  # a dangling link holds its name
    assert free_name(failed, "link.csv", "abcdef0123").name == "link.abcdef01.csv"
    taken = {str(failed / "link.abcdef01.csv")}  # given out earlier in the same run
    assert free_name(failed, "link.csv", "abcdef0123", taken).name == "link.abcdef01-2.csv"
