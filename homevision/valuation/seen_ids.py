"""The MLS numbers of the chunks read so far (the duplicate rule across chunks), exact, in memory
that stays small however many chunks go by.

Each chunk's ids are kept as a sorted, unique int64 array (8 bytes an id, nothing copied when a
chunk is added). Once those arrays hold more than CONSOLIDATE_BYTES and more bytes than one
bitmap over the whole range of ids seen would, they become that bitmap: one bit per number in
the range. MLS numbers are dense (a board numbers its listings in sequence), so ten million
ids spread over twenty million numbers take 2.5 MB instead of 80 MB. Ids that stay sparse keep
their arrays, so memory is never above the arrays' own.
"""

from __future__ import annotations

import numpy as np

CONSOLIDATE_BYTES = 4 << 20  # arrays below this stay arrays: a bitmap is not worth building


class SeenIds:
    """A set of int64 ids, added a chunk at a time, asked about a chunk at a time."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []
        self._base = 0  # the id of the bitmap's bit 0
        self._bits: np.ndarray | None = None  # little-endian bits: id base + i is bit i

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Return, per id, whether an earlier chunk held it."""
        ids = np.asarray(ids, dtype=np.int64)
        found = np.zeros(len(ids), dtype=bool)
        if self._bits is not None:
            found |= self._in_bitmap(ids)
        for run in self._runs:
            at = np.searchsorted(run, ids).clip(max=len(run) - 1)
            found |= run[at] == ids
        return found

    def add(self, ids: np.ndarray) -> None:
        """Remember a chunk's ids (any order, repeats allowed)."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        if not len(ids):
            return
        if self._bits is not None:
            inside = self._inside(ids)
            offsets = ids[inside] - self._base
            np.bitwise_or.at(self._bits, offsets >> 3, (1 << (offsets & 7)).astype(np.uint8))
            ids = ids[~inside]
        if len(ids):
            self._runs.append(ids)
        self._consolidate()

    @property
    def nbytes(self) -> int:
        """Bytes held by the remembered ids."""
        bitmap = 0 if self._bits is None else self._bits.nbytes
        return bitmap + sum(run.nbytes for run in self._runs)

    def _inside(self, ids: np.ndarray) -> np.ndarray:
        offsets = ids - self._base  # no overflow: both are ids in 1..2**63 - 1
        return (offsets >= 0) & (offsets < 8 * len(self._bits))

    def _in_bitmap(self, ids: np.ndarray) -> np.ndarray:
        inside = self._inside(ids)
        offsets = np.where(inside, ids - self._base, 0)
        bits = (self._bits[offsets >> 3] >> (offsets & 7).astype(np.uint8)) & 1
        return inside & bits.astype(bool)

    def _consolidate(self) -> None:
        """Turn the arrays (and the bitmap) into one bitmap when that takes fewer bytes.

        Bits are set in the packed bitmap directly, a run at a time: an unpacked copy of the
        range (a byte per id) grew the peak by 30 MB at ten million ids.
        """
        arrays = sum(run.nbytes for run in self._runs)
        if arrays <= CONSOLIDATE_BYTES:
            return
        lows = [int(run[0]) for run in self._runs]
        highs = [int(run[-1]) for run in self._runs]
        if self._bits is not None:
            lows.append(self._base)
            highs.append(self._base + 8 * len(self._bits) - 1)
        low, high = min(lows) & ~7, max(highs)  # bit 0 on a byte boundary: bitmaps copy whole
        if (high - low + 1) / 8 > self.nbytes:
            return  # sparse ids: their arrays are smaller than a bitmap of their range
        bits = np.zeros((high - low) // 8 + 1, dtype=np.uint8)
        if self._bits is not None:
            start = (self._base - low) // 8
            bits[start : start + len(self._bits)] = self._bits
        for run in self._runs:
            offsets = run - low
            np.bitwise_or.at(bits, offsets >> 3, (1 << (offsets & 7)).astype(np.uint8))
        self._base, self._bits, self._runs = low, bits, []
