"""Value the chunks of a big export on several processes, in order.

Reading, the duplicate-id rule (it looks across chunks) and writing stay in the calling
process; each worker process holds one copy of the model and values whole chunks. Results are
yielded in the order the chunks were read, so the output is the one a single process writes.

Workers start from a fresh interpreter (forkserver where the platform has it, else spawn: no
fork of a process that runs BLAS or Arrow threads) and take a few seconds to import the
libraries and unpickle the model. They are started only once START_AFTER chunks have gone by
(a file of a few chunks starts no process at all), and until the first one is ready the
calling process goes on valuing the chunks itself.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

Job = TypeVar("Job", bound=tuple)
Result = TypeVar("Result")
# The module a worker's interpreter imports before it is forked (forkserver): the valuation
# code, once for all workers.
PRELOAD = ["homevision.valuation.stream"]
# Jobs valued here before workers are started: a file of one chunk is done before they would
# be ready (a worker's start, imports and model, takes seconds).
START_AFTER = 1

ARROW_POOL = "ARROW_DEFAULT_MEMORY_POOL"  # Arrow's allocator: mimalloc unless set
_model: Any = None  # a worker's copy of the model
_limits: Any = None  # a worker's BLAS thread limit, kept alive


def context() -> multiprocessing.context.BaseContext:
    """Return the start method workers use: forkserver (with PRELOAD) where available."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def _start(payload: bytes, ready: Any) -> None:
    """A worker's start: one BLAS thread and one explanation thread (the processes are the
    parallelism), the model, and everything so far frozen out of the garbage collector's
    walks."""
    global _model, _limits
    from threadpoolctl import threadpool_limits

    from homevision.valuation.explain import THREADS_ENV

    os.environ[THREADS_ENV] = "1"
    _limits = threadpool_limits(1)
    _model = pickle.loads(payload)
    # What the worker inherited and the model leave the collector's view: a full collection
    # writes into every object it walks, which copied the forkserver's shared pages into each
    # worker over a long run (the tree's peak grew 744 -> 821 MiB from 1M to 4M rows; 736 ->
    # 744 frozen).
    gc.freeze()
    ready.set()


def return_freed_memory() -> None:
    """Make Arrow allocate from the system allocator (glibc malloc) in this process and in the
    processes it starts (the workers); an ARROW_DEFAULT_MEMORY_POOL the user set stays in
    force. For a Parquet stream: pyarrow's default pool, mimalloc, keeps pages it has freed, and
    a stream frees a chunk's buffers every chunk. Reading 25,000-row chunks of Parquet, Arrow
    held at most 38 MiB while the process grew by 149 MiB (67 MiB with the system pool). Not
    for CSV: Arrow's CSV reader allocates on several threads, and glibc's per-thread arenas
    kept more (`predict --data` on a 250-column CSV: 1,190 MiB against 860-895 with mimalloc).
    Called before pyarrow is imported, it covers every allocation (Arrow reads the variable once,
    on import); after, those from pyarrow's Python API on."""
    if os.environ.get(ARROW_POOL):
        return
    os.environ[ARROW_POOL] = "system"
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())


def _run(value: Callable[..., Result], job: tuple) -> Result:
    return value(_model, *job)


def _done(result: Result) -> Future:
    future: Future = Future()
    future.set_result(result)
    return future


def value_in_order(
    model: Any, jobs: Iterable[Job], value: Callable[..., Result], workers: int
) -> Iterator[Result]:
    """Yield value(model, *job) for each job, in order, computed on `workers` processes
    (`value`: a module-level function, sent to them by name) once START_AFTER jobs have gone
    by; this process values the jobs before that and until a worker is ready. At most
    workers + 1 jobs are in flight, so memory stays bounded by the chunk size."""
    pool: ProcessPoolExecutor | None = None
    starter: threading.Thread | None = None
    ready: Any = None
    pending: deque[Future] = deque()
    try:
        for count, job in enumerate(jobs):
            if workers > 1 and count == START_AFTER:
                pool, ready, starter = _start_pool(model, workers)
            if ready is not None and ready.is_set():
                pending.append(pool.submit(_run, value, job))
            else:
                pending.append(_done(value(model, *job)))
            while len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        if pool is not None:
            starter.join()
            pool.shutdown(wait=True, cancel_futures=True)


def _start_pool(model: Any, workers: int) -> tuple[ProcessPoolExecutor, Any, threading.Thread]:
    """Return (pool, ready, starter): a pool whose workers are being started by the `starter`
    thread (the first submit waits for the forkserver to import PRELOAD; meanwhile the caller
    goes on valuing) and an event set once one of them holds the model."""
    ctx = context()
    ready = ctx.Event()
    payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    pool = ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_start, initargs=(payload, ready)
    )
    starter = threading.Thread(target=lambda: [pool.submit(int) for _ in range(workers)])
    starter.start()
    return pool, ready, starter
