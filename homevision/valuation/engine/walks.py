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
kernel times one group's factors (an exp per support vector where products could lose digits)
and the product with its dual coefficients; for the MLP, its layers past the first. The numbers
are the program's, up to rounding (the tests hold them to 1e-9 relative).
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
        self._splits = {
            id(chain.model): _Split.of(chain.model, groups[id(chain.features)]) for chain in chains
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
    ) -> list[list[np.ndarray]]:
        """Return, per group and subset used, the group's encoded columns of those hybrids: the
        reference homes' (1, b, k) when none of the group's columns comes from the row, the
        rows' (r, 1, k) when all do, and (r, b, k) for a subset that mixes them (the features
        of new hybrids, all of a block's in one call)."""
        r, b, d = len(rows), len(background), rows.shape[1]
        own, refs = features(rows), self._encoded(features, background)
        groups = self.groups[id(features)]
        tables: list[list[np.ndarray]] = []
        mixed: list[tuple[int, int, np.ndarray]] = []  # (group, subset position, from_row)
        for g, ((cols, enc), used) in enumerate(zip(groups, plan.used, strict=True)):
            full = (1 << len(cols)) - 1
            tables.append([])
            for u, code in enumerate(used.tolist()):
                if code == 0:  # the same array on every call: its parts are made once
                    tables[g].append(self._reference_table(features, g, refs))
                elif code == full:
                    tables[g].append(own[:, None][:, :, enc])
                else:
                    from_row = np.zeros(d, dtype=bool)
                    from_row[cols] = (code >> np.arange(len(cols))) & 1
                    mixed.append((g, u, from_row))
                    tables[g].append(None)
        if mixed:
            picks = np.array([from_row for _, _, from_row in mixed])
            hybrids = np.where(picks[:, None, None], rows[None, :, None], background[None, None])
            encoded = features(hybrids.reshape(-1, d)).reshape(len(mixed), r, b, -1)
            for k, (g, u, _) in enumerate(mixed):
                tables[g][u] = encoded[k][:, :, groups[g][1]]
        return tables


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
    return _walk_model(node.model, splits[id(node.model)], tables[key], plans[key], shape, scratch)


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
    # per group: (the reference homes' table, their part, its exp factors by sign)
    references: dict[int, tuple[np.ndarray, np.ndarray, dict[float, np.ndarray]]] = field(
        default_factory=dict
    )

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

    def reference_part(self, g: int, x: np.ndarray) -> np.ndarray:
        """Return group g's part of the reference homes' table x, made once per table."""
        return self._reference(g, x)[1]

    def reference_factor(self, g: int, x: np.ndarray, sign: float) -> np.ndarray:
        """Return exp(sign * part) of group g's reference part (an SVR's kernel factor), made
        once per table."""
        _, part, factors = self._reference(g, x)
        factor = factors.get(sign)
        if factor is None:
            factor = factors[sign] = np.exp(sign * part)
        return factor

    def _reference(self, g: int, x: np.ndarray) -> tuple:
        known = self.references.get(g)
        if known is None or known[0] is not x:
            part = self.part(g, x, np.empty((*x.shape[:-1], self.projections[g].shape[1])))
            known = (x, part, {})
            self.references[g] = known  # one assignment: safe across threads
        return known

    @classmethod
    def of(cls, model, groups: Groups) -> _Split:
        encoded = [enc for _, enc in groups]
        if isinstance(model, RbfSVR):
            gamma, s = model.gamma, model.vectors
            projections = [np.ascontiguousarray((2.0 * gamma) * s[:, enc].T) for enc in encoded]
            constants = [-gamma * (s[:, enc] ** 2).sum(axis=1) for enc in encoded]
            return cls(projections, constants, -gamma, True)
        if isinstance(model, Perceptron):
            first, bias = model.weights[0], model.biases[0]
        else:
            first, bias = model.coef[:, None], np.atleast_1d(model.intercept)
        projections = [np.ascontiguousarray(first[enc]) for enc in encoded]
        constants = [np.zeros(first.shape[1]) for _ in encoded]
        constants[0] = constants[0] + bias
        return cls(projections, constants, 0.0, False)


def _walk_model(
    model, split: _Split, tables, plan: _Plan, shape: tuple[int, int, int], scratch: _Scratch
) -> np.ndarray:
    """Return a chain's model output on every hybrid, (rows, background, coalitions).

    The part of the model that is a sum over encoded columns is tabled per group and subset
    (`split`; the reference homes' own parts are kept there between calls), and walked: each
    coalition's sum is its parent's plus one group's change. An SVR walks its kernel instead:
    times exp(change), one exp per group and change rather than per coalition (none for the
    reference homes' kept factors), where no exponent can fall below MIN_EXPONENT (else its
    exponent, and an exp per coalition)."""
    r, b, _ = shape
    parts = []
    for g, subsets in enumerate(tables):
        width = split.projections[g].shape[1]
        parts.append([])
        for u, x in enumerate(subsets):
            if plan.used[g][u] == 0:  # the reference homes' own columns
                parts[g].append(split.reference_part(g, x))
            else:
                out = scratch.get(("part", id(model), g, u), (*x.shape[:2], width))
                parts[g].append(split.part(g, x, out))
    if isinstance(model, RbfSVR):
        lowest = sum(min(float(part.min()) for part in subsets) for subsets in parts)
        multiply = lowest >= MIN_EXPONENT
        kernel = scratch.get(("kernel", id(model)), (r, b, len(model.vectors)))

        def svr(state: np.ndarray, into: np.ndarray) -> None:
            np.matmul(state if multiply else np.exp(state, out=kernel), model.dual, out=into)

        factors = {}  # the reference homes' kernel factors: the same for every home
        if multiply:
            for g, used in enumerate(plan.used):
                for u in np.flatnonzero(used == 0).tolist():
                    for sign in (1.0, -1.0):
                        factors[(g, u, sign)] = split.reference_factor(g, tables[g][u], sign)
        return _walk(parts, plan, shape, svr, multiply, scratch, factors) + model.intercept
    if isinstance(model, Perceptron):
        act = _ACTIVATIONS[model.activation]

        def mlp(a: np.ndarray, into: np.ndarray) -> None:
            for w, bias in zip(model.weights[1:], model.biases[1:], strict=True):
                a = act(a) @ w + bias
            into[...] = a[..., 0]

        return _walk(parts, plan, shape, mlp, False, scratch)

    def linear(total: np.ndarray, into: np.ndarray) -> None:
        into[...] = total[..., 0]

    return _walk(parts, plan, shape, linear, False, scratch)


def _walk(
    parts,
    plan: _Plan,
    shape,
    finish,
    multiply: bool,
    scratch: _Scratch,
    factors: dict[tuple[int, int, float], np.ndarray] | None = None,
) -> np.ndarray:
    """Return finish(state) of every pair and coalition, (rows, background, coalitions): the
    first (empty) coalition's state is the sum of its groups' parts (exp of it when `multiply`),
    every other one its parent's with one group's part changed (times exp(new - old) when
    `multiply`; `factors`: exp(sign * part) by (group, subset, sign) known already). A parent's
    state is kept only while a later step still walks from it, and changed in place at its
    last. `finish(state, into)` writes a coalition's outputs."""
    r, b, m = shape
    width = parts[0][0].shape[-1]
    first = scratch.take((r, b, width))
    first[...] = sum(subsets[u] for subsets, u in zip(parts, plan.first, strict=True))
    if multiply:
        np.exp(first, out=first)
    state = {0: first}
    factors = dict(factors or {})
    out = np.empty((m, r, b))
    finish(first, out[0])
    for i, (parent, g, old, new, last, kept) in enumerate(plan.moves, start=1):
        if last:
            current = state.pop(parent)
        else:
            current = scratch.take((r, b, width))
            np.copyto(current, state[parent])
        if multiply:
            _times_exp(current, parts[g], old, new, factors, g, scratch)
        else:
            current += parts[g][new]
            current -= parts[g][old]
        finish(current, out[i])
        if kept:
            state[i] = current
        else:
            scratch.give(current)
    for held in state.values():
        scratch.give(held)
    return out.transpose(1, 2, 0)


def _times_exp(state, parts, old: int, new: int, factors, g: int, scratch: _Scratch) -> None:
    """Multiply `state` (rows, background, width) by exp(parts[new] - parts[old]) in place.
    Where both parts belong to the rows alone or to the reference homes alone (a whole group
    from one side: (r, 1, w) or (1, b, w)), or their factors are known (`factors`: the
    reference homes' are kept from call to call), exp(new) and exp(-old) are kept per part and
    multiplied in turn, so no exp is per pair; a part that mixes (r, b, w) takes the exp of the
    difference."""
    pairs = state.shape[0] * state.shape[1]
    a, z = parts[new], parts[old]
    up, down = factors.get((g, new, 1.0)), factors.get((g, old, -1.0))
    if up is None and a.shape[0] * a.shape[1] < pairs:
        up = factors[(g, new, 1.0)] = np.exp(a)
    if down is None and z.shape[0] * z.shape[1] < pairs:
        down = factors[(g, old, -1.0)] = np.exp(-z)
    if up is not None and down is not None:
        state *= up
        state *= down
        return
    change = scratch.get("change", state.shape)
    np.subtract(a, z, out=change)
    state *= np.exp(change, out=change)
