"""Locks that make the champion move and the reports publication one step each.

The champion alias moves by compare-and-set (tracking.set_champion): read it, check it still
holds what the train decided against, move it, all under `champion_lock`. The lock is a
PostgreSQL advisory lock when a PostgreSQL database is configured (HOMEVISION_LOCK_DATABASE_URL,
else HOMEVISION_OPTUNA_STORAGE when it is one): trains on different machines then exclude each
other. Otherwise it is a file lock in the services dir, which excludes trains on this machine.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from filelock import FileLock

from homevision.service_secrets import apply_to_environment, services_dir

log = logging.getLogger(__name__)
LOCK_DATABASE_ENV = "HOMEVISION_LOCK_DATABASE_URL"
DEFAULT_TIMEOUT_SECONDS = 120.0


def lock_database_url() -> str | None:
    """Return the libpq URL of the database that holds advisory locks, None when there is none
    (SQLAlchemy's `postgresql+driver://` is turned into libpq's `postgresql://`)."""
    url = os.environ.get(LOCK_DATABASE_ENV) or os.environ.get("HOMEVISION_OPTUNA_STORAGE", "")
    if not url.startswith(("postgresql", "postgres:")):
        return None
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def lock_key(name: str) -> int:
    """Return the signed 64-bit advisory-lock key of a lock name (stable across machines)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def named_lock(name: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the lock `name` for the block (advisory lock or file lock, see the module).
    Raises TimeoutError when another holder keeps it longer than `timeout` seconds."""
    url = lock_database_url()
    if url is None:
        folder = services_dir() / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (re.sub(r"[^\w.-]", "_", name) + ".lock")
        lock = FileLock(path, timeout=timeout)
        try:
            lock.acquire()
        except TimeoutError:  # filelock.Timeout
            raise TimeoutError(
                f"the lock {name} ({path}) is held elsewhere for {timeout:g} s"
            ) from None
        try:
            yield
        finally:
            lock.release()
        return
    import psycopg
    from psycopg import sql

    apply_to_environment()
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("SET lock_timeout = {}").format(f"{int(timeout * 1000)}ms"))
        try:
            conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(name),))
        except psycopg.errors.LockNotAvailable:
            raise TimeoutError(f"the lock {name} is held elsewhere for {timeout:g} s") from None
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(name),))


def champion_lock(model_name: str) -> AbstractContextManager[None]:
    """Return the context that serialises champion moves of `model_name`."""
    return named_lock(f"homevision.champion.{model_name}")


def reports_lock(folder: Path):
    """Return the file lock that makes a publication of `folder` (reports/) one set."""
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(folder / ".publish.lock", timeout=DEFAULT_TIMEOUT_SECONDS)
