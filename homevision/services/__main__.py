"""`python -m homevision.services start|stop|status|env` (what scripts/services.sh runs)."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Callable

from filelock import FileLock, Timeout

from homevision.service_secrets import (
    MLFLOW_USER,
    SIGNING_KEY,
    SecretFileError,
    ensure_secret,
    write_private,
)
from homevision.services import mlflow_server, postgres
from homevision.services.postgres import ServiceError, create_databases
from homevision.services.settings import Settings, external_pgpass_line

USAGE = "usage: scripts/services.sh start|stop|status|env"
LOCK_WAIT_SECONDS = 300  # a start waits up to 90 s for MLflow and 60 s for PostgreSQL


def say(text: str) -> None:
    """Write the command's answer (stdout: the exports are meant for `eval`)."""
    sys.stdout.write(text + "\n")


def start(settings: Settings) -> None:
    """Secrets first (generated once), then PostgreSQL (ours, or the given database), then the
    MLflow server."""
    ensure_secret(SIGNING_KEY, settings.dir)
    if settings.external_url:
        line = external_pgpass_line(settings.external_url)
        if line is not None:
            write_private(settings.pgpass, line)
        create_databases(settings.external_url, settings)
    else:
        postgres.start(settings)
    mlflow_server.start(settings)


def stop(settings: Settings) -> None:
    mlflow_server.stop(settings)
    if not settings.external_url:
        postgres.stop(settings)


def status(settings: Settings) -> int:
    """Print one line per service; return 1 when one is down."""
    lines = [] if settings.external_url else [postgres.status(settings)]
    lines.append(mlflow_server.status(settings))
    say("\n".join(line for _, line in lines))
    return 0 if all(up for up, _ in lines) else 1


def exclusively(settings: Settings, action: Callable[[Settings], None]) -> None:
    """Run `action` (start or stop) holding `<services dir>/.services.lock`: two at once would
    start two MLflow servers (one orphaned) or race pg_ctl (review defect 5)."""
    settings.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = settings.dir / ".services.lock"
    try:
        with FileLock(path, timeout=LOCK_WAIT_SECONDS):
            action(settings)
    except Timeout:
        raise ServiceError(
            f"another start or stop of these services holds {path} for over "
            f"{LOCK_WAIT_SECONDS} s: wait for it, or end it"
        ) from None


def env_lines(settings: Settings) -> list[str]:
    """Return the exports that point a shell at the services: no secret, only where it is."""
    q = shlex.quote
    password = q(str(settings.mlflow_password_file))
    return [
        f"export HOMEVISION_SERVICES_DIR={q(str(settings.dir))}",
        f"export MLFLOW_TRACKING_URI={q(settings.mlflow_uri)}",
        f"export MLFLOW_TRACKING_USERNAME={MLFLOW_USER}",
        f'export MLFLOW_TRACKING_PASSWORD="$(cat {password})"',
        f"export PGPASSFILE={q(str(settings.pgpass))}",
        f"export HOMEVISION_OPTUNA_STORAGE={q(settings.database_url('optuna'))}",
    ]


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="services: %(message)s", stream=sys.stderr)
    settings = Settings.from_env()
    os.environ["PGPASSFILE"] = str(settings.pgpass)  # our own connections: the password file
    command = argv[0] if argv else ""
    try:
        if command == "start":
            exclusively(settings, start)
            say("\n".join(env_lines(settings)))
        elif command == "stop":
            exclusively(settings, stop)
        elif command == "status":
            return status(settings)
        elif command == "env":
            say("\n".join(env_lines(settings)))
        else:
            sys.stderr.write(USAGE + "\n")
            return 2
    except (ServiceError, SecretFileError) as err:
        sys.stderr.write(f"services: {err}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
