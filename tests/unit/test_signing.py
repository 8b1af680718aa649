"""Signed model artifacts: a changed byte, a missing or foreign signature is refused."""

from __future__ import annotations

import pytest

from homevision.signing import (
    DIGEST_TAG,
    REGISTRY_META,
    SIGNATURE_TAG,
    UnverifiedModelError,
    artifact_digest,
    signature_tags,
    signing_key,
    verify,
)

KEY = b"k" * 32


@pytest.fixture
def model_dir(tmp_path):
    folder = tmp_path / "model"
    (folder / "artifacts").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "artifacts" / "valuation_model.joblib").write_bytes(bytes(range(256)) * 10)
    return folder


def test_the_digest_covers_every_byte_and_file(model_dir):
    before = artifact_digest(model_dir)
    pickle = model_dir / "artifacts" / "valuation_model.joblib"
    data = bytearray(pickle.read_bytes())
    data[100] ^= 1
    pickle.write_bytes(bytes(data))
    assert artifact_digest(model_dir) != before
    data[100] ^= 1
    pickle.write_bytes(bytes(data))
    assert artifact_digest(model_dir) == before
    (model_dir / "extra.py").write_text("import os\n")
    assert artifact_digest(model_dir) != before


def test_mlflows_registry_note_is_not_part_of_the_model(model_dir):
    before = artifact_digest(model_dir)
    (model_dir / REGISTRY_META).write_text("model_name: x\nmodel_version: '3'\n")
    assert artifact_digest(model_dir) == before


def test_a_signed_model_verifies(model_dir):
    verify(model_dir, signature_tags(model_dir, KEY), KEY, "models:/m/1")


def test_a_tampered_byte_is_refused(model_dir):
    tags = signature_tags(model_dir, KEY)
    pickle = model_dir / "artifacts" / "valuation_model.joblib"
    data = bytearray(pickle.read_bytes())
    data[7] ^= 0xFF
    pickle.write_bytes(bytes(data))
    with pytest.raises(UnverifiedModelError, match="differ from the ones that were signed"):
        verify(model_dir, tags, KEY, "models:/m/1")


def test_an_unsigned_model_is_refused(model_dir):
    with pytest.raises(UnverifiedModelError, match=r"^models:/m/2 is not signed"):
        verify(model_dir, {}, KEY, "models:/m/2")


def test_a_signature_from_another_key_or_copied_tags_is_refused(model_dir):
    foreign = signature_tags(model_dir, b"another key")
    with pytest.raises(UnverifiedModelError, match="another key"):
        verify(model_dir, foreign, KEY, "models:/m/1")
    forged = {DIGEST_TAG: "0" * 64, SIGNATURE_TAG: signature_tags(model_dir, KEY)[SIGNATURE_TAG]}
    with pytest.raises(UnverifiedModelError, match="another key"):
        verify(model_dir, forged, KEY, "models:/m/1")


def test_the_key_comes_from_the_environment_else_the_services_file(tmp_path, monkeypatch):
    from homevision.service_secrets import ensure_secret

    assert signing_key() is None  # no services in this project root
    monkeypatch.setenv("HOMEVISION_SERVICES_DIR", str(tmp_path))
    generated = ensure_secret("signing-key", tmp_path)
    assert signing_key() == generated.encode()
    monkeypatch.setenv("HOMEVISION_SIGNING_KEY", "from-env")
    assert signing_key() == b"from-env"


def test_a_signed_version_is_refused_when_no_key_is_configured(model_dir, tmp_path, monkeypatch):
    """Review defect 1: a command with no key (run outside the services dir) used to skip the
    check and unpickle a tampered version that carries a signature. It is refused before a
    byte is downloaded; an unsigned version still loads where no key is configured."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from homevision.tracking import fetch_verified, tracking_uri

    mlflow.set_tracking_uri(tracking_uri())  # the test project's own SQLite store
    client = MlflowClient(tracking_uri())
    run = client.create_run(client.create_experiment("signed")).info.run_id
    client.log_artifacts(run, str(model_dir), artifact_path="model")
    tags = signature_tags(model_dir, KEY)
    (model_dir / "artifacts" / "valuation_model.joblib").write_bytes(b"tampered")
    client.log_artifacts(run, str(model_dir), artifact_path="tampered")
    client.create_registered_model("m")
    signed = client.create_model_version("m", f"runs:/{run}/tampered", run_id=run, tags=tags)
    unsigned = client.create_model_version("m", f"runs:/{run}/model", run_id=run)
    assert signing_key() is None
    with pytest.raises(UnverifiedModelError, match=r"^models:/m/1 is signed but no signing key"):
        fetch_verified(f"models:/m/{signed.version}", tmp_path / "a")
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())
    assert (fetch_verified(f"models:/m/{unsigned.version}", tmp_path / "b") / "MLmodel").exists()
