"""The engine's input: one float matrix over a model's raw export columns.

Numbers are read as every model reads them (`features.as_float`); the "F.H" BathsTotal becomes
10 x full + half (2.1 -> 21), so one raw column stays one matrix column; text (schools, cities,
subdivisions) becomes a code into the vocabulary seen in training, with one code for a missing
value and one shared by every name the model never saw (all encoders treat unseen names alike);
a name that differs from one training spelling only by case or inner spaces ("VAUGHN",
"Lone  Star") takes that spelling's code (`fold`), as MLS feeds case names differently;
a comma-separated feature list (ExteriorFeatures...) becomes a bit mask over the items seen in
training (an unseen combination of known items keeps its known items; unseen items drop out,
as the token indicators ignore them too).
Shapley values are computed over this matrix, so a coalition swaps whole raw columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from homevision.features import (
    UNKNOWN,
    FeatureSet,
    as_float,
    count_tokens,
    split_baths,
    split_tokens,
)

# A name no export uses: what the encoders are shown to learn how they treat unseen names.
UNSEEN = "\x00homevision-unseen\x00"
BATHS_BASE = 10.0  # half baths are 0..4, so 10 x full + half is lossless
SMALL_BATCH = 64  # up to this many rows, plain Python lookups beat vectorised set-up costs
FEW_RECORDS = 12  # up to this many records, row by row beats column by column (16: even)
MAX_TOKENS = 52  # items per feature list a float64 bit mask holds exactly (its mantissa)
_CACHES = ("_index", "_lookup", "_bits", "_kinds", "_folded")  # rebuilt on demand, not pickled


def fold(value: object) -> object:
    """Return the key two spellings of one name share: text without case and with single inner
    spaces ("VAUGHN" and "Vaughn" -> "vaughn"); anything else as it is."""
    return " ".join(value.split()).casefold() if isinstance(value, str) else value


def folded_names(names: Iterable[object]) -> dict[object, object]:
    """Return {fold(name): name} of `names`, leaving out a key two of them share ("Vaughn" and
    "VAUGHN" both known: neither is guessed for "vaughn")."""
    found: dict[object, list[object]] = {}
    for name in names:
        found.setdefault(fold(name), []).append(name)
    return {key: same[0] for key, same in found.items() if len(same) == 1}


@dataclass
class RawEncoder:
    """Maps a listing frame to the engine's float matrix (and back, for the fallback path)."""

    columns: list[str]
    baths: str
    text: dict[str, list[object]]  # per text column: the known values; code i = values[i]
    tokens: dict[str, list[str]] = field(default_factory=dict)  # per feature list: bit i = item i

    @classmethod
    def fit(cls, frame: pd.DataFrame, feature_set: FeatureSet) -> RawEncoder:
        """Return the encoder of `feature_set`'s raw columns, with each text column's
        vocabulary taken from `frame` (the training rows) plus the imputers' "Unknown"."""
        text = {}
        for col in feature_set.text_columns:
            values = frame[col].dropna().astype(object) if col in frame else pd.Series([])
            known = sorted({str(v) for v in values} | {UNKNOWN})
            text[col] = known
        tokens = {}
        for col in feature_set.token_lists:
            counts = count_tokens(frame[col]) if col in frame else {}
            # The most frequent items when there are too many (the indicators keep frequent ones).
            frequent = sorted(counts, key=lambda t: (-counts[t], t))[:MAX_TOKENS]
            tokens[col] = sorted(frequent)
        return cls(list(feature_set.raw_columns), feature_set.baths, text, tokens)

    def widened(self, frame: pd.DataFrame) -> RawEncoder:
        """Return an encoder whose text vocabularies also hold every value of `frame` (rows the
        model learnt from that this encoder was not fitted on), or this encoder itself when it
        already knows them all: a value it lacks would be coded as unseen, unlike the model.
        Feature lists keep their items (an item the indicators keep without a bit fails the
        compile check, so it cannot go unnoticed)."""
        text = {}
        for col, known in self.text.items():
            values = frame[col].dropna().astype(object) if col in frame else pd.Series([])
            text[col] = sorted(set(known) | {str(v) for v in values})
        if text == self.text:
            return self
        return RawEncoder(list(self.columns), self.baths, text, dict(self.tokens))

    def __post_init__(self) -> None:
        self._index: dict[str, pd.Index] = {}
        self._lookup: dict[str, dict[object, int]] = {}
        self._bits: dict[str, dict[object, int]] = {}
        self._kinds: list[tuple[str, str, dict | None, tuple[int, int] | None]] | None = None
        self._folded: dict[str, dict[object, int]] = {}

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in _CACHES}

    def __setstate__(self, state: dict) -> None:
        state.setdefault("tokens", {})  # an encoder pickled before feature lists existed
        self.__dict__.update(state)
        self._index, self._lookup, self._bits, self._kinds = {}, {}, {}, None
        self._folded = {}

    def folded(self, column: str) -> dict[object, int]:
        """Return {fold(name): code} of text `column`'s training names, leaving out a key that
        two of them share ("Vaughn" and "VAUGHN" both in training: neither is guessed)."""
        table = self._folded.get(column)
        if table is None:  # built lazily: a pickled encoder does not carry it
            names = self.text[column]
            code = {name: i for i, name in enumerate(names)}
            table = self._folded[column] = {k: code[n] for k, n in folded_names(names).items()}
        return table

    def code_of(self, column: str, value: object) -> int | None:
        """Return the code of a name of text `column` that only its case or inner spaces keep
        from matching a training name (None otherwise): the fallback of every lookup."""
        return self.folded(column).get(fold(value)) if isinstance(value, str) else None

    def respell(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Return `frame` with each text name, and each feature-list item, that folds to one
        training name written as that name (the frame itself when none does): what the
        scikit-learn path reads, so it values "VAUGHN" or "POOL" as the engine does."""
        changes = {}
        for col, names in self.text.items():
            if col not in frame.columns:
                continue
            values = frame[col]
            unknown = ~(values.isin(names) | values.isna()).to_numpy()
            if not unknown.any():
                continue
            spelled = values.to_numpy(dtype=object, copy=True)
            codes, uniques = pd.factorize(spelled[unknown])  # each odd name folded once
            names_of = [names[c] if (c := self.code_of(col, u)) is not None else u for u in uniques]
            spelled[unknown] = np.asarray(names_of, dtype=object)[codes]
            changes[col] = pd.Series(spelled, index=values.index, name=col)
        for col, items in self.tokens.items():
            if col not in frame.columns or not items:
                continue
            known, folded = set(items), folded_names(items)
            values = frame[col].to_numpy(dtype=object)
            codes, uniques = pd.factorize(values, use_na_sentinel=True)  # each list once
            spelled = [_respelt_list(v, known, folded) for v in uniques]
            if any(a is not b for a, b in zip(spelled, uniques, strict=True)):
                lists = np.asarray([None, *spelled], dtype=object)[codes + 1]
                lists[codes < 0] = values[codes < 0]  # missing stays as it was
                changes[col] = pd.Series(lists, index=frame.index, name=col)
        return frame.assign(**changes) if changes else frame

    def missing_code(self, column: str) -> int:
        """Return the code of a missing value in text `column`."""
        return len(self.text[column])

    def unseen_code(self, column: str) -> int:
        """Return the code shared by every value of `column` not seen in training."""
        return len(self.text[column]) + 1

    def code_values(self, column: str) -> list[object]:
        """Return one representative raw value per code of text `column` (known values, None
        for missing, a never-used name for unseen): what the compiler shows the encoders."""
        return [*self.text[column], None, UNSEEN]

    def index(self, column: str) -> int:
        """Return the matrix column of raw `column`."""
        return self.columns.index(column)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Return the (rows, raw columns) float matrix of `frame`; KeyError names any raw
        column the frame lacks."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise KeyError(f"input is missing column(s) the model needs: {', '.join(missing)}")
        out = np.empty((len(frame), len(self.columns)))
        for j, col in enumerate(self.columns):
            values = frame[col]
            if col in self.text:
                out[:, j] = self._encode_text(col, values)
            elif col in self.tokens:
                out[:, j] = self._token_masks(col, values.to_numpy(dtype=object))
            elif col == self.baths:
                out[:, j] = encode_baths(values)
            elif values.dtype.kind in "fiu":  # plain numpy numbers: no conversion needed
                out[:, j] = values.to_numpy()
            else:
                out[:, j] = as_float(values).to_numpy(dtype=float, na_value=np.nan)
        return out

    def encode_records(self, records: list[dict[str, object]]) -> np.ndarray:
        """Return the raw matrix of listings given as dicts (the API's parsed bodies), without
        building a DataFrame; values of an unusual type go through `encode` to be read alike.
        Up to FEW_RECORDS are read row by row into one array (one listing: 12 us against 48 us
        column by column, measured with the offmarket columns), more column by column."""
        if len(records) <= FEW_RECORDS:
            rows = self._record_rows(records)
            if rows is not None:
                return np.array(rows, dtype=float).reshape(len(records), len(self.columns))
        return self._encode_columns(records)

    def _record_rows(self, records: list[dict[str, object]]) -> list[list[float]] | None:
        """Return each record's raw row as floats, the same numbers `_encode_columns` gives;
        None when a number is of another type than int, float or bool (read by as_float)."""
        kinds = self._kinds
        if kinds is None:  # built lazily: a pickled encoder does not carry it
            kinds = self._kinds = [self._kind(col) for col in self.columns]
        rows = []
        for record in records:
            row = []
            for col, kind, table, codes in kinds:
                v = record.get(col)
                if kind == "number":
                    if v is None:
                        row.append(np.nan)
                    elif type(v) in (int, float, bool):
                        row.append(float(v))
                    else:
                        return None
                elif kind == "text":
                    missing, unseen = codes
                    if _is_missing(v):
                        row.append(float(missing))
                        continue
                    code = table.get(v)
                    if code is None:
                        code = self.code_of(col, v)
                    row.append(float(unseen if code is None else code))
                elif kind == "tokens":
                    row.append(_mask(v, table))
                else:  # baths
                    row.append(np.nan if _is_missing(v) else _baths_code(v))
            rows.append(row)
        return rows

    def _kind(self, col: str) -> tuple[str, str, dict | None, tuple[int, int] | None]:
        """(column, how it is read, its lookup table, a text column's missing and unseen
        codes) for `_record_rows`."""
        if col in self.text:
            self._lookup_codes(col, [])  # builds the lookup
            return col, "text", self._lookup[col], (self.missing_code(col), self.unseen_code(col))
        if col in self.tokens:
            self._token_masks(col, [])  # builds the bits
            return col, "tokens", self._bits[col], None
        return col, "baths" if col == self.baths else "number", None, None

    def _encode_columns(self, records: list[dict[str, object]]) -> np.ndarray:
        """encode_records column by column (many records, or numbers of an unusual type)."""
        out = np.empty((len(records), len(self.columns)))
        for j, col in enumerate(self.columns):
            values = [r.get(col) for r in records]
            if col in self.text:
                out[:, j] = self._lookup_codes(col, values)
            elif col in self.tokens:
                out[:, j] = self._token_masks(col, values)
            elif col == self.baths:
                out[:, j] = _baths_codes(values)
            elif all(v is None or type(v) in (int, float, bool) for v in values):
                out[:, j] = [np.nan if v is None else float(v) for v in values]
            else:
                series = pd.Series(values, dtype=object)
                out[:, j] = as_float(series).to_numpy(dtype=float, na_value=np.nan)
        return out

    def _encode_text(self, column: str, values: pd.Series) -> np.ndarray:
        if len(values) <= SMALL_BATCH:  # a dict lookup beats building a hash table per call
            return self._lookup_codes(column, values.to_numpy(dtype=object))
        index = self._index.get(column)
        if index is None:  # built lazily: a pickled encoder does not carry it
            index = self._index[column] = pd.Index(self.text[column], dtype=object)
        raw = values.to_numpy(dtype=object)
        codes = index.get_indexer(raw).astype(float)
        odd = np.flatnonzero(codes < 0)
        if len(odd):  # each name not spelt as in training folded once, however many rows
            found, uniques = pd.factorize(raw[odd], use_na_sentinel=False)
            unseen = self.unseen_code(column)
            folded = [unseen if (c := self.code_of(column, u)) is None else c for u in uniques]
            codes[odd] = np.asarray(folded, dtype=float)[found]
        codes[values.isna().to_numpy()] = self.missing_code(column)
        return codes

    def _lookup_codes(self, column: str, values) -> np.ndarray:
        """Return the codes of a few text values, one dict lookup each."""
        lookup = self._lookup.get(column)
        if lookup is None:  # built lazily: a pickled encoder does not carry it
            lookup = self._lookup[column] = {v: i for i, v in enumerate(self.text[column])}
        unseen, missing = self.unseen_code(column), self.missing_code(column)
        codes = []
        for v in values:
            if _is_missing(v):
                codes.append(missing)
                continue
            code = lookup.get(v)
            if code is None:
                code = self.code_of(column, v)
            codes.append(unseen if code is None else code)
        return np.array(codes, dtype=float)

    def _token_masks(self, column: str, values) -> np.ndarray:
        """Return the bit mask of known items per feature list (0 when missing or none known);
        a few lists are split one by one, each distinct list of a larger batch once."""
        bits = self._bits.get(column)
        if bits is None:  # built lazily: a pickled encoder does not carry it
            bits = self._bits[column] = item_bits(self.tokens[column])
        if len(values) <= SMALL_BATCH:  # factorize's set-up costs more than a few splits
            return np.array([_mask(v, bits) for v in values], dtype=float)
        codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
        return np.array([0.0, *(_mask(v, bits) for v in uniques)])[codes + 1]

    def decode(self, matrix: np.ndarray) -> pd.DataFrame:
        """Return a listing frame that every model values exactly as the encoded rows (baths
        as "F.H" text, codes as their names): the scikit-learn path's input on fallback."""
        data: dict[str, object] = {}
        for j, col in enumerate(self.columns):
            if col in self.text:
                values = np.empty(len(self.text[col]) + 2, dtype=object)
                values[:] = self.code_values(col)
                data[col] = pd.Series(values[matrix[:, j].astype(int)], dtype=object)
            elif col in self.tokens:
                data[col] = pd.Series(decode_tokens(matrix[:, j], self.tokens[col]), dtype=object)
            elif col == self.baths:
                data[col] = pd.Series(decode_baths(matrix[:, j]), dtype=object)
            else:
                data[col] = matrix[:, j]
        return pd.DataFrame(data)


def decode_tokens(masks: np.ndarray, tokens: list[str]) -> list[object]:
    """Return the feature list text of each bit mask ("Gutters, Patio Open"; None for 0)."""
    out: list[object] = []
    for mask in masks.astype(np.int64):
        items = [t for i, t in enumerate(tokens) if mask >> i & 1]
        out.append(", ".join(items) if items else None)
    return out


def _respelt_list(value: object, known: set[str], folded: dict[object, object]) -> object:
    """Return a feature list with each item that folds to one known item written as that item
    (the value itself when none does)."""
    if not isinstance(value, str):
        return value
    items = [t.strip() for t in value.split(",")]
    spelt = [t if t in known else folded.get(fold(t), t) for t in items]
    return ", ".join(spelt) if spelt != items else value


def item_bits(items: list[str]) -> dict[object, int]:
    """Return {item: its bit} of a feature list's known items, plus {(fold(item),): its bit}
    for each fold that one item alone has (a 1-tuple: never an item's own name), so "POOL" or
    "pool  heated" sets the bit of "Pool" or "Pool Heated", as a school name spelt with another
    case takes its code."""
    bit: dict[object, int] = {t: 1 << i for i, t in enumerate(items)}
    return {**bit, **{(key,): bit[t] for key, t in folded_names(items).items()}}


def _mask(value: object, bits: dict[object, int]) -> float:
    """Return the bit mask of the known items of one feature list (0 when missing): each item
    by its name, else by its fold (a set: "Pool, POOL" sets one bit once)."""
    return float(sum({bits.get(t) or bits.get((fold(t),), 0) for t in split_tokens(value)}))


def token_bits(
    masks: np.ndarray, positions: list[int] | np.ndarray, owner: np.ndarray | None = None
) -> np.ndarray:
    """Return a (rows, len(positions)) 0/1 matrix: bit `positions[k]` of each mask (none set
    where the mask is NaN). `masks` is one column, or several (rows, columns) with `owner[k]`
    the column that output k reads."""
    # np.where, not np.nan_to_num: the same zeros at a tenth of the per-call cost.
    ints = np.where(np.isnan(masks), 0.0, masks).astype(np.int64)
    ints = ints[:, None] if owner is None else ints[:, owner]
    return ((ints >> np.asarray(positions, dtype=np.int64)) & 1).astype(float)


def _is_missing(value: object) -> bool:
    """True for None, NaN, NaT and pd.NA: what pandas' isna calls missing."""
    return value is None or value is pd.NA or (value != value)  # NaN != NaN


def encode_baths(values: pd.Series) -> np.ndarray:
    """Return 10 x full + half per BathsTotal value (NaN where missing or unreadable); each
    distinct value is parsed once."""
    text = values.to_numpy(dtype=object)
    if len(text) <= SMALL_BATCH:
        return _baths_codes(text)
    codes, uniques = pd.factorize(text, use_na_sentinel=True)
    parsed = np.array([np.nan, *(_baths_code(v) for v in uniques)])
    return parsed[codes + 1]


def _baths_codes(values) -> np.ndarray:
    """Return the baths code of each of a few values, parsed one by one."""
    return np.array([np.nan if _is_missing(v) else _baths_code(v) for v in values], dtype=float)


def _baths_code(value: object) -> float:
    full, half = split_baths(value)
    return full * BATHS_BASE + half


def decode_baths(codes: np.ndarray) -> list[object]:
    """Return "F.H" text per code (None where NaN): the inverse of `encode_baths`."""
    out: list[object] = []
    for code in codes:
        if np.isnan(code):
            out.append(None)
        else:
            full = int(code // BATHS_BASE)
            out.append(f"{full}.{round(code - full * BATHS_BASE)}")
    return out


def split_baths_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (full, half) arrays from encoded baths (NaN stays NaN in both)."""
    full = np.floor(codes / BATHS_BASE)
    return full, codes - full * BATHS_BASE
