"""The bootstrap intervals the model card gives beside its honest figures."""

import numpy as np
import pytest

from homevision.training.card import bounds_text, time_ordered_markdown
from homevision.training.metrics import metric_bounds, valuation_metrics


def _sales(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    price = rng.uniform(300_000, 800_000, n)
    return price, price * (1 + rng.normal(0, 0.08, n))


def test_every_metric_gets_an_interval_around_its_figure():
    y, p = _sales(60)
    figures, bounds = valuation_metrics(y, p), metric_bounds(y, p)
    assert set(bounds) == {f"{m}_{side}" for m in figures for side in ("low", "high")}
    for m, value in figures.items():
        assert bounds[f"{m}_low"] <= value <= bounds[f"{m}_high"], m
        assert bounds[f"{m}_low"] < bounds[f"{m}_high"] or m == "within_20", m


def test_intervals_are_seeded_and_narrow_with_more_sales():
    y, p = _sales(50)
    assert metric_bounds(y, p) == metric_bounds(y, p)
    assert metric_bounds(y, p, seed=1) != metric_bounds(y, p)
    big_y, big_p = _sales(800)
    few, many = metric_bounds(y, p), metric_bounds(big_y, big_p)
    for m in ("rmse", "mape", "mdape"):
        assert many[f"{m}_high"] - many[f"{m}_low"] < few[f"{m}_high"] - few[f"{m}_low"], m


def test_a_wider_level_gives_a_wider_interval():
    y, p = _sales(60)
    narrow, wide = metric_bounds(y, p, level=0.5), metric_bounds(y, p, level=0.95)
    assert wide["mdape_low"] <= narrow["mdape_low"] and narrow["mdape_high"] <= wide["mdape_high"]


def test_one_sale_has_no_interval():
    assert metric_bounds(np.array([100.0]), np.array([90.0])) == {}


def test_the_card_prints_the_interval_or_says_there_is_none():
    y, p = _sales(54)
    timed = {
        **valuation_metrics(y, p),
        **metric_bounds(y, p),
        "method": "time-ordered",
        "winner": "svr",
        "later": 54,
    }
    card = time_ordered_markdown(timed)
    assert "| metric | time-ordered (honest) | 90% interval |" in card
    assert "a bootstrap over the 54 sales scored" in card
    mid, low, high = (100 * timed[k] for k in ("mdape", "mdape_low", "mdape_high"))
    assert f"| MDAPE | {mid:.1f}% | {low:.1f}% to {high:.1f}% |" in card
    # A run recorded before the card had intervals still renders.
    assert bounds_text({"mdape": 0.05}, "mdape") == "n/a"
    old = {k: v for k, v in timed.items() if not k.endswith(("_low", "_high"))}
    assert "| MDAPE | " in time_ordered_markdown(old) and "n/a" in time_ordered_markdown(old)


@pytest.mark.parametrize("name", ["mape", "mdape", "within_10"])
def test_percent_intervals_stay_between_zero_and_one(name):
    y, p = _sales(40)
    bounds = metric_bounds(y, p)
    assert 0.0 <= bounds[f"{name}_low"] <= bounds[f"{name}_high"] <= 1.0
