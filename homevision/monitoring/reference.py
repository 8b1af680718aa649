"""The monitoring reference logged with every model: what it was trained on, and how it valued it.

`homevision monitor` compares a new export with the export the model learnt from, so the
reference travels with the model (an artifact of its training run, `reference/reference.parquet`)
and any model reference finds its own. It holds the accepted rows (a seeded sample above
`monitoring.reference_max_rows`): identity and status, the model's raw input columns, the sale
price, the model's valuation of every row and, on the sales, the out-of-fold valuation from
cross-validation (an honest error to compare new errors with).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from homevision.data.schema import MLS_ID, TARGET

log = logging.getLogger(__name__)
ARTIFACT_DIR = "reference"
FILE_NAME = "reference.parquet"
VALUATION = "valuation"
OOF_VALUATION = "oof_valuation"
ID_COLUMNS = (MLS_ID, "Status", TARGET, "CloseDate")


def build_reference(
    typed: pd.DataFrame,
    raw_columns: list[str],
    valuations: np.ndarray,
    oof: pd.Series,
    max_rows: int,
    seed: int = 0,
) -> pd.DataFrame:
    """Return the reference frame: `typed`'s identity and input columns, its valuations and
    the out-of-fold valuations (`oof`, indexed like `typed`'s sales; NaN elsewhere), sampled
    down to `max_rows` with `seed` so a big training set keeps a bounded reference."""
    keep = [c for c in (*ID_COLUMNS, *raw_columns) if c in typed.columns]
    keep = list(dict.fromkeys(keep))
    frame = typed[keep].copy()
    frame[VALUATION] = np.asarray(valuations, dtype=float)
    frame[OOF_VALUATION] = oof.reindex(frame.index).astype(float)
    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=seed).sort_index()
    return frame.reset_index(drop=True)


def write_reference(frame: pd.DataFrame, folder: Path) -> Path:
    """Write the reference as Parquet (text columns as strings) into `folder`; return the path."""
    path = Path(folder) / FILE_NAME
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].astype("string")
    out.to_parquet(path, index=False)
    return path


def load_reference(run_id: str) -> pd.DataFrame:
    """Return the reference logged by training run `run_id`; LookupError when it has none
    (a model trained before references were logged)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no bar in reports
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=f"{ARTIFACT_DIR}/{FILE_NAME}"
        )
    except Exception as err:  # MLflow raises several types for a missing artifact
        raise LookupError(
            f"run {run_id} logged no monitoring reference ({ARTIFACT_DIR}/{FILE_NAME}); "
            "retrain the model, or pass --reference EXPORT"
        ) from err
    return pd.read_parquet(local)
