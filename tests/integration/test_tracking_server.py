"""The team set-up: every command against the shared MLflow server (backend store on
PostgreSQL, artifacts served by the server) instead of the local SQLite store.

train registers and promotes over HTTP; serve loads the champion from the server and picks up
a newly promoted one on POST /model/reload; predict and the app value with it. Nothing is read
from or written to a local store: each command runs in an empty project folder."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import httpx
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from streamlit.testing.v1 import AppTest

from homevision.api_keys import Scope, create_key
from homevision.data.synthetic import generate_listings, write_listings
from homevision.signing import DIGEST_TAG, SIGNATURE_TAG
from homevision.tracking import CHAMPION, MODEL_NAME
from homevision.ui import APP

from ..conftest import SERVICES_DIR
from .conftest import ROOT, cli, run_cli, served_api, tiny_params
from .test_api import HOME

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _env(server: str) -> dict[str, str]:
    """The team set-up as `make services` leaves it: the server, and the services' folder whose
    secrets every command reads (credentials, and the key that signs and checks models)."""
    return {"MLFLOW_TRACKING_URI": server, "HOMEVISION_SERVICES_DIR": str(SERVICES_DIR)}


def _cli(home: Path, server: str, *args: str, params: Path | None = None) -> str:
    """Run `homevision ARGS` in `home` against the tracking server; return its stdout."""
    env = _env(server)
    if params is not None:
        env["HOMEVISION_PARAMS"] = str(params)
    return run_cli(home, *args, env=env)


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("server-data")
    return write_listings(generate_listings(500, seed=11), folder / "listings.csv")


@pytest.fixture(scope="module")
def first_champion(tracking_server, export, tmp_path_factory) -> str:
    """Train (ridge) against the server with --promote; return the registered version."""
    home = tmp_path_factory.mktemp("server-train-1")
    params = tiny_params(home, ["median_ppsf", "ridge"])
    out = _cli(home, tracking_server, "train", "--data", str(export), "--budget", "60",
               "--promote", params=params)  # fmt: skip
    assert "promoted to champion" in out
    assert not (home / "mlflow.db").exists() and not (home / "mlruns").exists()
    return _champion(tracking_server).version


def _champion(server: str):
    return MlflowClient(server).get_model_version_by_alias(MODEL_NAME, CHAMPION)


def test_train_registers_the_champion_on_the_server(tracking_server, first_champion):
    client = MlflowClient(tracking_server)
    version = client.get_model_version(MODEL_NAME, first_champion)
    assert version.aliases and CHAMPION in version.aliases
    run = client.get_run(version.run_id)
    # Artifacts go through the server (mlflow-artifacts:), not to a path on this machine.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert {"cv_rmse", "cv_mae", "cv_r2"} <= set(run.data.metrics), sorted(run.data.metrics)
    trials = client.search_runs(
        [run.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{version.run_id}' "
        "and tags.`homevision.stage` = 'trial'",
    )
    assert trials, "the tuning trials are not child runs of the train run"
    names = {a.path for a in client.list_artifacts(version.run_id)}
    assert "model_card.md" in names, names
    card = Path(client.download_artifacts(version.run_id, "model_card.md"))
    assert "## Leaderboard" in card.read_text()


def test_serve_loads_from_the_server_and_reloads_a_new_champion(
    tracking_server, first_champion, export, tmp_path
):
    home = tmp_path / "serve"
    home.mkdir()
    env = {**os.environ, "HOMEVISION_HOME": str(home), **_env(tracking_server)}
    env.pop("HOMEVISION_API_KEYS", None)
    key, _ = create_key(Scope.admin, "ops", path=home / ".homevision" / "api-keys.json")
    auth = {"Authorization": f"Bearer {key}"}
    with served_api(home, env, "--workers", "1", seconds=180) as server:
        base = server.base
        info = httpx.get(f"{base}/model", headers=auth, timeout=30).json()
        assert str(info["version"]) == first_champion
        first = httpx.post(f"{base}/valuations", json=HOME, headers=auth, timeout=60)
        assert first.status_code == 200, first.text

        # A second model (another family) is trained and promoted by another member of the team.
        other = tmp_path / "train-2"
        other.mkdir()
        params = tiny_params(other, ["median_ppsf", "extra_trees"])
        _cli(other, tracking_server, "train", "--data", str(export), "--budget", "60",
             "--promote", params=params)  # fmt: skip
        second = _champion(tracking_server).version
        assert second != first_champion

        reloaded = httpx.post(f"{base}/model/reload", headers=auth, timeout=120)
        assert reloaded.status_code == 200, reloaded.text
        assert str(reloaded.json()["version"]) == second
        valued = httpx.post(f"{base}/valuations", json=HOME, headers=auth, timeout=60)
        assert valued.status_code == 200, valued.text
        assert valued.json() != first.json()
    assert not (home / "mlflow.db").exists()


def test_predict_and_tune_against_the_server(tracking_server, first_champion, export, tmp_path):
    out = tmp_path / "valuations.csv"
    _cli(tmp_path, tracking_server, "predict", "--data", str(export), "--output", str(out))
    frame = pd.read_csv(out)
    assert len(frame) > 0 and frame["predicted_close_price"].gt(0).all()

    params = tiny_params(tmp_path, ["median_ppsf", "ridge"])
    # Its own study: another file's tune on the server may be running (no best_rmse yet).
    study = f"test-server-{uuid.uuid4().hex[:8]}"
    args = ["tune", "--candidate", "ridge", "--data", str(export), "--trials", "3"]
    _cli(tmp_path, tracking_server, *args, "--study", study, params=params)
    client = MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("homevision")
    tuned = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`homevision.stage` = 'tune' and tags.optuna_study = '{study}'",
    )
    assert len(tuned) == 1 and "best_rmse" in tuned[0].data.metrics
    assert not (tmp_path / "mlflow.db").exists()


def test_the_app_shows_the_servers_champion(
    tracking_server, first_champion, export, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    # The services dir holds the key the champion is checked with: a signed model is never
    # loaded unchecked (review defect 1).
    monkeypatch.setenv("HOMEVISION_SERVICES_DIR", str(SERVICES_DIR))
    monkeypatch.setenv("HOMEVISION_DATA", str(export))
    app = AppTest.from_file(str(APP), default_timeout=180)
    app.run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    version = _champion(tracking_server).version
    headings = [h.value for h in app.subheader]
    assert f"Model {MODEL_NAME} v{version}" in headings, headings
    # The Model page's figures are downloaded through the server.
    missing = [c.value for c in app.caption if "not logged" in c.value]
    assert not missing, missing


def test_services_script_is_idempotent(tracking_server):
    """`make services` a second time changes nothing and says both already run."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "services.sh"), "start"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MLflow server already answers" in proc.stderr, proc.stderr
    assert f"MLFLOW_TRACKING_URI={tracking_server}" in proc.stdout


def _tampered_copy(client: MlflowClient, signed, folder: Path) -> str:
    """Register a copy of the signed version with one byte of its pickle changed, carrying the
    original's signature tags (what an attacker with artifact access would do); return it."""
    import mlflow

    mlflow.set_tracking_uri(client.tracking_uri)
    local = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{MODEL_NAME}/{signed.version}", dst_path=str(folder)
        )
    )
    pickle = local / "artifacts" / "valuation_model.joblib"
    data = bytearray(pickle.read_bytes())
    data[len(data) // 2] ^= 1
    pickle.write_bytes(bytes(data))
    client.log_artifacts(signed.run_id, str(local), artifact_path="tampered-model")
    source = f"runs:/{signed.run_id}/tampered-model"
    return client.create_model_version(
        MODEL_NAME, source, run_id=signed.run_id, tags=dict(signed.tags)
    ).version


def test_a_changed_or_unsigned_model_is_refused_and_the_api_keeps_its_own(
    tracking_server, first_champion, export, tmp_path
):
    """Issue 22, defect 1: versions carry a signed digest; a version whose pickle changed by one
    byte, or one registered without a signature, is refused by predict and by the API's reload
    (which keeps serving its model), in one sentence."""
    client = MlflowClient(tracking_server)
    signed = client.get_model_version(MODEL_NAME, first_champion)
    assert {DIGEST_TAG, SIGNATURE_TAG} <= set(signed.tags)
    model_id = signed.source.removeprefix("models:/")
    unsigned = client.create_model_version(
        MODEL_NAME, signed.source, run_id=signed.run_id, model_id=model_id
    ).version
    tampered = _tampered_copy(client, signed, tmp_path / "download")
    refusals = {
        unsigned: f"models:/{MODEL_NAME}/{unsigned} is not signed",
        tampered: "its artifact files differ from the ones that were signed",
    }
    for version, reason in refusals.items():
        ref = f"models:/{MODEL_NAME}/{version}"
        out = tmp_path / f"v{version}.csv"
        proc = cli(tmp_path, "predict", "--data", str(export), "--model", ref,
                   "--output", str(out), env=_env(tracking_server))  # fmt: skip
        said = proc.stdout + proc.stderr
        assert proc.returncode != 0 and reason in said, said[-2000:]
        assert not out.exists()
    # Review defect 1: from a folder whose services dir holds no key (only the server and its
    # credentials given), the tampered version carrying a signature used to be unpickled.
    keyless = tmp_path / "keyless"
    keyless.mkdir()
    out = keyless / "valuations.csv"
    proc = cli(keyless, "predict", "--data", str(export), "--model",
               f"models:/{MODEL_NAME}/{tampered}", "--output", str(out),
               env={"MLFLOW_TRACKING_URI": tracking_server},
               unset=("HOMEVISION_SERVICES_DIR", "HOMEVISION_SIGNING_KEY"))  # fmt: skip
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0, said[-2000:]
    assert "is signed but no signing key is configured" in said, said[-2000:]
    assert not out.exists()

    home = tmp_path / "serve"
    home.mkdir()
    env = {**os.environ, "HOMEVISION_HOME": str(home), **_env(tracking_server)}
    key, _ = create_key(Scope.admin, "ops", path=home / ".homevision" / "api-keys.json")
    auth = {"Authorization": f"Bearer {key}"}
    before = _champion(tracking_server).version
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, first_champion)
    try:
        with served_api(home, env, "--workers", "1", seconds=180) as server:
            for version, reason in refusals.items():
                client.set_registered_model_alias(MODEL_NAME, CHAMPION, version)
                reloaded = httpx.post(f"{server.base}/model/reload", headers=auth, timeout=120)
                assert reloaded.status_code == 503, reloaded.text
                assert reason in reloaded.json()["detail"]
                assert reloaded.json()["detail"].endswith(f"still serving version {first_champion}")
                info = httpx.get(f"{server.base}/model", headers=auth, timeout=30).json()
                assert str(info["version"]) == first_champion
                valued = httpx.post(
                    f"{server.base}/valuations", json=HOME, headers=auth, timeout=60
                )
                assert valued.status_code == 200, valued.text
    finally:
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, before)
