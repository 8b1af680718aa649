"""The flow under faults (issue 23), shared by test_flow_faults_ops.py (killed at each op
boundary) and test_flow_faults_commit.py (killed inside the commit): killed with SIGKILL, then
run again, the flow ends where an uninterrupted run ends: the same history bytes, every dropped
file accounted for, and the champion a model trained on the committed history. Two files so
that pytest-xdist runs the two halves side by side."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

from mlflow.tracking import MlflowClient

from homevision.data.synthetic import generate_listings, write_listings
from homevision.flow.history import history_path, manifest_path
from homevision.tracking import file_hash

from .conftest import cli, empty_store, tiny_params

OP_FAULTS = ["after:pick_up", "after:merge_history", "after:check_drift", "after:retrain"]
COMMIT_FAULTS = [
    "commit:journal",
    "commit:history-half",
    "commit:history",
    "commit:manifest",
    "commit:files",
    "commit:alias",
]


def _flow(home: Path, fault: str | None = None):
    env = {"HOMEVISION_PARAMS": str(home / "params.yaml")}
    if fault:
        env["HOMEVISION_FLOW_FAULT"] = fault
    return cli(home, "flow", "run", "--incoming", str(home / "incoming"), "--settle-seconds",
               "0", "--budget", "10", "--json", env=env, unset=("HOMEVISION_API_URL",))  # fmt: skip


def make_template(tmp_path_factory) -> Path:
    """A project with one export in its drop folder, an empty store and tiny training params."""
    home = tmp_path_factory.mktemp("flow-template")
    write_listings(generate_listings(500, seed=8), home / "incoming" / "2020-03.csv")
    shutil.copyfile(empty_store(), home / "mlflow.db")
    shutil.copyfile(tiny_params(home, ["median_ppsf"]), home / "params.yaml")
    return home


def _copy(template: Path, folder: Path) -> Path:
    shutil.copytree(template, folder)
    return folder


def run_uninterrupted(template: Path, tmp_path_factory) -> bytes:
    """The history an uninterrupted run commits."""
    home = _copy(template, tmp_path_factory.mktemp("flow-clean") / "home")
    proc = _flow(home)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads(proc.stdout)["promoted"] is True
    return history_path(home).read_bytes()


def _champion_data_hash(home: Path) -> str:
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    version = client.get_model_version_by_alias("homevision-price", "champion")
    return client.get_run(version.run_id).data.tags["data_hash"]


def check_killed_then_completed(template: Path, uninterrupted: bytes, tmp_path: Path, fault: str):
    """Kill a run at `fault`, run again, and check the end state (see the module docstring)."""
    home = _copy(template, tmp_path / "home")
    killed = _flow(home, fault)
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-2000:] + killed.stderr[-2000:]

    again = _flow(home)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    summary = json.loads(again.stdout)
    if fault.startswith("commit:"):  # the journal was written: the next run completes it
        assert summary["recovered"].startswith("completed the commit of run")
    assert history_path(home).read_bytes() == uninterrupted
    incoming = home / "incoming"
    assert sorted(p.name for p in incoming.iterdir()) == ["archive"]
    assert [p.name for p in (incoming / "archive").iterdir()] == ["2020-03.csv"]
    manifest = json.loads(manifest_path(home).read_text())
    assert [m["file"] for m in manifest["merges"]] == ["2020-03.csv"]
    assert manifest["history_sha256"] == file_hash(history_path(home))
    assert _champion_data_hash(home) == file_hash(history_path(home))
    leftovers = [p.name for p in history_path(home).parent.iterdir() if p.name.startswith(".")]
    assert leftovers in ([], [".lock"]), leftovers
