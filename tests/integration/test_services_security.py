"""The team services refuse whoever has no credentials, and no secret is in the open (issue 22,
defects 1-3), against the PostgreSQL and MLflow server that `make services` started."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import httpx
import psycopg
import pytest

from homevision.service_secrets import (
    MLFLOW_PASSWORD,
    PG_ADMIN_PASSWORD,
    PG_PASSWORD,
    SIGNING_KEY,
    read_secret,
)

from ..conftest import SERVICES_DIR
from .conftest import ROOT

pytestmark = [pytest.mark.server]
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


def _secrets() -> dict[str, str]:
    names = (PG_PASSWORD, PG_ADMIN_PASSWORD, MLFLOW_PASSWORD, SIGNING_KEY, "mlflow-flask-key")
    return {name: read_secret(name, SERVICES_DIR) for name in names}


def test_postgresql_refuses_a_connection_without_the_password(optuna_postgres):
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(optuna_postgres, passfile=os.devnull, connect_timeout=5)
    wrong = optuna_postgres.replace("homevision@", "homevision:not-the-password@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, passfile=os.devnull, connect_timeout=5)
    with psycopg.connect(optuna_postgres, connect_timeout=5) as conn:  # the password file
        conn.execute("SELECT 1")
    admin = optuna_postgres.replace("homevision@", "homevision_admin@")  # the rules: its own
    with psycopg.connect(admin, password=_secrets()[PG_ADMIN_PASSWORD], connect_timeout=5) as conn:
        rules = conn.execute("SELECT auth_method FROM pg_hba_file_rules").fetchall()
    assert {method for (method,) in rules} == {"scram-sha-256"}


def test_whoever_holds_the_database_password_cannot_read_the_servers_files(optuna_postgres):
    """Stop 50's "left out": the role was the cluster's superuser, so its password opened the
    files of the cluster's owner (the services' secrets among them) over SQL."""
    with psycopg.connect(optuna_postgres, connect_timeout=5, autocommit=True) as conn:
        rights = conn.execute(
            "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert rights == (False, False)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT pg_read_binary_file('PG_VERSION')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("COPY (SELECT 1) TO PROGRAM 'true'")


def test_the_mlflow_rest_api_needs_credentials(tracking_server):
    assert httpx.get(tracking_server + SEARCH, timeout=10).status_code == 401
    wrong = httpx.get(tracking_server + SEARCH, auth=("admin", "guess"), timeout=10)
    assert wrong.status_code == 401
    right = httpx.get(
        tracking_server + SEARCH, auth=("admin", _secrets()[MLFLOW_PASSWORD]), timeout=10
    )
    assert right.status_code == 200, right.text
    assert httpx.get(f"{tracking_server}/health", timeout=10).status_code == 200  # probes open


def test_no_secret_is_on_any_command_line_or_in_what_the_script_prints(tracking_server):
    found = [v for v in _secrets().values() if v]
    assert len(found) == 5, "make services did not generate the five secrets"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        for secret in found:
            assert secret not in argv, f"a secret is on the command line of pid {proc.name}"
    script = ROOT / "scripts" / "services.sh"
    for command in ("status", "env"):
        done = subprocess.run(
            ["bash", str(script), command], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        for secret in found:
            assert secret not in done.stdout + done.stderr


def test_the_secrets_are_private_files(tracking_server):
    folder = SERVICES_DIR / "secrets"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
