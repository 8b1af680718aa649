"""The team services' secrets: generated on first use, kept in files with mode 0600, never on argv.

`make services` (homevision.services) writes them under `<services dir>/secrets/`:

- `pg-password`     the PostgreSQL role's password (scram-sha-256), and `pgpass`, the libpq
                    password file that carries it (PGPASSFILE): URLs stay password-free.
- `pg-admin-password` the cluster's superuser's password (homevision.services.pg_roles): read
                    by `make services` only, in no password file.
- `mlflow-password` the MLflow server's `admin` password (its basic-auth app).
- `signing-key`     the key that signs registered models' artifact digests (homevision.signing).

Every homevision command reads them through `apply_to_environment`: PGPASSFILE and
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD are set in the process's own environment
(what libpq and the MLflow client read) unless the user set them; the MLflow credentials only
when MLFLOW_TRACKING_URI is the server these services started (`<services dir>/mlflow.uri`),
never for another server. The services dir is HOMEVISION_SERVICES_DIR, else `.services/` in
the project root.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from urllib.parse import urlsplit

from homevision.config import project_root

SERVICES_DIR_ENV = "HOMEVISION_SERVICES_DIR"
PG_PASSWORD = "pg-password"
PG_ADMIN_PASSWORD = "pg-admin-password"
PGPASS = "pgpass"
MLFLOW_PASSWORD = "mlflow-password"
SIGNING_KEY = "signing-key"
MLFLOW_USER = "admin"
MLFLOW_URI_FILE = "mlflow.uri"  # in the services dir: the URI the MLflow server was started on
DEFAULT_MLFLOW_URI = "http://127.0.0.1:5000"  # a set-up started before the file was written


class SecretFileError(PermissionError):
    """A secret file that others could read (or that could not be written privately)."""


def services_dir() -> Path:
    """Return the folder of the team services' data and secrets."""
    given = os.environ.get(SERVICES_DIR_ENV)
    return Path(given).resolve() if given else project_root() / ".services"


def secrets_dir(base: Path | None = None) -> Path:
    """Return the secrets folder inside the services dir (`base`, default services_dir())."""
    return (base or services_dir()) / "secrets"


def write_private(path: Path, text: str) -> Path:
    """Write `text` to a new file readable by its owner only (0600, created so: no window in
    which it is wider) and return its path; the folder is created 0700."""
    tmp = _private_temp(path, text)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def create_private(path: Path, text: str) -> bool:
    """Publish `text` as `path` (0600, complete from its first moment) unless `path` exists;
    return whether this call created it. Of two processes creating one secret at once, exactly
    one wins and both then read the winner's (review defect 5)."""
    tmp = _private_temp(path, text)
    try:
        os.link(tmp, path)  # fails, never overwrites, when another process was first
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _private_temp(path: Path, text: str) -> Path:
    """Write `text` to a fresh 0600 file beside `path` (folder made 0700) and return it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def read_private(path: Path) -> str | None:
    """Return the stripped text of a secret file, None when absent. Raises SecretFileError for
    a file that its group or others can read: a secret that leaked is not used silently."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretFileError(
            f"{path} can be read by other users (mode {stat.filemode(mode)}): "
            f"run `chmod 600 {path}` (a new one would not be the one the services were set "
            "up with)"
        )
    return path.read_text(encoding="utf-8").strip()


def ensure_secret(name: str, base: Path | None = None, nbytes: int = 32) -> str:
    """Return the secret `name`, generating it (url-safe random, `nbytes` of entropy) on first
    use."""
    path = secrets_dir(base) / name
    value = read_private(path)
    if value is None:
        value = secrets.token_urlsafe(nbytes)
        if not create_private(path, value + "\n"):  # another process generated it first
            value = read_private(path) or ""
    return value


def read_secret(name: str, base: Path | None = None) -> str | None:
    """Return the secret `name` from the services dir, None when it was never generated."""
    return read_private(secrets_dir(base) / name)


def apply_to_environment(env: MutableMapping[str, str] | None = None) -> None:
    """Point libpq and the MLflow client at the services' credentials (PGPASSFILE,
    MLFLOW_TRACKING_USERNAME/PASSWORD) when the services dir holds them and the environment
    does not say otherwise. Cheap (a few stats): called wherever a store is opened."""
    env = os.environ if env is None else env
    folder = secrets_dir()
    pgpass = folder / PGPASS
    if "PGPASSFILE" not in env and pgpass.is_file():  # its lines name their host and port
        env["PGPASSFILE"] = str(pgpass)
    credentials_unset = (
        "MLFLOW_TRACKING_USERNAME" not in env and "MLFLOW_TRACKING_PASSWORD" not in env
    )
    if credentials_unset and tracks_to_our_server(env):
        password = read_private(folder / MLFLOW_PASSWORD)
        if password:
            env["MLFLOW_TRACKING_USERNAME"] = MLFLOW_USER
            env["MLFLOW_TRACKING_PASSWORD"] = password


def our_mlflow_uri(base: Path | None = None) -> str:
    """Return the URI of the MLflow server the services started (recorded by `start` in
    MLFLOW_URI_FILE; the default port's for a set-up started before that file existed)."""
    try:
        return (
            (services_dir() if base is None else base).joinpath(MLFLOW_URI_FILE).read_text().strip()
        )
    except OSError:
        return DEFAULT_MLFLOW_URI


def tracks_to_our_server(env: Mapping[str, str]) -> bool:
    """Return whether env's MLFLOW_TRACKING_URI is the services' own MLflow server: only that
    one is sent its admin password (review defect 3: any server named got it)."""
    given = env.get("MLFLOW_TRACKING_URI")
    return given is not None and _same_server(given, our_mlflow_uri())


def _same_server(a: str, b: str) -> bool:
    """Return whether two http(s) URIs name the same scheme, host and port (localhost being
    127.0.0.1, a trailing slash or path ignored)."""

    def key(uri: str) -> tuple[str, str, int | None]:
        parts = urlsplit(uri.strip())
        host = (parts.hostname or "").lower()
        try:
            port = parts.port
        except ValueError:
            port = -1
        return parts.scheme.lower(), "127.0.0.1" if host == "localhost" else host, port

    first = key(a)
    return first[0] in ("http", "https") and first == key(b)
