"""The API as an application factory, so uvicorn can run it in several worker processes.

`homevision serve` runs `uvicorn.run(APP_FACTORY, factory=True, workers=N)`: uvicorn spawns N
processes and each calls `create_from_env()` once, so each loads the model once, at start-up.
A spawned worker shares nothing with the command that started it but its environment and
working directory, so everything the workers need travels there:

- HOMEVISION_MODEL_REF: the model reference (absent or empty: the champion);
- HOMEVISION_HOME, HOMEVISION_PARAMS, MLFLOW_TRACKING_URI: the project root, params.yaml and
  tracking store, read by homevision.config and homevision.tracking as in every command;
- HOMEVISION_VERBOSE=1: debug logging;
- HOMEVISION_NATIVE_THREADS: the BLAS and OpenMP threads each worker may run (`native_threads`:
  the cores split between the workers);
- PROMETHEUS_MULTIPROC_DIR: the folder where every worker keeps its Prometheus metrics, so that
  GET /metrics, whichever worker answers it, adds up all of them. It must be set, and empty,
  before the workers start: `homevision serve` does it (`multiprocess_metrics`).

The same factory serves `uvicorn --factory homevision.serving.app:create_from_env --workers N`;
set PROMETHEUS_MULTIPROC_DIR to an empty folder first, or each scrape sees one worker's counts.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

APP_FACTORY = "homevision.serving.app:create_from_env"
MODEL_REF_ENV = "HOMEVISION_MODEL_REF"
VERBOSE_ENV = "HOMEVISION_VERBOSE"
THREADS_ENV = "HOMEVISION_NATIVE_THREADS"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client in every worker
# The files prometheus_client writes there: `<type>_<pid>.db` (prometheus_client/values.py).
METRIC_FILE = re.compile(r"(counter|histogram|summary|gauge_[a-z]+)_\d+\.db")

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Return the number of CPU cores this process may run on (at least 1): the default worker
    count, one model-serving process per core."""
    process_cpu_count = getattr(os, "process_cpu_count", None)  # Python 3.13+
    if process_cpu_count is not None:
        cores = process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):  # Linux: honours CPU affinity (taskset, cgroups)
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count()
    return max(1, cores or 1)


def native_threads(workers: int, cores: int | None = None) -> int:
    """Return the BLAS and OpenMP threads each of `workers` server processes may run: the cores
    split between them, at least one. Left alone, every worker's numpy starts a BLAS thread per
    core, and N workers run N x cores threads that wait on each other: on 2 cores with 2
    workers, explanations (a few matrix products each) were served at 97 a second to 8
    clients, and at 261 with one thread per worker."""
    return max(1, (cores or default_workers()) // max(1, workers))


def limit_native_threads(threads: int) -> int:
    """Limit this process's BLAS and OpenMP thread pools to `threads` (threadpoolctl: the
    pools are already loaded, so environment variables would come too late); return the
    most threads any of them now runs."""
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=threads)  # kept for the life of the process
    return max((pool["num_threads"] for pool in threadpool_info()), default=threads)


@contextmanager
def multiprocess_metrics(workers: int) -> Iterator[Path | None]:
    """Prepare PROMETHEUS_MULTIPROC_DIR for a server of `workers` processes, for as long as it
    runs; yield the folder (None: one process, metrics kept in memory).

    Several workers: a new temporary folder, removed when the block ends (a server killed with
    SIGKILL leaves it behind, in the temporary directory). A folder already named by the
    environment is used, even for one worker, and emptied of prometheus_client's own files first
    (files left by an earlier server would add its counts and model versions to this one's);
    any other file there, a database included, is left alone."""
    given = os.environ.get(METRICS_DIR_ENV)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            if METRIC_FILE.fullmatch(stale.name):  # never another program's database
                stale.unlink()
        log.info("Metrics of the workers are gathered in %s (%s)", folder, METRICS_DIR_ENV)
        yield folder
        return
    if workers <= 1:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="homevision-metrics-"))
    os.environ[METRICS_DIR_ENV] = str(folder)
    log.info("Metrics of the %d workers are gathered in %s", workers, folder)
    try:
        yield folder
    finally:
        os.environ.pop(METRICS_DIR_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def create_from_env() -> FastAPI:
    """Return the API for the model named by HOMEVISION_MODEL_REF (absent: the champion).

    Called once per worker process by uvicorn. A spawned worker starts with bare logging, so
    the CLI's logging is set up here unless the process already has it (a single-process
    server runs the factory inside the CLI)."""
    from homevision.logging_setup import setup_logging
    from homevision.serving.api import create_app  # imported here: the supervisor needs none

    if not logging.getLogger().handlers:
        setup_logging(verbose=os.environ.get(VERBOSE_ENV) == "1")
    threads = os.environ.get(THREADS_ENV)
    if threads:
        running = limit_native_threads(int(threads))
        log.info("Native threads (BLAS, OpenMP) in this worker: %d", running)
    return create_app(os.environ.get(MODEL_REF_ENV) or None)
