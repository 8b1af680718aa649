"""Spark's Python daemon with the valuation code already imported (`spark.python.daemon.module`,
set by homevision.valuation.spark.create_session).

Spark starts one daemon per executor and forks a Python worker from it for each task. With the
stock daemon (pyspark.daemon) every worker imports pandas, pyarrow, scikit-learn and homevision
when it unpickles the valuation stage: about 4 s per worker, paid by every worker at once on a
small machine. Here the daemon imports them once and the workers inherit them, as
homevision.valuation.parallel's forkserver does for the pandas path.

pyspark's own daemon imports nothing before it forks, so that no thread is running at the
fork. BLAS is held to one thread before numpy loads (a Spark task is one core, and the workers
run one BLAS thread anyway: spark._job), so the only thread left is jemalloc's background
thread in pyarrow, which jemalloc's own fork handlers look after (the pandas path's forkserver
forks after the same imports).
"""

from __future__ import annotations

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import homevision.valuation.spark  # noqa: E402, F401  (the import is the point: workers inherit it)

if __name__ == "__main__":
    from pyspark.daemon import manager

    manager()
