"""A model folder on this machine turned into the fitted ValuationModel (light: no MLflow import).

A model homevision logs is MLflow's "model from code": `valuation/pyfunc_model.py` plus the
fitted ValuationModel as a joblib artifact, which the pyfunc's `load_context` reads. Loading
that artifact directly gives the same object as `mlflow.pyfunc.load_model` without importing
MLflow (about 2 s of a command's start-up); any other layout (a pickled pyfunc logged by an
early version) still goes through MLflow.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import yaml

log = logging.getLogger(__name__)
CODE_MODEL_LOADER = "mlflow.pyfunc.loaders.code_model"
PYFUNC_CODE = "pyfunc_model.py"  # the file train logs as python_model
VALUATION_ARTIFACT = "valuation_model"  # valuation.model.MODEL_ARTIFACT (that module is heavy)


def load_local(folder: str | Path):
    """Return the ValuationModel of a model folder already on this machine (fetch_verified's).
    Its requirements are checked against this environment here (environment_mismatches): what
    MLflow's own check says, without the second it spends mapping every installed package."""
    folder = Path(folder)
    conf = _pyfunc_conf(folder / "MLmodel")  # read once for both checks
    for mismatch in environment_mismatches(folder, conf):
        log.warning("The model at %s %s", folder, mismatch)
    artifact = valuation_artifact(folder, conf)
    if artifact is not None:
        import joblib

        return joblib.load(artifact)
    import mlflow

    loaded = mlflow.pyfunc.load_model(str(folder), suppress_warnings=True)
    return loaded.unwrap_python_model().model


def valuation_artifact(folder: Path, conf: dict | None = None) -> Path | None:
    """Return the fitted model's joblib file when `folder` holds a model logged from homevision's
    pyfunc code (what its `load_context` would read), else None: MLflow loads the others.
    `conf`: the folder's pyfunc flavor, when the caller has read it."""
    conf = _pyfunc_conf(folder / "MLmodel") if conf is None else conf
    artifacts = conf.get("artifacts") or {}
    if (
        conf.get("loader_module") != CODE_MODEL_LOADER
        or Path(str(conf.get("model_code_path", ""))).name != PYFUNC_CODE
        or VALUATION_ARTIFACT not in artifacts
    ):
        return None
    path = folder / str(artifacts[VALUATION_ARTIFACT].get("path", ""))
    return path if path.is_file() else None


def environment_mismatches(folder: Path, conf: dict | None = None) -> list[str]:
    """Return, one sentence each, how this environment differs from the one the model in
    `folder` was logged in: a required package missing or at another version, another Python
    minor version (its pickles and code may not load, or may value differently). `conf`: the
    folder's pyfunc flavor, when the caller has read it."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement

    found = []
    requirements = folder / "requirements.txt"
    lines = requirements.read_text().splitlines() if requirements.exists() else []
    for line in lines:
        try:
            req = Requirement(line.strip())
        except InvalidRequirement:
            continue  # a comment, an option line or a URL: nothing to compare
        if req.marker is not None and not req.marker.evaluate():
            continue  # for another platform or Python: not needed here
        try:
            have = version(req.name)
        except PackageNotFoundError:
            found.append(f"needs {req}, which is not installed")
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            found.append(f"needs {req}; {req.name} {have} is installed")
    conf = _pyfunc_conf(folder / "MLmodel") if conf is None else conf
    logged = conf.get("python_version")
    here = ".".join(map(str, sys.version_info[:2]))
    if logged and ".".join(str(logged).split(".")[:2]) != here:
        found.append(f"was logged with Python {logged}; this is Python {here}")
    return found


def unloadable_model(uri: str, folder: Path, err: Exception) -> str:
    """Return the sentence for a model that was found but does not load in this environment:
    the URI, the first line of the reason, and how this environment differs from the one the
    model was logged in (where a pickle from newer libraries usually fails). Not "no model":
    training another one is not what fixes it."""
    from homevision.model_errors import first_line

    differences = environment_mismatches(Path(folder))
    logged = f"; it {'; it '.join(differences[:3])}" if differences else ""
    return f"the model at {uri} was found but does not load here ({first_line(err)}){logged}"


def _pyfunc_conf(mlmodel: Path) -> dict:
    """Return the pyfunc flavor of an MLmodel file ({} when the file or the flavor is absent)."""
    if not mlmodel.exists():
        return {}
    flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {})
    return flavors.get("python_function") or {}
