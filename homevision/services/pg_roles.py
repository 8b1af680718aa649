"""The roles of our PostgreSQL cluster: least privilege for everyone who holds `pg-password`.

- `homevision` (PG_USER) is what MLflow, Optuna and every client log in as. It owns the
  services' databases and nothing more: no superuser, so whoever holds its password (the MLflow
  server, an Optuna worker, a leaked URL) cannot read the cluster owner's files with
  `pg_read_binary_file` or run programs with `COPY ... PROGRAM`.
- `homevision_admin` is the cluster's superuser. Its password (`pg-admin-password`, 0600) is
  read only by `make services` to create the role and the databases; it is in no password
  file, URL or environment.

A cluster made by an older homevision has `homevision` as its bootstrap superuser, which can
neither lose the attribute nor give its objects away with REASSIGN OWNED. It is migrated in
place: that role is renamed `homevision_bootstrap` and may no longer log in, a new `homevision`
with the same password takes over the databases and every object in them, and the old role's
sessions are ended. Each step is idempotent: a start that was killed half-way finishes the
migration on the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from homevision.service_secrets import PG_ADMIN_PASSWORD, ensure_secret, read_secret
from homevision.services.settings import DATABASES, PG_USER, Settings

log = logging.getLogger("homevision.services")
ADMIN_USER = "homevision_admin"
RETIRED_USER = "homevision_bootstrap"  # an older cluster's bootstrap superuser, renamed
APP_RIGHTS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
_USER_SCHEMAS = "n.nspname <> 'information_schema' AND n.nspname !~ '^pg_(catalog|toast|temp)'"
# What can be owned in a database, and how to give it away. Tables first: a table's owner
# change carries its indexes and the sequences of its serial columns (which refuse their own).
_OWNED = (
    ("SCHEMA", "SELECT quote_ident(n.nspname) FROM pg_namespace n WHERE n.nspowner = %s"),
    (
        "TABLE",
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relowner = %s AND c.relkind IN ('r', 'p', 'f')",
    ),
    (
        "VIEW",
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relowner = %s AND c.relkind = 'v'",
    ),
    (
        "MATERIALIZED VIEW",
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relowner = %s AND c.relkind = 'm'",
    ),
    (
        "SEQUENCE",
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relowner = %s AND c.relkind = 'S'",
    ),
    (
        "DOMAIN",
        "SELECT t.oid::regtype::text FROM pg_type t JOIN pg_namespace n "
        "ON n.oid = t.typnamespace WHERE t.typowner = %s AND t.typtype = 'd'",
    ),
    (
        "TYPE",
        "SELECT t.oid::regtype::text FROM pg_type t JOIN pg_namespace n "
        "ON n.oid = t.typnamespace LEFT JOIN pg_class c ON c.oid = t.typrelid "
        "WHERE t.typowner = %s AND (t.typtype IN ('e', 'r') OR c.relkind = 'c')",
    ),
    (
        "ROUTINE",
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
        "ON n.oid = p.pronamespace WHERE p.proowner = %s",
    ),
)


class RoleError(RuntimeError):
    """The cluster's roles cannot be put right, in one sentence without a secret."""


def settle(settings: Settings, data: Path, app_password: str) -> None:
    """Leave the cluster with `homevision` a plain role that owns the services' databases and
    `homevision_admin` its superuser, from whatever state it is in: just made, made by an
    older homevision, or left half-way by a killed start. Creates missing databases."""
    import psycopg

    try:
        with _connect(settings, PG_USER) as conn:
            superuser = _is_superuser(conn, PG_USER)
            retired = _role_oid(conn, RETIRED_USER) is not None
            missing = [db for db in DATABASES if not _database_exists(conn, db)]
    except psycopg.OperationalError as err:
        if "password authentication failed" not in str(err):
            raise
        superuser, retired, missing = None, False, list(DATABASES)  # no role yet, or lost
    if superuser:
        _migrate(settings, data, app_password)
    # A migration killed before the hand-over leaves objects to the retired role; checked as
    # the app role (catalogs are readable by all), so a migrated cluster needs no admin.
    handover = superuser or (
        retired
        and any(_retired_objects(settings, name) for name in DATABASES if name not in missing)
    )
    if superuser is None or handover or missing:
        admin = _admin_password(settings, data)
        with _connect(settings, ADMIN_USER, password=admin) as conn:
            if superuser is None:
                _first_app_role(conn, settings)
                _create_app_role(conn, app_password)
            for name in missing:
                _create_database(conn, name)
        if handover:
            _hand_over_objects(settings, admin)


def _migrate(settings: Settings, data: Path, app_password: str) -> None:
    """Turn an older cluster, whose bootstrap superuser is `homevision`, into the two roles."""
    from psycopg import sql

    log.info("PostgreSQL: the role %s is a superuser; giving it up (a one-time migration)", PG_USER)
    admin = ensure_secret(PG_ADMIN_PASSWORD, settings.dir)
    with _connect(settings, PG_USER) as conn:  # still the superuser: make the admin
        verb = "ALTER" if _role_oid(conn, ADMIN_USER) is not None else "CREATE"
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(
            sql.SQL(verb + " ROLE {} WITH SUPERUSER LOGIN PASSWORD {}").format(
                sql.Identifier(ADMIN_USER), sql.Literal(admin)
            )
        )
    with _connect(settings, ADMIN_USER, password=admin, autocommit=False) as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(
            sql.SQL("ALTER ROLE {} RENAME TO {}").format(
                sql.Identifier(PG_USER), sql.Identifier(RETIRED_USER)
            )
        )
        conn.execute(
            sql.SQL("ALTER ROLE {} WITH NOLOGIN PASSWORD NULL").format(sql.Identifier(RETIRED_USER))
        )
        _create_app_role(conn, app_password)
        for name in DATABASES:
            if _database_exists(conn, name):
                conn.execute(
                    sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                        sql.Identifier(name), sql.Identifier(PG_USER)
                    )
                )
        conn.commit()
        ended = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE usename = %s AND pid <> pg_backend_pid()",
            (RETIRED_USER,),
        ).fetchone()[0]
        conn.commit()
    if ended:
        log.info("PostgreSQL: ended %d session(s) of the old superuser role", ended)


def _hand_over_objects(settings: Settings, admin: str) -> None:
    """Give every object the retired bootstrap role owns in the services' databases to
    `homevision` (REASSIGN OWNED refuses the bootstrap role), then check none is left."""
    from psycopg import sql

    moved = 0
    for name in DATABASES:
        with _connect(settings, ADMIN_USER, password=admin, dbname=name) as conn:
            old = _role_oid(conn, RETIRED_USER)
            for kind, query in _OWNED:  # kind by kind, in order: see _OWNED
                for (target,) in _owned(conn, query, old):
                    conn.execute(
                        sql.SQL("ALTER {} {} OWNER TO {}").format(
                            sql.SQL(kind), sql.SQL(target), sql.Identifier(PG_USER)
                        )
                    )
                    moved += 1
            left = _owned_by(conn, old)
            if left:
                raise RoleError(
                    f"PostgreSQL: the old superuser role still owns {', '.join(left[:5])} in "
                    f"the database {name}: give them to {PG_USER} with ALTER ... OWNER TO"
                )
    if moved:
        log.info("PostgreSQL: %d object(s) handed over to the role %s", moved, PG_USER)


def _owned(conn, query: str, owner: int | None) -> Iterable[tuple[str]]:
    if owner is None:
        return []
    return conn.execute(f"{query} AND {_USER_SCHEMAS}", (owner,)).fetchall()


def _owned_by(conn, owner: int | None) -> list[str]:
    """Return the names of every object `owner` owns in the connected database's schemas."""
    return [target for _, query in _OWNED for (target,) in _owned(conn, query, owner)]


def _retired_objects(settings: Settings, name: str) -> list[str]:
    """Return what the retired bootstrap role still owns in database `name`, read as the app
    role."""
    with _connect(settings, PG_USER, dbname=name) as conn:
        return _owned_by(conn, _role_oid(conn, RETIRED_USER))


def _first_app_role(conn, settings: Settings) -> None:
    """Raise RoleError when the app role exists: it refused the password on file, which is
    then not the one it was made with (a replaced file), and no new role can be made."""
    if _role_oid(conn, PG_USER) is not None:
        raise RoleError(
            f"PostgreSQL refuses the password in {settings.pg_password_file} for the role "
            f"{PG_USER}: restore the file from a backup of the services' secrets"
        )


def _create_app_role(conn, app_password: str) -> None:
    from psycopg import sql

    conn.execute("SET password_encryption = 'scram-sha-256'")
    conn.execute(
        sql.SQL("CREATE ROLE {} WITH " + APP_RIGHTS + " PASSWORD {}").format(
            sql.Identifier(PG_USER), sql.Literal(app_password)
        )
    )
    log.info("PostgreSQL: created the role %s (no superuser)", PG_USER)


def _create_database(conn, name: str) -> None:
    from psycopg import sql

    conn.execute(
        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(PG_USER))
    )


def _admin_password(settings: Settings, data: Path) -> str:
    """Return the admin role's password; a lost one of a cluster that exists is an error."""
    password = read_secret(PG_ADMIN_PASSWORD, settings.dir)
    if password is None:
        raise RoleError(
            f"{settings.secrets / PG_ADMIN_PASSWORD} is missing, but the cluster in {data} "
            f"needs its {ADMIN_USER} role to create a role or a database: restore the file "
            f"from a backup of the services' secrets, or move {data} away to start a new, "
            "empty cluster"
        )
    return password


def _connect(
    settings: Settings,
    user: str,
    password: str | None = None,
    dbname: str = "postgres",
    autocommit: bool = True,
):
    """Open a connection to our cluster as `user`; the password comes from the argument (the
    admin's, never written to the password file) or from the password file (the app's)."""
    import psycopg

    extra = {} if password is None else {"password": password}
    return psycopg.connect(
        host="127.0.0.1",
        port=settings.pg_port,
        user=user,
        dbname=dbname,
        autocommit=autocommit,
        connect_timeout=10,
        **extra,
    )


def _is_superuser(conn, role: str) -> bool:
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    return bool(row and row[0])


def _role_oid(conn, role: str) -> int | None:
    row = conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    return None if row is None else int(row[0])


def _database_exists(conn, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None
