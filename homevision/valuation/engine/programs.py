"""Compile fitted estimators into programs: raw matrix (or encoded features) -> numbers.

Each program is a plain callable on float arrays. Linear models, the RBF SVR and the MLP are
re-stated from their coefficients; trees are walked as flat arrays (engine.trees); kNN, the
Gaussian process, the sales-comparison model and the third-party boosters (XGBoost, LightGBM,
CatBoost) run their own compiled predict on the encoded matrix, which is already free of pandas.
The living-area trend, blends and the rule-of-thumb baselines wrap these. `compile_estimator`
raises UnsupportedError for anything else.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import config_context
from sklearn.ensemble import (
    ExtraTreesRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
    StackingRegressor,
    VotingRegressor,
)
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, Ridge
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.svm import SVR
from sklearn.tree import DecisionTreeRegressor

from homevision.features import ColumnSelector
from homevision.valuation.baselines import PricePerSqftBaseline
from homevision.valuation.engine.errors import UnsupportedError
from homevision.valuation.engine.features import CompiledFeatures, compile_features
from homevision.valuation.engine.raw import RawEncoder
from homevision.valuation.engine.trees import compile_hist_gb, compile_sklearn_trees
from homevision.valuation.estimators import (
    MonotoneInSqft,
    SqftElasticityTarget,
    to_price,
)
from homevision.valuation.sales_comparison import SalesComparison

Program = Callable[[np.ndarray], np.ndarray]


@dataclass
class Linear:
    coef: np.ndarray
    intercept: float

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef + self.intercept


@dataclass
class RbfSVR:
    vectors: np.ndarray
    dual: np.ndarray
    intercept: float
    gamma: float

    def __post_init__(self) -> None:
        # exp(-g |x - s|^2) = exp(2g x.s - g|x|^2 - g|s|^2): one matrix product, two
        # broadcasts and the exp, with the constant parts computed once.
        self._scaled = (2.0 * self.gamma) * self.vectors.T
        self._norms = self.gamma * (self.vectors * self.vectors).sum(axis=1)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        exponent = X @ self._scaled
        exponent -= (self.gamma * (X * X).sum(axis=1))[:, None]
        exponent -= self._norms[None, :]
        np.minimum(exponent, 0.0, out=exponent)  # |x - s|^2 >= 0, whatever the rounding
        np.exp(exponent, out=exponent)
        return exponent @ self.dual + self.intercept

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__post_init__()


_ACTIVATIONS = {
    "relu": lambda a: np.maximum(a, 0.0),
    "tanh": np.tanh,
    "logistic": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "identity": lambda a: a,
}


@dataclass
class Perceptron:
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activation: str

    def __call__(self, X: np.ndarray) -> np.ndarray:
        act = _ACTIVATIONS[self.activation]
        a = X
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            a = a @ w + b
            if i < last:
                a = act(a)
        return a[:, 0]


@dataclass
class Native:
    """The estimator's own compiled predict on the encoded (pandas-free) matrix."""

    estimator: object
    method: str = "predict"

    def __call__(self, X: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings(), config_context(assume_finite=True):
            warnings.simplefilter("ignore", UserWarning)  # fitted with feature names
            return np.asarray(getattr(self.estimator, self.method)(X), dtype=float).ravel()


@dataclass
class Chain:
    """Features then model: raw matrix -> encoded matrix -> output."""

    features: CompiledFeatures
    model: Program

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return self.model(self.features(raw))


class Members:
    """Programs side by side (a blend's or a stack's members). Members that are Chains over
    equal features (the same fitted pipeline on the same rows, as a blend of SVR and MLP has)
    share one CompiledFeatures, so each call computes those features once: the same numbers,
    one feature pass instead of one per member."""

    members: list[Program]

    def __post_init__(self) -> None:
        _share_features(self.members)

    def __setstate__(self, state: dict) -> None:  # models pickled before the sharing get it
        self.__dict__.update(state)
        _share_features(self.members)

    def outputs(self, raw: np.ndarray) -> np.ndarray:
        """Return one column per member: its output on `raw`."""
        encoded: dict[int, np.ndarray] = {}
        out = np.empty((raw.shape[0], len(self.members)))
        for i, member in enumerate(self.members):
            if isinstance(member, Chain):
                key = id(member.features)
                if key not in encoded:
                    encoded[key] = member.features(raw)
                out[:, i] = member.model(encoded[key])
            else:
                out[:, i] = member(raw)
        return out


def _share_features(members: list[Program]) -> None:
    """Make Chains whose features are equal (pickled, byte for byte) hold one of them."""
    seen: dict[bytes, CompiledFeatures] = {}
    for member in members:
        if isinstance(member, Chain):
            member.features = seen.setdefault(pickle.dumps(member.features), member.features)


@dataclass
class Mean(Members):
    members: list[Program]

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return self.combine(self.outputs(raw))

    def combine(self, outputs: np.ndarray) -> np.ndarray:
        """Return the blend of the members' outputs (one column each)."""
        return np.add.reduce(outputs, axis=1) / outputs.shape[1]  # np.mean's sum, 1/3 its cost


@dataclass
class Weighted(Members):
    """intercept + sum of weight x member: a StackingRegressor's linear meta-model."""

    members: list[Program]
    weights: np.ndarray
    intercept: float

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return self.combine(self.outputs(raw))

    def combine(self, outputs: np.ndarray) -> np.ndarray:
        """Return the meta-model's value of the members' outputs (one column each)."""
        return outputs @ self.weights + self.intercept


@dataclass
class Elasticity:
    """price = exp(clip(f(x) + b log sqft)): SqftElasticityTarget."""

    inner: Program
    sqft: int
    elasticity: float

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        return self.finish(self.inner(raw), raw[:, self.sqft])

    def finish(self, inner: np.ndarray, sqft: np.ndarray) -> np.ndarray:
        """Return dollars from the inner model's output and the living area."""
        with np.errstate(divide="ignore", invalid="ignore"):
            log_price = inner + self.elasticity * np.log(sqft)
        return to_price(log_price)


@dataclass
class RateTable:
    """Rule-of-thumb baseline: living area x $/sqft of the home's group (a code lookup)."""

    sqft: int
    group: int | None
    rates: np.ndarray

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        if self.group is None:
            return raw[:, self.sqft] * self.rates[0]
        return raw[:, self.sqft] * self.rates[raw[:, self.group].astype(np.intp)]


def _final(model: object) -> Program:
    """Compile the estimator that reads the encoded feature matrix."""
    if isinstance(model, MonotoneInSqft):
        return _final(model.regressor_)
    if isinstance(model, Ridge | ElasticNet | Lasso | LinearRegression):
        coef = np.asarray(model.coef_, dtype=float)
        if coef.ndim != 1:
            raise UnsupportedError("a multi-output linear model")
        return Linear(coef, float(np.asarray(model.intercept_).ravel()[0]))
    if isinstance(model, SVR):
        if model.kernel != "rbf":
            raise UnsupportedError(f"SVR with a {model.kernel!r} kernel")
        return RbfSVR(
            np.asarray(model.support_vectors_, dtype=float),
            np.asarray(model.dual_coef_, dtype=float)[0],
            float(model.intercept_[0]),
            float(model._gamma),
        )
    if isinstance(model, MLPRegressor):
        if model.out_activation_ != "identity" or model.activation not in _ACTIVATIONS:
            raise UnsupportedError(f"MLP activations {model.activation}/{model.out_activation_}")
        return Perceptron(list(model.coefs_), list(model.intercepts_), model.activation)
    if isinstance(model, DecisionTreeRegressor | RandomForestRegressor | ExtraTreesRegressor):
        return compile_sklearn_trees(model)
    if isinstance(model, HistGradientBoostingRegressor):
        return compile_hist_gb(model)
    if isinstance(model, KNeighborsRegressor | GaussianProcessRegressor | SalesComparison):
        return Native(model)  # SalesComparison's predict is numpy already
    kind = type(model).__name__
    if kind == "XGBRegressor":
        return Native(model.get_booster(), "inplace_predict")
    if kind == "LGBMRegressor":
        return Native(model.booster_)
    if kind == "CatBoostRegressor":
        return Native(model)
    raise UnsupportedError(f"estimator {kind}")


def compile_estimator(estimator: object, encoder: RawEncoder) -> Program:
    """Return the program of a fitted model that reads raw listing columns (raises
    UnsupportedError): the same numbers as its predict, from the engine's raw matrix."""
    if isinstance(estimator, SqftElasticityTarget):
        return Elasticity(
            compile_estimator(estimator.estimator_, encoder),
            encoder.index(estimator.sqft),
            float(estimator.elasticity_),
        )
    if isinstance(estimator, VotingRegressor):
        if estimator.weights is not None:
            raise UnsupportedError("a weighted blend")
        return Mean([compile_estimator(m, encoder) for m in estimator.estimators_])
    if isinstance(estimator, StackingRegressor):
        final = estimator.final_estimator_
        if estimator.passthrough or type(final) is not LinearRegression:
            raise UnsupportedError("a stack other than members -> linear meta-model")
        return Weighted(
            [compile_estimator(m, encoder) for m in estimator.estimators_],
            np.asarray(final.coef_, dtype=float).ravel(),
            float(np.ravel(final.intercept_)[0]),
        )
    if isinstance(estimator, Pipeline):
        (_, features), (_, model) = estimator.steps[0], estimator.steps[-1]
        if len(estimator.steps) != 2:
            raise UnsupportedError("a pipeline of more than features and model")
        if isinstance(model, PricePerSqftBaseline) and isinstance(features, ColumnSelector):
            return _rate_table(estimator, model, encoder)
        return Chain(compile_features(features, encoder), _final(model))
    raise UnsupportedError(f"model {type(estimator).__name__}")


def _rate_table(pipeline: Pipeline, baseline: PricePerSqftBaseline, encoder: RawEncoder):
    """The baseline's $/sqft per group code, read from the fitted baseline itself."""
    sqft = encoder.index(baseline.sqft)
    if baseline.by is None:
        return RateTable(sqft, None, np.array([baseline.overall_]))
    values = encoder.code_values(baseline.by)
    frame = pd.DataFrame({baseline.by: pd.Series(values, dtype=object)})
    rates = np.asarray(baseline.predict(frame.assign(**{baseline.sqft: 1.0})), dtype=float)
    return RateTable(sqft, encoder.index(baseline.by), rates)
