"""Value every coalition hybrid of rows and reference homes at once: what exact Shapley values need.

An exact Shapley value of row x against reference home z values the hybrid homes that take some
raw columns from x and the others from z, for every subset of columns (2^d per pair). Valued one
by one through the engine, the RBF SVR dominates: one exp per hybrid and support vector. But its
kernel factorises over groups of raw columns that no encoded column mixes (CDOM alone, the school
alone, the living area with the bedrooms, lot and baths through the ratios):
exp(-g |h - s|^2) = prod over groups of exp(-g |h_G - s_G|^2), and a group's factor only depends
on which of *its* columns come from x. So each group needs 2^|G| exps per pair and support
vector instead of 2^d, and the sum over support vectors of the products is one batched matrix
product. The other parts of a program (features, MLP, trees, the living-area trend) are valued on
the distinct hybrids as before, and combined exactly as the program combines them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from homevision.valuation.engine.features import CompiledFeatures
from homevision.valuation.engine.programs import Chain, Elasticity, Members, RbfSVR

MAX_FLOATS = 4_000_000  # per block of rows: the kernel factors of all pairs (32 MB)


@dataclass
class Hybrids:
    """The hybrids of `rows` (r x d) and `background` (b x d) for coalition `masks` (m x d, True:
    the column comes from the row), in (row, reference, coalition) order, flattened."""

    rows: np.ndarray
    background: np.ndarray
    masks: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.rows), len(self.background), len(self.masks)

    def column(self, j: int) -> np.ndarray:
        """Return raw column j of every hybrid (flat)."""
        picked = np.where(
            self.masks[None, None, :, j],
            self.rows[:, None, None, j],
            self.background[None, :, None, j],
        )
        return picked.reshape(-1)

    @cached_property
    def _distinct(self) -> tuple[np.ndarray, np.ndarray]:
        """(distinct hybrids, index of each hybrid among them). Where a row and a reference home
        share a value, coalitions that differ only there build the same home: valued once."""
        r, b, m = self.shape
        d = self.rows.shape[1]
        bits = 1 << np.arange(d, dtype=np.int64)
        codes = self.masks.astype(np.int64) @ bits  # coalition as bits: j set, j from the row
        rows, background = self.rows, self.background
        same = (rows[:, None, :] == background[None]) | (
            np.isnan(rows)[:, None, :] & np.isnan(background)[None]
        )
        shared = same.astype(np.int64) @ bits
        if m != 2**d or not np.array_equal(codes, np.arange(m)):
            return self._distinct_of_plan(codes, shared)
        # Every coalition, in code order: the canonical hybrid (shared columns from the row) is
        # itself a coalition of the same pair, so no sort is needed.
        canonical = codes[None, None, :] | shared[:, :, None]
        ri, bi, ci = np.nonzero(canonical == codes)
        hybrids = np.where(self.masks[ci], rows[ri], background[bi])
        slot = np.full((r, b, m), -1, dtype=np.intp)
        slot[ri, bi, ci] = np.arange(len(ri))
        index = np.take_along_axis(slot, canonical, axis=2)
        return hybrids, index.reshape(r * b * m)

    def _distinct_of_plan(
        self, codes: np.ndarray, shared: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """_distinct for any list of coalitions (a permutation plan): each hybrid named by its
        pair and its coalition less the shared columns, the distinct names found by sorting."""
        r, b, _ = self.shape
        d = self.rows.shape[1]
        pairs = np.arange(r * b, dtype=np.int64).reshape(r, b, 1)
        names = (pairs << d) | (codes[None, None, :] & ~shared[:, :, None])
        distinct, index = np.unique(names.reshape(-1), return_inverse=True)
        pair, code = np.divmod(distinct, np.int64(1) << d)
        from_row = ((code[:, None] >> np.arange(d)) & 1).astype(bool)
        hybrids = np.where(from_row, self.rows[pair // b], self.background[pair % b])
        return hybrids, index.reshape(-1)

    def values(self, f) -> np.ndarray:
        """Return f of every hybrid (flat), valuing each distinct hybrid once."""
        hybrids, index = self._distinct
        return np.asarray(f(hybrids), dtype=float)[index]


def hybrid_values(f, rows: np.ndarray, background: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Return f of every hybrid as an (rows, background, coalitions) array: any price function
    of the raw matrix, each distinct hybrid valued once."""
    hybrids = Hybrids(rows, background, masks)
    return hybrids.values(f).reshape(hybrids.shape)


class CoalitionValues:
    """Values every hybrid with a compiled program, the RBF SVRs in it by kernel factors
    (`for_program` returns None where a program holds no SVR whose kernel factorises)."""

    def __init__(self, program, factored: dict[int, list[tuple[list[int], np.ndarray]]]):
        self.program = program
        self.factored = factored  # id(Chain) -> groups: (raw columns, encoded columns)
        # id(Chain) -> (reference homes, their factors per group): the same on every call of
        # an explainer, so computed once (a single home's explanation is mostly fixed costs).
        self._references: dict[int, tuple[np.ndarray, list[np.ndarray]]] = {}
        # Floats a row of hybrids holds per reference home: each group's factors and the
        # products of the smaller groups', per support vector.
        self._floats = sum(
            len(chain.model.vectors)
            * (sum(2 ** len(c) for c, _ in groups) + math.prod(2 ** len(c) for c, _ in groups[1:]))
            for chain in _svr_chains(program)
            if (groups := factored.get(id(chain))) is not None
        )

    @classmethod
    def for_program(cls, program) -> CoalitionValues | None:
        factored: dict[int, list[tuple[list[int], np.ndarray]]] = {}
        for chain in _svr_chains(program):
            groups = kernel_groups(chain.features)
            if groups is not None and len(groups) > 1:
                factored[id(chain)] = groups
        return cls(program, factored) if factored else None

    def __call__(self, rows: np.ndarray, background: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Return the program's value of every hybrid, (rows, background, coalitions)."""
        r, b, m = len(rows), len(background), len(masks)
        step = max(1, MAX_FLOATS // max(b * self._floats, 1))
        out = np.empty((r, b, m))
        for start in range(0, r, step):
            block = Hybrids(rows[start : start + step], background, masks)
            out[start : start + step] = self._value(self.program, block).reshape(block.shape)
        return out

    def _value(self, node, hybrids: Hybrids) -> np.ndarray:
        if id(node) in self.factored:
            groups = self.factored[id(node)]
            known = self._references.get(id(node))
            if known is None or known[0] is not hybrids.background:
                known = (hybrids.background, reference_factors(node, groups, hybrids.background))
                self._references[id(node)] = known  # one assignment: safe across threads
            return factored_svr(node, groups, hybrids, known[1])
        if isinstance(node, Elasticity) and self._holds_factored(node.inner):
            inner = self._value(node.inner, hybrids)
            return node.finish(inner, hybrids.column(node.sqft))
        if isinstance(node, Members) and self._holds_factored(node):
            columns = [self._value(member, hybrids) for member in node.members]
            return node.combine(np.column_stack(columns))
        return hybrids.values(node)

    def _holds_factored(self, node) -> bool:
        return any(id(chain) in self.factored for chain in _svr_chains(node))


def _svr_chains(node) -> list[Chain]:
    """Return the Chains of features -> RBF SVR inside a program."""
    if isinstance(node, Chain):
        return [node] if isinstance(node.model, RbfSVR) else []
    if isinstance(node, Elasticity):
        return _svr_chains(node.inner)
    if isinstance(node, Members):
        return [chain for member in node.members for chain in _svr_chains(member)]
    return []


def kernel_groups(features: CompiledFeatures) -> list[tuple[list[int], np.ndarray]] | None:
    """Return the groups of raw columns that no encoded column mixes, each with its encoded
    columns (constant encoded columns join the largest group); None when a dependency is not
    known. One group means the kernel does not factorise."""
    deps = features.dependencies()
    if deps is None:
        return None
    d = len(features.encoder.columns)
    parent = list(range(d))

    def root(j: int) -> int:
        while parent[j] != j:
            parent[j] = parent[parent[j]]
            j = parent[j]
        return j

    for columns in deps:  # an encoded column ties together every raw column it reads
        tied = sorted(columns)
        for j in tied[1:]:
            parent[root(j)] = root(tied[0])
    members: dict[int, list[int]] = {}
    for j in range(d):
        members.setdefault(root(j), []).append(j)
    groups = sorted(members.values(), key=lambda cols: (-len(cols), cols))
    encoded: list[list[int]] = [[] for _ in groups]
    where = {j: g for g, cols in enumerate(groups) for j in cols}
    for k, columns in enumerate(deps):
        encoded[where[min(columns)] if columns else 0].append(k)
    return [(cols, np.array(enc, dtype=np.intp)) for cols, enc in zip(groups, encoded, strict=True)]


def reference_factors(
    chain, groups: list[tuple[list[int], np.ndarray]], background: np.ndarray
) -> list[np.ndarray]:
    """Return, per group, the kernel factors of the reference homes' own values (b x vectors)."""
    refs = chain.features(background)
    return [_kernel_factor(refs[:, enc], chain.model, enc) for _, enc in groups]


def factored_svr(
    chain,
    groups: list[tuple[list[int], np.ndarray]],
    hybrids: Hybrids,
    references: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Return a features -> RBF SVR chain's output on every hybrid (flat), from kernel factors:
    per group, exp of its part of the squared distance for each subset of its columns taken from
    the row (the row's own and the reference home's once each, the mixed ones per pair); then the
    sum over support vectors of dual x the product of the factors, as one batched matrix product
    of the largest group's factors with the others' products. `references`: reference_factors
    of `hybrids.background`, when the caller has them."""
    svr = chain.model
    r, b, m = hybrids.shape
    rows, background, masks = hybrids.rows, hybrids.background, hybrids.masks
    n_sv, d = len(svr.vectors), rows.shape[1]
    own = chain.features(rows)
    if references is None:
        references = reference_factors(chain, groups, background)
    factors = []
    for (cols, enc), reference in zip(groups, references, strict=True):
        k = len(cols)
        factor = np.empty((r, b, 2**k, n_sv))
        factor[:, :, 0] = reference[None]  # all from the reference home
        factor[:, :, -1] = _kernel_factor(own[:, enc], svr, enc)[:, None]  # all from the row
        if k > 1:
            subsets = ((np.arange(1, 2**k - 1)[:, None] >> np.arange(k)) & 1).astype(bool)
            from_row = np.ones((len(subsets), d), dtype=bool)
            from_row[:, cols] = subsets
            mixed = np.where(from_row[None, None], rows[:, None, None], background[None, :, None])
            encoded = chain.features(mixed.reshape(-1, d))[:, enc]
            factor[:, :, 1:-1] = _kernel_factor(encoded, svr, enc).reshape(r, b, -1, n_sv)
        factors.append(factor.reshape(r * b, 2**k, n_sv))
    # Products of the smaller groups' factors, with dual folded in: (pairs, combos, vectors).
    rest = np.broadcast_to(svr.dual, (r * b, 1, n_sv))
    for factor in factors[1:]:
        rest = (rest[:, :, None, :] * factor[:, None, :, :]).reshape(r * b, -1, n_sv)
    table = np.matmul(factors[0], rest.transpose(0, 2, 1))  # (pairs, 2^|largest|, combos)
    # Coalition c: its subset of each group, as an index into the table.
    first = _subset_index(masks, groups[0][0])
    combo = np.zeros(m, dtype=np.intp)
    for cols, _ in groups[1:]:
        combo = combo * (2 ** len(cols)) + _subset_index(masks, cols)
    return (table[:, first, combo] + svr.intercept).reshape(r * b * m)


def _kernel_factor(encoded: np.ndarray, svr, enc: np.ndarray) -> np.ndarray:
    """Return exp(-gamma |x_G - s_G|^2) for rows x of the encoded columns `enc` (G) against every
    support vector s, as one matrix product: [x, |x|^2, 1] . [2 gamma s, -gamma, -gamma |s|^2]."""
    vectors = svr.vectors[:, enc]
    weights = np.vstack(
        [
            (2.0 * svr.gamma) * vectors.T,
            np.full((1, len(vectors)), -svr.gamma),
            -svr.gamma * (vectors * vectors).sum(axis=1)[None],
        ]
    )
    augmented = np.empty((len(encoded), len(enc) + 2))
    augmented[:, :-2] = encoded
    augmented[:, -2] = np.einsum("ij,ij->i", encoded, encoded)
    augmented[:, -1] = 1.0
    exponent = augmented @ weights
    np.minimum(exponent, 0.0, out=exponent)  # each part of |x - s|^2 is >= 0
    return np.exp(exponent, out=exponent)


def _subset_index(masks: np.ndarray, cols: list[int]) -> np.ndarray:
    """Return, per coalition, the index of its subset of `cols` (bit i: cols[i] from the row)."""
    return (masks[:, cols].astype(np.intp) << np.arange(len(cols))).sum(axis=1)
