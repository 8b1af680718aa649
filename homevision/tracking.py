"""MLflow conventions: where runs go, how models are named, registered and loaded by reference.

Tracking URI: `MLFLOW_TRACKING_URI` if set, else a SQLite store `mlflow.db` in the project root
(artifacts under mlruns/). Model references accepted everywhere:
`models:/homevision-price@champion` (default), `models:/NAME/VERSION`, `runs:/RUN_ID/model`,
or a bare run id. Each feature set has its own registered model and champion:
`homevision-price` is the task6 model, `homevision-price-offmarket` and
`homevision-price-onmarket` the others, so a model of one set never displaces another's.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from homevision.config import PACKAGE_DIR, project_root
from homevision.hashing import file_hash as file_hash  # re-exported: the dataset identity
from homevision.model_errors import ModelNotFoundError, first_line
from homevision.model_files import environment_mismatches as environment_mismatches
from homevision.model_files import load_local as load_local
from homevision.model_files import unloadable_model
from homevision.service_secrets import SecretFileError, apply_to_environment
from homevision.signing import refuse_signed_without_key, signature_tags, signing_key, verify

log = logging.getLogger(__name__)
MODEL_NAME = "homevision-price"
DEFAULT_FEATURE_SET = "task6"
CHAMPION = "champion"
EXPERIMENT = "homevision"
DEFAULT_REF = f"models:/{MODEL_NAME}@{CHAMPION}"
SPEC_TAG = "homevision.spec"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def tracking_uri() -> str:
    """Return the tracking URI in force (env, else the project's SQLite store). Also points the
    MLflow client and libpq at the team services' credentials when they exist (every command
    asks for the URI before it opens a store)."""
    apply_to_environment()
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def configure(experiment: str = EXPERIMENT) -> str:
    """Point MLflow at the tracking store and experiment; return the experiment id. Inside
    `mlflow run` (MLFLOW_RUN_ID set) the command logs into the project's run, so the experiment
    is that run's (MLflow refuses to resume a run from another experiment)."""
    mlflow.set_tracking_uri(tracking_uri())
    project_run = os.environ.get("MLFLOW_RUN_ID")
    if project_run:
        exp_id = mlflow.get_run(project_run).info.experiment_id
        mlflow.set_experiment(experiment_id=exp_id)
        return exp_id
    existing = mlflow.get_experiment_by_name(experiment)
    if existing is not None:
        mlflow.set_experiment(experiment)
        return existing.experiment_id
    location = None
    if tracking_uri().startswith("sqlite:"):
        location = (project_root() / "mlruns").as_uri()
    try:
        exp_id = mlflow.create_experiment(experiment, artifact_location=location)
    except MlflowException as error:  # another command created it since the look-up above
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        exp_id = mlflow.get_experiment_by_name(experiment).experiment_id
    mlflow.set_experiment(experiment)
    return exp_id


def resolve_model_uri(ref: str | None) -> str:
    """Return the MLflow URI for a model reference (see module docstring for the forms)."""
    if not ref:
        return DEFAULT_REF
    if ref.startswith(("models:/", "runs:/")):
        return ref
    if _RUN_ID.match(ref):
        return f"runs:/{ref}/model"
    raise ModelNotFoundError(
        f"{ref!r} is not a model reference: use models:/NAME@ALIAS, models:/NAME/VERSION, "
        "runs:/RUN_ID/model or a run id"
    )


def pin_model_uri(ref: str | None) -> str:
    """Return the URI of the one version a reference points at now: models:/NAME/VERSION for
    models:/NAME@ALIAS (other forms as resolve_model_uri gives them). Load and describe that
    URI, so the version reported is the version loaded even if the alias moves meanwhile.
    Raises ModelNotFoundError when the alias does not resolve."""
    uri = resolve_model_uri(ref)
    if not (uri.startswith("models:/") and "@" in uri):
        return uri
    name, alias = uri.removeprefix("models:/").split("@", 1)
    try:
        version = MlflowClient(tracking_uri()).get_model_version_by_alias(name, alias).version
    except Exception as err:  # MLflow raises several types for a missing name or alias
        raise ModelNotFoundError(missing_model(uri, err)) from None
    return f"models:/{name}/{version}"


def load_model(ref: str | None = None):
    """Return the fitted ValuationModel (raw listing columns -> dollars, ranges, reasons)
    behind a model reference. With a signing key configured the model's files are checked
    against its signature before anything is unpickled (UnverifiedModelError otherwise)."""
    uri = resolve_model_uri(ref)
    with tempfile.TemporaryDirectory(prefix="homevision-model-") as tmp:
        folder = fetch_model(uri, Path(tmp))
        try:
            return load_local(folder)
        except Exception as err:  # found, but it does not load with these libraries
            raise ModelNotFoundError(unloadable_model(uri, folder, err)) from None


def fetch_model(ref: str | None, folder: Path) -> Path:
    """Return the checked local copy, under `folder`, of the model behind a reference
    (fetch_verified), raising load_model's ModelNotFoundError sentences for one that gives no
    usable model. model_fetch runs this in a second process."""
    uri = resolve_model_uri(ref)
    mlflow.set_tracking_uri(tracking_uri())
    try:
        return fetch_verified(uri, folder)
    except (ModelNotFoundError, SecretFileError):  # UnverifiedModelError included
        raise  # a leaked key file is its own sentence, not "no model" (review defect 8)
    except Exception as err:  # MLflow raises several types for a reference that does not exist
        raise ModelNotFoundError(missing_model(uri, err)) from None


def missing_model(uri: str, err: Exception | str) -> str:
    """Return the sentence for a reference that gives no model: the URI, a hint to train when
    it is the default champion, and the first line of the reason."""
    hint = " (train one first: homevision train)" if uri == DEFAULT_REF else ""
    reason = err if isinstance(err, str) else first_line(err)
    return f"no model at {uri}{hint}: {reason}"


def fetch_verified(ref: str | None, folder: Path) -> Path:
    """Download the model behind `ref` into `folder` and return its local path; with a signing
    key configured, first check its files against the signature in its version's tags (a run's
    tags for runs:/ references). A signed version with no key configured is refused before
    anything is downloaded. Load from the returned path: what was checked is what runs.
    Raises UnverifiedModelError, or ModelNotFoundError for a reference that resolves to none."""
    key = signing_key()  # first: a key file others can read stops here, whatever the ref
    uri = pin_model_uri(ref)
    tags = _signature_source(uri)
    refuse_signed_without_key(tags, key, uri)
    # A progress bar per model load is noise in a command's output (a user may still ask).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder)))
    except Exception as err:
        raise ModelNotFoundError(f"no model at {uri}: {first_line(err)}") from None
    if key is not None:
        verify(local, tags, key, uri)
    return local


def _signature_source(uri: str) -> dict[str, str]:
    """Return the tags that carry `uri`'s signature: its model version's, or its run's."""
    client = MlflowClient(tracking_uri())
    try:
        if uri.startswith("models:/"):
            name, _, number = uri.removeprefix("models:/").partition("/")
            return dict(client.get_model_version(name, number).tags)
        return dict(client.get_run(uri.removeprefix("runs:/").split("/")[0]).data.tags)
    except Exception as err:
        raise ModelNotFoundError(f"no model at {uri}: {first_line(err)}") from None


def git_commit() -> str:
    """Return the code that runs: the commit of the checkout homevision runs from (with
    '-dirty' when modified), or, for an installed package, "homevision==VERSION". An installed
    package lies in site-packages, maybe inside the user's own repository (a .venv there),
    whose commit says nothing of homevision's code. 'unknown' when neither can be told."""
    checkout = PACKAGE_DIR.parent
    try:
        top = _git(checkout, "rev-parse", "--show-toplevel")
        if not top or Path(top).resolve() != checkout.resolve():
            return _installed_version()
        sha = _git(checkout, "rev-parse", "HEAD")
        dirty = _git(checkout, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return _installed_version()
    return sha + ("-dirty" if dirty else "") if sha else "unknown"


def _git(cwd: Path, *args: str) -> str:
    """Return git's output for `args` run in `cwd` ('' when git fails there)."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    return done.stdout.strip() if done.returncode == 0 else ""


def _installed_version() -> str:
    """Return "homevision==VERSION" of the installed distribution, or 'unknown'."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"homevision=={version('homevision')}"
    except PackageNotFoundError:
        return "unknown"


def model_name(feature_set: str = DEFAULT_FEATURE_SET) -> str:
    """Return the registered model name of a feature set (task6 keeps the plain name)."""
    return MODEL_NAME if feature_set == DEFAULT_FEATURE_SET else f"{MODEL_NAME}-{feature_set}"


def champion(name: str = MODEL_NAME, client: MlflowClient | None = None):
    """Return the ModelVersion holding the champion alias of `name`, or None."""
    client = client or MlflowClient(tracking_uri())
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # no registered model or no alias yet
        return None


def champion_spec(
    name: str = MODEL_NAME, client: MlflowClient | None = None
) -> tuple[Any, dict[str, Any] | None]:
    """Return (champion version of `name`, its model spec and feature set from the run's tags)."""
    client = client or MlflowClient(tracking_uri())
    version = champion(name, client)
    if version is None or not version.run_id:
        return version, None
    tags = client.get_run(version.run_id).data.tags
    if SPEC_TAG not in tags:
        return version, None
    return version, json.loads(tags[SPEC_TAG])


def register(
    model_uri: str,
    run_id: str,
    tags: dict[str, str],
    name: str = MODEL_NAME,
    model_id: str | None = None,
) -> str:
    """Register a logged model as a new version of `name`; return the version. A tracking
    server refuses a `models:/m-...` source without the logged model's id, so pass it. With a
    signing key the version is created already carrying its artifacts' signed digest (also
    set on the run, for runs:/ references): there is no moment at which it exists unsigned.
    Two trains registering the first version of a name together both succeed."""
    client = MlflowClient(tracking_uri())
    key = signing_key()
    if key is not None:
        with tempfile.TemporaryDirectory(prefix="homevision-sign-") as tmp:
            local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
            signed = signature_tags(Path(local), key)
        tags = {**tags, **signed}
        for tag, value in signed.items():
            client.set_tag(run_id, tag, value)
    _ensure_registered_model(client, name)
    version = client.create_model_version(
        name, model_uri, run_id=run_id, tags=tags, model_id=model_id
    )
    return str(version.version)


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    """Create the registered model `name` unless it exists; another train creating it at the
    same moment is not an error (issue 22, defect 12: the loser used to fail after logging)."""
    try:
        client.get_registered_model(name)
        return
    except Exception:  # absent (MLflow raises several types)
        pass
    try:
        client.create_registered_model(
            name, description="Sale price of a home from its MLS listing, in dollars."
        )
    except Exception as err:
        if "RESOURCE_ALREADY_EXISTS" not in str(err) and "already exists" not in str(err):
            raise
        client.get_registered_model(name)  # it exists now: the other train created it


def set_champion(version: str, name: str = MODEL_NAME, expected: str | None = None) -> bool:
    """Move the champion alias of `name` to `version`, unless it moved since the caller looked
    (it then held `expected`, None meaning no champion): compare-and-set under a lock
    (homevision.locks.champion_lock), so of two trains that decided on the same champion only
    the first moves it. Return whether it moved."""
    from homevision.locks import champion_lock

    with champion_lock(name):
        current = champion(name)
        now = None if current is None else str(current.version)
        if now != expected:
            log.warning(
                "Champion of %s moved from v%s to v%s during this run: alias left as it is",
                name,
                expected,
                now,
            )
            return False
        MlflowClient(tracking_uri()).set_registered_model_alias(name, CHAMPION, version)
    return True


def describe_model(ref: str | None = None, pinned: str | None = None) -> dict[str, Any]:
    """Return what a model reference points at: name, version, alias, run id, feature set,
    CV and honest metrics, trained-at, data hash, and the range figures per carried level
    (`ranges`: level, coverage, median_width, time_ordered_coverage, from the run's
    range_{pct}_coverage / _width / _coverage_time metrics; for /model and the app's Model
    page). With `pinned` (pin_model_uri's answer for `ref`) the version described is that
    one, whatever the alias points at by now; `uri` and `alias` still name the reference."""
    uri = resolve_model_uri(ref)
    if pinned is not None and pinned != uri:
        info = describe_model(pinned)
        return info | {"uri": uri, "alias": uri.partition("@")[2] or None}
    client = MlflowClient(tracking_uri())
    info: dict[str, Any] = {"uri": uri, "name": None, "version": None, "alias": None}
    run_id = None
    if uri.startswith("models:/"):
        name, _, rest = uri.removeprefix("models:/").partition("@")
        if rest:
            version = client.get_model_version_by_alias(name, rest)
            info["alias"] = rest
        else:
            name, _, number = uri.removeprefix("models:/").partition("/")
            version = client.get_model_version(name, number)
        info |= {"name": name, "version": str(version.version)}
        run_id = version.run_id
    else:
        run_id = uri.removeprefix("runs:/").split("/")[0]
    info["run_id"] = run_id
    info["ranges"] = []
    if run_id:
        run = client.get_run(run_id)
        metrics = run.data.metrics
        info |= {
            "feature_set": run.data.tags.get("feature_set"),
            "data_hash": run.data.tags.get("data_hash"),
            "trained_at": datetime.fromtimestamp(run.info.start_time / 1000, UTC).isoformat(),
            "cv_metrics": {k[3:]: v for k, v in metrics.items() if k.startswith("cv_")},
            "honest_metrics": {k[7:]: v for k, v in metrics.items() if k.startswith("honest_")},
            "interval_coverage": metrics.get("interval_coverage"),
        }
        figures: dict[int, dict[str, float]] = {}
        for key, value in metrics.items():
            match = re.fullmatch(r"range_(\d+)_(coverage|width|coverage_time)", key)
            if match:
                figures.setdefault(int(match[1]), {})[match[2]] = float(value)
        info["ranges"] = [
            {
                "level": pct / 100,
                "coverage": figures[pct].get("coverage"),
                "median_width": figures[pct].get("width"),
                "time_ordered_coverage": figures[pct].get("coverage_time"),
            }
            for pct in sorted(figures)
        ]
    return info
