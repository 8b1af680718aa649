"""Batch valuation memory does not grow with the export (issue 25): the peak resident memory
of `predict --data --workers 2` (the calling process, the forkserver and the workers together)
grows by at most 5% from 1M to 4M rows. Minutes of work: marked `scale`, run with
`pytest -m scale` (benchmarks/memory.py prints the same figures up to 10M rows)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest

from homevision.config import DEFAULT_CHUNK_ROWS

pytestmark = [pytest.mark.slow, pytest.mark.scale]
ROOT = Path(__file__).resolve().parents[2]


def test_peak_memory_is_flat_from_one_to_four_million_rows(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import memory
    import throughput

    model, _ = throughput.fit_model("task6", "cv_plus")
    model_path = tmp_path / "model.pkl"
    model_path.write_bytes(pickle.dumps(model))
    peaks = {}
    for rows in (1_000_000, 4_000_000):
        export = throughput.export_file(rows, "parquet", tmp_path)
        result = memory.measure(model_path, export, workers=2, chunk_rows=DEFAULT_CHUNK_ROWS)
        assert result["rows"] == rows
        peaks[rows] = result["tree_mib"]
        export.unlink()
    assert peaks[4_000_000] <= 1.05 * peaks[1_000_000], peaks
