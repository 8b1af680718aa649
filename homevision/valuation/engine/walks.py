"""Value a permutation plan's coalitions by walking it, one raw column at a time.

Past a handful of raw columns, Shapley values are sampled along permutations
(homevision.valuation.explain.permutation_weights): each pass adds (or removes) one raw column at a
time, so every coalition of the plan is one column away from an earlier one. Valued hybrid by
hybrid, each costs the whole program: the features, the SVR's distance to every support vector
(one 82-wide product each), the MLP's first layer. But the compiled features read groups of raw
columns that no encoded column mixes (engine.coalitions.kernel_groups), so when one raw column
changes, only its group's encoded columns change. Their parts of the SVR's exponent and of the
MLP's first layer are tabled once per row and reference home, for the few subsets of each group
the plan uses (the reference homes' own parts, and their SVR kernel factors, once per set of
reference homes: they are the same for every home); a coalition's exponent and first layer are
then its parent's plus one group's difference. What remains per hybrid is, for the SVR, its
kernel times one group's new factor and divided by its old one (an exp per support vector where
products could lose digits) and the product with its dual coefficients; for the MLP, its layers
past the first, for many coalitions in one call. Each part's exp is taken once: numpy has no SIMD
exp for doubles on AVX2 machines (~9 ns an element, a product under 1 ns). The numbers are the
program's, up to rounding (the tests hold them to 1e-9 relative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from homevision.valuation.engine.coalitions import _subset_index, hybrid_values, kernel_groups
from homevision.valuation.engine.features import CompiledFeatures
from homevision.valuation.engine.programs import (
    _ACTIVATIONS,
    Chain,
    Elasticity,
    Linear,
    Members,
    Perceptron,
    RbfSVR,
)

MAX_FLOATS = 262_144  # per block of pairs: one coalition's SVR kernels (2 MB)
# An SVR walks its kernel by products while no hybrid's exponent can fall below this: the kernel
# and each factor (exp of a part, or of minus one) stay within exp(+-300), and so does any
# product of two of them (exp(-708) is the smallest normal float): no product loses its digits.
MIN_EXPONENT = -300.0
Groups = list[tuple[list[int], np.ndarray]]  # (raw columns, encoded columns) per group
# Blocks of at least this many rows make an SVR's mixed kernel factors from units (_Units):
# fewer exps, more small steps. One home's explanation was 0.4-0.7 ms slower that way (4.4 ms
# with an exp per mixed subset); 1,000 homes 13-29% faster.
UNIT_ROWS = 4


class _Scratch:
    """Arrays reused from block to block, by name. A new array of a few hundred kB is fresh
    memory whose pages fault on first write, which costs more than the arithmetic here
    (measured: exp of the difference of two (11, 24, 242) arrays took 8.7 ns an element into
    new arrays, 0.9 ns into reused ones)."""

    def __init__(self) -> None:
        self._arrays: dict[object, np.ndarray] = {}
        self._free: list[np.ndarray] = []

    def get(self, name: object, shape: tuple[int, ...]) -> np.ndarray:
        """Return the array kept under `name` as `shape` (its values are whatever was left)."""
        size = math.prod(shape)
        flat = self._arrays.get(name)
        if flat is None or flat.size < size:
            flat = self._arrays[name] = np.empty(size)
        return flat[:size].reshape(shape)

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        """Return a free array of `shape` (give it back when done)."""
        size = math.prod(shape)
        for i, flat in enumerate(self._free):
            if flat.size >= size:
                return self._free.pop(i)[:size].reshape(shape)
        return np.empty(size).reshape(shape)

    def give(self, array: np.ndarray) -> None:
        base = array.base if array.base is not None else array
        self._free.append(base.reshape(-1))


def walk_of(masks: np.ndarray) -> list[tuple[int, int]] | None:
    """Return, for each coalition after the first (the empty one), (parent, column): an earlier
    coalition it differs from in that one column; None when some coalition has none."""
    if masks[0].any():
        return None
    seen = {masks[0].tobytes(): 0}
    steps: list[tuple[int, int]] = []
    for i in range(1, len(masks)):
        mask = masks[i].copy()
        for j in range(mask.size):
            mask[j] = not mask[j]
            parent = seen.get(mask.tobytes())
            mask[j] = not mask[j]
            if parent is not None:
                steps.append((parent, j))
                break
        else:
            return None
        seen[mask.tobytes()] = i
    return steps


@dataclass
class _Plan:
    """A plan's walk over one feature set's groups: per group, the subsets of its columns the
    plan uses and each coalition's position among them."""

    used: list[np.ndarray]  # per group: the subsets used (bit i: the group's column i)
    first: list[int]  # per group: the position of the first (empty) coalition's subset
    # Per coalition after the first, as plain ints: (parent, group, the group's subset position
    # in the parent, in the coalition, whether it is the parent's last child, whether it has one).
    moves: list[tuple[int, int, int, int, bool, bool]]

    @classmethod
    def of(cls, masks: np.ndarray, groups: Groups) -> _Plan | None:
        steps = walk_of(masks)
        if steps is None:
            return None
        group_of = np.empty(masks.shape[1], dtype=np.intp)
        used, subset = [], []
        for g, (cols, _) in enumerate(groups):
            group_of[cols] = g
            distinct, position = np.unique(_subset_index(masks, cols), return_inverse=True)
            used.append(distinct)
            subset.append(position.reshape(-1))
        last_use = np.arange(len(masks))
        for i, (parent, _) in enumerate(steps, start=1):
            last_use[parent] = i
        moves = []
        for i, (parent, j) in enumerate(steps, start=1):
            g = int(group_of[j])
            old, new = int(subset[g][parent]), int(subset[g][i])
            moves.append((parent, g, old, new, bool(last_use[parent] == i), bool(last_use[i] > i)))
        return cls(used, [int(sub[0]) for sub in subset], moves)


class WalkValues:
    """Values every hybrid of a permutation plan with a compiled program by walking the plan
    (`for_program` returns None where the program holds a part it cannot walk: anything but
    the living-area trend, blends and stacks of chains of features and RBF SVR, MLP or linear
    model)."""

    def __init__(self, program, groups: dict[int, Groups]):
        self.program = program
        self.groups = groups  # id(CompiledFeatures) -> its groups
        chains = _chains(program) or []
        self.features = {id(chain.features): chain.features for chain in chains}
        svrs = [len(c.model.vectors) for c in chains if isinstance(c.model, RbfSVR)]
        self._sv = max(svrs, default=1)
        # id(model) -> (its _Split, an SVR's _Units)
        self._splits = {
            id(chain.model): (
                _Split.of(chain.model, groups[id(chain.features)]),
                _Units.of(chain.model, groups[id(chain.features)], chain.features.dependencies()),
            )
            for chain in chains
        }
        self._plans: dict[int, tuple[np.ndarray, _Plan | None]] = {}
        self._references: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._reference_tables: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def for_program(cls, program) -> WalkValues | None:
        chains = _chains(program)
        if not chains:
            return None
        groups: dict[int, Groups] = {}
        for chain in chains:
            if id(chain.features) not in groups:
                found = kernel_groups(chain.features)
                if found is None:
                    return None
                groups[id(chain.features)] = found
        return cls(program, groups)

    def __call__(self, rows: np.ndarray, background: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Return the program's value of every hybrid, (rows, background, coalitions)."""
        r, b, m = len(rows), len(background), len(masks)
        plans = {key: self._plan(masks, key) for key in self.groups}
        if any(plan is None for plan in plans.values()):  # not a walk: value each hybrid
            return hybrid_values(self.program, rows, background, masks)
        step = max(1, MAX_FLOATS // (b * self._sv))
        out = np.empty((r, b, m))
        scratch = _Scratch()
        for start in range(0, r, step):
            block = rows[start : start + step]
            tables = {
                key: self._tables(features, plans[key], block, background)
                for key, features in self.features.items()
            }
            out[start : start + step] = _value(
                self.program, block, background, masks, plans, tables, self._splits, scratch
            )
        return out

    def _plan(self, masks: np.ndarray, key: int) -> _Plan | None:
        known = self._plans.get(key)
        if known is None or known[0] is not masks:
            known = (masks, _Plan.of(masks, self.groups[key]))
            self._plans[key] = known  # one assignment: safe across threads
        return known[1]

    def _encoded(self, features: CompiledFeatures, background: np.ndarray) -> np.ndarray:
        known = self._references.get(id(features))
        if known is None or known[0] is not background:
            known = (background, features(background))
            self._references[id(features)] = known
        return known[1]

    def _reference_table(self, features: CompiledFeatures, g: int, refs: np.ndarray) -> np.ndarray:
        """Return the reference homes' (1, b, k) columns of group g, one array per `refs`."""
        key = (id(features), g)
        known = self._reference_tables.get(key)
        if known is None or known[0] is not refs:
            enc = self.groups[id(features)][g][1]
            known = (refs, refs[None][:, :, enc])
            self._reference_tables[key] = known
        return known[1]

    def _tables(
        self, features: CompiledFeatures, plan: _Plan, rows: np.ndarray, background: np.ndarray
    ) -> _Tables:
        """Return the encoded columns of the hybrids the plan needs, per group and subset used:
        the reference homes' (1, b, k) when none of the group's columns comes from the row,
        the rows' own when all do, and, for the subsets that mix them, one (subsets, r, b, k)
        slab per group (the features of all of a block's new hybrids in one call)."""
        r, b, d = len(rows), len(background), rows.shape[1]
        own, refs = features(rows), self._encoded(features, background)
        groups = self.groups[id(features)]
        subsets: list[list[tuple[str, object]]] = []
        mixed: list[tuple[int, np.ndarray]] = []  # (group, from_row) per mixed subset
        counts: dict[int, int] = {}  # per group: its mixed subsets so far
        for g, ((cols, _), used) in enumerate(zip(groups, plan.used, strict=True)):
            full = (1 << len(cols)) - 1
            subsets.append([])
            for code in used.tolist():
                if code == 0:  # the same array on every call: its parts are made once
                    subsets[g].append(("reference", self._reference_table(features, g, refs)))
                elif code == full:
                    subsets[g].append(("own", None))
                else:
                    from_row = np.zeros(d, dtype=bool)
                    from_row[cols] = (code >> np.arange(len(cols))) & 1
                    subsets[g].append(("mixed", counts.get(g, 0)))
                    counts[g] = counts.get(g, 0) + 1
                    mixed.append((g, from_row))
        slabs: list[np.ndarray | None] = [None] * len(groups)
        if mixed:
            picks = np.array([from_row for _, from_row in mixed])
            hybrids = np.where(picks[:, None, None], rows[None, :, None], background[None, None])
            encoded = features(hybrids.reshape(-1, d)).reshape(len(mixed), r, b, -1)
            which = np.array([g for g, _ in mixed])
            for g in np.unique(which).tolist():
                slabs[g] = encoded[which == g][..., groups[g][1]]
        return _Tables(own, subsets, slabs)


@dataclass
class _Tables:
    """The encoded columns of a block's hybrids that a plan needs (WalkValues._tables)."""

    own: np.ndarray  # (r, encoded columns): the rows' own
    # Per group and subset used: ("reference", its (1, b, k) table), ("own", None), or
    # ("mixed", i): row i of the group's slab.
    subsets: list[list[tuple[str, object]]]
    slabs: list[np.ndarray | None]  # per group: (mixed subsets, r, b, k), None without any


def _chains(node) -> list[Chain] | None:
    """Return the Chains of a program that can be walked, None if any part cannot."""
    if isinstance(node, Chain):
        return [node] if isinstance(node.model, RbfSVR | Perceptron | Linear) else None
    if isinstance(node, Elasticity):
        return _chains(node.inner)
    if isinstance(node, Members):
        found = [_chains(member) for member in node.members]
        return None if any(f is None for f in found) else [c for f in found for c in f]
    return None


def _value(node, rows, background, masks, plans, tables, splits, scratch) -> np.ndarray:
    """Return `node`'s value of every hybrid, (rows, background, coalitions)."""
    if isinstance(node, Elasticity):
        inner = _value(node.inner, rows, background, masks, plans, tables, splits, scratch)
        sqft = np.where(
            masks[None, None, :, node.sqft],
            rows[:, None, None, node.sqft],
            background[None, :, None, node.sqft],
        )
        return node.finish(inner, sqft)
    if isinstance(node, Members):
        outputs = [
            _value(member, rows, background, masks, plans, tables, splits, scratch)
            for member in node.members
        ]
        stacked = np.stack(outputs, axis=-1).reshape(-1, len(outputs))
        return node.combine(stacked).reshape(outputs[0].shape)
    key = id(node.features)
    shape = (len(rows), len(background), len(masks))
    split, units = splits[id(node.model)]
    return _walk_model(node.model, split, tables[key], plans[key], shape, scratch, units)


@dataclass
class _Split:
    """A chain's model split by group: the part of its sum over encoded columns (an RBF SVR's
    exponent, an MLP's first layer, a linear model's output) that a group's columns x make is
    x @ projection + squares * |x|^2 + constant. Fixed per model, so made once, not per block;
    so are the reference homes' own parts (`references`), the same for every home."""

    projections: list[np.ndarray]  # per group: (its encoded columns, width)
    constants: list[np.ndarray]  # per group: (width,); the first group's holds the bias
    squares: float  # an SVR's -gamma, else 0
    bounded: bool  # an SVR's: each part is <= 0 (a part of -gamma |x - s|^2)
    encoded: list[np.ndarray]  # per group: its encoded columns
    # per group: (the reference homes' table, their part, its exp factors by sign, its lowest)
    references: dict[int, tuple[np.ndarray, np.ndarray, dict[float, np.ndarray], float]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        # Every group's projection side by side, each on its own encoded columns: the rows'
        # own parts of all groups in one product, (r, E) @ (E, groups x width).
        groups, width = len(self.encoded), self.projections[0].shape[1]
        total = sum(len(enc) for enc in self.encoded)
        self._joint = np.zeros((total, groups * width))
        self._members = np.zeros((total, groups))  # encoded column -> its group
        for g, (enc, projection) in enumerate(zip(self.encoded, self.projections, strict=True)):
            self._joint[enc, g * width : (g + 1) * width] = projection
            self._members[enc, g] = 1.0
        self._constants = np.array(self.constants)  # (groups, width)

    def parts(
        self, tables: _Tables, scratch: _Scratch, key: object
    ) -> tuple[list[list[np.ndarray]], float]:
        """Return (per group and subset used, its part of the block's hybrids; the lowest sum
        of parts a hybrid can reach). The parts: the reference homes' (1, b, w), kept from call
        to call; the rows' own (r, 1, w), all groups' in one product; a group's mixed subsets
        (r, b, w), all of them in one product."""
        own = self.own_parts(tables.own, scratch.get(("own", key), self.own_shape(tables)))
        lows = own.min(axis=(0, 2)).tolist()  # per group
        parts: list[list[np.ndarray]] = []
        for g, (subsets, slab) in enumerate(zip(tables.subsets, tables.slabs, strict=True)):
            if slab is not None:
                out = scratch.get(("part", key, g), (*slab.shape[:-1], own.shape[-1]))
                mixed = self.part(g, slab, out)
                lows[g] = min(lows[g], float(mixed.min()))
            parts.append([])
            for kind, x in subsets:
                if kind == "reference":
                    _, part, _, low = self._reference(g, x)
                    lows[g] = min(lows[g], low)
                    parts[g].append(part)
                else:
                    parts[g].append(own[:, None, g] if kind == "own" else mixed[x])
        return parts, sum(lows)

    def own_shape(self, tables: _Tables) -> tuple[int, int, int]:
        """Return the shape of own_parts' output for a block: (rows, groups, width)."""
        return (len(tables.own), *self._constants.shape)

    def reference_low(self, g: int, x: np.ndarray) -> float:
        """Return the lowest value of group g's part of the reference homes' table x."""
        return self._reference(g, x)[3]

    def own_parts(self, own: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Return every group's part of the rows' own encoded columns, (r, groups, width),
        written into `out` (the same sums as `part`, group by group)."""
        flat = out.reshape(len(own), -1)
        np.matmul(own, self._joint, out=flat)
        if self.squares:
            out += (self.squares * ((own * own) @ self._members))[:, :, None]
        out += self._constants
        if self.bounded:
            np.minimum(out, 0.0, out=out)
        return out

    def part(self, g: int, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Return group g's part of the encoded columns x (..., k), written into `out`."""
        flat = x.reshape(-1, x.shape[-1])
        out = out.reshape(len(flat), -1)
        np.matmul(flat, self.projections[g], out=out)
        if self.squares:
            out += self.squares * np.einsum("ik,ik->i", flat, flat)[:, None]
        out += self.constants[g]
        if self.bounded:
            np.minimum(out, 0.0, out=out)  # each part of |x - s|^2 >= 0
        return out.reshape(*x.shape[:-1], -1)

    def reference_factor(self, g: int, x: np.ndarray, sign: float) -> np.ndarray:
        """Return exp(sign * part) of group g's reference part (an SVR's kernel factor), made
        once per table."""
        _, part, factors, _ = self._reference(g, x)
        factor = factors.get(sign)
        if factor is None:
            factor = factors[sign] = np.exp(sign * part)
        return factor

    def _reference(self, g: int, x: np.ndarray) -> tuple:
        known = self.references.get(g)
        if known is None or known[0] is not x:
            part = self.part(g, x, np.empty((*x.shape[:-1], self.projections[g].shape[1])))
            known = (x, part, {}, float(part.min()))
            self.references[g] = known  # one assignment: safe across threads
        return known

    @classmethod
    def of(cls, model, groups: Groups) -> _Split:
        encoded = [enc for _, enc in groups]
        if isinstance(model, RbfSVR):
            gamma, s = model.gamma, model.vectors
            projections = [np.ascontiguousarray((2.0 * gamma) * s[:, enc].T) for enc in encoded]
            constants = [-gamma * (s[:, enc] ** 2).sum(axis=1) for enc in encoded]
            return cls(projections, constants, -gamma, True, encoded)
        if isinstance(model, Perceptron):
            first, bias = model.weights[0], model.biases[0]
        else:
            first, bias = model.coef[:, None], np.atleast_1d(model.intercept)
        projections = [np.ascontiguousarray(first[enc]) for enc in encoded]
        constants = [np.zeros(first.shape[1]) for _ in encoded]
        constants[0] = constants[0] + bias
        return cls(projections, constants, 0.0, False, encoded)


@dataclass
class _Unit:
    """Encoded columns of a group that read the same raw columns (`bits`, over the group's raw
    columns), with their share of an SVR's exponent: x @ projection + squares |x|^2 + constant,
    a share of -gamma |x - s|^2, so <= 0."""

    bits: int
    columns: np.ndarray  # positions among the group's encoded columns
    projection: np.ndarray  # (columns, vectors)
    constant: np.ndarray  # (vectors,)

    def share(self, x: np.ndarray, squares: float, out: np.ndarray) -> np.ndarray:
        """Return the unit's share of the exponent for the group's encoded columns x (..., k),
        written into `out` (..., vectors)."""
        own = x[..., self.columns].reshape(-1, len(self.columns))
        flat = out.reshape(len(own), -1)
        np.matmul(own, self.projection, out=flat)
        flat += (squares * np.einsum("ik,ik->i", own, own))[:, None]
        flat += self.constant
        np.minimum(flat, 0.0, out=flat)
        return out


@dataclass
class _Units:
    """An SVR's groups split into units (_Unit), for the kernel factors of the subsets of a
    group that take some of its raw columns from the row and some from the reference home.

    exp of such a subset's part costs one exp per pair and support vector, and a group of k raw
    columns has up to 2^k - 2 of them (14 for living area, beds, lot and baths). But a unit's
    share only depends on which of *its* raw columns come from the row: a unit read from the
    row alone gives a factor per row (r, 1, w), one read from the reference home alone a factor
    per reference home (1, b, w), and only a unit that reads both is mixed, with few variants
    (6 for those four columns, which the ratios pair). A subset's factor is the product of its
    units' factors: a pass over the pairs per unit instead of an exp per element (9.3 ns on
    AVX2, a product 0.4-0.9 ns)."""

    units: list[list[_Unit]]  # per group
    squares: float  # the SVR's -gamma
    # (group, unit) -> (the reference homes' table, exp of the unit's share (1, b, w), its low)
    references: dict[tuple[int, int], tuple] = field(default_factory=dict)

    @classmethod
    def of(cls, model, groups: Groups, deps: list[frozenset[int]] | None) -> _Units | None:
        """Return the units of an RBF SVR's groups (None for another model, or where the
        features do not say what their columns read)."""
        if not isinstance(model, RbfSVR) or deps is None:
            return None
        gamma, s = model.gamma, model.vectors
        units: list[list[_Unit]] = []
        for cols, enc in groups:
            position = {j: i for i, j in enumerate(cols)}
            members: dict[int, list[int]] = {}
            for i, e in enumerate(enc.tolist()):
                members.setdefault(sum(1 << position[j] for j in deps[e]), []).append(i)
            units.append([])
            for bits, local in members.items():
                columns = enc[local]
                projection = np.ascontiguousarray((2.0 * gamma) * s[:, columns].T)
                constant = -gamma * (s[:, columns] ** 2).sum(axis=1)
                units[-1].append(_Unit(bits, np.array(local, dtype=np.intp), projection, constant))
        return cls(units, -gamma)

    def factors(
        self, split: _Split, tables: _Tables, plan: _Plan, scratch: _Scratch, pairs: tuple
    ) -> list[list[tuple]] | None:
        """Return _kernel_factors' list, each mixed subset's factor made from its units'; None
        where an exponent could fall below MIN_EXPONENT (bounded by the sum of the lowest
        shares), so that the caller walks the exponent instead."""
        own = split.own_parts(tables.own, scratch.get(("own", id(self)), split.own_shape(tables)))
        lows = own.min(axis=(0, 2)).tolist()  # per group
        width = own.shape[-1]
        factors: list[list[tuple]] = []
        for g, (subsets, units) in enumerate(zip(tables.subsets, self.units, strict=True)):
            reference = next(x for kind, x in subsets if kind == "reference")
            own_columns = tables.own[:, split.encoded[g]]
            mixed = _Mixed(self, g, units, own_columns, reference, scratch, width)
            factors.append([])
            for u, (kind, x) in enumerate(subsets):
                if kind == "reference":
                    pair = _side_factors(split, g, kind, x, None)
                    lows[g] = min(lows[g], split.reference_low(g, x))
                elif kind == "own":
                    pair = _side_factors(split, g, kind, x, own[:, None, g])
                else:
                    out = scratch.get(("factor", id(self), g, u), (*pairs, width))
                    low = mixed.factor(int(plan.used[g][u]), tables.slabs[g][x], out)
                    lows[g] = min(lows[g], low)
                    pair = (out, None)
                factors[g].append(pair)
        return factors if sum(lows) >= MIN_EXPONENT else None

    def reference(self, g: int, k: int, table: np.ndarray) -> tuple[np.ndarray, float]:
        """Return (exp of unit k's share for the reference homes' table, its lowest share),
        made once per table."""
        known = self.references.get((g, k))
        if known is None or known[0] is not table:
            unit = self.units[g][k]
            share = unit.share(
                table, self.squares, np.empty((*table.shape[:-1], len(unit.constant)))
            )
            known = (table, np.exp(share), float(share.min()))
            self.references[(g, k)] = known  # one assignment: safe across threads
        return known[1], known[2]


class _Mixed:
    """One group's mixed-subset factors in one block: its units' factors, each made once."""

    def __init__(self, units: _Units, g: int, group: list[_Unit], own, reference, scratch, width):
        self.owner, self.g, self.group = units, g, group
        self.own = own  # the rows' encoded group columns (r, k)
        self.reference = reference  # the reference homes' (1, b, k)
        self.scratch, self.width = scratch, width
        self._rows: dict[int, tuple[np.ndarray, float]] = {}
        self._variants: dict[tuple[int, int], tuple[np.ndarray, float]] = {}

    def factor(self, code: int, hybrid: np.ndarray, out: np.ndarray) -> float:
        """Write the factor of the subset `code` (bit i: the group's raw column i from the
        row) into `out` (r, b, w), from `hybrid`, its encoded group columns (r, b, k); return a
        lower bound of its exponent."""
        row, reference, low = None, None, 0.0
        variants = []
        for k, unit in enumerate(self.group):
            if unit.bits & ~code == 0:  # every column it reads from the row (or none)
                factor, lowest = self._row(k, unit)
                row = factor if row is None else row * factor
            elif unit.bits & code == 0:  # every column it reads from the reference home
                factor, lowest = self.owner.reference(self.g, k, self.reference)
                reference = factor if reference is None else reference * factor
            else:
                factor, lowest = self._variant(k, unit, code, hybrid)
                variants.append(factor)
            low += lowest
        np.multiply(1.0 if row is None else row, 1.0 if reference is None else reference, out=out)
        for factor in variants:
            out *= factor
        return low

    def _row(self, k: int, unit: _Unit) -> tuple[np.ndarray, float]:
        found = self._rows.get(k)
        if found is None:
            x = self.own[:, None, :]
            share = unit.share(x, self.owner.squares, np.empty((len(x), 1, self.width)))
            found = self._rows[k] = (np.exp(share), float(share.min()))
        return found

    def _variant(self, k: int, unit: _Unit, code: int, hybrid) -> tuple[np.ndarray, float]:
        key = (k, unit.bits & code)
        found = self._variants.get(key)
        if found is None:
            name = ("variant", id(self.owner), self.g, *key)
            out = self.scratch.get(name, (*hybrid.shape[:-1], self.width))
            share = unit.share(hybrid, self.owner.squares, out)
            lowest = float(share.min())
            found = self._variants[key] = (np.exp(share, out=share), lowest)
        return found


def _walk_model(
    model,
    split: _Split,
    tables,
    plan: _Plan,
    shape: tuple[int, int, int],
    scratch: _Scratch,
    units: _Units | None = None,
) -> np.ndarray:
    """Return a chain's model output on every hybrid, (rows, background, coalitions).

    The part of the model that is a sum over encoded columns is tabled per group and subset
    (`split`; the reference homes' own parts are kept there between calls), and walked: each
    coalition's sum is its parent's plus one group's change. An SVR walks its kernel instead:
    times exp(new part) and exp(-old part), one exp per part rather than per coalition (none
    for the reference homes' kept factors; in blocks of UNIT_ROWS rows or more, the mixed parts'
    from `units`), where no exponent can fall below MIN_EXPONENT (else its exponent, and an exp
    per coalition)."""
    if isinstance(model, RbfSVR):
        return _walk_svr(model, split, tables, plan, shape, scratch, units)
    parts, _ = split.parts(tables, scratch, id(model))
    if isinstance(model, Perceptron):
        act = _ACTIVATIONS[model.activation]

        def mlp(a: np.ndarray, into: np.ndarray) -> None:
            for w, bias in zip(model.weights[1:], model.biases[1:], strict=True):
                a = act(a) @ w + bias
            into[...] = a[..., 0]

        return _walk(parts, plan, shape, mlp, False, scratch, staged=True)

    def linear(total: np.ndarray, into: np.ndarray) -> None:
        into[...] = total[..., 0]

    return _walk(parts, plan, shape, linear, False, scratch, staged=True)


def _walk_svr(
    model: RbfSVR,
    split: _Split,
    tables: _Tables,
    plan: _Plan,
    shape: tuple[int, int, int],
    scratch: _Scratch,
    units: _Units | None,
) -> np.ndarray:
    """_walk_model for an RBF SVR: its kernel walked by products of factors (from `units` in
    blocks of UNIT_ROWS rows or more), or its exponent where a product could lose digits."""
    r, b, _ = shape
    multiply = True

    def svr(state: np.ndarray, into: np.ndarray) -> None:
        if not multiply:
            state = np.exp(state, out=scratch.get(("kernel", id(model)), state.shape))
        np.matmul(state, model.dual, out=into)

    factors = None
    if units is not None and r >= UNIT_ROWS:
        factors = units.factors(split, tables, plan, scratch, (r, b))
    if factors is None:
        parts, lowest = split.parts(tables, scratch, id(model))
        multiply = lowest >= MIN_EXPONENT
        if not multiply:
            return _walk(parts, plan, shape, svr, False, scratch) + model.intercept
        factors = _kernel_factors(split, parts, tables, r * b)
    return _walk(factors, plan, shape, svr, True, scratch) + model.intercept


def _side_factors(split: _Split, g: int, kind: str, x: object, part: np.ndarray | None) -> tuple:
    """Return (exp(part), exp(-part)) of group g's part from one side alone: the reference
    homes' (`kind` "reference", table x), kept in `split` from call to call, or the rows'."""
    if kind == "reference":
        return split.reference_factor(g, x, 1.0), split.reference_factor(g, x, -1.0)
    return np.exp(part), np.exp(-part)


def _kernel_factors(split: _Split, parts, tables: _Tables, pairs: int) -> list[list[tuple]]:
    """Return, per group and subset used, (exp(part), exp(-part) or None) of an SVR's parts:
    the reference homes' from `split` (kept from call to call: the same for every home), a
    part of the rows' alone (r, 1, w) both ways, and a part that mixes rows and reference homes
    (r, b, w), the costliest, one exp, in place (None: divide by it). An exp costs ~9 ns an
    element where numpy has no SIMD exp for doubles (AVX2 machines), a product or a quotient
    0.4-0.9 ns: one exp per part instead of one per step that changes it."""
    factors: list[list[tuple]] = []
    for g, subsets in enumerate(parts):
        factors.append([])
        for u, part in enumerate(subsets):
            kind, x = tables.subsets[g][u]
            if kind == "reference" or part.shape[0] * part.shape[1] < pairs:
                pair = _side_factors(split, g, kind, x, part)
            else:  # the part's own array, made for this block of rows
                pair = (np.exp(part, out=part), None)
            factors[g].append(pair)
    return factors


def _walk(
    parts,
    plan: _Plan,
    shape,
    finish,
    multiply: bool,
    scratch: _Scratch,
    staged: bool = False,
) -> np.ndarray:
    """Return finish(state) of every pair and coalition, (rows, background, coalitions): the
    first (empty) coalition's state is the sum of its groups' parts, every other one its
    parent's with one group's part changed. With `multiply`, `parts` are kernel factors
    (_kernel_factors): the first state is the product of its groups' exp(part), a step
    multiplies by exp(new) and exp(-old) (or divides by exp(old)). A parent's state is kept
    only while a later step still walks from it, and changed in place at its last.
    `finish(states, into)` writes coalitions' outputs; `staged`: states are copied aside and
    finished up to MAX_FLOATS at a time (an MLP's narrow first layer: one call for many
    coalitions instead of a few small products each)."""
    r, b, m = shape
    firsts = [subsets[u] for subsets, u in zip(parts, plan.first, strict=True)]
    if multiply:
        firsts = [up for up, _ in firsts]
    width = firsts[0].shape[-1]
    first = scratch.take((r, b, width))
    first[...] = firsts[0]
    for part in firsts[1:]:
        if multiply:
            first *= part
        else:
            first += part
    out = np.empty((m, r, b))
    size = max(1, min(m, MAX_FLOATS // (r * b * width))) if staged else 1
    stage = scratch.get("stage", (size, r, b, width)) if size > 1 else None
    done = 0  # coalitions finished; those from `done` on wait in `stage`

    def emit(i: int, current: np.ndarray) -> None:
        nonlocal done
        if stage is None:
            finish(current, out[i])
            done = i + 1
            return
        stage[i - done] = current
        if i + 1 - done == size or i + 1 == m:
            finish(stage[: i + 1 - done], out[done : i + 1])
            done = i + 1

    state = {0: first}
    emit(0, first)
    for i, (parent, g, old, new, last, kept) in enumerate(plan.moves, start=1):
        if last:
            current = state.pop(parent)
        else:
            current = scratch.take((r, b, width))
            np.copyto(current, state[parent])
        if multiply:
            up, down = parts[g][new][0], parts[g][old]
            current *= up
            if down[1] is None:
                current /= down[0]
            else:
                current *= down[1]
        else:
            current += parts[g][new]
            current -= parts[g][old]
        emit(i, current)
        if kept:
            state[i] = current
        else:
            scratch.give(current)
    for held in state.values():
        scratch.give(held)
    return out.transpose(1, 2, 0)
