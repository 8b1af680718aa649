"""Secrets of the team services: private files, generated once, found by every command."""

from __future__ import annotations

import os
import stat

import pytest

from homevision.service_secrets import (
    MLFLOW_PASSWORD,
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
    with pytest.raises(SecretFileError, match=r"can be read by other users .*chmod 600"):
        read_secret("signing-key", tmp_path)


def test_commands_find_the_credentials_without_overriding_the_user(tmp_path, monkeypatch):
    monkeypatch.setenv("HOMEVISION_SERVICES_DIR", str(tmp_path))
    password = ensure_secret(MLFLOW_PASSWORD, tmp_path)
    write_private(tmp_path / "secrets" / PGPASS, "127.0.0.1:5433:*:homevision:x\n")
    env: dict[str, str] = {}
    apply_to_environment(env)
    assert env == {
        "PGPASSFILE": str(tmp_path / "secrets" / PGPASS),
        "MLFLOW_TRACKING_USERNAME": "admin",
        "MLFLOW_TRACKING_PASSWORD": password,
    }
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
