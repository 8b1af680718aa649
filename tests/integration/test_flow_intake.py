"""`homevision flow run` on a drop folder a producer and other users write into (issue 23,
defects 1 and 2): a file it cannot read, a binary file, a symlink, a folder, a file still being
written: each gets its sentence, none stops the run, and nothing is lost or half-taken."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from homevision.data.synthetic import generate_listings, write_listings
from homevision.flow.history import history_path, manifest_path

pytestmark = [pytest.mark.slow]


DROP_ROOTS_PRIVILEGE = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
    "--",
]


def _someone_elses(path: Path) -> list[str]:
    """Make `path` a file another user dropped, readable by them only (mode 0600), and return
    the command prefix under which the flow cannot read it: as root, without the capability to
    read other users' files (setpriv); as anyone else, the file simply has no read bit."""
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("as root, reading another user's file needs setpriv to be refused")
        os.chown(path, 65534, 65534)  # nobody
        os.chmod(path, 0o600)
        return DROP_ROOTS_PRIVILEGE
    os.chmod(path, 0o000)
    return []


def _run(home: Path, prefix: list[str], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["HOMEVISION_HOME"] = str(home)
    command = [*prefix, sys.executable, "-m", "homevision.cli", "flow", "run", *args, "--json"]
    return subprocess.run(
        command, env=env, cwd=home, capture_output=True, text=True, timeout=600, check=False
    )


def test_bad_entries_each_get_a_sentence_and_the_run_goes_on(tmp_path):
    home = tmp_path / "project"
    incoming = home / "incoming"
    incoming.mkdir(parents=True)
    secret = write_listings(generate_listings(20, seed=1), incoming / "colleague.csv")
    (incoming / "garbage.csv").write_bytes(bytes(range(256)) * 50)
    (incoming / "link.csv").symlink_to(tmp_path / "elsewhere.csv")
    (incoming / "folder.csv").mkdir()
    (incoming / "2020-05.csv.part").write_text('"MLSNumber"\r\n"1"\r\n')
    fresh = write_listings(generate_listings(20, seed=2), incoming / "fresh.csv")
    then = time.time() - 600
    for path in incoming.iterdir():
        if path not in (fresh,) and not path.is_symlink():
            os.utime(path, (then, then))
    prefix = _someone_elses(secret)

    proc = _run(home, prefix, "--incoming", str(incoming), "--settle-seconds", "120")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    refused = {r["file"]: r["reason"] for r in summary["files_refused"]}
    assert set(refused) == {"colleague.csv", "garbage.csv", "link.csv"}
    assert refused["colleague.csv"].startswith("cannot be read: permission denied")
    assert "symbolic link" in refused["link.csv"]
    waiting = {w["file"]: w["reason"] for w in summary["files_waiting"]}
    assert set(waiting) == {"2020-05.csv.part", "fresh.csv"}
    assert {w["file"] for w in summary["files_left"]} == {"folder.csv"}
    assert summary["nothing_to_do"] and summary["changed"].startswith("Changed: 3 file(s) moved")

    failed = incoming / "failed"
    for name, reason in refused.items():
        assert os.path.lexists(failed / name), name
        assert (failed / f"{name}.reason.txt").read_text().strip() == reason
    assert sorted(p.name for p in incoming.iterdir()) == [
        "2020-05.csv.part",
        "failed",
        "folder.csv",
        "fresh.csv",
    ]
    manifest = json.loads(manifest_path(home).read_text())
    assert {r["file"] for r in manifest["refused"]} == set(refused)
    assert not history_path(home).exists()
