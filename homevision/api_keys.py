"""API keys: created, listed, revoked and checked here, stored hashed in one 0600 file.

A key reads `hv_<id>_<secret>`: the id (8 hex digits) names the entry, the secret (32 random
bytes, URL-safe base64) is known to its holder only. The file keeps the SHA-256 of each secret,
never the secret: a key has 256 bits of entropy, so a fast hash is as safe here as a slow one
and costs a microsecond per request. Keys are compared in constant time.

Scopes: `value` (valuations, model info), `metrics` (GET /metrics: what a Prometheus scraper
needs and nothing more) and `admin` (reload and anything that changes state; an admin key may
do all the others too). The file is `.homevision/api-keys.json` under the project root, or
HOMEVISION_API_KEYS; the API re-reads it when it changes, so a revoked key stops working at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from filelock import FileLock

from homevision.config import project_root

KEYS_FILE_ENV = "HOMEVISION_API_KEYS"
PREFIX = "hv"


class Scope(StrEnum):
    """What a key may do: `admin` includes the others."""

    value = "value"
    metrics = "metrics"
    admin = "admin"


@dataclass(frozen=True)
class KeyRecord:
    """One stored key: never the secret, only its SHA-256."""

    id: str
    scope: str
    name: str
    created: str
    sha256: str

    def allows(self, scope: Scope) -> bool:
        """True when this key may call a route that needs `scope`."""
        return self.scope == Scope.admin or self.scope == scope


def keys_file() -> Path:
    """Return the key file in force: HOMEVISION_API_KEYS, else .homevision/api-keys.json."""
    given = os.environ.get(KEYS_FILE_ENV)
    return Path(given) if given else project_root() / ".homevision" / "api-keys.json"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def read_keys(path: Path | None = None) -> dict[str, KeyRecord]:
    """Return the stored keys by id ({} when the file does not exist). Raises PermissionError
    when the file can be read by others than its owner: keys are refused rather than trusted."""
    path = path or keys_file()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    if mode & 0o077:
        raise PermissionError(
            f"{path} is readable by other users (mode {mode & 0o777:o}); "
            f"run chmod 600 {path} before the keys in it are used"
        )
    entries = json.loads(path.read_text(encoding="utf-8") or "[]")
    try:
        if not isinstance(entries, list):
            raise TypeError("not a list")
        return {e["id"]: KeyRecord(**e) for e in entries}
    except (TypeError, KeyError) as err:  # valid JSON, but not what `keys create` writes
        raise ValueError(
            f"{path} is not an API key file (a JSON list of key records; {type(err).__name__}); "
            "restore it or create the keys again with `homevision keys create`"
        ) from None


def _write_keys(keys: dict[str, KeyRecord], path: Path) -> None:
    """Replace the key file in one step, created with mode 0600 (never readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp makes it 0600
            json.dump([asdict(k) for k in keys.values()], fh, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _editing(path: Path) -> Iterator[dict[str, KeyRecord]]:
    """Yield the stored keys to change, then write them, holding a lock beside the file all
    along: `keys create` and `keys revoke` run at the same time would otherwise each write what
    it read, and a revoked key could come back."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with FileLock(path.parent / f".{path.name}.lock", timeout=30):
        keys = read_keys(path)
        yield keys
        _write_keys(keys, path)


def create_key(scope: Scope, name: str = "", path: Path | None = None) -> tuple[str, KeyRecord]:
    """Create a key of `scope`; return the key (shown once, stored nowhere) and its record."""
    with _editing(path or keys_file()) as keys:
        return _add_key(keys, scope, name)


def _add_key(keys: dict[str, KeyRecord], scope: Scope, name: str) -> tuple[str, KeyRecord]:
    """Add a new key of `scope` to `keys`; return the key and its record."""
    key_id = secrets.token_hex(4)
    while key_id in keys:
        key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    record = KeyRecord(
        id=key_id,
        scope=Scope(scope).value,
        name=name,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        sha256=_digest(secret),
    )
    keys[key_id] = record
    return f"{PREFIX}_{key_id}_{secret}", record


def revoke_key(key_id: str, path: Path | None = None) -> KeyRecord:
    """Remove the key `key_id`; return its record. Raises KeyError naming the known ids."""
    with _editing(path or keys_file()) as keys:
        if key_id not in keys:
            known = ", ".join(sorted(keys)) or "none"
            raise KeyError(f"no API key {key_id!r} (known: {known})")
        return keys.pop(key_id)


def match_key(token: str, keys: dict[str, KeyRecord]) -> KeyRecord | None:
    """Return the record of a presented key when it is a stored one, else None. The secret is
    compared in constant time; the id only picks which digest to compare with."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        return None
    record = keys.get(parts[1])
    if record is None:
        return None
    return record if hmac.compare_digest(_digest(parts[2]), record.sha256) else None


class KeyRing:
    """The key file as the API reads it: re-read whenever it changes (one stat per
    authenticated request: a new file, a new size or modification time, or a new mode), so
    created and revoked keys count at once, and a file opened to other users is refused at once.

    It fails closed: once it has held a key, the API keeps requiring one until it restarts. A
    key file that disappears is refused (503: keys were configured and cannot be checked now),
    and one whose keys were all revoked lets nobody in, rather than either falling back to the
    keyless mode that answers anyone on this machine."""

    def __init__(self, path: Path | None = None):
        self.path = path or keys_file()
        self._stamp: tuple[int, ...] | None = None
        self._keys: dict[str, KeyRecord] = {}
        self.required = False  # a key was configured: keys are needed until a restart
        with suppress(OSError, ValueError):  # reported on each request needing a key (503)
            self.keys()

    def keys(self) -> dict[str, KeyRecord]:
        """Return the current keys ({} when there is no key file and there never was a key).
        Raises FileNotFoundError when the file that held keys is gone, PermissionError when it
        became readable by others, ValueError when it is not a key file."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            if self.required:
                raise FileNotFoundError(
                    f"{self.path} is gone, but API keys were configured in it: requests that "
                    "need a key are refused until it is restored (or the server restarts "
                    "without keys)"
                ) from None
            self._stamp, self._keys = None, {}
            return self._keys
        stamp = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode)
        if stamp != self._stamp:
            try:
                self._keys = read_keys(self.path)
            except (OSError, ValueError):
                self.required = True  # a key file was there: never fall back to keyless mode
                raise
            self._stamp = stamp
            self.required = self.required or bool(self._keys)
        return self._keys
