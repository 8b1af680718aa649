"""A command's model is fetched and checked by a second process while the command starts up
(homevision.model_fetch), and loaded from its files without MLflow (homevision.model_files):
the same model as tracking.load_model, the same errors, nothing left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from homevision.data.listings import read_export
from homevision.model_errors import ModelNotFoundError
from homevision.model_fetch import ModelFetch, start_fetch
from homevision.model_files import VALUATION_ARTIFACT, load_local, valuation_artifact
from homevision.tracking import fetch_model, load_model
from homevision.valuation.model import MODEL_ARTIFACT
from homevision.valuation.pyfunc import ValuationPyfunc


@pytest.fixture
def listings(served_home) -> pd.DataFrame:
    return read_export(served_home / "data" / "raw" / "listings.csv").head(40)


def _prices(model, listings) -> pd.DataFrame:
    point, low, high = model.predict_interval(listings, 0.9)
    return pd.DataFrame({"point": point, "low": low, "high": high})


def test_the_fetched_model_is_the_registrys_model(served_home, listings):
    with start_fetch(None) as fetch:
        fetched = fetch.model()
    pd.testing.assert_frame_equal(_prices(fetched, listings), _prices(load_model(), listings))


def test_a_command_that_fetches_its_model_never_imports_mlflow(served_home):
    script = (
        "import sys\n"
        "from homevision.model_fetch import start_fetch\n"
        "with start_fetch(None) as fetch:\n"
        "    model = fetch.model()\n"
        "print(type(model).__name__, 'mlflow' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    assert proc.stdout.split() == ["ValuationModel", "False"], proc.stderr[-2000:]


def test_a_reference_that_gives_no_model_says_what_load_model_says(served_home):
    for ref in ("models:/nope@champion", "models:/homevision-price/99", "not a reference"):
        with pytest.raises(ModelNotFoundError) as expected:
            load_model(ref)
        with start_fetch(ref) as fetch:
            for _ in range(2):  # asked again, the same error
                with pytest.raises(ModelNotFoundError) as fetched:
                    fetch.model()
                assert str(fetched.value) == str(expected.value)


def test_leaving_the_fetch_unasked_stops_the_child_and_removes_its_files(served_home):
    fetch = ModelFetch(None)
    assert fetch.folder.is_dir() and fetch.process is not None
    fetch.close()
    assert fetch.process.returncode is not None  # stopped and reaped
    assert not fetch.folder.exists()


def test_a_folder_of_a_pickled_pyfunc_still_loads_through_mlflow(served_home, listings, tmp_path):
    """Models logged before models from code carry a pickled pyfunc, not the joblib artifact:
    those go through mlflow.pyfunc.load_model, and value the same."""
    model = load_model()
    logged = fetch_model(None, tmp_path / "logged")
    assert valuation_artifact(logged) == logged / "artifacts" / f"{MODEL_ARTIFACT}.joblib"
    pickled = tmp_path / "pickled"
    mlflow.pyfunc.save_model(pickled, python_model=ValuationPyfunc(model))
    assert valuation_artifact(pickled) is None
    pd.testing.assert_frame_equal(_prices(load_local(pickled), listings), _prices(model, listings))
    assert VALUATION_ARTIFACT == MODEL_ARTIFACT


def test_a_secret_others_can_read_stops_predict_in_one_sentence(
    tmp_path, synthetic_csv, monkeypatch
):
    """Review defect 8: an mlflow-password others can read gave two tracebacks (the fetching
    child's SecretFileError, then "fetching the model champion stopped"); a signing-key that
    others can read said "no model at ... (train one first ...)"."""
    from homevision.service_secrets import MLFLOW_URI_FILE, SecretFileError, ensure_secret

    from .conftest import cli

    services = tmp_path / "svc"
    uri = "http://127.0.0.1:9"  # the services' own server (down: the secret is read first)
    (services / MLFLOW_URI_FILE).parent.mkdir()
    (services / MLFLOW_URI_FILE).write_text(uri + "\n")
    ensure_secret("mlflow-password", services)
    password = services / "secrets" / "mlflow-password"
    password.chmod(0o644)
    env = {"HOMEVISION_SERVICES_DIR": str(services), "MLFLOW_TRACKING_URI": uri}
    # Credentials a server test on this worker left in os.environ would skip the file.
    given = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    proc = cli(tmp_path, "predict", "--data", str(synthetic_csv), "--output",
               str(tmp_path / "out.csv"), env=env, unset=given)  # fmt: skip
    said = proc.stdout + proc.stderr
    assert proc.returncode == 2, said[-2000:]
    assert "Traceback" not in said and "stopped" not in said, said[-2000:]
    assert f"error: {password} can be read by other users" in " ".join(said.split()), said
    password.unlink()

    ensure_secret("signing-key", services)  # the local store this time
    (services / "secrets" / "signing-key").chmod(0o644)
    monkeypatch.setenv("HOMEVISION_SERVICES_DIR", str(services))
    with pytest.raises(SecretFileError, match="signing-key can be read by other users"):
        fetch_model(None, tmp_path / "model")


def _wait_ignoring_ctrl_c(pid: int, seconds: float = 60.0) -> None:
    """Return once process `pid` ignores SIGINT (its SigIgn mask in /proc has the bit)."""
    import signal
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        ignored = int(
            next(ln for ln in status.splitlines() if ln.startswith("SigIgn:")).split()[1], 16
        )
        if ignored >> (signal.SIGINT - 1) & 1:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not ignore SIGINT within {seconds:.0f} s")


def test_ctrl_c_leaves_the_fetch_child_to_its_parent(tmp_path):
    """Ctrl-C reaches the whole process group, the fetch child included: it printed a
    KeyboardInterrupt traceback from the middle of `import mlflow` under predict's own clean
    exit 130. The child ignores it (the parent stops it in close()) and answers as usual."""
    import os
    import signal

    child = subprocess.Popen(
        [sys.executable, "-m", "homevision.model_fetch", "models:/nothing@here", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _wait_ignoring_ctrl_c(child.pid)  # a fixed sleep could land before, on a slow machine
    os.killpg(child.pid, signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert child.returncode == 0 and '"kind": "missing"' in out


CTRL_C_PARENT = """
import sys, time
from homevision.model_fetch import ModelFetch
fetch = ModelFetch("models:/nothing@here")
try:  # the pid is printed inside: the test's Ctrl-C can follow it at once
    print(fetch.process.pid, flush=True)
    time.sleep(60)
except KeyboardInterrupt:
    fetch.close()
    sys.exit(130)
"""


def test_ctrl_c_as_the_child_starts_reaches_only_the_command(tmp_path):
    """The terminal sends Ctrl-C to the command's process group. The fetch child runs in a
    group of its own, so even in its first milliseconds (its imports, before it could ignore
    the signal) it prints nothing; the command stops it and exits 130."""
    import os
    import signal

    parent = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_PARENT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=tmp_path,
    )
    child = int(parent.stdout.readline())
    assert os.getpgid(child) != os.getpgid(parent.pid)
    os.killpg(parent.pid, signal.SIGINT)  # at once: the child is still starting
    _, err = parent.communicate(timeout=60)
    assert parent.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_a_model_that_is_found_but_does_not_load_here_is_not_called_missing(served_home, tmp_path):
    """A registered model whose pickle these libraries cannot read (numpy 1.26.0 reading one
    written by numpy 2) said "no model at ... (train one first: homevision train)". It is named
    as found, with the reason and how this environment differs from the one it was logged in,
    by load_model and by the fetch child alike."""
    from homevision.tracking import tracking_uri

    folder = fetch_model(None, tmp_path / "logged")
    (folder / "artifacts" / f"{MODEL_ARTIFACT}.joblib").write_bytes(b"not a pickle")
    (folder / "requirements.txt").write_text("numpy==0.0.1\n")
    mlflow.set_tracking_uri(tracking_uri())
    with mlflow.start_run(run_name="unloadable") as run:
        mlflow.log_artifacts(str(folder), "model")
    ref = f"runs:/{run.info.run_id}/model"
    with pytest.raises(ModelNotFoundError) as expected:
        load_model(ref)
    said = str(expected.value)
    assert said.startswith(f"the model at {ref} was found but does not load here (")
    assert "it needs numpy==0.0.1; numpy " in said and "train one first" not in said
    with start_fetch(ref) as fetch, pytest.raises(ModelNotFoundError) as fetched:
        fetch.model()
    assert str(fetched.value) == said
