"""Pricing the candidates stops once its share of the budget is spent, across candidates."""

from __future__ import annotations

import itertools

from homevision.data.listings import coerce_types
from homevision.data.synthetic import generate_listings
from homevision.features import get_feature_set
from homevision.training import budget


def test_pricing_stops_when_its_seconds_are_spent_in_total(monkeypatch):
    listings = generate_listings(300, seed=1)
    sold = coerce_types(listings[listings["ClosePrice"].notna()]).reset_index(drop=True)
    ticks = itertools.count()  # every clock read is one second later: each fit costs 1 s
    monkeypatch.setattr(budget.time, "perf_counter", lambda: float(next(ticks)))
    names = ["median_ppsf", "ridge", "elasticnet", "knn"]
    costs = budget.probe_costs(
        sold, sold["ClosePrice"].astype(float), get_feature_set("task6"), names, seconds=2.5
    )
    assert costs == {"median_ppsf": 1.0}  # 3 s spent after the first > 2.5 s: stop


def test_pricing_without_a_limit_prices_everyone():
    listings = generate_listings(300, seed=1)
    sold = coerce_types(listings[listings["ClosePrice"].notna()]).reset_index(drop=True)
    costs = budget.probe_costs(
        sold, sold["ClosePrice"].astype(float), get_feature_set("task6"), ["median_ppsf", "ridge"]
    )
    assert set(costs) == {"median_ppsf", "ridge"} and all(c > 0 for c in costs.values())
