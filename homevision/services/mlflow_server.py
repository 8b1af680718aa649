"""The MLflow tracking server for the team: backend store on PostgreSQL, artifacts served from
`<services dir>/mlartifacts`, MLflow's basic-auth app in front (every REST call needs a user;
the `admin` password is generated on first start). The store URL reaches the server through its
environment (MLFLOW_BACKEND_STORE_URI) and the password through the libpq password file: no
secret is on its command line, in `ps`, or in what `status` and `env` print.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from homevision.service_secrets import (
    MLFLOW_PASSWORD,
    MLFLOW_URI_FILE,
    MLFLOW_USER,
    ensure_secret,
    read_secret,
    write_private,
)
from homevision.services.postgres import ServiceError
from homevision.services.processes import (
    own_process,
    port_in_use,
    recorded_pid,
    service_env,
    stop_group,
    write_pid,
)
from homevision.services.settings import Settings

log = logging.getLogger("homevision.services")
FLASK_KEY = "mlflow-flask-key"
MARKER = "mlflow"  # in the command line of the server we start (and of no stranger we adopt)


def pid_file(settings: Settings) -> Path:
    return settings.dir / "mlflow.pid"


def answers(settings: Settings) -> bool:
    """Return whether something answers 200 on the server's /health (open: no credentials)."""
    try:
        url = f"{settings.mlflow_uri}/health"
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


def check_admin(settings: Settings) -> None:
    """Raise ServiceError unless the server accepts the admin password on file: MLflow keeps
    the one of its first start, so a regenerated file would leave every call at 401."""
    password = read_secret(MLFLOW_PASSWORD, settings.dir) or ""
    token = base64.b64encode(f"{MLFLOW_USER}:{password}".encode()).decode()
    request = urllib.request.Request(
        f"{settings.mlflow_uri}/api/2.0/mlflow/experiments/search?max_results=1",
        headers={"Authorization": f"Basic {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            return
    except urllib.error.HTTPError as err:
        if err.code not in (401, 403):
            return  # it let us in; what it answered is not a credential matter
    except OSError:
        return  # no answer: start's own checks say so
    raise ServiceError(
        f"the MLflow server at {settings.mlflow_uri} refuses the admin password in "
        f"{settings.mlflow_password_file} (it keeps the one of its first start): restore that "
        "file from a backup of the services' secrets"
    )


def auth_config(settings: Settings) -> Path:
    """Write the basic-auth app's configuration (mode 0600: it holds the admin password) and
    return its path. Users and permissions live in the `mlflow_auth` database."""
    ini = settings.secrets / "mlflow-auth.ini"
    if read_secret(MLFLOW_PASSWORD, settings.dir) is None and ini.exists():
        raise ServiceError(
            f"{settings.mlflow_password_file} is missing, but the MLflow server was set up with "
            "an admin password (stored in its mlflow_auth database on its first start): "
            "restore the file from a backup of the services' secrets, or drop the mlflow_auth "
            f"database (its users and permissions) and remove {ini} to set up a new one"
        )
    password = ensure_secret(MLFLOW_PASSWORD, settings.dir)
    text = "\n".join(
        [
            "[mlflow]",
            "default_permission = READ",
            f"database_uri = {settings.database_url('mlflow_auth', with_password=True)}",
            f"admin_username = {MLFLOW_USER}",
            f"admin_password = {password}",
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
            "grant_default_workspace_access = false",
            # A credential check is PBKDF2: cache a good one for a minute per worker.
            "auth_cache_ttl_seconds = 60",
            "",
        ]
    )
    return write_private(ini, text)


def start(settings: Settings) -> None:
    """Start the server unless ours already runs; refuse a port held by anything else. Once
    ours answers its URI is recorded: commands send the admin password to that server only."""
    pids = pid_file(settings)
    if own_process(pids, MARKER) is not None and answers(settings):
        check_admin(settings)
        record_uri(settings)
        log.info("MLflow server already answers on %s", settings.mlflow_uri)
        return
    if port_in_use(settings.mlflow_port):
        raise ServiceError(
            f"port {settings.mlflow_port} on 127.0.0.1 is taken by a program this project did not "
            "start (no live MLflow server of ours is recorded in "
            f"{pids}): stop it or set HOMEVISION_MLFLOW_PORT"
        )
    # Only what the server needs: not the caller's MLflow client credentials or signing key.
    env = service_env(
        {
            "PGPASSFILE": str(settings.pgpass),
            "MLFLOW_BACKEND_STORE_URI": settings.database_url("mlflow", with_password=True),
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_config(settings)),
            # Signs the auth app's CSRF tokens; the same on every start.
            "MLFLOW_FLASK_SERVER_SECRET_KEY": ensure_secret(FLASK_KEY, settings.dir),
        }
    )
    _upgrade_store(env)
    artifacts = settings.dir / "mlartifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    command = [
        str(settings.mlflow_bin),
        "server",
        "--app-name",
        "basic-auth",
        "--artifacts-destination",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(settings.mlflow_port),
        "--workers",
        "1",
    ]
    logfile = settings.dir / "mlflow.log"
    with logfile.open("ab") as out:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop signals it and its workers
        )
    write_pid(pids, process.pid)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if answers(settings):
            check_admin(settings)
            record_uri(settings)
            log.info("MLflow server started on %s (log: %s)", settings.mlflow_uri, logfile)
            return
        if process.poll() is not None:
            tail = logfile.read_text(errors="replace").splitlines()[-30:]
            raise ServiceError("the MLflow server exited; its log ends:\n" + "\n".join(tail))
        time.sleep(0.5)
    raise ServiceError(f"the MLflow server did not answer within 90 s (log: {logfile})")


def record_uri(settings: Settings) -> Path:
    """Write the URI our server answers on to `<services dir>/mlflow.uri` and return its path:
    the one server whose requests get the admin password (service_secrets.tracks_to_our_server)."""
    return write_private(settings.dir / MLFLOW_URI_FILE, settings.mlflow_uri + "\n")


def _upgrade_store(env: dict[str, str]) -> None:
    """Create or migrate the tracking tables (what `mlflow db upgrade` does), with the URL
    passed through the environment rather than argv."""
    import sys

    code = (
        "import os\n"
        "from mlflow.db import upgrade\n"
        "upgrade.callback(os.environ['MLFLOW_BACKEND_STORE_URI'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ServiceError(
            "the MLflow database could not be created or upgraded: "
            + (done.stderr.strip().splitlines() or ["no output"])[-1]
        )


def stop(settings: Settings) -> None:
    """Stop the server we started; a pid file naming any other process is removed unsignalled."""
    pids = pid_file(settings)
    pid = own_process(pids, MARKER)
    if pid is not None:
        stop_group(pid)
        log.info("MLflow server stopped")
    elif pids.exists():
        log.warning(
            "%s names process %s, which is not the MLflow server this project started: "
            "nothing signalled, the stale pid file removed",
            pids,
            recorded_pid(pids),
        )
    pids.unlink(missing_ok=True)


def status(settings: Settings) -> tuple[bool, str]:
    """Return (up, one line) for `status`."""
    ours = own_process(pid_file(settings), MARKER) is not None
    if ours and answers(settings):
        return True, f"MLflow server: up ({settings.mlflow_uri}, password required)"
    if answers(settings):
        return False, (
            f"MLflow server: something this project did not start answers on {settings.mlflow_uri}"
        )
    return False, "MLflow server: down"
