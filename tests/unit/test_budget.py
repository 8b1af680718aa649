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
    costs = budget.probe_prices(
        sold, sold["ClosePrice"].astype(float), get_feature_set("task6"), names, seconds=2.5
    ).full
    assert costs == {"median_ppsf": 1.0}  # 3 s spent after the first > 2.5 s: stop


def test_pricing_without_a_limit_prices_everyone():
    listings = generate_listings(300, seed=1)
    sold = coerce_types(listings[listings["ClosePrice"].notna()]).reset_index(drop=True)
    costs = budget.probe_prices(
        sold, sold["ClosePrice"].astype(float), get_feature_set("task6"), ["median_ppsf", "ridge"]
    ).full
    assert set(costs) == {"median_ppsf", "ridge"} and all(c > 0 for c in costs.values())


def test_ensemble_specs_are_named_logged_and_priced():
    from homevision.training.candidates import STACK_FOLDS
    from homevision.training.train import _flat_params, _spec_cost, _spec_text

    members = [["ridge", {}], ["hist_gb", {"max_depth": 3}]]
    costs = {"ridge": 1.0, "hist_gb": 2.0}
    for kind in ("blend", "stack"):
        spec = {"kind": kind, "members": members}
        assert "ridge, hist_gb" in _spec_text(spec)
        assert _flat_params(spec) == {"kind": kind, "members": "ridge,hist_gb"}
    blend = _spec_cost({"kind": "blend", "members": members}, costs)
    assert blend == 1.0 + 2.0 * budget.TUNING_COST_FACTOR
    assert _spec_cost({"kind": "stack", "members": members}, costs) == blend * (STACK_FOLDS + 1)


def test_the_winner_is_priced_by_its_own_cv_fits_not_by_its_defaults():
    """A tuned configuration costs more than the defaults the candidates were priced with;
    the ranges and the promotion check are planned from the winner's own fits."""
    from types import SimpleNamespace

    from homevision.training.evaluation import CVPlan
    from homevision.training.train import _after_procedure_seconds, _winner_cost

    spec = {"kind": "single", "name": "mlp", "params": {"hidden_layer_sizes": (60,)}}
    costs = {"mlp": 0.5}
    plan = CVPlan(folds=5, repeats=5)

    def selection(fit_seconds):
        results = (
            {} if fit_seconds is None else {"mlp_tuned": SimpleNamespace(fit_seconds=fit_seconds)}
        )
        return SimpleNamespace(
            spec=spec, slowdown=1.0, plan=plan, winner="mlp_tuned", results=results
        )

    assert _winner_cost(selection(15.0), costs) == 3.0  # 15 s per repeat of 5 fits
    predicted = 0.5 * budget.TUNING_COST_FACTOR
    assert _winner_cost(selection(None), costs) == predicted  # not cross-validated: its price
    assert _winner_cost(selection(0.0), costs) == predicted
    # The 12 fits MAPIE makes in turn (the time-ordered check, the final calibration) count
    # at full price, the outer folds and the promotion check at the two-core price.
    more = _after_procedure_seconds(selection(15.0), costs) - _after_procedure_seconds(
        selection(None), costs
    )
    assert more > 12 * (3.0 - predicted)
