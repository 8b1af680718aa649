"""The training settings of params.yaml checked once, before any work: a value that would stop
`homevision train` minutes later (a division by zero, an empty choice) is refused up front in
one sentence naming its key."""

from __future__ import annotations

from typing import Any

from homevision.valuation.intervals import VARIANTS


def _number(params: dict[str, Any], key: str) -> float:
    """Return the value at dotted `key` as a float, or raise ValueError naming the key."""
    value: Any = params
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ValueError(f"params.yaml has no {key}")
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"params.yaml {key} is {value!r}; it must be a number")
    return float(value)


def _within(params: dict[str, Any], key: str, low: float, high: float, closed: str) -> float:
    """Return the number at `key`, or raise ValueError when it falls outside low..high (each
    end included where `closed` names it: "", "low", "high" or "both")."""
    value = _number(params, key)
    above = value >= low if closed in ("low", "both") else value > low
    below = value <= high if closed in ("high", "both") else value < high
    if not (above and below):
        left = "[" if closed in ("low", "both") else "("
        right = "]" if closed in ("high", "both") else ")"
        span = f"{left}{low:g}, {high:g}{right}"
        raise ValueError(f"params.yaml {key} is {value:g}; it must be in {span}")
    return value


def _at_least(params: dict[str, Any], key: str, least: int) -> int:
    """Return the whole number at `key`, or raise ValueError when it is not one or is below
    `least`."""
    value = _number(params, key)
    if value != int(value) or value < least:
        raise ValueError(f"params.yaml {key} is {value:g}; it must be a whole number >= {least}")
    return int(value)


def check_training_params(params: dict[str, Any]) -> None:
    """Raise ValueError, naming the key and why, at the first training setting that cannot
    run: a budget share outside [0, 1) (the procedure's share divides the rest), folds or
    repeats too few to cross-validate, a share of later sales outside (0, 1), a range level
    outside (0, 1), a default range level that is not one of the levels carried, or an
    unknown range variant. Returns None when every setting can run."""
    for share in params["train"]["budget_shares"]:
        _within(params, f"train.budget_shares.{share}", 0, 1, "low")
    for key, least in (
        ("train.folds", 2),
        ("train.repeats", 1),
        ("train.nested_outer_folds", 2),
        ("train.tune_top", 0),
        ("train.tuning_trials", 0),
        ("train.blend_top", 0),
        ("intervals.outer_folds", 2),
        ("promotion.folds", 2),
        ("promotion.repeats", 1),
    ):
        _at_least(params, key, least)
    for key in ("train.later_share", "intervals.later_share", "promotion.alpha"):
        _within(params, key, 0, 1, "")
    _within(params, "train.keep", 0, 1, "high")
    _within(params, "train.tuning_share", 0, 1, "low")
    levels = params["intervals"].get("levels") or []
    if not levels:
        raise ValueError("params.yaml intervals.levels is empty; name at least one range level")
    for value in levels:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise ValueError(f"params.yaml intervals.levels has {value!r}; each must be in (0, 1)")
    confidence = _number(params, "intervals.confidence")
    if confidence not in [float(v) for v in levels]:
        raise ValueError(
            f"params.yaml intervals.confidence {confidence:g} must be one of intervals.levels "
            f"[{', '.join(f'{float(v):g}' for v in levels)}]"
        )
    variants = params["intervals"].get("variants") or []
    unknown = [v for v in variants if v not in VARIANTS]
    if not variants or unknown:
        raise ValueError(
            f"params.yaml intervals.variants {variants!r} must name at least one of "
            f"{', '.join(VARIANTS)}"
            + (f" (unknown: {', '.join(map(str, unknown))})" if unknown else "")
        )
