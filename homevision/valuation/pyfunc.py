"""The MLflow pyfunc face of a fitted ValuationModel (what `mlflow models serve` and
`mlflow.pyfunc.load_model` use). Kept apart from homevision.valuation.model so that valuing,
in a Spark or pandas worker or the API, does not import MLflow (about 2 s)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

from homevision.data.schema import MLS_ID
from homevision.valuation.model import MODEL_ARTIFACT, ValuationModel


class ValuationPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc face of a ValuationModel: `mlflow models serve` returns point and range,
    with the same rules as the API and the CLI (issue 22, defect 9): a row that breaks the data
    contract or that the model refuses has no prices and says why in `error`, an extrapolation
    says so in `warning`.

    Logged as a model from code (homevision/valuation/pyfunc_model.py) with the fitted model as
    the `valuation_model` artifact, which `load_context` reads; built with a model in hand, it
    predicts straight away (signatures, tests). The param `checked=True` is for callers that
    validated and refused rows themselves: the three prices only."""

    def __init__(self, model: ValuationModel | None = None):
        self.model = model

    def load_context(self, context) -> None:
        """Load the fitted ValuationModel from the logged artifact (when not given one)."""
        if self.model is None:
            import joblib

            self.model = joblib.load(context.artifacts[MODEL_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        params = params or {}
        confidence = float(params.get("confidence", self.model.confidence))
        model_input = with_all_columns(model_input, self.model.raw_columns_)
        if params.get("checked"):
            point, low, high = self.model.predict_interval(model_input, confidence)
            return pd.DataFrame(
                {"predicted_close_price": point, "close_price_low": low, "close_price_high": high}
            )
        from homevision.valuation.predict import value_listings

        frame = model_input.astype(object).where(model_input.notna(), None)
        if MLS_ID not in frame:
            frame.insert(0, MLS_ID, [str(i) for i in range(1, len(frame) + 1)])
        valued = value_listings(self.model, frame, confidence=confidence).frame
        return valued.drop(columns=[MLS_ID]).reset_index(drop=True)


def with_all_columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Return `frame` with every one of `columns` it lacks added as missing values: the
    signature marks a column optional when the input example had gaps in it, and a row that
    leaves it out is valued as one that sends it empty (as the CLI and the API value it), or
    refused with the reason when the model cannot do without it."""
    absent = [c for c in columns if c not in frame.columns]
    if not absent:
        return frame
    return frame.assign(**dict.fromkeys(absent, np.nan))
