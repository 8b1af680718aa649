"""The valuation engine: a fitted model compiled to numpy, for milliseconds per home.

Why numpy compiled from the fitted scikit-learn objects, and not ONNX: skl2onnx has no converter
for OneHotEncoder with infrequent levels, FunctionTransformer(log), TransformedTargetRegressor or
any of our own transformers and estimators, and the "F.H" bath parsing has no ONNX operator; each
would be a custom converter to write and keep in step with scikit-learn, plus onnxruntime as a
serving dependency. The fitted objects already hold every number (imputer statistics, scaler
moments, encoder categories, coefficients, support vectors, tree nodes), and numpy evaluates them
without the per-call pandas and ColumnTransformer overhead that dominated the old path.

`compile_model` is called when a ValuationModel is fitted; the engine it returns is pickled
with the model. It is verified against scikit-learn on the training rows before it is used: a
part it does not know (UnsupportedError) or a difference over VERIFY_DOLLARS leaves the model on the
scikit-learn path, with the reason recorded and shown (`engine_note_`, /model, the card).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import config_context

from homevision.valuation.engine.errors import UnsupportedError
from homevision.valuation.engine.programs import Program, compile_estimator
from homevision.valuation.engine.raw import RawEncoder

__all__ = [
    "Engine",
    "RawEncoder",
    "UnsupportedError",
    "compile_conformal",
    "compile_model",
]
VERIFY_DOLLARS = 0.01  # the compiled path must agree with scikit-learn to the cent
CHUNK_ROWS = 2_048  # rows per program call: intermediates (rows x support vectors) fit cache


@dataclass
class Engine:
    """A compiled model: `encoder` maps listings to the raw matrix, `program` values it."""

    encoder: RawEncoder
    program: Program
    description: str

    def predict_matrix(self, raw: np.ndarray) -> np.ndarray:
        """Return dollars for each row of an encoded raw matrix, a large batch in chunks that
        stay in cache (the BLAS products inside already use every core: measured, chunks on a
        thread pool were slower than in turn)."""
        if raw.shape[0] <= CHUNK_ROWS:
            return self.program(raw)
        return np.concatenate(
            [self.program(raw[i : i + CHUNK_ROWS]) for i in range(0, raw.shape[0], CHUNK_ROWS)]
        )

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Return dollars for each listing of `frame` (raw export columns)."""
        return self.predict_matrix(self.encoder.encode(frame))


class CompiledRegressor:
    """A fitted-estimator face for a program, so MAPIE can aggregate compiled fold models:
    `predict` takes the engine's raw matrix."""

    def __init__(self, program: Program):
        self.program = program

    def predict(self, X: np.ndarray, **_: object) -> np.ndarray:
        return self.program(np.asarray(X, dtype=float))

    def __sklearn_is_fitted__(self) -> bool:
        return True


def describe(estimator: object) -> str:
    """Return a short name of what was compiled, e.g. "elasticity(features->SVR)"."""
    inner = getattr(estimator, "estimator_", None)
    if inner is not None and type(estimator).__name__ == "SqftElasticityTarget":
        return f"sqft-elasticity({describe(inner)})"
    members = getattr(estimator, "estimators_", None)
    if type(estimator).__name__ == "VotingRegressor" and members is not None:
        return "blend(" + ", ".join(describe(m) for m in members) + ")"
    if type(estimator).__name__ == "StackingRegressor" and members is not None:
        return "stack(" + ", ".join(describe(m) for m in members) + ")"
    steps = getattr(estimator, "steps", None)
    if steps:
        model = steps[-1][1]
        model = getattr(model, "regressor_", model)
        return type(model).__name__
    return type(estimator).__name__


def compile_model(estimator: object, encoder: RawEncoder, rows: pd.DataFrame) -> Engine:
    """Return the verified engine of a fitted price model; raises UnsupportedError with the reason
    when a part cannot be compiled or the engine differs from scikit-learn on `rows`."""
    engine = Engine(encoder, compile_estimator(estimator, encoder), describe(estimator))
    with config_context(assume_finite=True):
        expected = np.asarray(estimator.predict(rows), dtype=float)
    got = engine.predict(rows)
    gap = float(np.max(np.abs(got - expected))) if len(rows) else 0.0
    if not np.isfinite(gap) or gap > VERIFY_DOLLARS:
        raise UnsupportedError(
            f"the compiled {engine.description} differs from scikit-learn by ${gap:,.2f} on the "
            "training rows"
        )
    return engine


def compile_conformal(conformal: object, encoder: RawEncoder) -> object:
    """Return a copy of a fitted MAPIE regressor whose fold models are compiled programs, so
    `predict_interval` on the raw matrix computes the same bounds with MAPIE's own code; raises
    UnsupportedError when a fold model cannot be compiled."""
    if not hasattr(conformal, "_mapie_regressor"):
        raise UnsupportedError(f"{type(conformal).__name__} ranges")
    fast = copy.copy(conformal)
    inner = copy.copy(conformal._mapie_regressor)
    ensemble = copy.copy(inner.estimator_)
    ensemble.single_estimator_ = CompiledRegressor(
        compile_estimator(ensemble.single_estimator_, encoder)
    )
    ensemble.estimators_ = [
        CompiledRegressor(compile_estimator(e, encoder)) for e in ensemble.estimators_
    ]
    inner.estimator_ = ensemble
    fast._mapie_regressor = inner
    return fast
