"""PostgreSQL for the team services: a cluster of Debian's `postgresql` package that accepts
password logins only (scram-sha-256, no `trust`), on 127.0.0.1, created and started here.

The passwords are generated on first start (service_secrets, mode 0600). The superuser's
(`homevision_admin`) reaches initdb through a password file and is used by `start` alone; the
role every client logs in as (`homevision`, no superuser: pg_roles) reaches them through the
libpq password file: neither is on an argv. A cluster made by an older homevision with
`trust`, or with `homevision` as its superuser, is hardened and migrated in place.
As root the cluster runs as the user `postgres`; when that user cannot reach the services dir,
the cluster lives in its home instead (nothing's permissions are widened).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from homevision.service_secrets import (
    PG_ADMIN_PASSWORD,
    PG_PASSWORD,
    ensure_secret,
    read_secret,
    write_private,
)
from homevision.services import pg_roles
from homevision.services.processes import command_line, port_in_use, service_env
from homevision.services.settings import DATABASES, PG_USER, Settings, pgpass_line

log = logging.getLogger("homevision.services")
POSTGRES_HOME = Path("/var/lib/postgresql")


class ServiceError(RuntimeError):
    """A service that cannot be started or stopped as asked, in one sentence."""


def is_root() -> bool:
    return os.geteuid() == 0


def find_bin(settings: Settings, install: bool = False) -> Path | None:
    """Return the newest PostgreSQL bin folder; with `install`, apt-get installs the package
    when there is none (only `start` installs: `status` never changes the machine)."""
    found = sorted(settings.pg_root.glob("*/bin"), key=lambda p: _version(p.parent.name))
    if found or not install:
        return found[-1] if found else None
    log.info("installing PostgreSQL (Debian package postgresql)")
    sudo = [] if is_root() else ["sudo"]
    env = service_env({"DEBIAN_FRONTEND": "noninteractive"})
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", "postgresql"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return find_bin(settings)


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", name))


def as_pg(cmd: list[str]) -> list[str]:
    """Return `cmd` run as the cluster's owner: postgres when we are root, else ourselves."""
    return ["runuser", "-u", "postgres", "--", *cmd] if is_root() else cmd


def run_pg(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run `cmd` as the cluster's owner with service_env's environment and return it: the
    postmaster inherits what pg_ctl has, and no secret of ours belongs there. With check=True
    a failure is a ServiceError naming the program and its last line of output, not a
    traceback (review defect 5: two starts at once raced pg_ctl start)."""
    try:
        return subprocess.run(as_pg(cmd), env=service_env(), **kwargs)
    except subprocess.CalledProcessError as err:
        raise ServiceError(_failure(cmd, err)) from None


def _failure(cmd: list[str], err: subprocess.CalledProcessError) -> str:
    """Return the sentence for a PostgreSQL program that failed: which, its exit code, and
    its last line of output when it was captured (else it is on the terminal above)."""
    actions = [arg for arg in cmd[1:] if arg in ("start", "stop", "reload")]
    what = " ".join([Path(cmd[0]).name, *actions])
    output = err.stderr or err.stdout or b""
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    lines = text.strip().splitlines()
    reason = f": {lines[-1][:300]}" if lines else " (its reason is above)"
    return f"{what} failed with exit code {err.returncode}{reason}"


def pgdata(settings: Settings) -> Path:
    """Return the cluster's folder: `<services dir>/pg`, or, as root when the user postgres
    cannot reach the services dir, a folder of its own home named after the services dir."""
    if not is_root() or _postgres_reaches(settings.dir):
        return settings.pgdata
    digest = hashlib.sha256(str(settings.dir).encode()).hexdigest()[:12]
    return POSTGRES_HOME / f"homevision-{digest}"


def _postgres_reaches(folder: Path) -> bool:
    probe = folder if folder.exists() else folder.parent
    return run_pg(["test", "-x", str(probe)], check=False).returncode == 0


def postmaster(data: Path) -> tuple[int, int] | None:
    """Return (pid, port) from the cluster's postmaster.pid when that pid is this cluster's
    postgres (its program is `postgres`, its -D is `data`); None when the file is absent or
    stale. A crash can leave the file naming a pid reused by another program (review defect
    4): pg_ctl only checks that the pid lives, so such a program would be signalled."""
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    argv = command_line(pid)
    if not argv or Path(argv[0]).name != "postgres" or not _exe_is_postgres(pid):
        return None
    given = argv[argv.index("-D") + 1] if "-D" in argv[:-1] else None
    if given is None or Path(given).resolve() != data.resolve():
        return None
    return pid, port


def _exe_is_postgres(pid: int) -> bool:
    """Return whether process `pid` runs a binary named postgres (True where /proc will not
    say: its argv was checked already)."""
    try:
        return Path(os.readlink(f"/proc/{pid}/exe")).name == "postgres"
    except OSError:
        return True


def running(settings: Settings) -> bool:
    """Return whether our cluster runs (postmaster.pid names its live postgres)."""
    return postmaster(pgdata(settings)) is not None


def _refuse_another_port(settings: Settings, found: tuple[int, int] | None) -> None:
    """Raise ServiceError when our cluster runs on another port than settings.pg_port (review
    defect 7: start then said "already runs" on the new one and rewrote the password file)."""
    if found is not None and found[1] != settings.pg_port:
        raise ServiceError(
            f"our cluster runs on port {found[1]}: stop it first (make services-stop) or set "
            f"HOMEVISION_PG_PORT={found[1]} (it is {settings.pg_port} now)"
        )


def _remove_stale_lock(data: Path) -> None:
    """Remove a postmaster.pid that names no postgres of this cluster, signalling nobody (it
    would also keep the cluster from starting)."""
    lock = data / "postmaster.pid"
    if lock.exists() and postmaster(data) is None:
        log.warning(
            "%s names a process that is not this cluster's postgres (left by a crash): "
            "nothing signalled, the stale file removed",
            lock,
        )
        lock.unlink(missing_ok=True)


def start(settings: Settings) -> None:
    """Create (first time), harden (a trust cluster of old), start the cluster and create the
    databases; idempotent."""
    bindir = find_bin(settings, install=True)
    if bindir is None:
        raise ServiceError("PostgreSQL is not installed and apt-get could not install it")
    data = pgdata(settings)
    if read_secret(PG_PASSWORD, settings.dir) is None and (data / "PG_VERSION").exists():
        raise ServiceError(
            f"{settings.pg_password_file} is missing, but the cluster in {data} was made with "
            "its password, which cannot be read back: restore the file from a backup of the "
            f"services' secrets, or move {data} away to start a new, empty cluster"
        )
    _refuse_another_port(settings, postmaster(data))
    password = ensure_secret(PG_PASSWORD, settings.dir)
    write_private(settings.pgpass, pgpass_line("127.0.0.1", settings.pg_port, PG_USER, password))
    if data != settings.pgdata:
        log.info("the user postgres cannot reach %s: the cluster lives in %s", settings.dir, data)
    if not (data / "PG_VERSION").exists():
        init_cluster(data, bindir, ensure_secret(PG_ADMIN_PASSWORD, settings.dir))
    if running(settings):
        log.info("PostgreSQL already runs on 127.0.0.1:%d", settings.pg_port)
    else:
        _remove_stale_lock(data)
        if port_in_use(settings.pg_port):
            raise ServiceError(
                f"port {settings.pg_port} on 127.0.0.1 is taken by a program that is not this "
                "project's PostgreSQL: stop it or set HOMEVISION_PG_PORT"
            )
        pg_ctl_start(settings, bindir, data)
    if _trusting(data):
        _harden(settings, bindir, data, password)
    _settle_roles(settings, data, password)


def pg_ctl_start(settings: Settings, bindir: Path, data: Path) -> None:
    """Start the cluster in `data` on 127.0.0.1:pg_port (no Unix socket) and wait for it."""
    run_pg(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(data / "postgres.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-h 127.0.0.1 -p {settings.pg_port} -k ''",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    log.info("PostgreSQL started on 127.0.0.1:%d", settings.pg_port)


def _settle_roles(settings: Settings, data: Path, password: str) -> None:
    """pg_roles.settle, its failures as one-sentence ServiceErrors."""
    import psycopg

    try:
        pg_roles.settle(settings, data, password)
    except pg_roles.RoleError as err:
        raise ServiceError(str(err)) from None
    except psycopg.Error as err:
        raise ServiceError(database_failure(settings.database_url("postgres"), err)) from None


def init_cluster(data: Path, bindir: Path, password: str, user: str = pg_roles.ADMIN_USER) -> None:
    """initdb with password authentication only, `user` its superuser; the password goes
    through a private file."""
    log.info("creating the PostgreSQL cluster in %s", data)
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    if is_root():
        shutil.chown(data, "postgres", "postgres")
    folder = Path(tempfile.mkdtemp(prefix="homevision-initdb-"))  # 0700
    pwfile = folder / "pwfile"
    try:
        write_private(pwfile, password + "\n")
        if is_root():
            shutil.chown(folder, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        run_pg(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                user,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _hba_lines(data: Path) -> list[str]:
    return (data / "pg_hba.conf").read_text().splitlines(keepends=True)


def _trusting(data: Path) -> bool:
    """Return whether pg_hba.conf lets anyone in without a password (an older cluster)."""
    return any(
        line.split()[-1:] == ["trust"] for line in _hba_lines(data) if not line.startswith("#")
    )


def _harden(settings: Settings, bindir: Path, data: Path, password: str) -> None:
    """Give the role its password (over the connection, still trusted), then switch every
    `trust` line of pg_hba.conf to scram-sha-256 and reload."""
    import psycopg
    from psycopg import sql

    log.info("hardening the PostgreSQL cluster: password logins only from now on")
    url = settings.database_url("postgres")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET password_encryption = 'scram-sha-256'")
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(PG_USER), sql.Literal(password)
                )
            )
    except psycopg.Error as err:
        raise ServiceError(database_failure(url, err)) from None
    hba = data / "pg_hba.conf"
    lines = [
        line if line.startswith("#") else re.sub(r"\btrust(\s*)$", r"scram-sha-256\1", line)
        for line in _hba_lines(data)
    ]
    hba.write_text("".join(lines))
    run_pg(
        [str(bindir / "pg_ctl"), "-D", str(data), "reload"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def create_databases(admin_url: str, settings: Settings) -> None:
    """Create the databases the services use (mlflow, optuna, mlflow_auth) when missing.
    Raises ServiceError naming the server (never its password) when it refuses."""
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            for name in DATABASES:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if exists.fetchone() is None:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as err:
        raise ServiceError(database_failure(admin_url, err)) from None


def database_failure(url: str, err: Exception) -> str:
    """Return the sentence for a PostgreSQL server that refused us: where (the URL without
    its password) and the first line of why (review defect 8: a psycopg traceback)."""
    from homevision.services.settings import database_url

    where = database_url(url, urlsplit(url).path.lstrip("/") or "postgres")
    lines = str(err).strip().splitlines() or [type(err).__name__]
    return f"cannot reach PostgreSQL at {where}: {lines[0][:300]}"


def stop(settings: Settings) -> None:
    """Stop our cluster (its data is kept)."""
    bindir = find_bin(settings)
    if bindir is None:
        return
    if not running(settings):
        _remove_stale_lock(pgdata(settings))
        return
    run_pg(
        [str(bindir / "pg_ctl"), "-D", str(pgdata(settings)), "-m", "fast", "-w", "stop"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    log.info("PostgreSQL stopped")


def status(settings: Settings) -> tuple[bool, str]:
    """Return (up, one line) for `status`; never installs anything."""
    bindir = find_bin(settings)
    if bindir is None:
        return False, "PostgreSQL: not installed (make services installs it)"
    found = postmaster(pgdata(settings))
    if found is not None:
        moved = (
            f"; HOMEVISION_PG_PORT says {settings.pg_port}" if found[1] != settings.pg_port else ""
        )
        return True, f"PostgreSQL: up (127.0.0.1:{found[1]}, password logins only{moved})"
    return False, "PostgreSQL: down"
