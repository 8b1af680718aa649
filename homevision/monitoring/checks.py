"""What `homevision monitor` checks, as Evidently metrics, and how their results become a decision.

Pure functions: the columns of each check, the Evidently metrics that measure them, the rows of
the result table read back from a snapshot, and whether drift was found. The I/O (models, files,
MLflow, Prometheus) lives in homevision/monitoring/drift.py.

Groups of checks, each on the model's own view of the data:
- inputs: the model's raw input columns, all accepted rows (drift when at least `drift_share` of
  them drifted);
- valuations: the model's valuations of all rows;
- sale_price and errors, on the sales only: the sale price, and the valuation's log error
  log(price / valuation) against the reference's out-of-fold errors (the model was never fitted
  on either, so a growing error is the model going stale, e.g. prices trending);
- quality: per column, missing values above the reference's share, numbers outside the
  reference's range, categories the reference never had.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from homevision.features import FeatureSet
from homevision.monitoring._compat import import_evidently

import_evidently()
from evidently import DataDefinition, Dataset  # noqa: E402  (after the pandas shim)
from evidently.metrics import (  # noqa: E402
    MissingValueCount,
    OutListValueCount,
    OutRangeValueCount,
    ValueDrift,
)
from evidently.presets import DataDriftPreset  # noqa: E402

VALUATION = "valuation"
LOG_ERROR = "log_error"
PRICE = "ClosePrice"
GROUPS = ("inputs", "valuations", "sale_price", "errors", "quality")


@dataclass(frozen=True)
class Check:
    """One row of the monitoring table: a test on a column and its verdict."""

    group: str
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def input_columns(fs: FeatureSet) -> tuple[list[str], list[str]]:
    """Return the (numeric, categorical) raw columns whose distributions are tested. High-
    cardinality columns (subdivisions) are left out of the drift test (a chi-square over
    hundreds of thin categories says little) but keep their missing-value check."""
    numeric = [*fs.numeric, fs.baths]
    categorical = [fs.school, *fs.categorical]
    return numeric, categorical


def as_typed(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Return the columns as Evidently reads them: numbers as floats (booleans as 0/1, what does
    not parse as NaN), categories as text with missing kept missing."""
    out = pd.DataFrame(index=frame.index)
    for column in numeric:
        values = frame[column]
        if values.dtype == bool or str(values.dtype) == "boolean":
            values = values.astype("Float64")
        elif values.dtype == object or str(values.dtype).startswith(("string", "str")):
            values = values.replace({"True": 1, "False": 0, "true": 1, "false": 0})
        out[column] = pd.to_numeric(values, errors="coerce").astype(float)
    for column in categorical:
        text = frame[column].astype(object)
        out[column] = text.where(text.notna(), None)
    return out


def dataset(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> Dataset:
    """Return an Evidently Dataset of `frame` with the columns' roles declared."""
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    return Dataset.from_pandas(frame[[*numeric, *categorical]], data_definition=definition)


def row_metrics(
    reference: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    drift_share: float,
    missing_only: list[str] | None = None,
) -> list:
    """Return the Evidently metrics for all rows: input drift (the preset), valuation drift,
    per column the quality counts against the reference's range and categories, and the
    missing-value count alone for `missing_only` columns."""
    metrics: list = [DataDriftPreset(columns=[*numeric, *categorical], drift_share=drift_share)]
    metrics.append(ValueDrift(column=VALUATION))
    for column in [*numeric, *categorical, *(missing_only or [])]:
        metrics.append(MissingValueCount(column=column))
    for column in numeric:
        seen = reference[column].dropna()
        if len(seen):
            metrics.append(
                OutRangeValueCount(column=column, left=float(seen.min()), right=float(seen.max()))
            )
    for column in categorical:
        values = sorted(str(v) for v in reference[column].dropna().unique())
        if values:
            metrics.append(OutListValueCount(column=column, values=values))
    return metrics


def sales_metrics() -> list:
    """Return the Evidently metrics on the sales: sale price and valuation error drift."""
    return [ValueDrift(column=PRICE), ValueDrift(column=LOG_ERROR)]


def log_errors(price: pd.Series, valuation: pd.Series) -> pd.Series:
    """Return log(price / valuation): 0 is exact, +0.05 a sale about 5% above its valuation."""
    return np.log(price.astype(float) / valuation.astype(float))


def _drifted(method: str, score: float, threshold: float) -> bool:
    """Return the verdict of an Evidently drift score: p-values drift below the threshold,
    distances (Wasserstein, Jensen-Shannon, PSI...) at or above it."""
    if "p_value" in method:
        return score < threshold
    return score >= threshold


def read_checks(
    snapshot: dict[str, Any],
    reference_missing: dict[str, float],
    limits: dict[str, float],
    group_of: dict[str, str],
) -> list[Check]:
    """Return the table rows of an Evidently snapshot (`Snapshot.dict()`): drift tests by
    column (group from `group_of`), and quality shares against `limits` (missing over the
    reference's share in `reference_missing`, out of range, new categories)."""
    checks: list[Check] = []
    for metric in snapshot["metrics"]:
        config, value = metric["config"], metric["value"]
        kind = config["type"].rsplit(":", 1)[-1]
        column = config.get("column")
        if kind == "ValueDrift":
            score, threshold = float(value), float(config["threshold"])
            group = group_of.get(column, "inputs")
            method = str(config["method"])
            checks.append(
                Check(group, column, method, score, threshold, _drifted(method, score, threshold))
            )
        elif kind == "MissingValueCount":
            share = float(value["share"])
            limit = float(limits["max_missing_increase"])
            gain = share - reference_missing.get(column, 0.0)
            checks.append(Check("quality", column, "missing, +share", gain, limit, gain > limit))
        elif kind == "OutRangeValueCount":
            share = float(value["share"])
            limit = float(limits["max_out_of_range"])
            checks.append(
                Check("quality", column, "out of range, share", share, limit, share > limit)
            )
        elif kind == "OutListValueCount":
            share = float(value["share"])
            limit = float(limits["max_new_category"])
            checks.append(
                Check("quality", column, "new category, share", share, limit, share > limit)
            )
    return checks


def verdicts(checks: list[Check], drift_share: float) -> dict[str, bool]:
    """Return, per group, whether it found drift: inputs when the share of drifted input columns
    reaches `drift_share`, any other group when one of its checks drifted."""
    out = {
        "inputs": input_drift_share(checks) >= drift_share
        and any(c.group == "inputs" for c in checks)
    }
    for group in GROUPS[1:]:
        out[group] = any(c.drifted for c in checks if c.group == group)
    return out


def detected(group_verdicts: dict[str, bool], triggers: list[str]) -> bool:
    """Return whether drift was found: a group in `triggers` (params monitoring.triggers) found
    it. Other groups are reported only."""
    return any(flag for group, flag in group_verdicts.items() if group in triggers)


def input_drift_share(checks: list[Check]) -> float:
    """Return the share of the input columns that drifted (0 to 1)."""
    inputs = [c for c in checks if c.group == "inputs"]
    return sum(c.drifted for c in inputs) / len(inputs) if inputs else 0.0


def drifted_columns(checks: list[Check]) -> list[str]:
    """Return each column with at least one drifted check, in table order, once."""
    return list(dict.fromkeys(c.column for c in checks if c.drifted))
