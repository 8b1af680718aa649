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
