"""Chunks valued on worker processes come back in order, equal to one process's."""

from __future__ import annotations

import os

import pytest

from homevision.valuation import parallel


def scaled(model: int, value: int) -> tuple[int, int]:
    """A job for the workers: the value times the "model", and the process that computed it."""
    return model * value, os.getpid()


def test_jobs_after_the_first_go_to_the_workers_in_order(workers_start_first):
    results = list(parallel.value_in_order(3, [(v,) for v in range(12)], scaled, workers=2))
    assert [r[0] for r in results] == [3 * v for v in range(12)]
    pids = [r[1] for r in results]
    assert set(pids[:2]) == {os.getpid()}
    assert os.getpid() not in pids[2:]


def test_one_worker_or_few_jobs_start_no_process(monkeypatch):
    def refuse(*_):
        raise AssertionError("a pool was started")

    monkeypatch.setattr(parallel, "_start_pool", refuse)
    for workers, jobs in ((1, 12), (2, parallel.START_AFTER)):
        results = list(parallel.value_in_order(2, [(v,) for v in range(jobs)], scaled, workers))
        assert results == [(2 * v, os.getpid()) for v in range(jobs)]


def test_a_failing_job_raises_here(workers_start_first):
    with pytest.raises(TypeError):
        list(parallel.value_in_order(3, [(1,), (2,), (None,), (4,)], scaled, workers=2))


POOL_OF = """
from homevision.valuation.parallel import return_freed_memory
return_freed_memory()
import os, pyarrow
print(pyarrow.default_memory_pool().backend_name, os.environ["ARROW_DEFAULT_MEMORY_POOL"])
"""


@pytest.mark.parametrize(("given", "expected"), [(None, "system"), ("mimalloc", "mimalloc")])
def test_a_parquet_stream_allocates_from_the_system_unless_the_user_chose(given, expected):
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != parallel.ARROW_POOL}
    if given:
        env[parallel.ARROW_POOL] = given
    out = subprocess.run(
        [sys.executable, "-c", POOL_OF], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    # Arrow's own pool and the variable the workers inherit agree.
    assert out == [expected, expected]


def test_parquet_is_told_by_its_name_or_its_first_bytes_without_pyarrow(tmp_path):
    from homevision.data.sources import is_parquet

    (tmp_path / "export.csv").write_text("MLSNumber\n1\n")
    (tmp_path / "renamed.dat").write_bytes(b"PAR1" + b"\0" * 8)
    assert is_parquet(tmp_path / "any.parquet")
    assert is_parquet(tmp_path / "renamed.dat")
    assert not is_parquet(tmp_path / "export.csv")
    assert not is_parquet(tmp_path / "missing.csv")


def test_a_worker_start_takes_the_model_and_freezes_what_it_holds():
    """_start (each worker's initializer) loads the model, sets the ready event and moves every
    object so far out of the collector's walks (gc.freeze), so a long run does not copy the
    forkserver's shared pages into the worker."""
    import gc
    import pickle
    import threading

    ready = threading.Event()
    try:
        parallel._start(pickle.dumps({"model": 1}), ready)
        assert ready.is_set() and parallel._model == {"model": 1}
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        parallel._limits.restore_original_limits()
        parallel._model = parallel._limits = None
