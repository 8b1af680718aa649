"""Secrets of the team services: private files, generated once, found by every command."""

from __future__ import annotations

import http.server
import os
import stat
import threading
from typing import ClassVar

import pytest

from homevision.service_secrets import (
    MLFLOW_PASSWORD,
    MLFLOW_URI_FILE,
    PGPASS,
    SecretFileError,
    apply_to_environment,
    ensure_secret,
    read_secret,
    write_private,
)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_secret_is_generated_once_in_a_private_file(tmp_path):
    first = ensure_secret("pg-password", tmp_path)
    assert len(first) >= 40
    assert ensure_secret("pg-password", tmp_path) == first
    path = tmp_path / "secrets" / "pg-password"
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert read_secret("pg-password", tmp_path) == first
    assert ensure_secret("other", tmp_path) != first


def test_a_secret_others_can_read_is_refused_in_one_sentence(tmp_path):
    path = write_private(tmp_path / "secrets" / "signing-key", "k\n")
    os.chmod(path, 0o644)
    with pytest.raises(SecretFileError, match=r"can be read by other users .*chmod 600") as err:
        read_secret("signing-key", tmp_path)
    assert "delete" not in str(err.value)  # review defect 6: a new one would lock users out


def test_commands_find_the_credentials_without_overriding_the_user(tmp_path, monkeypatch):
    monkeypatch.setenv("HOMEVISION_SERVICES_DIR", str(tmp_path))
    password = ensure_secret(MLFLOW_PASSWORD, tmp_path)
    write_private(tmp_path / "secrets" / PGPASS, "127.0.0.1:5433:*:homevision:x\n")
    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}  # no mlflow.uri yet: the default
    apply_to_environment(env)
    assert env == {
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "PGPASSFILE": str(tmp_path / "secrets" / PGPASS),
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": password,
    }
    local: dict[str, str] = {}  # the local SQLite store needs no MLflow credentials
    apply_to_environment(local)
    assert local == {"PGPASSFILE": str(tmp_path / "secrets" / PGPASS)}
    mine = {
        "MLFLOW_TRACKING_USERNAME": "ana",
        "MLFLOW_TRACKING_PASSWORD": "hers",
        "PGPASSFILE": "p",
    }
    given = dict(mine)
    apply_to_environment(given)
    assert given == mine


def test_no_services_no_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("HOMEVISION_SERVICES_DIR", str(tmp_path / "none"))
    env: dict[str, str] = {}
    apply_to_environment(env)
    assert env == {}


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A tracking server that is not ours: records the Authorization header it is sent."""

    seen: ClassVar[list[str | None]] = []

    def do_GET(self):
        self.seen.append(self.headers.get("Authorization"))
        self.send_response(404)
        self.end_headers()
        self.wfile.write(b"{}")

    def do_POST(self):
        self.do_GET()

    def log_message(self, *args):
        pass


def test_the_admin_password_goes_only_to_the_server_the_services_started(tmp_path, monkeypatch):
    """Review defect 3: with a services dir holding the admin password, every command sent it
    to whatever server MLFLOW_TRACKING_URI named (another team's, a typo'd host)."""
    from mlflow.tracking import MlflowClient

    from homevision.tracking import tracking_uri

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "PGPASSFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("HOMEVISION_SERVICES_DIR", str(tmp_path))
    password = ensure_secret(MLFLOW_PASSWORD, tmp_path)
    (tmp_path / MLFLOW_URI_FILE).write_text("http://127.0.0.1:5000\n")  # ours, started there
    foreign = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", foreign)
    try:
        with pytest.raises(Exception):  # noqa: B017 - the stranger answers 404
            MlflowClient(tracking_uri()).search_experiments()
    finally:
        server.shutdown()
    assert _Recorder.seen and _Recorder.seen == [None] * len(_Recorder.seen)
    assert "MLFLOW_TRACKING_PASSWORD" not in os.environ

    env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000/"}  # ours (a trailing / is the same)
    apply_to_environment(env)
    assert env["MLFLOW_TRACKING_PASSWORD"] == password


def test_two_processes_generating_a_secret_at_once_end_with_the_same_one(tmp_path, monkeypatch):
    """Review defect 5: ensure_secret read, then replaced the file; of two `make services` on
    a fresh folder one could go on with a password that another overwrote (18 of 200 tries).
    Here the other process writes its secret between our read and our write."""
    import homevision.service_secrets as module

    read = module.read_private

    def read_then_the_other_writes(path):
        value = read(path)
        if value is None and not path.exists():
            write_private(path, "the-other-process-secret\n")
        return value

    monkeypatch.setattr(module, "read_private", read_then_the_other_writes)
    assert ensure_secret("pg-password", tmp_path) == "the-other-process-secret"
    assert read_secret("pg-password", tmp_path) == "the-other-process-secret"
    assert [p.name for p in (tmp_path / "secrets").iterdir()] == ["pg-password"]
