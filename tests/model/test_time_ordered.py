"""Time-ordered validation: learn from the sales closed before a date, score those from it on;
the later sales never reach selection, tuning or fitting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor

from homevision.features import get_feature_set
from homevision.training import selection as sel
from homevision.training.evaluation import time_ordered_metrics, time_ordered_split

from .conftest import SMALL

FS = get_feature_set("task6")


def test_split_puts_every_earlier_date_before_the_cut_and_ties_after():
    dates = pd.Series(["2020-01-05"] * 30 + ["2020-03-01"] * 10 + ["2019-12-01"] * 40 + [None])
    (earlier, later), cut = time_ordered_split(dates, later_share=0.3)
    when = pd.to_datetime(dates)
    assert cut == pd.Timestamp("2020-01-05")
    assert (when.iloc[earlier] < cut).all() and (when.iloc[later] >= cut).all()
    assert len(earlier) == 40 and len(later) == 40  # the cut day's 30 sales all count as later
    assert 80 not in set(earlier) | set(later)  # no date: on neither side


def test_split_refuses_too_few_dated_rows_on_either_side():
    assert time_ordered_split(pd.Series([None] * 100)) is None
    assert time_ordered_split(pd.Series(["2020-01-01"] * 100)) is None  # nothing before the cut
    dates = pd.Series(pd.date_range("2020-01-01", periods=45).astype(str))
    assert time_ordered_split(dates, later_share=0.1) is None  # 5 later rows < 10


def test_metrics_score_the_later_rows_of_a_model_fitted_on_the_earlier(small):
    X, y = small
    split = (np.arange(0, 150), np.arange(150, 240))
    table = time_ordered_metrics({"mean": DummyRegressor()}, X, y, split)
    expected = np.sqrt(np.mean((y.iloc[150:] - y.iloc[:150].mean()) ** 2))
    assert table.loc["mean", "later_rmse"] == pytest.approx(expected)
    assert {"later_mape", "later_mdape", "later_within_10"} <= set(table.columns)


def test_later_sales_never_reach_selection_or_tuning(small, monkeypatch):
    X, y = small
    seen = []
    real = sel.select_and_tune

    def spy(Xs, ys, *args, **kwargs):
        seen.append(set(Xs.index))
        return real(Xs, ys, *args, **kwargs)

    monkeypatch.setattr(sel, "select_and_tune", spy)
    dates = pd.to_datetime(X["CloseDate"])
    estimate = sel.time_ordered_estimate(X, y, X["CloseDate"], FS, SMALL, later_share=0.3)
    cut = pd.Timestamp(estimate.cut)
    assert len(seen) == 1 and seen[0] == set(X.index[dates < cut])
    assert estimate.earlier + estimate.later == int(dates.notna().sum())
    assert estimate.later == int((dates >= cut).sum()) >= 10
    assert isinstance(estimate.winner, str) and estimate.winner
    assert 0 < estimate.metrics["mape"] < 0.5 and estimate.cut in estimate.method


def test_no_dates_no_estimate(small):
    X, y = small
    none = pd.Series([None] * len(X))
    assert sel.time_ordered_estimate(X, y, none, FS, SMALL) is None


ISO = [f"2020-{m:02d}-{d:02d}" for m in range(1, 7) for d in (3, 10, 17, 24)] * 2


def test_one_date_in_another_format_first_leaves_the_iso_dates_readable(caplog):
    """pandas guessed the format from the first value: one '02/13/2020' first made the other 48
    ISO dates NaT and the time-ordered estimate silently vanished."""
    with caplog.at_level("WARNING"):
        found = time_ordered_split(pd.Series(["02/13/2020", *ISO], name="CloseDate"))
    assert found is not None
    (earlier, later), _ = found
    assert len(earlier) + len(later) == 48 and 0 not in {*earlier, *later}
    assert "CloseDate: 1 of 49 dates are not ISO 8601 ('02/13/2020')" in caplog.text


def test_a_timestamp_among_dates_is_read():
    from homevision.data.fields import parse_dates

    parsed = parse_dates(pd.Series([*ISO, "2020-02-13 10:15:00", " 2020-03-01 ", None, ""]))
    assert parsed.iloc[48] == pd.Timestamp("2020-02-13 10:15:00")
    assert parsed.iloc[49] == pd.Timestamp("2020-03-01")
    assert parsed.iloc[:48].notna().all() and parsed.iloc[50:].isna().all()
