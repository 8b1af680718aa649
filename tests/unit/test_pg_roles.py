"""The role every client logs in as is no superuser (stop 50's "left out": whoever held the
database password could read the files of the cluster's owner, the services' secrets among
them). Real clusters, made and started here, a few seconds each."""

from __future__ import annotations

import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from homevision.service_secrets import PG_ADMIN_PASSWORD, ensure_secret, read_secret
from homevision.services import pg_roles, postgres
from homevision.services.postgres import ServiceError
from homevision.services.settings import DATABASES, PG_USER, Settings

from .test_services import _settings

pytestmark = pytest.mark.skipif(
    not list(Path("/usr/lib/postgresql").glob("*/bin")), reason="needs PostgreSQL installed"
)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch) -> Iterator[Settings]:
    """Settings of a cluster of our own in tmp_path, stopped and removed afterwards."""
    made = _settings(tmp_path)
    monkeypatch.setenv("PGPASSFILE", str(made.pgpass))
    data = postgres.pgdata(made)
    try:
        yield made
    finally:
        postgres.stop(made)
        if data != made.pgdata:
            subprocess.run(postgres.as_pg(["rm", "-rf", str(data)]), check=False)


def _app(settings: Settings, dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(settings.database_url(dbname), autocommit=True, connect_timeout=10)


def _cannot_read_the_servers_files(settings: Settings) -> None:
    with _app(settings) as conn:
        rights = (
            "SELECT current_user, rolsuper, rolcreaterole FROM pg_roles "
            "WHERE rolname = current_user"
        )
        assert conn.execute(rights).fetchone() == (PG_USER, False, False)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT pg_read_binary_file('PG_VERSION')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("COPY (SELECT 1) TO PROGRAM 'true'")
        owners = conn.execute(
            "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = ANY(%s)",
            (list(DATABASES),),
        ).fetchall()
    assert sorted(owners) == sorted((name, PG_USER) for name in DATABASES)


def test_a_new_cluster_gives_its_clients_a_role_without_superuser(settings):
    postgres.start(settings)
    _cannot_read_the_servers_files(settings)
    for name in DATABASES:  # what MLflow and Optuna do in their databases
        with _app(settings, name) as conn:
            conn.execute("CREATE TABLE probe (id serial PRIMARY KEY, v text)")
            conn.execute("INSERT INTO probe (v) VALUES ('x')")
    admin = settings.secrets / PG_ADMIN_PASSWORD
    assert stat.S_IMODE(admin.stat().st_mode) == 0o600
    assert read_secret(PG_ADMIN_PASSWORD, settings.dir) not in settings.pgpass.read_text()
    postgres.start(settings)  # idempotent
    _cannot_read_the_servers_files(settings)


def _legacy_cluster(settings: Settings, trusting: bool) -> psycopg.Connection:
    """Make a cluster as homevision did before this stop (`homevision` its bootstrap
    superuser; older still, with `trust` logins), with the kinds of objects MLflow and Optuna
    create, and return a session of the old role left open (as the MLflow server's pool
    would keep one)."""
    bindir = postgres.find_bin(settings)
    data = postgres.pgdata(settings)
    password = ensure_secret("pg-password", settings.dir)
    postgres.write_private(
        settings.pgpass, f"127.0.0.1:{settings.pg_port}:*:{PG_USER}:{password}\n"
    )
    postgres.init_cluster(data, bindir, "an-older-password" if trusting else password, PG_USER)
    if trusting:
        hba = data / "pg_hba.conf"
        postgres.run_pg(
            ["sed", "-i", "s/scram-sha-256$/trust/", str(hba)], check=True, capture_output=True
        )
        assert postgres._trusting(data)
    postgres.pg_ctl_start(settings, bindir, data)
    with _app(settings) as conn:
        for name in ("mlflow", "optuna"):
            conn.execute(f"CREATE DATABASE {name}")
    with _app(settings, "optuna") as conn:
        conn.execute("CREATE TYPE trialstate AS ENUM ('RUNNING', 'COMPLETE')")
        conn.execute("CREATE TABLE trials (id serial PRIMARY KEY, state trialstate)")
        conn.execute("INSERT INTO trials (state) VALUES ('COMPLETE')")
        conn.execute("CREATE SEQUENCE loose_seq")
        conn.execute("CREATE VIEW done AS SELECT id FROM trials WHERE state = 'COMPLETE'")
        conn.execute("CREATE FUNCTION twice(x int) RETURNS int LANGUAGE sql AS 'SELECT 2 * x'")
        conn.execute("CREATE SCHEMA extra")
        conn.execute("CREATE TABLE extra.notes (n text)")
    with _app(settings) as conn:
        superuser = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        assert conn.execute(superuser).fetchone() == (True,)
    return _app(settings, "optuna")


@pytest.mark.parametrize("trusting", [False, True], ids=["scram", "trust"])
def test_an_older_cluster_whose_clients_were_its_superuser_is_migrated_in_place(
    settings, monkeypatch, trusting
):
    old_session = _legacy_cluster(settings, trusting)

    def killed(*args):  # a start killed after the roles changed, before the objects moved
        raise KeyboardInterrupt

    monkeypatch.setattr(pg_roles, "_hand_over_objects", killed)
    with pytest.raises(KeyboardInterrupt):
        postgres.start(settings)
    monkeypatch.undo()
    monkeypatch.setenv("PGPASSFILE", str(settings.pgpass))
    postgres.start(settings)  # finishes the migration

    with pytest.raises(psycopg.OperationalError):
        old_session.execute("SELECT 1")  # the old superuser's session was ended
    _cannot_read_the_servers_files(settings)
    with _app(settings, "optuna") as conn:  # the data stayed, and its new owner can use it
        conn.execute("INSERT INTO trials (state) VALUES ('RUNNING')")
        assert conn.execute("SELECT count(*) FROM trials").fetchone()[0] == 2
        assert conn.execute("SELECT * FROM done").fetchall() == [(1,)]
        assert conn.execute("SELECT twice(21), nextval('loose_seq')").fetchone() == (42, 1)
        conn.execute("INSERT INTO extra.notes VALUES ('x')")
        conn.execute("DROP TABLE trials CASCADE")  # only an owner may
        retired = conn.execute(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (pg_roles.RETIRED_USER,)
        ).fetchone()
    assert retired == (False,)
    postgres.start(settings)  # idempotent once migrated
    _cannot_read_the_servers_files(settings)
    (settings.secrets / PG_ADMIN_PASSWORD).unlink()  # a migrated cluster needs no admin to start
    postgres.start(settings)


def test_a_lost_admin_password_is_refused_only_when_it_is_needed(settings):
    postgres.start(settings)
    postgres.stop(settings)
    (settings.secrets / PG_ADMIN_PASSWORD).unlink()
    postgres.start(settings)  # the role and the databases exist: nothing needs the admin
    _cannot_read_the_servers_files(settings)
    with _app(settings) as conn:
        conn.execute("DROP DATABASE mlflow_auth")  # its owner may
    with pytest.raises(ServiceError, match=r"pg-admin-password is missing, but the cluster"):
        postgres.start(settings)
    assert not (settings.secrets / PG_ADMIN_PASSWORD).exists()
