"""Compile a fitted feature Pipeline (homevision.features.build_preprocessor) into numpy.

Our own transformers (baths split, CDOM and lot repair, ratios) are re-stated on arrays from
their fitted attributes; the ColumnTransformer's numeric blocks become imputation, log and
scaling from `statistics_`, `mean_` and `scale_`; each text block becomes a lookup table with one
row per vocabulary code, filled by the fitted encoder itself (OneHotEncoder with infrequent
levels, TargetEncoder), so unseen and missing names are treated exactly as scikit-learn does.
Anything else raises UnsupportedError, and the model stays on the scikit-learn path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler, TargetEncoder

from homevision import features as feats
from homevision.valuation.engine.errors import UnsupportedError
from homevision.valuation.engine.raw import RawEncoder, split_baths_codes, token_bits


@dataclass
class NumericBlock:
    """Imputation, then log1p and/or standard scaling, column-wise."""

    columns: list[str]
    fill: np.ndarray
    ops: list[tuple[str, np.ndarray | None, np.ndarray | None]] = field(default_factory=list)

    def __call__(self, frame: dict[str, np.ndarray]) -> np.ndarray:
        first = frame[self.columns[0]]
        x = np.empty((len(first), len(self.columns)))
        for i, c in enumerate(self.columns):  # cheaper than column_stack on a single listing
            x[:, i] = frame[c]
        x = np.where(np.isnan(x), self.fill, x)
        for op, a, b in self.ops:
            if op == "log1p":
                x = np.log1p(np.maximum(x, 0.0))  # np.clip costs 3x as much per call
            else:  # scale
                if a is not None:
                    x = x - a
                if b is not None:
                    x = x / b
        return x


@dataclass
class TableBlock:
    """Text columns looked up by code: one table (codes x outputs) per column."""

    columns: list[str]
    tables: list[np.ndarray]

    def __call__(self, frame: dict[str, np.ndarray]) -> np.ndarray:
        pairs = zip(self.columns, self.tables, strict=True)
        parts = [table[frame[c].astype(np.intp)] for c, table in pairs]
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


@dataclass
class TokenBlock:
    """Feature lists read from their bit masks: one 0/1 column per kept item."""

    columns: list[str]
    positions: list[list[int]]  # per column: the bit of each kept item, in output order

    def __call__(self, frame: dict[str, np.ndarray]) -> np.ndarray:
        """token_bits of every column side by side, in one pass over all the columns (a
        listing's request is mostly per-call cost: 24 us column by column, 10 us in one)."""
        plan = self.__dict__.get("_plan")
        if plan is None:  # made on first use: a pickled block does not carry it
            owner = np.repeat(np.arange(len(self.columns)), [len(p) for p in self.positions])
            bits = np.array([b for p in self.positions for b in p], dtype=np.int64)
            plan = self._plan = (owner, bits)
        owner, bits = plan
        masks = np.empty((len(frame[self.columns[0]]), len(self.columns)))
        for i, c in enumerate(self.columns):
            masks[:, i] = frame[c]
        return token_bits(masks, bits, owner)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


@dataclass
class CompiledFeatures:
    """Raw matrix -> the model's encoded feature matrix, with the same columns as scikit-learn."""

    encoder: RawEncoder
    steps: list[tuple[str, dict]]
    blocks: list[tuple[slice, NumericBlock | TableBlock | TokenBlock]]
    width: int
    names: list[str]

    def frame(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """Return the named columns after the repair and ratio steps (before encoding)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._frame(raw)

    def _frame(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        cols = {c: raw[:, j] for j, c in enumerate(self.encoder.columns)}
        for kind, p in self.steps:
            _STEPS[kind](cols, p)
        return cols

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        out = np.empty((raw.shape[0], self.width))
        with np.errstate(divide="ignore", invalid="ignore"):  # once: it costs 3 us a call
            cols = self._frame(raw)
            for where, block in self.blocks:
                out[:, where] = block(cols)
        return out

    def dependencies(self) -> list[frozenset[int]] | None:
        """Return, per encoded column, the raw matrix columns (indices) its value depends on,
        read from the steps' and blocks' definitions; None when a step's is not known. Why:
        a kernel over columns that fall into separate groups factorises by group, which is
        what makes exact Shapley values of an SVR cheap (engine.coalitions)."""
        deps = {c: frozenset({j}) for j, c in enumerate(self.encoder.columns)}
        for kind, p in self.steps:
            rule = _DEPENDS.get(kind)
            if rule is None:
                return None
            rule(deps, p)
        out: list[frozenset[int]] = [frozenset()] * self.width
        for where, block in self.blocks:
            spans = [
                deps[c]
                for c, w in zip(block.columns, _widths(block), strict=True)
                for _ in range(w)
            ]
            if len(spans) != where.stop - where.start:
                return None
            out[where] = spans
        return out


def _widths(block: NumericBlock | TableBlock | TokenBlock) -> list[int]:
    """Return how many encoded columns each of a block's input columns becomes."""
    if isinstance(block, TableBlock):
        return [t.shape[1] for t in block.tables]
    if isinstance(block, TokenBlock):
        return [len(p) for p in block.positions]
    return [1] * len(block.columns)


def _baths(cols: dict[str, np.ndarray], p: dict) -> None:
    full, half = split_baths_codes(cols.pop(p["column"]))
    cols["baths_full"], cols["baths_half"] = full, half


def _cdom(cols: dict[str, np.ndarray], p: dict) -> None:
    values = np.abs(cols[p["column"]])
    cols[p["column"]] = np.where(np.isnan(values), p["median"], values)


def _lot(cols: dict[str, np.ndarray], p: dict) -> None:
    lot = cols[p["lot"]]
    lot = np.where(np.isnan(lot), cols[p["sqft"]] * p["ratio"], lot)
    cols[p["lot"]] = lot
    cols["lot_is_zero"] = (lot == 0).astype(float)


def _fee(cols: dict[str, np.ndarray], p: dict) -> None:
    amount = cols.pop(p["amount"])
    per_year = p["per_year"][cols.pop(p["frequency"]).astype(np.intp)]
    cols[feats.ANNUAL_FEE] = np.where(np.isnan(amount), 0.0, amount * per_year)


def _tax(cols: dict[str, np.ndarray], p: dict) -> None:
    sqft = cols[p["sqft"]]
    tax, missing = p["record"].clean(cols[p["tax"]], sqft)
    cols[p["tax"]] = tax
    cols[feats.TAX_PER_SQFT] = np.where(sqft > 0, tax / sqft, np.nan)
    cols[feats.TAX_MISSING] = missing


def _garage(cols: dict[str, np.ndarray], p: dict) -> None:
    length, width = cols.pop(p["length"]), cols.pop(p["width"])
    none = (length == 0) | (width == 0)
    cols[feats.GARAGE_AREA] = np.where(none, 0.0, np.clip(length * width, 0, feats.RATIO_CAP))


def _implausible(cols: dict[str, np.ndarray], p: dict) -> None:
    values = cols[p["column"]]
    cols[p["column"]] = np.where(values >= p["minimum"], values, np.nan)


def _ratios(cols: dict[str, np.ndarray], p: dict) -> None:
    beds = np.maximum(cols[p["beds"]], 1.0)  # NaN stays NaN, as with np.clip
    sqft = cols[p["sqft"]]
    baths = cols["baths_full"] + 0.5 * cols["baths_half"]
    # The three ratios as one (3, rows) array: a third of the numpy calls (a listing's request
    # is mostly per-call cost).
    value = np.stack([sqft, baths, cols[p["lot"]]]) / np.stack([beds, beds, sqft])
    value[np.isinf(value)] = np.nan
    value = np.where(value > feats.RATIO_CAP, feats.RATIO_CAP, value)  # NaN stays NaN
    cols["sqft_per_bed"], cols["baths_per_bed"], cols["lot_to_living"] = value


_STEPS = {
    "baths": _baths,
    "cdom": _cdom,
    "lot": _lot,
    "implausible": _implausible,
    "fee": _fee,
    "tax": _tax,
    "garage": _garage,
    "ratios": _ratios,
}

Deps = dict[str, frozenset[int]]


def _d_baths(deps: Deps, p: dict) -> None:
    deps["baths_full"] = deps["baths_half"] = deps.pop(p["column"])


def _d_lot(deps: Deps, p: dict) -> None:  # a missing lot is filled from the living area
    deps[p["lot"]] = deps["lot_is_zero"] = deps[p["lot"]] | deps[p["sqft"]]


def _d_fee(deps: Deps, p: dict) -> None:
    deps[feats.ANNUAL_FEE] = deps.pop(p["amount"]) | deps.pop(p["frequency"])


def _d_tax(deps: Deps, p: dict) -> None:
    both = deps[p["tax"]] | deps[p["sqft"]]
    deps[p["tax"]] = deps[feats.TAX_PER_SQFT] = deps[feats.TAX_MISSING] = both


def _d_garage(deps: Deps, p: dict) -> None:
    deps[feats.GARAGE_AREA] = deps.pop(p["length"]) | deps.pop(p["width"])


def _d_ratios(deps: Deps, p: dict) -> None:
    beds, sqft = deps[p["beds"]], deps[p["sqft"]]
    deps["sqft_per_bed"] = sqft | beds
    deps["baths_per_bed"] = deps["baths_full"] | deps["baths_half"] | beds
    deps["lot_to_living"] = deps[p["lot"]] | sqft


def _d_same(deps: Deps, p: dict) -> None:  # the column is repaired in place, from itself
    return None


# What each step reads and writes (the dependency side of _STEPS; keep the two in step).
_DEPENDS = {
    "baths": _d_baths,
    "cdom": _d_same,
    "lot": _d_lot,
    "implausible": _d_same,
    "fee": _d_fee,
    "tax": _d_tax,
    "garage": _d_garage,
    "ratios": _d_ratios,
}


def _step(step: object, encoder: RawEncoder) -> tuple[str, dict] | None:
    """Return (kind, parameters) of one fitted repair step; None for the column selector."""
    if isinstance(step, feats.ColumnSelector):
        needed = [*step.numeric, *step.text]
        if sorted(needed) != sorted(encoder.columns):
            raise UnsupportedError("the column selector reads other columns than the raw encoder")
        return None
    if isinstance(step, feats.BathsSplitter):
        if step.column != encoder.baths:
            raise UnsupportedError(f"baths split of {step.column!r}")
        return "baths", {"column": step.column}
    if isinstance(step, feats.CDOMRepair):
        return "cdom", {"column": step.column, "median": step.median_}
    if isinstance(step, feats.LotSizeImputer):
        return "lot", {"lot": step.lot, "sqft": step.sqft, "ratio": step.ratio_}
    if isinstance(step, feats.ImplausibleToMissing):
        return "implausible", {"column": step.column, "minimum": step.minimum}
    if isinstance(step, feats.AnnualFee):
        if step.frequency not in encoder.text:
            raise UnsupportedError(f"fee frequency {step.frequency!r} is not a text column")
        per_year = [feats.fee_multiplier(v) for v in encoder.code_values(step.frequency)]
        return "fee", {
            "amount": step.amount,
            "frequency": step.frequency,
            "per_year": np.array(per_year, dtype=float),
        }
    if isinstance(step, feats.TaxRecord):
        return "tax", {"tax": step.tax, "sqft": step.sqft, "record": step}
    if isinstance(step, feats.GarageArea):
        return "garage", {"length": step.length, "width": step.width}
    if isinstance(step, feats.RatioFeatures):
        return "ratios", {"sqft": step.sqft, "beds": step.beds, "lot": step.lot}
    raise UnsupportedError(f"feature step {type(step).__name__}")


def _numeric_block(transformer: object, columns: list[str]) -> NumericBlock:
    steps = transformer.steps if isinstance(transformer, Pipeline) else [("only", transformer)]
    fill = np.full(len(columns), np.nan)
    ops: list[tuple[str, np.ndarray | None, np.ndarray | None]] = []
    imputed = False
    for _, step in steps:
        if isinstance(step, SimpleImputer) and not imputed and not ops:
            stats = np.asarray(step.statistics_, dtype=float)
            if np.isnan(stats).any() and not step.keep_empty_features:
                raise UnsupportedError("an imputer that drops an all-missing column")
            fill, imputed = stats, True
        elif isinstance(step, FunctionTransformer) and step.func is feats._log1p:
            ops.append(("log1p", None, None))
        elif isinstance(step, StandardScaler):
            mean = None if step.mean_ is None or not step.with_mean else np.asarray(step.mean_)
            scale = None if step.scale_ is None or not step.with_std else np.asarray(step.scale_)
            ops.append(("scale", mean, scale))
        else:
            raise UnsupportedError(f"numeric step {type(step).__name__}")
    if not imputed:
        raise UnsupportedError("a numeric block without an imputer (NaN would reach the model)")
    return NumericBlock(list(columns), fill, ops)


def _table_block(transformer: object, columns: list[str], encoder: RawEncoder) -> TableBlock:
    """Run the fitted text encoder on every code's representative value, column by column."""
    values = {c: encoder.code_values(c) for c in columns}
    length = max(len(v) for v in values.values())
    padded = {c: v + [v[-1]] * (length - len(v)) for c, v in values.items()}
    frame = pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in padded.items()})
    table = np.asarray(transformer.transform(frame), dtype=float)
    last = transformer.steps[-1][1] if isinstance(transformer, Pipeline) else transformer
    if isinstance(last, OneHotEncoder):
        widths = list(last._n_features_outs)
    elif isinstance(last, TargetEncoder) and table.shape[1] == len(columns):
        widths = [1] * len(columns)
    elif len(columns) == 1:
        widths = [table.shape[1]]
    else:
        raise UnsupportedError(f"text block ending in {type(last).__name__}")
    if sum(widths) != table.shape[1]:
        raise UnsupportedError("text block widths do not add up")
    edges = np.cumsum([0, *widths])
    tables = [
        table[: len(values[c]), edges[i] : edges[i + 1]].copy() for i, c in enumerate(columns)
    ]
    return TableBlock(list(columns), tables)


def _token_block(transformer: object, columns: list[str], encoder: RawEncoder) -> TokenBlock:
    """Map each kept item of the fitted TokenIndicators to its bit in the encoder's mask."""
    if not isinstance(transformer, feats.TokenIndicators):
        raise UnsupportedError(f"feature lists read by {type(transformer).__name__}")
    positions = []
    for col in columns:
        known = {t: i for i, t in enumerate(encoder.tokens[col])}
        kept = transformer.tokens_[col]
        if any(t not in known for t in kept):
            raise UnsupportedError(f"{col}: an item kept by the indicators has no bit")
        positions.append([known[t] for t in kept])
    return TokenBlock(list(columns), positions)


def compile_features(pipeline: object, encoder: RawEncoder) -> CompiledFeatures:
    """Return the numpy form of a fitted build_preprocessor Pipeline (raises UnsupportedError)."""
    if not isinstance(pipeline, Pipeline):
        raise UnsupportedError(f"feature pipeline {type(pipeline).__name__}")
    *repairs, (_, encode) = pipeline.steps
    if not isinstance(encode, ColumnTransformer):
        raise UnsupportedError("a feature pipeline that does not end in a ColumnTransformer")
    steps = [s for _, step in repairs if (s := _step(step, encoder)) is not None]
    blocks: list[tuple[slice, NumericBlock | TableBlock | TokenBlock]] = []
    for name, transformer, columns in encode.transformers_:
        where = encode.output_indices_[name]
        if transformer == "drop" or where.stop == where.start:
            continue
        if transformer == "passthrough":
            raise UnsupportedError("a passthrough block")
        columns = list(columns)
        if all(c in encoder.tokens for c in columns):
            block = _token_block(transformer, columns, encoder)
        elif any(c in encoder.tokens for c in columns):
            raise UnsupportedError(f"block {name!r} mixes feature lists and other columns")
        elif all(c in encoder.text for c in columns):
            block = _table_block(transformer, columns, encoder)
        elif not any(c in encoder.text for c in columns):
            block = _numeric_block(transformer, columns)
        else:
            raise UnsupportedError(f"block {name!r} mixes text and numbers")
        blocks.append((where, block))
    names = [str(n) for n in encode.get_feature_names_out()]
    return CompiledFeatures(encoder, steps, blocks, len(names), names)
