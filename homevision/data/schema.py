"""The MLS export data contract, as a pandera schema over the raw (string) columns.

The schema is applied to the columns exactly as read from the file, so every reported failure
carries the value the user will find in their export. Every column check is built from the
field's `FieldRule` in `homevision.data.fields.FIELDS` (the single source of the rules, shared
with the REST API), and named by a rule id; rules in `REPAIRABLE_RULES` describe quirks the
feature pipeline repairs (the row is kept and counted), every other rule is fatal (the row cannot
be valued and is set aside with the reason). Optional columns are checked when the export has
them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import pandas as pd

from homevision.data.fields import (
    BATHS_PATTERN,
    FALSE_TOKENS,
    FIELDS,
    REPAIRABLE_RULES,
    RULES,
    SALE_PRICE_BOUNDS,
    SALE_PRICE_PER_SQFT_BOUNDS,
    TRUE_TOKENS,
    FieldRule,
    baths_problem,
    check_ids,
)
from homevision.data.pandera_api import pa

__all__ = [
    "BATHS",
    "BATHS_PATTERN",
    "BOOLEAN_COLUMNS",
    "MIN_LIST_PRICE",
    "MLS_ID",
    "NUMERIC_COLUMNS",
    "REPAIRABLE_RULES",
    "REQUIRED_COLUMNS",
    "RULES",
    "SCHOOL",
    "SOLD",
    "STATUS",
    "TARGET",
    "build_schema",
    "to_number",
]

MLS_ID = "MLSNumber"
STATUS = "Status"
TARGET = "ClosePrice"
SOLD = "Sold"
BATHS = "BathsTotal"
SCHOOL = "ElementarySchoolName"
SQFT = "SqFtTotal"

# The header must hold these for a file to count as a listings export: the fields whose value is
# required, and those whose absence is a repairable quirk.
REQUIRED_COLUMNS: tuple[str, ...] = tuple(n for n, r in FIELDS.items() if r.in_every_export)
# Columns read as numbers / booleans wherever a feature set or the label uses them.
NUMERIC_COLUMNS: tuple[str, ...] = tuple(n for n, r in FIELDS.items() if r.is_numeric)
BOOLEAN_COLUMNS: tuple[str, ...] = tuple(n for n, r in FIELDS.items() if r.kind == "boolean")
# An asking price below this is a lease price or a typo: treated as missing (repaired).
MIN_LIST_PRICE: float = float(FIELDS["ListPrice"].repair_below or 0)

CheckFn = Callable[[pd.Series], pd.Series]


def to_number(values: pd.Series) -> pd.Series:
    """Return the values as floats, NaN where missing or not a number."""
    return pd.to_numeric(values, errors="coerce").astype("float64")


def _present(s: pd.Series) -> pd.Series:
    return s.notna() & (s.astype("string").str.strip() != "").fillna(False).astype(bool)


def _number_problems(rule: FieldRule, s: pd.Series) -> pd.Series:
    """Return, per value, the one rule id it breaks among not_a_number, the range rules and
    not_an_integer (None where fine or missing). "inf" or "nan" text is not a number; a number
    too large for a float ("1e999") is out of range."""
    num = _NUMBERS(s)
    # An infinite value is a number too large for a float ("1e999": out of range) when its
    # text has a digit, else "inf" text (not a number); only those values' text is read.
    infinite = np.isinf(num.to_numpy())
    spelled = np.zeros(len(s), dtype=bool)
    if infinite.any():
        text = s[infinite].astype("string").str.contains("[0-9]", regex=True)
        spelled[infinite] = ~text.fillna(False).astype(bool).to_numpy()
    not_number = s.notna() & (num.isna() | pd.Series(spelled, index=s.index))
    valid = s.notna() & ~not_number
    out = pd.Series(None, index=s.index, dtype=object)
    out[not_number] = "not_a_number"
    for rid, (bound, at_bound_breaks) in rule.below_rules().items():
        below = (num <= bound) if at_bound_breaks else (num < bound)
        out[valid & below & out.isna()] = rid
    if rule.maximum is not None:
        out[valid & (num > rule.maximum) & out.isna()] = "implausible"
    if rule.kind == "integer":
        out[valid & (num != np.floor(num)) & out.isna()] = "not_an_integer"
    return out


# Within one validation (`shared_problems`), each column's problems are computed once and read
# by the checks of all its rule ids: pandera runs one check per rule id, each on a new Series of
# the same column, and each reads the same per-value rule ids (a Python call per value).
_SHARED: ContextVar[dict[tuple[int, object], pd.Series] | None] = ContextVar(
    "homevision_shared_problems", default=None
)


@contextmanager
def shared_problems() -> Iterator[None]:
    """Let the checks of one validation share each column's problems (see _Memo)."""
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


class _Memo:
    """A column's problems, computed once per validation under `shared_problems` (keyed by this
    memo and the column's name; reused only for a Series with the same index), else each call."""

    def __init__(self, problems: Callable[[pd.Series], pd.Series]):
        self.problems = problems

    def __call__(self, s: pd.Series) -> pd.Series:
        shared = _SHARED.get()
        if shared is None:
            return self.problems(s)
        key = (id(self), s.name)
        found = shared.get(key)
        if found is None or not found.index.equals(s.index):
            found = shared[key] = self.problems(s)
        return found


_NUMBERS = _Memo(to_number)  # a column read as numbers once per validation, for all its checks


def _is_not(problems: Callable[[pd.Series], pd.Series], rid: str) -> CheckFn:
    def check(s: pd.Series) -> pd.Series:
        return problems(s).ne(rid).fillna(True).astype(bool)

    return check


def _elementwise(fn: Callable[[object], str | None]) -> Callable[[pd.Series], pd.Series]:
    def problems(s: pd.Series) -> pd.Series:
        return pd.Series([fn(v) for v in s.to_numpy()], index=s.index, dtype=object)

    return problems


def _read_ids(s: pd.Series) -> pd.DataFrame:
    """Return each MLSNumber read once: `number` (the normalised id, None when missing or
    invalid) and `rule` (the rule id it breaks, None when it keeps them)."""
    numbers, rules = check_ids(s.to_numpy())
    return pd.DataFrame(
        {
            "number": pd.Series(numbers, index=s.index, dtype=object),
            "rule": pd.Series(rules, index=s.index, dtype=object),
        }
    )


_IDS = _Memo(_read_ids)  # one reading of the id column serves its five checks


def _id_problems(s: pd.Series) -> pd.Series:
    return _IDS(s)["rule"]


def _by_value(fn: Callable[[object], str | None]) -> Callable[[pd.Series], pd.Series]:
    """Like _elementwise, with `fn` called once per distinct value (a column of few distinct
    values, like BathsTotal, costs a dictionary lookup per row). Values are told apart by type
    as well (True, 1 and 1.0 are three values); an unhashable one is checked on its own."""

    def problems(s: pd.Series) -> pd.Series:
        seen: dict[tuple[type, object], str | None] = {}
        out = []
        for value in s.to_numpy():
            try:
                key = (type(value), value)
                if key not in seen:
                    seen[key] = fn(value)
                out.append(seen[key])
            except TypeError:  # unhashable
                out.append(fn(value))
        return pd.Series(out, index=s.index, dtype=object)

    return problems


def _ids_unique(s: pd.Series) -> pd.Series:
    """False on a row whose MLSNumber, once normalised ("1.0" and " 1" are 1), an earlier row
    already used."""
    ids = _IDS(s)["number"]
    return ~(ids.notna() & ids.duplicated(keep="first"))


def _boolean_ok(s: pd.Series) -> pd.Series:
    tokens = s.astype("string").str.strip().str.lower()
    return (s.isna() | tokens.isin(TRUE_TOKENS | FALSE_TOKENS).fillna(False)).astype(bool)


def _length_ok(limit: int) -> CheckFn:
    def check(s: pd.Series) -> pd.Series:
        return (s.isna() | (s.astype("string").str.len() <= limit).fillna(True)).astype(bool)

    return check


def _quirk_checks(rule: FieldRule, problems: CheckFn) -> list[tuple[str, CheckFn]]:
    """Return the repairable rules' checks of one field (`problems`: its number problems)."""
    checks: list[tuple[str, CheckFn]] = []
    if rule.missing_quirk:
        present = _present if rule.kind == "text" else (lambda s: s.notna())
        checks.append((rule.missing_quirk, present))
    if rule.repair_rule and rule.repair_below is not None:
        floor = rule.repair_below

        def above_floor(s: pd.Series) -> pd.Series:
            return ~(problems(s).isna() & (_NUMBERS(s) < floor))

        checks.append((rule.repair_rule, above_floor))
    if rule.zero_quirk:
        checks.append((rule.zero_quirk, lambda s: ~(_NUMBERS(s) == 0)))
    return checks


def column_checks(rule: FieldRule) -> list[tuple[str, CheckFn]]:
    """Return (rule id, check) pairs for one field: each check maps the column to True where
    the value keeps the rule (a missing value keeps every rule but `missing_value`, which
    pandera's nullable=False reports)."""
    checks: list[tuple[str, CheckFn]] = []
    problems = _Memo(lambda s: _number_problems(rule, s))
    if rule.kind in ("integer", "number"):
        ids = ["not_a_number", *rule.below_rules(), "implausible"]
        ids += ["not_an_integer"] if rule.kind == "integer" else []
        checks += [(rid, _is_not(problems, rid)) for rid in dict.fromkeys(ids)]
    elif rule.kind == "id":
        for rid in ("not_a_number", "not_positive", "not_an_integer", "implausible"):
            checks.append((rid, _is_not(_id_problems, rid)))
        checks.append(("duplicate", _ids_unique))
    elif rule.kind == "baths":
        baths = _Memo(_by_value(baths_problem))
        for rid in ("baths_format", "baths_ambiguous", "baths_half_implausible", "implausible"):
            checks.append((rid, _is_not(baths, rid)))
    elif rule.kind == "boolean":
        checks.append(("not_a_boolean", _boolean_ok))
    elif rule.kind == "text" and rule.max_length is not None:
        checks.append(("too_long", _length_ok(rule.max_length)))
    return checks + _quirk_checks(rule, problems)


def _column(rule: FieldRule) -> pa.Column:
    checks = [pa.Check(fn, name=rid, ignore_na=False) for rid, fn in column_checks(rule)]
    return pa.Column(nullable=not rule.required, checks=checks)


def _sold_price_ok(frame: pd.DataFrame) -> pd.Series:
    sold = frame[STATUS].astype("string").str.strip().eq(SOLD).fillna(False)
    price = _NUMBERS(frame[TARGET])
    # A Sold row with no ClosePrice at all is not fatal: it is simply valued, not learned from.
    # A non-number is reported by the column's own not_a_number check.
    bad = sold & price.notna() & (price <= 0)
    return ~bad


def _sold_price_plausible(frame: pd.DataFrame) -> pd.Series:
    """False on a Sold row whose positive ClosePrice lies outside SALE_PRICE_BOUNDS, or outside
    SALE_PRICE_PER_SQFT_BOUNDS per square foot where SqFtTotal is a positive number."""
    sold = frame[STATUS].astype("string").str.strip().eq(SOLD).fillna(False).to_numpy(bool)
    price = _NUMBERS(frame[TARGET]).to_numpy(dtype=float)
    # <= 0 is sold_price_invalid's, beyond the field's own maximum its `implausible` check's.
    priced = sold & (price > 0) & (price <= float(FIELDS[TARGET].maximum or np.inf))
    low, high = SALE_PRICE_BOUNDS
    bad = priced & ((price < low) | (price > high))
    if SQFT in frame.columns:
        area = _NUMBERS(frame[SQFT]).to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            ppsf = np.where(area > 0, price / area, np.nan)
        low, high = SALE_PRICE_PER_SQFT_BOUNDS
        bad |= priced & np.isfinite(ppsf) & ((ppsf < low) | (ppsf > high))
    return pd.Series(~bad, index=frame.index)


def build_schema(columns: list[str]) -> pa.DataFrameSchema:
    """Return the schema for an export whose header is `columns`: every field of FIELDS that
    every export has, plus the optional ones present. Every check is element-wise in effect, so
    failures point at rows."""
    present = set(columns)
    cols = {
        name: _column(rule)
        for name, rule in FIELDS.items()
        if rule.in_every_export or name in present
    }
    checks = []
    if TARGET in present and STATUS in present:
        checks.append(pa.Check(_sold_price_ok, name="sold_price_invalid"))
        checks.append(pa.Check(_sold_price_plausible, name="sold_price_implausible"))
    return pa.DataFrameSchema(cols, checks=checks, strict=False, coerce=False)
