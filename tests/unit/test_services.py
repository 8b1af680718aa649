"""`make services` (homevision.services): URLs without passwords, the exports, and the checks
that keep it from adopting or signalling what it did not start (issue 22, defects 3 and 8)."""

from __future__ import annotations

import http.server
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from homevision.services import mlflow_server, postgres
from homevision.services.__main__ import env_lines
from homevision.services.postgres import ServiceError
from homevision.services.processes import command_line, own_process, start_time, write_pid
from homevision.services.settings import (
    Settings,
    database_url,
    external_pgpass_line,
    pgpass_line,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _settings(tmp_path: Path, **changes) -> Settings:
    values = {
        "dir": tmp_path / ".services",
        "pg_port": _free_port(),
        "mlflow_port": _free_port(),
        "external_url": None,
        "mlflow_bin": Path(sys.executable).with_name("mlflow"),
        "pg_root": Path("/usr/lib/postgresql"),
    }
    return Settings(**(values | changes))


def test_a_given_database_url_keeps_its_query_string_and_loses_its_password():
    given = "postgresql+psycopg://ana:s%3Acret@db.example.com:6543/postgres?sslmode=require"
    assert (
        database_url(given, "mlflow")
        == "postgresql+psycopg://ana@db.example.com:6543/mlflow?sslmode=require"
    )
    assert database_url(given, "optuna", with_password=True) == (
        "postgresql+psycopg://ana:s%3Acret@db.example.com:6543/optuna?sslmode=require"
    )
    assert external_pgpass_line(given) == "db.example.com:6543:*:ana:s\\:cret\n"
    assert external_pgpass_line("postgresql://ana@db/x") is None
    assert pgpass_line("127.0.0.1", 5433, "homevision", "a\\b") == (
        "127.0.0.1:5433:*:homevision:a\\\\b\n"
    )


def test_the_exports_name_where_secrets_are_never_the_secrets(tmp_path):
    from homevision.service_secrets import MLFLOW_PASSWORD, ensure_secret

    settings = _settings(tmp_path, external_url="postgresql://u:topsecret@h:5432/postgres")
    password = ensure_secret(MLFLOW_PASSWORD, settings.dir)
    text = "\n".join(env_lines(settings))
    assert "topsecret" not in text and password not in text
    assert "HOMEVISION_OPTUNA_STORAGE=postgresql://u@h:5432/optuna" in text
    assert f'MLFLOW_TRACKING_PASSWORD="$(cat {settings.mlflow_password_file})"' in text


@pytest.fixture
def stranger():
    """A process this project did not start, in its own process group."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    # Popen returns once the child has begun exec; the kernel writes the new argv a moment
    # later, so /proc/<pid>/cmdline can still be empty (seen under load in CI).
    deadline = time.monotonic() + 10
    while "sleep" not in command_line(process.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    yield process
    process.kill()
    process.wait()


def test_a_pid_is_ours_only_with_its_start_time_and_command(tmp_path, stranger):
    pids = tmp_path / "mlflow.pid"
    write_pid(pids, stranger.pid)
    assert own_process(pids, "sleep") == stranger.pid
    assert own_process(pids, "mlflow") is None  # alive, but not an MLflow server
    pids.write_text(f"{stranger.pid} {start_time(stranger.pid) + 1}\n")  # a reused pid
    assert own_process(pids, "sleep") is None
    pids.write_text(f"{stranger.pid}\n")  # an old or hand-written file
    assert own_process(pids, "sleep") is None


def test_stop_never_signals_a_process_named_by_a_stale_pid_file(tmp_path, stranger, caplog):
    settings = _settings(tmp_path)
    settings.dir.mkdir()
    write_pid(mlflow_server.pid_file(settings), stranger.pid)
    mlflow_server.stop(settings)
    time.sleep(0.3)
    assert stranger.poll() is None, "stop signalled a process it did not start"
    assert not mlflow_server.pid_file(settings).exists()
    assert "not the MLflow server this project started" in caplog.text


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


def test_start_refuses_a_port_that_something_else_answers_on(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = _settings(tmp_path, mlflow_port=server.server_address[1])
        up, line = mlflow_server.status(settings)
        assert not up and "something this project did not start answers" in line
        with pytest.raises(ServiceError, match=r"is taken by a program this project did not start"):
            mlflow_server.start(settings)
        assert not mlflow_server.pid_file(settings).exists()
    finally:
        server.shutdown()


def test_status_installs_nothing(tmp_path):
    """`status` on a machine without PostgreSQL says so; it never runs sudo or apt-get."""
    fake = tmp_path / "bin"
    fake.mkdir()
    marker = tmp_path / "ran"
    for name in ("sudo", "apt-get"):
        tool = fake / name
        tool.write_text(f"#!/bin/sh\necho {name} >> {marker}\n")
        tool.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{fake}:{os.environ['PATH']}",
        "HOMEVISION_SERVICES_DIR": str(tmp_path / ".services"),
        "HOMEVISION_PG_ROOT": str(tmp_path / "no-postgresql"),
        "HOMEVISION_MLFLOW_PORT": str(_free_port()),
    }
    done = _services("status", env)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "PostgreSQL: not installed (make services installs it)",
        "MLflow server: down",
    ]
    assert not marker.exists(), marker.read_text()


def _services(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `python -m homevision.services <command>` with `env`; return what it did."""
    return subprocess.run(
        [sys.executable, "-m", "homevision.services", command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _postgres_user() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


@pytest.mark.skipif(os.geteuid() != 0 or not _postgres_user(), reason="needs root and postgres")
def test_as_root_a_folder_postgres_cannot_reach_is_not_opened_up(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    settings = _settings(private)
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in [private, *private.parents]}
    data = postgres.pgdata(settings)
    assert data.parent == postgres.POSTGRES_HOME and data.name.startswith("homevision-")
    assert {p: stat.S_IMODE(p.stat().st_mode) for p in modes} == modes
    reachable = _settings(tmp_path / "open")
    (tmp_path / "open").mkdir()
    if postgres._postgres_reaches(tmp_path / "open"):
        assert postgres.pgdata(reachable) == reachable.pgdata


SECRET_ENV = {
    "MLFLOW_TRACKING_PASSWORD": "admin-password-in-the-shell",
    "MLFLOW_TRACKING_USERNAME": "admin",
    "HOMEVISION_SIGNING_KEY": "signing-key-in-the-shell",
}


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().partition("=")[::2] for item in raw if item)


def _leaked(env: dict[str, str]) -> list[str]:
    secrets = {v for k, v in SECRET_ENV.items() if k != "MLFLOW_TRACKING_USERNAME"}
    return sorted(k for k, v in env.items() if v in secrets or k in SECRET_ENV)


def _fake_mlflow(folder: Path, environ: Path, admin_password: str | None = None) -> Path:
    """Write a stand-in `mlflow` binary and return it: it records its environment in
    `environ`, answers /health, and every other path with 200 for Basic auth as admin with
    `admin_password` (default: the one in its MLFLOW_AUTH_CONFIG_PATH), else 401."""
    fake = folder / "mlflow"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import base64, configparser, http.server, json, os, sys\n"
        f"open({str(environ)!r}, 'w').write(json.dumps(dict(os.environ)))\n"
        "ini = configparser.ConfigParser()\n"
        "ini.read(os.environ['MLFLOW_AUTH_CONFIG_PATH'])\n"
        f"password = {admin_password!r} or ini['mlflow']['admin_password']\n"
        "good = 'Basic ' + base64.b64encode(f'admin:{password}'.encode()).decode()\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        ok = self.path == '/health' or self.headers.get('Authorization') == good\n"
        "        self.send_response(200 if ok else 401); self.end_headers()\n"
        "        self.wfile.write(b'{}')\n"
        "    def log_message(self, *a): pass\n"
        "port = int(sys.argv[sys.argv.index('--port') + 1])\n"
        "http.server.HTTPServer(('127.0.0.1', port), H).serve_forever()\n"
    )
    fake.chmod(0o755)
    return fake


def test_the_mlflow_server_gets_no_secret_of_the_shell_that_started_it(tmp_path, monkeypatch):
    """Review defect 2: the server was started with {**os.environ, ...}: the admin password and
    the signing key of an `eval "$(services.sh env)"` shell were in its /proc/PID/environ."""
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    seen = tmp_path / "environ.txt"
    fake = _fake_mlflow(tmp_path, seen)
    monkeypatch.setattr(mlflow_server, "_upgrade_store", lambda env: None)
    settings = _settings(tmp_path, mlflow_bin=fake)
    mlflow_server.start(settings)
    try:
        import json

        env = json.loads(seen.read_text())
        assert _leaked(env) == []
        assert env["MLFLOW_BACKEND_STORE_URI"] == settings.database_url("mlflow")
        assert {"PATH", "PGPASSFILE", "MLFLOW_AUTH_CONFIG_PATH"} <= set(env)
    finally:
        mlflow_server.stop(settings)


def _another_port_is_refused_while_it_runs(settings: Settings) -> None:
    """Review defect 7: with HOMEVISION_PG_PORT changed while the cluster ran, start said
    "already runs on <new port>", rewrote pgpass for it, then died in a psycopg traceback;
    status named the new port."""
    import dataclasses

    moved = dataclasses.replace(settings, pg_port=_free_port())
    pgpass = settings.pgpass.read_text()
    with pytest.raises(ServiceError, match=rf"runs on port {settings.pg_port}: stop it first"):
        postgres.start(moved)
    assert settings.pgpass.read_text() == pgpass
    up, line = postgres.status(moved)
    assert up and f"127.0.0.1:{settings.pg_port}" in line and "HOMEVISION_PG_PORT" in line, line


@pytest.mark.slow
@pytest.mark.skipif(
    not list(Path("/usr/lib/postgresql").glob("*/bin")), reason="needs PostgreSQL installed"
)
def test_the_postmaster_gets_no_secret_of_the_shell_that_started_it(tmp_path, monkeypatch):
    """Review defect 2: pg_ctl start ran with the caller's environment; the OS user postgres
    (and, over SQL, the superuser role) could read the MLflow password and the signing key in
    /proc/<postmaster>/environ. A real cluster, started and stopped here (about 5 s)."""
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    settings = _settings(tmp_path)
    monkeypatch.setenv("PGPASSFILE", str(settings.pgpass))
    data = postgres.pgdata(settings)
    try:
        postgres.start(settings)
        pid = int((data / "postmaster.pid").read_text().split()[0])
        assert _leaked(_environ(pid)) == []
        _another_port_is_refused_while_it_runs(settings)
    finally:
        postgres.stop(settings)
        if data != settings.pgdata:
            subprocess.run(postgres.as_pg(["rm", "-rf", str(data)]), check=False)


@pytest.mark.skipif(
    not list(Path("/usr/lib/postgresql").glob("*/bin")), reason="needs PostgreSQL installed"
)
def test_a_stale_postmaster_pid_naming_another_program_is_never_signalled(tmp_path, caplog):
    """Review defect 4: after a crash postmaster.pid can name a pid reused by an unrelated
    program of the cluster's owner; `status` said up and `stop` sent it SIGINT (it died), then
    waited 60 s and crashed. Now that program is left alone and the stale file removed."""
    owner = "postgres" if os.geteuid() == 0 else None
    program = subprocess.Popen(["sleep", "60"], user=owner, start_new_session=True)
    settings = _settings(tmp_path)
    data = postgres.pgdata(settings)
    try:
        data.mkdir(mode=0o700, parents=True)
        (data / "PG_VERSION").write_text("15\n")  # a cluster that was not stopped cleanly
        lock = data / "postmaster.pid"
        lock.write_text(
            f"{program.pid}\n{data}\n{int(time.time())}\n{settings.pg_port}\n\n127.0.0.1\n"
            "  5432001         0\nready   \n"
        )
        if owner:
            for path in (data, lock, data / "PG_VERSION"):
                os.chown(path, pwd.getpwnam(owner).pw_uid, pwd.getpwnam(owner).pw_gid)
        up, line = postgres.status(settings)
        assert not up and line.startswith("PostgreSQL: down"), line
        started = time.monotonic()
        postgres.stop(settings)
        assert time.monotonic() - started < 10
        time.sleep(0.3)
        assert program.poll() is None, "stop signalled a program that is not our postgres"
        assert not lock.exists()
        assert "not this cluster's postgres" in caplog.text
    finally:
        program.kill()
        program.wait()
        shutil.rmtree(data, ignore_errors=True)


def test_a_second_start_or_stop_waits_for_the_first(tmp_path):
    """Review defect 5: two `make services` at once both started an MLflow server (one
    orphaned, holding the port) or died in a pg_ctl traceback. start and stop now hold
    `<services dir>/.services.lock`: a second one waits until the first is done."""
    from filelock import FileLock

    folder = tmp_path / ".services"
    folder.mkdir()
    env = {
        **os.environ,
        "HOMEVISION_SERVICES_DIR": str(folder),
        "HOMEVISION_PG_ROOT": str(tmp_path / "no-postgresql"),
        "HOMEVISION_MLFLOW_PORT": str(_free_port()),
    }
    command = [sys.executable, "-m", "homevision.services", "stop"]
    with FileLock(folder / ".services.lock"):
        second = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        assert second.poll() is None, "stop ran while another start/stop held the services"
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err


def test_a_database_that_refuses_is_one_sentence_without_its_password(tmp_path):
    """Review defect 8: `start` with HOMEVISION_DATABASE_URL whose server refuses ended in a
    psycopg traceback."""
    env = {
        **os.environ,
        "HOMEVISION_SERVICES_DIR": str(tmp_path / ".services"),
        "HOMEVISION_DATABASE_URL": f"postgresql://ana:hunter2@127.0.0.1:{_free_port()}/postgres",
        "HOMEVISION_MLFLOW_PORT": str(_free_port()),
    }
    done = _services("start", env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "hunter2" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("services: cannot reach PostgreSQL at "), lines


def test_a_lost_secret_is_not_replaced_by_one_the_services_would_refuse(tmp_path, monkeypatch):
    """Review defect 6: following "delete it to have a new one generated" locked users out:
    a new mlflow-password is not the admin password MLflow stored on its first start (every
    call 401, though start said "started"), a new pg-password not the role's (a psycopg
    traceback). A lost secret of a set-up that exists is now refused in one sentence."""
    from homevision.service_secrets import MLFLOW_PASSWORD, PG_PASSWORD, ensure_secret

    settings = _settings(tmp_path)
    monkeypatch.setattr(mlflow_server, "_upgrade_store", lambda env: None)
    ensure_secret(MLFLOW_PASSWORD, settings.dir)
    mlflow_server.auth_config(settings)  # what the first start wrote
    settings.mlflow_password_file.unlink()
    with pytest.raises(ServiceError, match=r"mlflow-password is missing, but the MLflow server"):
        mlflow_server.start(settings)
    assert not settings.mlflow_password_file.exists()

    data = postgres.pgdata(settings)
    try:
        data.mkdir(parents=True)
        (data / "PG_VERSION").write_text("15\n")  # a cluster made with the lost password
        if postgres.find_bin(settings) is not None:
            with pytest.raises(ServiceError, match=r"pg-password is missing, but the cluster"):
                postgres.start(settings)
            assert not settings.pg_password_file.exists()
    finally:
        shutil.rmtree(data, ignore_errors=True)
    assert ensure_secret(PG_PASSWORD, settings.dir)  # a fresh set-up still generates it


def test_start_fails_when_the_server_refuses_the_admin_password(tmp_path, monkeypatch):
    """Review defect 6: start said "started" while every authenticated call got 401."""
    monkeypatch.setattr(mlflow_server, "_upgrade_store", lambda env: None)
    fake = _fake_mlflow(tmp_path, tmp_path / "environ.txt", admin_password="the-old-one")
    settings = _settings(tmp_path, mlflow_bin=fake)
    try:
        with pytest.raises(ServiceError, match=r"refuses the admin password in .*mlflow-password"):
            mlflow_server.start(settings)
    finally:
        mlflow_server.stop(settings)
