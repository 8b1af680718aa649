"""What `homevision monitor` checks, as Evidently metrics, and how their results become a decision.

Pure functions: the columns of each check, the Evidently metrics that measure them, the rows of
the result table read back from a snapshot, and whether drift was found. The I/O (models, files,
MLflow, Prometheus) lives in homevision/monitoring/drift.py.

Groups of checks, each on the model's own view of the data:
- inputs: the model's raw input columns, all accepted rows (drift when at least `drift_share` of
  them drifted), plus what the model derives from them: the annual association fee, and per
  feature list (ExteriorFeatures...) the share of homes holding each of its common items, the
  items of one list counting as one column;
- valuations: the model's valuations of all rows;
- sale_price and errors, on the sales only: the sale price, and the valuation's log error
  log(price / valuation) against the reference's out-of-fold errors (the model was never fitted
  on either, so a growing error is the model going stale, e.g. prices trending);
- quality: per column, missing values above the reference's share, numbers outside the
  reference's range, categories the reference never had.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from homevision.features import ANNUAL_FEE as FEE_FEATURE
from homevision.features import (
    AnnualFee,
    ColumnSelector,
    FeatureSet,
    count_tokens,
    split_tokens,
)
from homevision.monitoring._compat import import_evidently

import_evidently()
from evidently import DataDefinition, Dataset  # noqa: E402  (after the pandas shim)
from evidently.legacy.calculations.stattests import (  # noqa: E402
    chi_stat_test,
    jensenshannon_stat_test,
    ks_stat_test,
    z_stat_test,
)
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
ANNUAL_FEE = "AnnualAssociationFee"
TOKEN_SEP = ": "  # a feature-list item's column: "ExteriorFeatures: Gutters"
REFUSED = "refused valuations, +share"  # the valuation's missing check: rows the model refused
REJECTED = "rejected rows, share"  # rows of the export that validation kept aside
ROWS = "(rows)"  # the column of a check on whole rows
MAX_TOKENS = 10  # items tested per feature list (its most common): bounds the tests and the table
# Evidently's own rule: up to this many rows a test (K-S for numbers, chi-square for categories,
# the two-proportion z-test for a two-valued one; p-value, 0.05), above it a distance
# (Wasserstein, Jensen-Shannon; 0.1). Evidently counts the reference's rows only; here the
# smaller side decides (sample_tests): a distance is an effect size that a small export
# exceeds by chance (80 same-market rows against a 1,500-row reference drifted 5 of 6 inputs).
SMALL_REFERENCE = 1000
ALPHA = 0.05
DISTANCE = 0.1
# A method named in the preset is reported by that name ("z"): read back by its display name,
# which says whether its score is a p-value (see _drifted).
DISPLAY_NAMES = {
    t.name: t.display_name
    for t in (z_stat_test, jensenshannon_stat_test, ks_stat_test, chi_stat_test)
}


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


def annual_fee(frame: pd.DataFrame, fee: tuple[str, str]) -> pd.Series:
    """Return each row's annual association fee as the model computes it: the amount and the
    frequency read by the model's ColumnSelector, converted by its AnnualFee step (no amount is
    0 a year, an amount with an unknown frequency is missing)."""
    amount, frequency = fee
    selected = ColumnSelector(numeric=(amount,), text=(frequency,)).transform(frame)
    return AnnualFee(amount, frequency).transform(selected)[FEE_FEATURE].rename(ANNUAL_FEE)


def token_column(list_column: str, token: str) -> str:
    """Return the name of the column of a feature-list item ("ExteriorFeatures: Gutters")."""
    return f"{list_column}{TOKEN_SEP}{token}"


def list_of(column: str) -> str | None:
    """Return the feature list an item column belongs to ("ExteriorFeatures: Gutters" ->
    "ExteriorFeatures"); None for any other column."""
    return column.split(TOKEN_SEP, 1)[0] if TOKEN_SEP in column else None


def token_vocabulary(
    reference: pd.DataFrame, lists: list[str], min_count: int, most: int = MAX_TOKENS
) -> dict[str, list[str]]:
    """Return, per feature list column, the items whose share of homes is compared: the `most`
    most common of those held by at least `min_count` reference homes (the model's rule for an
    item to have an indicator, features.token_min_count), by name. Rarer items have too few
    homes for a share to say much, and the cap bounds the number of tests."""
    out = {}
    for column in lists:
        counts = count_tokens(reference[column])
        common = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: -counts[t])
        out[column] = sorted(common[:most])
    return out


def token_presence(frame: pd.DataFrame, vocabulary: dict[str, list[str]]) -> pd.DataFrame:
    """Return one two-valued column per item of `vocabulary`, True where the home's list holds
    it (items split as the model splits them; a missing list holds none)."""
    out = {}
    for column, tokens in vocabulary.items():
        held = [split_tokens(v) for v in frame[column]]
        for token in tokens:
            out[token_column(column, token)] = pd.Series(
                [token in items for items in held], index=frame.index, dtype=object
            )
    return pd.DataFrame(out, index=frame.index)


def sample_tests(
    reference: pd.DataFrame, numeric: list[str], categorical: list[str], rows: int
) -> dict[str, tuple[str, float]]:
    """Return, per column, the Evidently drift method and threshold when the smaller of the
    two samples has `rows` <= SMALL_REFERENCE rows: K-S for numbers, the z-test for a category
    with at most two values in `reference`, chi-square for the others, each at ALPHA. Empty
    above: Evidently's default distances are then what its own rule picks."""
    if rows > SMALL_REFERENCE:
        return {}
    tests = {c: (ks_stat_test.name, ALPHA) for c in numeric}
    for column in categorical:
        binary = reference[column].dropna().nunique() <= 2
        tests[column] = (z_stat_test.name if binary else chi_stat_test.name, ALPHA)
    return tests


def value_drift(column: str, rows: int) -> ValueDrift:
    """Return the drift metric of one column, its test chosen by the smaller sample's `rows`
    (sample_tests' rule: K-S at ALPHA up to SMALL_REFERENCE rows, else Evidently's distance)."""
    if rows > SMALL_REFERENCE:
        return ValueDrift(column=column)
    return ValueDrift(column=column, method=ks_stat_test.name, threshold=ALPHA)


def token_tests(vocabulary: dict[str, list[str]], rows: int) -> dict[str, tuple[str, float]]:
    """Return, per item column, the Evidently drift method and threshold of its presence share,
    by the smaller sample's `rows`. Up to SMALL_REFERENCE: the two-proportion z-test at
    ALPHA / k, Bonferroni over the list's k items, so a list (one input column in the share)
    false-alarms no more often than a column. Above: the Jensen-Shannon distance at DISTANCE,
    an effect size that needs no correction. Either is what Evidently would pick for a
    two-valued category itself."""
    out = {}
    for column, tokens in vocabulary.items():
        for token in tokens:
            if rows <= SMALL_REFERENCE:
                test = (z_stat_test.name, ALPHA / len(tokens))
            else:
                test = (jensenshannon_stat_test.name, DISTANCE)
            out[token_column(column, token)] = test
    return out


@dataclass(frozen=True)
class Derived:
    """The columns the monitor derives from a feature set's raw ones, as the model does: the
    annual association fee (from `fee`'s amount and frequency columns), and the presence of
    each item of `tokens` (per feature list column, its items)."""

    fee: tuple[str, str] | None = None
    tokens: dict[str, list[str]] = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        """The raw columns the derived ones are computed from: the feature lists, the fee's amount
        and frequency (each gets the missing check)."""
        return [*self.tokens, *(self.fee or ())]

    @property
    def numeric(self) -> list[str]:
        """The derived numeric columns: the annual fee, when there is one."""
        return [ANNUAL_FEE] if self.fee else []

    @property
    def token_columns(self) -> list[str]:
        """The item columns, list by list."""
        return [token_column(c, t) for c, tokens in self.tokens.items() for t in tokens]

    def add(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Return `frame` with the derived columns added (a copy). A source column the frame
        lacks counts as all missing, as as_typed reads an absent column."""
        absent = [c for c in self.sources if c not in frame.columns]
        if absent:
            frame = frame.assign(
                **{c: pd.Series(None, index=frame.index, dtype=object) for c in absent}
            )
        parts = [frame]
        if self.fee:
            parts.append(annual_fee(frame, self.fee).to_frame())
        if self.tokens:
            parts.append(token_presence(frame, self.tokens))
        return pd.concat(parts, axis=1) if len(parts) > 1 else frame.copy()


def derive(fs: FeatureSet, reference: pd.DataFrame, min_count: int) -> Derived:
    """Return what the monitor derives for `fs`: the annual fee when it has one, the common items
    of its feature lists in `reference` (token_vocabulary). A source column the reference lacks
    is skipped (a reference logged before the feature set read it); one only the export lacks
    counts as all missing there (Derived.add), so a list or fee dropped from the export is still
    checked. A feature set with neither (task6) derives nothing."""
    has = set(reference.columns)
    fee = fs.fee if fs.fee and all(c in has for c in fs.fee) else None
    lists = [c for c in fs.token_lists if c in has]
    return Derived(fee, token_vocabulary(reference, lists, min_count))


def as_typed(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Return the columns as Evidently reads them: numbers as floats (booleans as 0/1, what does
    not parse as NaN), categories as text with missing kept missing. A column the frame lacks (an
    optional column the export leaves out) is all missing."""
    out = pd.DataFrame(index=frame.index)
    absent = pd.Series(None, index=frame.index, dtype=object)
    for column in numeric:
        values = frame[column] if column in frame.columns else absent
        if values.dtype == bool or str(values.dtype) == "boolean":
            values = values.astype("Float64")
        elif values.dtype == object or str(values.dtype).startswith(("string", "str")):
            values = values.replace({"True": 1, "False": 0, "true": 1, "false": 0})
        out[column] = pd.to_numeric(values, errors="coerce").astype(float)
    for column in categorical:
        text = (frame[column] if column in frame.columns else absent).astype(object)
        out[column] = text.where(text.notna(), None)
    return out


def empty_columns(reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """Return the columns without a single value in one of the frames: Evidently cannot test
    their drift (it raises), and their missing-value check already says what happened."""
    return [c for c in reference.columns if reference[c].isna().all() or current[c].isna().all()]


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
    tests: dict[str, tuple[str, float]] | None = None,
    untested: Collection[str] = (),
    rows: int | None = None,
) -> list:
    """Return the Evidently metrics for all rows: input drift (the preset), valuation drift,
    per column the quality counts against the reference's range and categories, the
    missing-value count alone for `missing_only` columns and for the valuation (the rows the
    model refused to value), and the drift alone of the columns of
    `tests` with its (method, threshold) (feature-list items, see token_tests). The `untested`
    columns (empty on one side, see empty_columns) get no drift test, only the quality counts.
    `rows`, the smaller sample's size, picks the valuation's test (value_drift; default: the
    reference's)."""
    rows = len(reference) if rows is None else rows
    tests = {c: test for c, test in (tests or {}).items() if c not in untested}
    drift = list(dict.fromkeys(c for c in [*numeric, *categorical, *tests] if c not in untested))
    metrics: list = []
    if drift:  # no column at all would be every column to the preset
        preset = DataDriftPreset(
            columns=drift,
            drift_share=drift_share,
            per_column_method={c: method for c, (method, _) in tests.items()} or None,
            per_column_threshold={c: threshold for c, (_, threshold) in tests.items()} or None,
        )
        metrics.append(preset)
    if VALUATION not in untested:
        metrics.append(value_drift(VALUATION, rows))
    for column in [*numeric, *categorical, *(missing_only or []), VALUATION]:
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


def sales_metrics(rows: int) -> list:
    """Return the Evidently metrics on the sales: sale price and valuation error drift, their
    test chosen by the smaller side's number of sales `rows` (value_drift)."""
    return [value_drift(PRICE, rows), value_drift(LOG_ERROR, rows)]


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
            method = DISPLAY_NAMES.get(str(config["method"]), str(config["method"]))
            checks.append(
                Check(group, column, method, score, threshold, _drifted(method, score, threshold))
            )
        elif kind == "MissingValueCount":
            share = float(value["share"])
            limit = float(limits["max_missing_increase"])
            gain = share - reference_missing.get(column, 0.0)
            method = REFUSED if column == VALUATION else "missing, +share"
            checks.append(Check("quality", column, method, gain, limit, gain > limit))
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


def all_refused(reference: pd.DataFrame, current: pd.DataFrame) -> Check | None:
    """Return the valuations check of an export the model refused to value at all while it
    valued the reference (a column it needs is absent, say): drifted, share 1. Evidently cannot
    test a column empty on one side, and an untested valuation would read as no drift. None
    when the current side has a valuation, or neither side has one."""
    if current.empty or current[VALUATION].notna().any() or reference[VALUATION].isna().all():
        return None
    return Check("valuations", VALUATION, "refused, share", 1.0, 0.0, True)


def rejected_check(rejected: int, rows: int, limit: float) -> Check:
    """Return the quality check of the export's rows that validation rejected (`rejected` of
    `rows` in all): their share against `limit` (params monitoring.max_rejected). The reference
    holds accepted rows only, so the share is compared with the limit as it is."""
    share = rejected / rows if rows else 0.0
    return Check("quality", ROWS, REJECTED, share, limit, share > limit)


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


def input_verdicts(checks: list[Check]) -> list[bool]:
    """Return, per input column, whether it drifted: one per input check, except that the item
    checks of a feature list make one column, drifted when any item did (a list's many items
    weigh as one column in the share, as it is one column of the export)."""
    units: dict[object, bool] = {}
    for i, check in enumerate(c for c in checks if c.group == "inputs"):
        key = list_of(check.column) or i
        units[key] = units.get(key, False) or check.drifted
    return list(units.values())


def input_drift_share(checks: list[Check]) -> float:
    """Return the share of the input columns that drifted (0 to 1; see input_verdicts)."""
    units = input_verdicts(checks)
    return sum(units) / len(units) if units else 0.0


def drifted_columns(checks: list[Check]) -> list[str]:
    """Return each column with at least one drifted check, in table order, once."""
    return list(dict.fromkeys(c.column for c in checks if c.drifted))
