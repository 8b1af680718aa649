"""Several worker processes tuning one Optuna study in a shared database.

The parent creates the study (two processes creating it at once on an empty database race),
then starts the workers (spawned processes: a fresh interpreter each, no forked threads or
connections). Each worker loads the study by name, waits (up to READY_WAIT) until the pool's
other first workers have loaded theirs too, so the one that imports fastest does not take every
trial of a short study, and runs one trial per ticket it takes from a counter the parent
shares, so all of them together run exactly the trials asked for. The parent
shows progress by reading the study, and when a worker is killed it refunds the ticket of the
trial that did not finish and starts another worker; the study's heartbeats fail the dead
worker's trial after their grace period and queue its parameters again.

Only a database built for concurrent writers takes several workers (PostgreSQL, MySQL): SQLite
locks the whole file per write and an in-memory study lives in one process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from typing import Any

import optuna
import pandas as pd

from homevision.features import FeatureSet
from homevision.training.card import fmt_metric
from homevision.training.evaluation import Split
from homevision.training.tuning import (
    HEARTBEAT,
    WORKER_ATTR,
    Heartbeat,
    TrialCallback,
    TuningResult,
    make_objective,
    open_study,
    prepare_study,
    rows_key,
    tuning_result,
    worker_tag,
)

log = logging.getLogger(__name__)
CONCURRENT_SCHEMES = ("postgresql", "mysql")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
UNLIMITED = 2**62  # tickets when only a timeout bounds the run
READY_WAIT = 60.0  # seconds a first worker waits for the others to be ready before starting
SPAWN = multiprocessing.get_context("spawn")


def check_storage(storage: str | None, workers: int) -> None:
    """Refuse several workers on a storage that cannot take concurrent writers, in one sentence."""
    if workers < 1:
        raise ValueError("--workers must be at least 1")
    scheme = (storage or "").split(":", 1)[0].split("+", 1)[0]
    if workers > 1 and scheme not in CONCURRENT_SCHEMES:
        raise ValueError(
            f"--workers {workers} needs a PostgreSQL or MySQL --storage URL (SQLite takes one "
            "writer at a time and a study in memory lives in one process)"
        )


class Tickets:
    """A count of trials still to run, shared by the parent and its spawned workers."""

    def __init__(self, n: int) -> None:
        self._left = SPAWN.Value("q", n)

    def take(self, taken: Any) -> bool:
        """Take one ticket (adding it to this worker's `taken` count); False when none is left."""
        with self._left.get_lock():
            if self._left.value <= 0:
                return False
            self._left.value -= 1
            taken.value += 1
            return True

    def refund(self, n: int) -> None:
        with self._left.get_lock():
            self._left.value += n

    @property
    def left(self) -> int:
        return int(self._left.value)


@dataclass(frozen=True)
class WorkerJob:
    """Everything a worker needs to run trials of a study (pickled to the spawned process)."""

    candidate: str
    feature_set: FeatureSet
    X: pd.DataFrame
    y: pd.Series
    splits: list[list[Split]]
    storage: str
    study_name: str
    seed: int = 0
    n_jobs: int = 1  # CV processes per worker: the workers already use the cores
    on_trial: TrialCallback | None = None  # must pickle: a module-level function or object
    heartbeat: Heartbeat = HEARTBEAT
    deadline: float | None = None  # time.time() after which no worker starts a trial
    metric: str = "rmse"  # the CV metric the trials minimise


def run_worker(
    job: WorkerJob, tickets: Tickets, taken: Any, index: int, ready: Any, size: int
) -> None:
    """A worker's life: load the study, wait for the pool's first `size` workers to be ready
    (`ready` counts them; a replacement finds them all there), then run one trial per ticket
    until none is left."""
    os.environ.pop("MLFLOW_RUN_ID", None)  # never resume the parent's run here
    study = open_study(
        job.storage,
        job.study_name,
        job.seed + 1 + index,  # workers with one seed would propose the same parameters
        create=False,
        heartbeat=job.heartbeat,
        constant_liar=True,  # running trials of other workers count as likely bad, not as holes
    )
    objective = make_objective(
        job.candidate,
        job.feature_set,
        job.X,
        job.y,
        job.splits,
        job.n_jobs,
        job.on_trial,
        metric=job.metric,
    )
    with ready.get_lock():
        ready.value += 1
    waited_until = time.time() + READY_WAIT
    while ready.value < size and time.time() < waited_until:
        time.sleep(0.05)
    while (job.deadline is None or time.time() < job.deadline) and tickets.take(taken):
        study.optimize(objective, n_trials=1)


@dataclass
class _Worker:
    process: SpawnProcess
    taken: Any  # tickets taken, a shared counter


@dataclass
class WorkerPool:
    """Spawned workers running `job` until `tickets` are spent; replaces killed ones."""

    job: WorkerJob
    size: int
    tickets: Tickets
    workers: list[_Worker] = field(default_factory=list)
    started: int = 0
    ready: Any = field(default_factory=lambda: SPAWN.Value("q", 0))  # workers ready to run

    def start(self) -> None:
        for _ in range(self.size):
            self._spawn()

    def _spawn(self) -> None:
        taken = SPAWN.Value("q", 0)
        process = SPAWN.Process(
            target=run_worker,
            args=(self.job, self.tickets, taken, self.started, self.ready, self.size),
            name=f"homevision-tune-{self.started}",
        )  # not daemonic: a worker may start CV processes (n_jobs > 1); stop() ends them
        process.start()
        self.started += 1
        self.workers.append(_Worker(process, taken))

    def check(self, study: optuna.Study) -> bool:
        """Reap workers that ended; return True while any runs. A worker that raised stops the
        pool (its error is on stderr); a killed one gets its unfinished trial's ticket refunded
        and a replacement while trials are left (at most `size` replacements in all)."""
        for worker in list(self.workers):
            code = worker.process.exitcode
            if code is None:
                continue
            self.workers.remove(worker)
            if code > 0:
                self.stop()
                raise RuntimeError(
                    f"tuning worker {worker.process.pid} failed (exit code {code}); "
                    "its error is printed above"
                )
            if code < 0:
                self._replace(worker, study, -code)
        return bool(self.workers)

    def _replace(self, worker: _Worker, study: optuna.Study, signal: int) -> None:
        tag = worker_tag(worker.process.pid)
        finished = sum(
            t.user_attrs.get(WORKER_ATTR) == tag
            for t in study.get_trials(deepcopy=False, states=FINISHED)
        )
        lost = int(worker.taken.value) - finished
        self.tickets.refund(lost)
        log.warning(
            "tuning worker %s was killed (signal %d) with %d trial(s) unfinished; its running "
            "trial fails when its heartbeat is %d s old and is queued again",
            worker.process.pid,
            signal,
            lost,
            self.job.heartbeat.grace,
        )
        if self.tickets.left > 0 and self.started < 2 * self.size:
            self._spawn()

    def stop(self) -> None:
        """Terminate the workers still running (their trials fail by heartbeat)."""
        for worker in self.workers:
            worker.process.terminate()
        for worker in self.workers:
            worker.process.join(timeout=30)
        self.workers.clear()


def tune_in_workers(
    candidate: str,
    feature_set: FeatureSet,
    X: pd.DataFrame,
    y: pd.Series,
    splits: list[list[Split]],
    *,
    storage: str,
    study_name: str,
    workers: int,
    n_trials: int | None = 20,
    timeout: float | None = None,
    seed: int = 0,
    n_jobs: int = 1,
    on_trial: TrialCallback | None = None,
    enqueue_defaults: bool = True,
    data_key: str | None = None,
    heartbeat: Heartbeat = HEARTBEAT,
    poll_seconds: float = 1.0,
    metric: str = "rmse",
) -> TuningResult:
    """Run `n_trials` trials of `candidate` (or until `timeout`) in `workers` processes on one
    study in `storage`, logging progress; return the study's best params and CV `metric`.

    `on_trial` runs in the workers, so it must pickle (a module-level function or an object).
    """
    check_storage(storage, workers)
    if n_trials is None and timeout is None:
        raise ValueError("give a trial count or a timeout")
    study = prepare_study(
        candidate,
        storage,
        study_name,
        seed=seed,
        data_key=data_key or rows_key(X, y, splits, feature_set),
        enqueue_defaults=enqueue_defaults,
        heartbeat=heartbeat,
    )
    start = time.time()
    job = WorkerJob(
        candidate,
        feature_set,
        X,
        y,
        splits,
        storage,
        study_name,
        seed=seed,
        n_jobs=n_jobs,
        on_trial=on_trial,
        heartbeat=heartbeat,
        deadline=None if timeout is None else start + timeout,
        metric=metric,
    )
    pool = WorkerPool(job, workers, Tickets(UNLIMITED if n_trials is None else n_trials))
    before = len(study.get_trials(deepcopy=False, states=FINISHED))
    total = "?" if n_trials is None else str(n_trials)
    log.info("Tuning %s: %s trials in %d workers, study %s", candidate, total, workers, study_name)
    shown = 0
    pool.start()
    try:
        running = True
        while running:
            time.sleep(poll_seconds)
            running = pool.check(study)
            shown = _show_progress(study, before, total, shown, start, metric)
    finally:
        pool.stop()
    return tuning_result(study, candidate, metric)


def _show_progress(
    study: optuna.Study, before: int, total: str, shown: int, start: float, metric: str = "rmse"
) -> int:
    """Log the trials finished so far and the best CV `metric` when the count moved; return
    it."""
    done = len(study.get_trials(deepcopy=False, states=FINISHED)) - before
    if done != shown:
        try:
            best = fmt_metric(metric, study.best_value)
        except ValueError:  # no completed trial yet
            best = "none yet"
        log.info(
            "  %d/%s trials, best CV %s %s (%.0f s)",
            done,
            total,
            metric.upper(),
            best,
            time.time() - start,
        )
    return done
