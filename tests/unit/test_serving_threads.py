"""Each server worker runs its share of the cores' native (BLAS, OpenMP) threads, not one per
core: N workers with a BLAS thread per core would run N x cores threads that wait on each
other."""

from __future__ import annotations

import subprocess
import sys

import pytest

from homevision.serving.app import native_threads


@pytest.mark.parametrize(
    ("workers", "cores", "threads"), [(2, 2, 1), (2, 16, 8), (3, 16, 5), (4, 2, 1), (1, 4, 4)]
)
def test_the_cores_are_split_between_the_workers(workers, cores, threads):
    assert native_threads(workers, cores) == threads


def test_a_limit_holds_for_every_native_pool_already_loaded():
    """In a fresh process whose numpy (hence BLAS) is loaded first, as in a worker."""
    code = (
        "import numpy, sklearn.cluster\n"
        "from threadpoolctl import threadpool_info\n"
        "from homevision.serving.app import limit_native_threads\n"
        "print(limit_native_threads(1), sorted({p['num_threads'] for p in threadpool_info()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "[1]"]
