"""Whose process and whose port: the checks that keep `make services` from adopting or
signalling a program it did not start (issue 22, defect 8).

A pid file records the pid and the process's start time (field 22 of /proc/PID/stat): a pid
that was reused by another program after a crash has another start time, so it is not ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Mapping
from pathlib import Path

# What a service's process may inherit from the shell that ran `make services`: where programs
# and Python packages are, the locale, the time zone. Nothing else: that shell may hold the
# MLflow admin password, the signing key, a database URL or libpq's PG* settings (review
# defect 2: they were readable in /proc/<postmaster>/environ by the user postgres and, over
# SQL, by the superuser role).
INHERITED = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV")


def start_time(pid: int) -> int | None:
    """Return the start time (clock ticks after boot) of process `pid`, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def command_line(pid: int) -> list[str]:
    """Return the argv of process `pid` (empty when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def service_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment for a service's process: INHERITED and LC_* of ours, plus
    `extra` (what that service needs), so no secret of the caller's shell reaches it."""
    env = {k: v for k, v in os.environ.items() if k in INHERITED or k.startswith("LC_")}
    return env | dict(extra or {})


def write_pid(path: Path, pid: int) -> None:
    """Record `pid` and its start time in `path`."""
    path.write_text(f"{pid} {start_time(pid)}\n")


def recorded_pid(path: Path) -> int | None:
    """Return the pid a pid file names (None when there is no readable file)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def own_process(path: Path, marker: str) -> int | None:
    """Return the pid in `path` when that process is the one we started: alive, with the
    recorded start time, and `marker` in its command line. None otherwise."""
    try:
        fields = path.read_text().split()
        pid, started = int(fields[0]), int(fields[1])
    except (OSError, ValueError, IndexError):
        return None
    if start_time(pid) != started:
        return None
    return pid if any(marker in part for part in command_line(pid)) else None


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Return whether something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def stop_group(pid: int, timeout: float = 10.0) -> None:
    """Stop the process group that `pid` leads (started with start_new_session): TERM, then
    KILL after `timeout` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if start_time(pid) is None or _zombie(pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
