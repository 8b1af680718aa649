"""The MLS export data contract: vectorised checks over the raw columns, named by rule id.

The checks are applied to the columns exactly as read from the file, so every reported failure
carries the value the user will find in their export. Every column check is built from the
field's `FieldRule` in `homevision.data.fields.FIELDS` (the single source of the rules, shared
with the REST API), and named by a rule id; rules in `REPAIRABLE_RULES` describe quirks the
feature pipeline repairs (the row is kept and counted), every other rule is fatal (the row cannot
be valued and is set aside with the reason). Optional columns are checked when the export has
them.

`contract` lists the checks for a header; `find_failures` applies them (what validation runs);
`build_schema` states the same checks as a pandera schema, which a test holds to the same
failure cases. Applying them directly skips pandera's bookkeeping around each check, about half
of a chunk's validation time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    import pandera.pandas

__all__ = [
    "BATHS",
    "BATHS_PATTERN",
    "BOOLEAN_COLUMNS",
    "MIN_LIST_PRICE",
    "MLS_ID",
    "NUMERIC_COLUMNS",
    "REPAIRABLE_RULES",
    "REQUIRED_COLUMNS",
    "ROW_REQUIRED_COLUMNS",
    "RULES",
    "SCHOOL",
    "SOLD",
    "STATUS",
    "TARGET",
    "build_schema",
    "contract",
    "find_failures",
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
# The fields every row must hold a value of: the header a valuation needs, with the columns its
# model reads (predict.required_columns). A repairable field the model does not read may be
# absent: it reads as a column of empty cells would (repaired, never a rejection).
ROW_REQUIRED_COLUMNS: tuple[str, ...] = tuple(n for n, r in FIELDS.items() if r.required)
# Columns read as numbers / booleans wherever a feature set or the label uses them.
NUMERIC_COLUMNS: tuple[str, ...] = tuple(n for n, r in FIELDS.items() if r.is_numeric)
BOOLEAN_COLUMNS: tuple[str, ...] = tuple(n for n, r in FIELDS.items() if r.kind == "boolean")
TEXT_COLUMNS: tuple[str, ...] = tuple(n for n, r in FIELDS.items() if r.kind == "text")
# An asking price below this is a lease price or a typo: treated as missing (repaired).
MIN_LIST_PRICE: float = float(FIELDS["ListPrice"].repair_below or 0)

CheckFn = Callable[[pd.Series], pd.Series]
FrameCheckFn = Callable[[pd.DataFrame], pd.Series]


def to_number(values: pd.Series) -> pd.Series:
    """Return the values as floats, NaN where missing or not a number."""
    return pd.to_numeric(values, errors="coerce").astype("float64")


# Each rule id as a small integer (0: no rule broken), so that a column's problems are one
# uint8 array and each rule's check one comparison with it.
_RULE_IDS: tuple[str | None, ...] = (None, *RULES)
_CODE: dict[str | None, int] = {rid: code for code, rid in enumerate(_RULE_IDS)}


def _per_distinct(check: CheckFn) -> CheckFn:
    """Return `check` (element-wise in effect) computed once per distinct text of a column
    whose values are all text or missing: an export's text columns hold few distinct values,
    and each row gets its value's answer. Missing values, and columns of other values (where
    True, 1 and 1.0 are equal keys), are checked as they are."""

    def run(s: pd.Series) -> pd.Series:
        values = s.to_numpy(dtype=object)
        if len(values) < 64 or pd.api.types.infer_dtype(values, skipna=True) != "string":
            return check(s)
        keys, uniques = pd.factorize(values)
        answers = check(pd.Series(uniques, dtype=object)).to_numpy()
        out = np.empty(len(values), dtype=answers.dtype)
        na = keys < 0
        out[~na] = answers[keys[~na]]
        if na.any():
            out[na] = check(pd.Series(values[na], dtype=object)).to_numpy()
        return pd.Series(out, index=s.index, name=s.name)

    return run


def _rule_codes(rules: object) -> np.ndarray:
    """Return the rule code of each rule id in `rules` (0 for None)."""
    found = np.asarray(rules, dtype=object)
    out = np.zeros(len(found), dtype=np.uint8)
    at = np.flatnonzero(pd.notna(found))
    out[at] = [_CODE[rid] for rid in found[at]]
    return out


def _coded(problems: Callable[[pd.Series], pd.Series]) -> Callable[[pd.Series], np.ndarray]:
    """Return `problems` (a rule id or None per value) as one rule code per value."""
    return lambda s: _rule_codes(problems(s).to_numpy(dtype=object))


def _as_floats(s: pd.Series) -> np.ndarray:
    """Return the values as floats (NaN where missing or not a number): to_number, without
    pandas' parsing when the column holds numbers already."""
    if s.dtype.kind in "iuf":
        return s.to_numpy(dtype="float64", na_value=np.nan)
    return to_number(s).to_numpy()


def _present(s: pd.Series) -> pd.Series:
    return s.notna() & (s.astype("string").str.strip() != "").fillna(False).astype(bool)


def _number_problems(rule: FieldRule, s: pd.Series) -> np.ndarray:
    """Return, per value, the code of the one rule it breaks among not_a_number, the range
    rules and not_an_integer (0 where fine or missing). "inf" or "nan" text is not a number; a
    number too large for a float ("1e999") is out of range."""
    num = _NUMBERS(s)
    given = s.notna().to_numpy()
    # An infinite value is a number too large for a float ("1e999": out of range) when its
    # text has a digit, else "inf" text (not a number); only those values' text is read.
    infinite = np.isinf(num)
    spelled = np.zeros(len(s), dtype=bool)
    if infinite.any():
        text = s[infinite].astype("string").str.contains("[0-9]", regex=True)
        spelled[infinite] = ~text.fillna(False).astype(bool).to_numpy()
    not_number = given & (np.isnan(num) | spelled)
    out = np.zeros(len(s), dtype=np.uint8)
    out[not_number] = _CODE["not_a_number"]
    free = given & ~not_number  # numbers that break no rule yet
    with np.errstate(invalid="ignore"):
        for rid, (bound, at_bound_breaks) in rule.below_rules().items():
            below = (num <= bound) if at_bound_breaks else (num < bound)
            free = _mark(out, free, below, rid)
        if rule.maximum is not None:
            free = _mark(out, free, num > rule.maximum, "implausible")
        if rule.kind == "integer":
            _mark(out, free, num != np.floor(num), "not_an_integer")
    return out


def _mark(out: np.ndarray, free: np.ndarray, breaks: np.ndarray, rid: str) -> np.ndarray:
    """Give the `free` values that `breaks` marks the code of `rid`; return those still free."""
    hit = free & breaks
    out[hit] = _CODE[rid]
    return free & ~hit


# Within one validation (`shared_problems`), each column's problems are computed once and read
# by the checks of all its rule ids: each check is called with the same column, and each
# reads the same per-value rule codes.
_SHARED: ContextVar[dict[tuple[int, object], tuple[pd.Index, object]] | None] = ContextVar(
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

    def __init__(self, problems: Callable[[pd.Series], Any]):
        self.problems = problems

    def __call__(self, s: pd.Series) -> Any:
        shared = _SHARED.get()
        if shared is None:
            return self.problems(s)
        key = (id(self), s.name)
        found = shared.get(key)
        if found is None or not found[0].equals(s.index):
            found = shared[key] = (s.index, self.problems(s))
        return found[1]


_NUMBERS = _Memo(_as_floats)  # a column read as numbers once per validation, for all its checks


def _is_not(problems: Callable[[pd.Series], np.ndarray], rid: str) -> CheckFn:
    code = _CODE[rid]

    def check(s: pd.Series) -> pd.Series:
        return pd.Series(problems(s) != code, index=s.index)

    return check


def _elementwise(fn: Callable[[object], str | None]) -> Callable[[pd.Series], pd.Series]:
    def problems(s: pd.Series) -> pd.Series:
        return pd.Series([fn(v) for v in s.to_numpy()], index=s.index, dtype=object)

    return problems


def _read_ids(s: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Return each MLSNumber read once: the normalised ids (None when missing or invalid) and
    the code of the rule each breaks (0 when it keeps them)."""
    numbers, rules = check_ids(s.to_numpy())
    return pd.Series(numbers, index=s.index, dtype=object), _rule_codes(rules)


_IDS = _Memo(_read_ids)  # one reading of the id column serves its five checks


def _id_problems(s: pd.Series) -> np.ndarray:
    return _IDS(s)[1]


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
    ids = _IDS(s)[0]
    return ~(ids.notna() & ids.duplicated(keep="first"))


@_per_distinct
def _boolean_ok(s: pd.Series) -> pd.Series:
    tokens = s.astype("string").str.strip().str.lower()
    return (s.isna() | tokens.isin(TRUE_TOKENS | FALSE_TOKENS).fillna(False)).astype(bool)


def _length_ok(limit: int) -> CheckFn:
    def check(s: pd.Series) -> pd.Series:
        return (s.isna() | (s.astype("string").str.len() <= limit).fillna(True)).astype(bool)

    return _per_distinct(check)


def _quirk_checks(rule: FieldRule, problems: CheckFn) -> list[tuple[str, CheckFn]]:
    """Return the repairable rules' checks of one field (`problems`: its number problems)."""
    checks: list[tuple[str, CheckFn]] = []
    if rule.missing_quirk:
        present = _per_distinct(_present) if rule.kind == "text" else (lambda s: s.notna())
        checks.append((rule.missing_quirk, present))
    if rule.repair_rule and rule.repair_below is not None:
        floor = rule.repair_below

        def above_floor(s: pd.Series) -> pd.Series:
            with np.errstate(invalid="ignore"):
                return pd.Series(~((problems(s) == 0) & (_NUMBERS(s) < floor)), index=s.index)

        checks.append((rule.repair_rule, above_floor))
    if rule.zero_quirk:
        checks.append((rule.zero_quirk, lambda s: pd.Series(_NUMBERS(s) != 0, index=s.index)))
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
        baths = _Memo(_coded(_per_distinct(_by_value(baths_problem))))
        for rid in ("baths_format", "baths_ambiguous", "baths_half_implausible", "implausible"):
            checks.append((rid, _is_not(baths, rid)))
    elif rule.kind == "boolean":
        checks.append(("not_a_boolean", _boolean_ok))
    elif rule.kind == "text" and rule.max_length is not None:
        checks.append(("too_long", _length_ok(rule.max_length)))
    return checks + _quirk_checks(rule, problems)


def _is_sold(s: pd.Series) -> pd.Series:
    """True where a Status value is Sold (spaces around it ignored)."""
    return s.astype("string").str.strip().eq(SOLD).fillna(False).astype(bool)


_SOLD = _Memo(_per_distinct(_is_sold))  # both frame checks read it


def _sold_price_ok(frame: pd.DataFrame) -> pd.Series:
    sold = _SOLD(frame[STATUS]).to_numpy(dtype=bool)
    price = _NUMBERS(frame[TARGET])
    # A Sold row with no ClosePrice at all is not fatal: it is simply valued, not learned from.
    # A non-number is reported by the column's own not_a_number check.
    with np.errstate(invalid="ignore"):
        bad = sold & ~np.isnan(price) & (price <= 0)
    return pd.Series(~bad, index=frame.index)


def _sold_price_plausible(frame: pd.DataFrame) -> pd.Series:
    """False on a Sold row whose positive ClosePrice lies outside SALE_PRICE_BOUNDS, or outside
    SALE_PRICE_PER_SQFT_BOUNDS per square foot where SqFtTotal is a positive number."""
    sold = _SOLD(frame[STATUS]).to_numpy(dtype=bool)
    price = _NUMBERS(frame[TARGET])
    # <= 0 is sold_price_invalid's, beyond the field's own maximum its `implausible` check's.
    with np.errstate(invalid="ignore"):
        priced = sold & (price > 0) & (price <= float(FIELDS[TARGET].maximum or np.inf))
    low, high = SALE_PRICE_BOUNDS
    bad = priced & ((price < low) | (price > high))
    if SQFT in frame.columns:
        area = _NUMBERS(frame[SQFT])
        with np.errstate(divide="ignore", invalid="ignore"):
            ppsf = np.where(area > 0, price / area, np.nan)
        low, high = SALE_PRICE_PER_SQFT_BOUNDS
        bad |= priced & np.isfinite(ppsf) & ((ppsf < low) | (ppsf > high))
    return pd.Series(~bad, index=frame.index)


@dataclass(frozen=True)
class Contract:
    """The data contract for one export's header, as plain functions: per column, whether it
    may be missing and its (rule id, check) pairs; then the (rule id, check) pairs that read
    several columns of a row. `build_schema` states it as a pandera schema, `find_failures`
    applies the same checks directly."""

    columns: dict[str, tuple[bool, list[tuple[str, CheckFn]]]]
    frame_checks: list[tuple[str, FrameCheckFn]]


def contract(columns: Collection[str]) -> Contract:
    """Return the contract for an export whose header is `columns`: every field of FIELDS that
    every export has, plus the optional ones present. Every check is element-wise in effect, so
    failures point at rows."""
    return _contract(frozenset(columns) & _CONTRACT_COLUMNS)


_CONTRACT_COLUMNS = frozenset({*FIELDS, TARGET, STATUS})  # the header names a contract reads


@lru_cache(maxsize=64)
def _contract(present: frozenset[str]) -> Contract:
    fields = {
        name: (not rule.required, column_checks(rule))
        for name, rule in FIELDS.items()
        if rule.in_every_export or name in present
    }
    frame_checks: list[tuple[str, FrameCheckFn]] = []
    if TARGET in present and STATUS in present:
        frame_checks.append(("sold_price_invalid", _sold_price_ok))
        frame_checks.append(("sold_price_implausible", _sold_price_plausible))
    return Contract(fields, frame_checks)


def build_schema(columns: list[str]) -> pandera.pandas.DataFrameSchema:
    """Return the data contract for an export whose header is `columns` as a pandera schema
    (pandera is imported here: valuing never needs it, and it costs a process 0.3 s)."""
    from homevision.data.pandera_api import pa

    terms = contract(columns)
    cols = {
        name: pa.Column(
            nullable=nullable,
            checks=[pa.Check(fn, name=rid, ignore_na=False) for rid, fn in checks],
        )
        for name, (nullable, checks) in terms.columns.items()
    }
    checks = [pa.Check(fn, name=rid) for rid, fn in terms.frame_checks]
    return pa.DataFrameSchema(cols, checks=checks, strict=False, coerce=False)


def find_failures(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the failure cases of the contract on `frame` (indexed 0..n-1) as pandera's lazy
    validation reports them, one row per failing (column, check, index); `column` is None for
    the frame checks, `check` "not_nullable" for a missing required value. The same cases as
    `build_schema(...).validate(frame, lazy=True)`, without pandera's bookkeeping around each
    of the ~70 checks (about half of the time of validating a 25,000-row chunk)."""
    terms = contract(list(frame.columns))
    columns: list[np.ndarray] = []
    rules: list[np.ndarray] = []
    rows: list[np.ndarray] = []

    def report(column: str | None, rid: str, failing: np.ndarray) -> None:
        if len(failing):
            columns.append(np.full(len(failing), column, dtype=object))
            rules.append(np.full(len(failing), rid, dtype=object))
            rows.append(failing)

    with shared_problems():
        for name, (nullable, checks) in terms.columns.items():
            if name not in frame.columns:
                continue  # pandera reports it without a row: the header check's business
            values = frame[name]
            if not nullable:
                report(name, "not_nullable", np.flatnonzero(values.isna().to_numpy()))
            for rid, check in checks:
                report(name, rid, _failing(check(values)))
        for rid, check in terms.frame_checks:
            report(None, rid, _failing(check(frame)))
    if not rows:
        return pd.DataFrame({"column": [], "check": [], "index": []}, dtype=object)
    return pd.DataFrame(
        {
            "column": np.concatenate(columns),
            "check": np.concatenate(rules),
            "index": np.concatenate(rows),
        }
    )


def _failing(passed: pd.Series) -> np.ndarray:
    """Return the positions where a check's output is False."""
    return np.flatnonzero(~passed.to_numpy(dtype=bool))
