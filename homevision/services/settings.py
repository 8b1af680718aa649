"""Where the services live and how they are reached: settings from the environment, database
URLs that keep their query string (sslmode) and carry no password, and the libpq password file
that carries it instead."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from homevision.service_secrets import (
    MLFLOW_PASSWORD,
    PG_PASSWORD,
    PGPASS,
    secrets_dir,
    services_dir,
)

PG_USER = "homevision"
DATABASES = ("mlflow", "optuna", "mlflow_auth")


@dataclass(frozen=True)
class Settings:
    """The services' folder, ports and binaries (HOMEVISION_SERVICES_DIR, HOMEVISION_PG_PORT,
    HOMEVISION_MLFLOW_PORT, HOMEVISION_DATABASE_URL for a database run elsewhere, MLFLOW_BIN,
    HOMEVISION_PG_ROOT: where Debian puts PostgreSQL's versions)."""

    dir: Path
    pg_port: int
    mlflow_port: int
    external_url: str | None
    mlflow_bin: Path
    pg_root: Path

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            dir=services_dir(),
            pg_port=int(env.get("HOMEVISION_PG_PORT", "5433")),
            mlflow_port=int(env.get("HOMEVISION_MLFLOW_PORT", "5000")),
            external_url=env.get("HOMEVISION_DATABASE_URL") or None,
            mlflow_bin=Path(env.get("MLFLOW_BIN") or Path(sys.executable).with_name("mlflow")),
            pg_root=Path(env.get("HOMEVISION_PG_ROOT", "/usr/lib/postgresql")),
        )

    @property
    def secrets(self) -> Path:
        return secrets_dir(self.dir)

    @property
    def pgdata(self) -> Path:
        return self.dir / "pg"

    @property
    def pgpass(self) -> Path:
        return self.secrets / PGPASS

    @property
    def pg_password_file(self) -> Path:
        return self.secrets / PG_PASSWORD

    @property
    def mlflow_password_file(self) -> Path:
        return self.secrets / MLFLOW_PASSWORD

    @property
    def mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def database_url(self, name: str, with_password: bool = False) -> str:
        """Return the URL of database `name`: on HOMEVISION_DATABASE_URL's server (its query
        string kept), else on our cluster. Without `with_password` it carries none: libpq
        reads it from the password file."""
        if self.external_url:
            return database_url(self.external_url, name, with_password)
        return f"postgresql://{PG_USER}@127.0.0.1:{self.pg_port}/{name}"


def database_url(base: str, name: str, with_password: bool = False) -> str:
    """Return `base` pointing at database `name`: scheme, user, host, port and query string
    (e.g. ?sslmode=require) kept; the password only `with_password`."""
    parts = urlsplit(base)
    netloc = parts.netloc
    if not with_password and parts.password is not None:
        user = quote(unquote(parts.username or ""), safe="")
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        netloc = f"{user}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, f"/{name}", parts.query, parts.fragment))


def pgpass_line(host: str, port: int | str, user: str, password: str) -> str:
    """Return a libpq password-file line for every database of host:port as `user`."""

    def esc(value: str) -> str:
        return str(value).replace("\\", "\\\\").replace(":", "\\:")

    return f"{esc(host)}:{esc(str(port))}:*:{esc(user)}:{esc(password)}\n"


def external_pgpass_line(url: str) -> str | None:
    """Return the password-file line for a given database URL's password (None without one)."""
    parts = urlsplit(url)
    if parts.password is None:
        return None
    return pgpass_line(
        parts.hostname or "localhost",
        parts.port or 5432,
        unquote(parts.username or ""),
        unquote(parts.password),
    )
