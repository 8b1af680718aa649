"""The cross-chunk duplicate memory answers as a Python set does, in arrays or in a bitmap."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from homevision.valuation import seen_ids
from homevision.valuation.seen_ids import SeenIds


def _chunks(kind: str, rng: np.random.Generator) -> list[np.ndarray]:
    if kind == "dense":  # a board's numbers in sequence, shuffled, some repeated
        ids = rng.permutation(np.arange(20_000_000, 20_060_000))
        ids[::97] = ids[::89][: len(ids[::97])]
    elif kind == "sparse":  # anywhere in the id space
        ids = rng.integers(1, 2**63 - 1, size=40_000, dtype=np.int64)
    else:  # dense numbers and a few far away, the extremes included
        ids = rng.permutation(np.arange(5_000_000, 5_050_000))
        ids[::1000] = rng.integers(1, 2**63 - 1, size=len(ids[::1000]), dtype=np.int64)
        ids[:2] = [1, 2**63 - 1]
    return np.array_split(ids, 17)


@pytest.mark.parametrize("kind", ["dense", "sparse", "mixed"])
@pytest.mark.parametrize("threshold", [16, 4 << 20])
def test_answers_as_a_set_does(kind, threshold, monkeypatch):
    monkeypatch.setattr(seen_ids, "CONSOLIDATE_BYTES", threshold)
    rng = np.random.default_rng(0)
    seen, reference = SeenIds(), set()
    for chunk in _chunks(kind, rng):
        probe = np.concatenate([chunk, chunk + 1, chunk - 1, [1, 2**63 - 1, 3]])
        expected = np.array([int(i) in reference for i in probe])
        np.testing.assert_array_equal(seen.contains(probe), expected)
        seen.add(chunk)
        reference.update(int(i) for i in chunk)
    assert seen.contains(np.array(sorted(reference), dtype=np.int64)).all()


def test_dense_ids_take_a_bit_each_sparse_ones_no_more_than_their_arrays(monkeypatch):
    monkeypatch.setattr(seen_ids, "CONSOLIDATE_BYTES", 1 << 16)
    rng = np.random.default_rng(1)
    dense, sparse = SeenIds(), SeenIds()
    for chunk in _chunks("dense", rng):
        dense.add(chunk)
    for chunk in _chunks("sparse", rng):
        sparse.add(chunk)
    assert dense.nbytes <= 60_000 / 8 + 16  # one bit per number of the range
    assert sparse.nbytes == 8 * 40_000  # sorted int64 arrays, as before


def test_consolidating_never_holds_a_byte_per_id_of_the_range(monkeypatch):
    """The bitmap is built packed: an unpacked copy of the range grew the peak by 30 MB at 10M."""
    monkeypatch.setattr(seen_ids, "CONSOLIDATE_BYTES", 1 << 16)
    ids = np.random.default_rng(2).permutation(np.arange(7_000_003, 8_000_003))
    chunks = np.array_split(ids, 200)  # 5,000 ids a chunk: temporaries far below the range
    seen = SeenIds()
    tracemalloc.start()
    try:
        for chunk in chunks:
            seen.add(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen.contains(ids).all() and seen.nbytes < len(ids) / 4  # a bitmap, not arrays
    assert peak < len(ids) / 2  # two bitmaps are a quarter; a byte per id would be the whole
