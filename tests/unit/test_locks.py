"""One step each: the champion's compare-and-set and the reports' publication (issue 22,
defect 12), with the file lock (the advisory lock runs against PostgreSQL in
tests/integration/test_registry_races.py)."""

from __future__ import annotations

import shutil
import threading
import time

from homevision.locks import lock_database_url, lock_key, named_lock
from homevision.training import train


def test_the_lock_database_is_a_postgresql_url_in_libpq_form(monkeypatch):
    monkeypatch.delenv("HOMEVISION_LOCK_DATABASE_URL", raising=False)
    monkeypatch.delenv("HOMEVISION_OPTUNA_STORAGE", raising=False)
    assert lock_database_url() is None
    monkeypatch.setenv("HOMEVISION_OPTUNA_STORAGE", "sqlite:///optuna.db")
    assert lock_database_url() is None
    monkeypatch.setenv("HOMEVISION_OPTUNA_STORAGE", "postgresql+psycopg://u@h:5433/optuna?x=1")
    assert lock_database_url() == "postgresql://u@h:5433/optuna?x=1"
    assert lock_key("a") == lock_key("a") != lock_key("b")
    assert -(2**63) <= lock_key("a") < 2**63


def test_a_named_lock_excludes_a_second_holder(monkeypatch):
    monkeypatch.delenv("HOMEVISION_OPTUNA_STORAGE", raising=False)
    inside, order = threading.Event(), []

    def first():
        with named_lock("x"):
            inside.set()
            time.sleep(0.3)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait(5)
    with named_lock("x"):
        order.append("second in")
    thread.join()
    assert order == ["first out", "second in"]


def test_two_publications_leave_one_runs_set(tmp_path, monkeypatch):
    """Each run publishes 12 files; copies are slowed down so that, without the lock, the two
    runs interleave. The folder ends with one run's files only."""
    sets = {}
    for run in ("a", "b"):
        folder = tmp_path / run
        folder.mkdir()
        sets[run] = [folder / f"file{i}.txt" for i in range(12)]
        for path in sets[run]:
            path.write_text(run)
    copy = shutil.copyfile

    def slow_copy(src, dst):
        time.sleep(0.01)
        return copy(src, dst)

    monkeypatch.setattr(train.shutil, "copyfile", slow_copy)
    published = tmp_path / "reports"
    threads = [
        threading.Thread(target=train.publish, args=(sets[run], published, run)) for run in sets
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    contents = {path.read_text() for path in published.glob("file*.txt")}
    assert len(list(published.glob("file*.txt"))) == 12
    assert len(contents) == 1, "reports/ mixes two runs' files"
