"""Who may call the API (issue 22): API keys with scopes, stored hashed, checked on every route
that carries data or changes state; open health probes and metrics; `serve` refuses to listen
beyond loopback without keys. In-process through the test client, then against `homevision
serve` over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from homevision.api_keys import Scope, create_key, read_keys, revoke_key
from homevision.cli import app
from homevision.serving.api import create_app

from .conftest import free_port, served_api
from .test_api import HOME

runner = CliRunner()


@pytest.fixture
def key_file(tmp_path, monkeypatch) -> Path:
    """This test's own key file (the trained project is shared by other tests)."""
    path = tmp_path / "keys" / "api-keys.json"
    monkeypatch.setenv("HOMEVISION_API_KEYS", str(path))
    return path


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_key_is_stored_hashed_in_a_file_only_its_owner_can_read(key_file):
    key, record = create_key(Scope.value, "valuation desk")
    assert key.startswith(f"hv_{record.id}_") and len(key) > 40
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    text = key_file.read_text()
    assert key.split("_", 2)[2] not in text and record.sha256 in text
    assert read_keys()[record.id].name == "valuation desk"
    key_file.chmod(0o644)
    with pytest.raises(PermissionError, match="readable by other users"):
        read_keys()


def test_without_keys_valuations_are_loopback_only_and_admin_routes_are_off(served_home, key_file):
    assert not key_file.exists()
    with TestClient(create_app()) as c:
        assert c.post("/valuations", json=HOME).status_code == 200
        reload = c.post("/model/reload")
        assert reload.status_code == 403
        assert "homevision keys create --scope admin" in reload.json()["detail"]
    with TestClient(create_app(), client=("192.0.2.7", 40000)) as remote:
        refused = remote.post("/valuations", json=HOME)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert remote.get("/health").status_code == 200  # probes carry no data
    with TestClient(create_app(), client=("127.0.0.1", 40000)) as proxied:
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
            through = proxied.post("/valuations", json=HOME, headers={header: "127.0.0.1"})
            assert through.status_code == 401 and "came through a proxy" in through.text


def test_without_keys_a_forwarded_header_never_passes_for_this_machine(served_home, tmp_path):
    """Against the real server, told to trust forwarded headers from anywhere: before, a
    request saying "X-Forwarded-For: 127.0.0.1" passed for this machine without a key (from
    beyond it too, wherever uvicorn trusted the sender)."""
    keys = tmp_path / "none.json"
    env = {
        **os.environ,
        "HOMEVISION_HOME": str(served_home),
        "HOMEVISION_API_KEYS": str(keys),
        "FORWARDED_ALLOW_IPS": "*",
    }
    with served_api(served_home, env, "--workers", "1") as server:
        url = f"{server.base}/valuations"
        assert httpx.post(url, json=HOME, timeout=30).status_code == 200
        spoofed = {"X-Forwarded-For": "127.0.0.1"}
        refused = httpx.post(url, json=HOME, headers=spoofed, timeout=30)
        assert refused.status_code == 401 and "came through a proxy" in refused.text


def test_with_keys_each_route_needs_its_scope(served_home, key_file):
    value_key, _ = create_key(Scope.value, "desk")
    admin_key, admin = create_key(Scope.admin, "ops")
    with TestClient(create_app()) as c:
        missing = c.post("/valuations", json=HOME)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in missing.json()["detail"]
        wrong = c.post("/valuations", json=HOME, headers=bearer(value_key[:-2] + "xx"))
        assert wrong.status_code == 401
        assert c.get("/model").status_code == 401
        assert c.post("/valuations", json=HOME, headers=bearer(value_key)).status_code == 200
        assert c.get("/model", headers=bearer(value_key)).status_code == 200
        scope = c.post("/model/reload", headers=bearer(value_key))
        assert scope.status_code == 403 and "needs 'admin'" in scope.json()["detail"]
        assert c.post("/model/reload", headers=bearer(admin_key)).json()["version"] == "1"
        assert c.post("/valuations", json=HOME, headers=bearer(admin_key)).status_code == 200
        # Open without a key: the probes and the API's description. The metrics are not open:
        # their price sum moves by each valuation's price.
        assert c.get("/health").status_code == 200 and c.get("/openapi.json").status_code == 200
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers=bearer(value_key)).status_code == 403
        assert c.get("/metrics", headers=bearer(admin_key)).status_code == 200
        # Revoked: refused from the next request, without a restart.
        revoke_key(admin.id)
        assert c.post("/model/reload", headers=bearer(admin_key)).status_code == 401
        for response in (missing, wrong, scope):
            assert value_key not in response.text and admin_key not in response.text


def test_the_openapi_document_declares_the_bearer_scheme_on_each_guarded_route(served_home):
    with TestClient(create_app()) as c:
        spec = c.get("/openapi.json").json()
    scheme = spec["components"]["securitySchemes"]["APIKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    guarded = {
        (path, method)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if op.get("security") == [{"APIKey": []}]
    }
    assert guarded == {("/valuations", "post"), ("/model", "get"), ("/model/reload", "post")}
    assert "401" in spec["paths"]["/valuations"]["post"]["responses"]


def test_keys_cli_creates_lists_and_revokes_without_showing_a_stored_key(tmp_path):
    created = runner.invoke(app, ["keys", "create", "--scope", "admin", "--name", "flow"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    key_id = key.split("_")[1]
    assert f"Created API key {key_id} (scope admin)" in created.stderr
    listed = runner.invoke(app, ["keys", "list"])
    assert key_id in listed.stdout and "flow" in listed.stdout
    assert key.split("_", 2)[2] not in listed.output
    assert runner.invoke(app, ["keys", "revoke", key_id]).exit_code == 0
    again = runner.invoke(app, ["keys", "revoke", key_id])
    assert again.exit_code == 2 and f"no API key '{key_id}'" in again.stdout
    stored = json.loads((tmp_path / ".homevision" / "api-keys.json").read_text())
    assert stored == []
    assert "No keys" in runner.invoke(app, ["keys", "list"]).stdout


def test_serve_refuses_to_listen_beyond_loopback_without_keys(tmp_path):
    refused = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--port", str(free_port())])
    assert refused.exit_code == 2
    assert refused.stdout.startswith("error: refusing to listen on 0.0.0.0 without API keys")


def test_the_real_server_refuses_requests_without_the_right_key(served_home, tmp_path):
    keys = tmp_path / "api-keys.json"
    env = {**os.environ, "HOMEVISION_HOME": str(served_home), "HOMEVISION_API_KEYS": str(keys)}
    # Issue 22, defect 7: a metrics folder that holds a database (here a copy of the project's
    # tracking store) keeps it; only prometheus_client's files of an earlier server go.
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    shutil.copyfile(served_home / "mlflow.db", metrics / "mlflow.db")
    store = (metrics / "mlflow.db").read_bytes()
    (metrics / "counter_4242.db").write_bytes(b"an earlier server's counts")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    value_key, _ = create_key(Scope.value, "desk", path=keys)
    scrape_key, _ = create_key(Scope.metrics, "prometheus", path=keys)
    with served_api(served_home, env, "--workers", "1") as server:
        base = server.base
        assert httpx.get(f"{base}/health", timeout=30).json()["model_loaded"]
        assert httpx.post(f"{base}/valuations", json=HOME, timeout=30).status_code == 401
        ok = httpx.post(f"{base}/valuations", json=HOME, headers=bearer(value_key), timeout=30)
        assert ok.status_code == 200 and ok.json()["valuations"][0]["predicted_close_price"] > 0
        reload = httpx.post(f"{base}/model/reload", headers=bearer(value_key), timeout=30)
        assert reload.status_code == 403
        # The metrics tell a keyless scraper each valuation's price (the histogram's sum).
        assert httpx.get(f"{base}/metrics", timeout=30).status_code == 401
        assert httpx.get(f"{base}/metrics", headers=bearer(value_key), timeout=30).is_error
        scraped = httpx.get(f"{base}/metrics", headers=bearer(scrape_key), timeout=30)
        assert scraped.status_code == 200 and "homevision_valuations_total" in scraped.text
    assert value_key not in server.stderr and scrape_key not in server.stderr  # never logged
    assert (metrics / "mlflow.db").read_bytes() == store
    assert not (metrics / "counter_4242.db").exists()


def test_the_real_server_fails_closed_when_its_keys_go_away(served_home, tmp_path):
    """Once keys are configured, losing them never opens the API to the keyless (loopback)
    mode: a key file that disappears or is opened to other users is a 503, and revoking every
    key lets nobody in (before, the first two answered 200 to anyone on the machine)."""
    keys = tmp_path / "api-keys.json"
    env = {**os.environ, "HOMEVISION_HOME": str(served_home), "HOMEVISION_API_KEYS": str(keys)}
    value_key, record = create_key(Scope.value, "desk", path=keys)
    with served_api(served_home, env, "--workers", "1") as server:
        url = f"{server.base}/valuations"

        def post(**headers: str) -> httpx.Response:
            return httpx.post(url, json=HOME, headers=headers, timeout=30)

        assert post().status_code == 401
        assert post(**bearer(value_key)).status_code == 200
        keys.rename(tmp_path / "moved.json")
        gone = post()
        assert gone.status_code == 503 and "key file cannot be used" in gone.json()["detail"]
        assert post(**bearer(value_key)).status_code == 503
        (tmp_path / "moved.json").rename(keys)
        assert post(**bearer(value_key)).status_code == 200
        keys.chmod(0o644)
        assert post(**bearer(value_key)).status_code == 503
        keys.chmod(0o600)
        assert post(**bearer(value_key)).status_code == 200
        revoke_key(record.id, path=keys)
        assert post().status_code == 401 and post(**bearer(value_key)).status_code == 401
        assert httpx.get(f"{server.base}/metrics", timeout=30).status_code == 401
    assert "is gone, but API keys were configured in it" in server.stderr
    assert value_key not in server.stderr


def _answer_to_unsent_body(base: str, headers: str) -> str:
    """POST /valuations announcing a 5 MB body but sending 2 bytes of it; return the status
    line the server answers within 10 s, or "" when it waits for the rest of the body."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /valuations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + headers.encode()
            + b"Content-Length: 5000000\r\n\r\n[{"
        )
        try:
            return conn.recv(4096).decode().split("\r\n")[0]
        except TimeoutError:
            return ""


def test_the_real_server_refuses_a_keyless_caller_before_reading_the_body(served_home, tmp_path):
    """The key is checked on the headers: a caller without a valid key gets its 401 before
    the worker reads or parses a byte of the body (before, FastAPI read and parsed up to the
    body cap first, then answered 401: a free way to keep a worker busy)."""
    keys = tmp_path / "api-keys.json"
    env = {**os.environ, "HOMEVISION_HOME": str(served_home), "HOMEVISION_API_KEYS": str(keys)}
    value_key, _ = create_key(Scope.value, "desk", path=keys)
    with served_api(served_home, env, "--workers", "1") as server:
        assert _answer_to_unsent_body(server.base, "").startswith("HTTP/1.1 401")
        wrong = "Authorization: Bearer hv_not_a_key\r\n"
        assert _answer_to_unsent_body(server.base, wrong).startswith("HTTP/1.1 401")
        # A valid key's request is still read whole and valued.
        ok = httpx.post(f"{server.base}/valuations", json=HOME, headers=bearer(value_key))
        assert ok.status_code == 200
    assert value_key not in server.stderr


def test_a_key_file_never_read_still_counts_as_keys_configured(tmp_path):
    """A key file the server could not read from the start (here open to other users) and
    then removed: the ring refuses, rather than fall back to the keyless mode."""
    from homevision.api_keys import KeyRing

    path = tmp_path / "api-keys.json"
    create_key(Scope.value, "desk", path=path)
    path.chmod(0o644)
    ring = KeyRing(path)
    with pytest.raises(PermissionError):
        ring.keys()
    path.unlink()
    with pytest.raises(FileNotFoundError, match="API keys were configured in it"):
        ring.keys()


@pytest.mark.parametrize("text", ['{"a": 1}', "null", "[1]", '[{"id": "x"}]', "[[]]"])
def test_a_key_file_that_is_not_one_is_refused_in_one_sentence(served_home, key_file, text):
    key_file.parent.mkdir(parents=True)
    key_file.write_text(text)
    key_file.chmod(0o600)
    with pytest.raises(ValueError, match="is not an API key file"):
        read_keys()
    with TestClient(create_app()) as c:  # before: an uncaught TypeError, a 500
        refused = c.post("/valuations", json=HOME)
    assert refused.status_code == 503 and "key file cannot be used" in refused.json()["detail"]


def _edit_keys(path: str, revoke: list[str], start) -> None:
    start.wait()
    for key_id in revoke:
        revoke_key(key_id, path=Path(path))
        create_key(Scope.value, "churn", path=Path(path))


def test_keys_created_and_revoked_at_once_lose_no_change(key_file):
    """`keys create` and `keys revoke` in two processes at the same time: each change holds
    (without the lock, one process wrote back what it had read, and a revoked key returned)."""
    import multiprocessing

    made = [create_key(Scope.value, f"k{i}")[1].id for i in range(40)]
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    workers = [
        ctx.Process(target=_edit_keys, args=(str(key_file), made[i::2], start)) for i in (0, 1)
    ]
    for w in workers:
        w.start()
    start.set()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    left = read_keys()
    assert not set(made) & set(left)  # every revoked key stays revoked
    assert len(left) == 40  # and every created key stays
