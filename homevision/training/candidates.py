"""Every candidate model and its search space, in one place.

A candidate turns (feature set, hyper-parameters) into ONE estimator that goes from raw export
columns to dollars: SqftElasticityTarget(Pipeline(features -> regressor)), the regressor learning
log price beyond a log-log living-area trend. Baselines are rules of thumb in dollars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from sklearn.base import RegressorMixin
from sklearn.ensemble import (
    ExtraTreesRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
    StackingRegressor,
    VotingRegressor,
)
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, DotProduct, Matern, WhiteKernel
from sklearn.linear_model import ElasticNet, LinearRegression, Ridge
from sklearn.model_selection import KFold
from sklearn.neighbors import KNeighborsRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.svm import SVR
from sklearn.tree import DecisionTreeRegressor

from homevision.features import ColumnSelector, Family, FeatureSet, build_preprocessor
from homevision.valuation.baselines import PricePerSqftBaseline
from homevision.valuation.estimators import MonotoneInSqft, SqftElasticityTarget
from homevision.valuation.sales_comparison import SalesComparison

Params = dict[str, Any]
SEED = 0


@dataclass(frozen=True)
class Candidate:
    """A named model family: how to build it, its defaults, and its Optuna search space."""

    name: str
    family: Family | None  # None: a baseline that reads raw columns itself
    make: Callable[[Params], RegressorMixin]
    defaults: Params = field(default_factory=dict)
    space: Callable[[optuna.Trial], Params] | None = None

    @property
    def tunable(self) -> bool:
        return self.space is not None


def _xgb(p: Params):
    from xgboost import XGBRegressor

    return XGBRegressor(**p, n_jobs=1, random_state=SEED, tree_method="hist")


def _lgbm(p: Params):
    from lightgbm import LGBMRegressor

    return LGBMRegressor(**p, n_jobs=1, random_state=SEED, verbose=-1, subsample_freq=1)


def _catboost(p: Params):
    from catboost import CatBoostRegressor

    return CatBoostRegressor(
        **p, thread_count=1, random_seed=SEED, verbose=0, allow_writing_files=False
    )


def _gaussian_process(p: Params) -> GaussianProcessRegressor:
    """A Gaussian process in log price for small samples: a Matern kernel (smoothness `nu`) for
    local structure, plus a linear kernel when `linear` (the log-log trend of sizes carries far),
    plus white noise; every scale is fitted by maximum marginal likelihood inside the fit."""
    kernel = ConstantKernel(0.1, (1e-4, 1e2)) * Matern(
        length_scale=5.0, length_scale_bounds=(1e-1, 1e3), nu=p["nu"]
    )
    if p["linear"]:
        kernel += ConstantKernel(0.01, (1e-5, 1e1)) * DotProduct(
            sigma_0=1.0, sigma_0_bounds="fixed"
        )
    kernel += WhiteKernel(0.01, (1e-5, 1.0))
    return GaussianProcessRegressor(kernel, normalize_y=True, random_state=SEED)


def _boosting_space(trial: optuna.Trial) -> Params:
    return {
        "n_estimators": trial.suggest_int("n_estimators", 100, 1000, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
    }


CANDIDATES: dict[str, Candidate] = {
    c.name: c
    for c in [
        Candidate(
            "median_ppsf",
            None,
            lambda p: PricePerSqftBaseline(by=None),
        ),
        Candidate(
            "school_median_ppsf",
            None,
            lambda p: PricePerSqftBaseline(by="ElementarySchoolName", **p),
            {"min_count": 3},
        ),
        Candidate(
            "ridge",
            "linear",
            lambda p: Ridge(**p),
            {"alpha": 3.0},
            lambda t: {"alpha": t.suggest_float("alpha", 1e-3, 1e3, log=True)},
        ),
        Candidate(
            "elasticnet",
            "linear",
            lambda p: ElasticNet(**p, max_iter=20_000),
            {"alpha": 1e-3, "l1_ratio": 0.5},
            lambda t: {
                "alpha": t.suggest_float("alpha", 1e-5, 1.0, log=True),
                "l1_ratio": t.suggest_float("l1_ratio", 0.0, 1.0),
            },
        ),
        Candidate(
            "knn",
            "linear",
            lambda p: KNeighborsRegressor(**p),
            {"n_neighbors": 7, "weights": "distance"},
            lambda t: {
                "n_neighbors": t.suggest_int("n_neighbors", 2, 30),
                "weights": t.suggest_categorical("weights", ["uniform", "distance"]),
            },
        ),
        Candidate(
            "svr",
            "linear",
            lambda p: SVR(**p),
            {"C": 3.0, "gamma": 0.01, "epsilon": 0.02},
            lambda t: {
                "C": t.suggest_float("C", 0.3, 300.0, log=True),
                "gamma": t.suggest_float("gamma", 1e-3, 0.3, log=True),
                "epsilon": t.suggest_float("epsilon", 0.005, 0.2, log=True),
            },
        ),
        Candidate(
            "comparables",
            "linear",
            lambda p: SalesComparison(**p),
            {"alpha": 3.0, "n_comps": 8, "shrink": 0.7, "bandwidth": 1.0},
            lambda t: {
                "alpha": t.suggest_float("alpha", 0.1, 100.0, log=True),
                "n_comps": t.suggest_int("n_comps", 3, 25),
                "shrink": t.suggest_float("shrink", 0.2, 1.0),
                "bandwidth": t.suggest_float("bandwidth", 0.5, 3.0, log=True),
            },
        ),
        Candidate(
            "decision_tree",
            "tree",
            lambda p: DecisionTreeRegressor(**p, random_state=SEED),
            {"max_depth": 6, "min_samples_leaf": 3},
            lambda t: {
                "max_depth": t.suggest_int("max_depth", 2, 12),
                "min_samples_leaf": t.suggest_int("min_samples_leaf", 1, 20),
            },
        ),
        Candidate(
            "random_forest",
            "tree",
            lambda p: RandomForestRegressor(**p, n_jobs=1, random_state=SEED),
            {"n_estimators": 300, "max_features": 0.5, "min_samples_leaf": 1},
            lambda t: {
                "n_estimators": t.suggest_int("n_estimators", 100, 600, log=True),
                "max_features": t.suggest_float("max_features", 0.2, 1.0),
                "min_samples_leaf": t.suggest_int("min_samples_leaf", 1, 10),
            },
        ),
        Candidate(
            "extra_trees",
            "tree",
            lambda p: ExtraTreesRegressor(**p, n_jobs=1, random_state=SEED),
            {"n_estimators": 300, "max_features": 0.7, "min_samples_leaf": 1},
            lambda t: {
                "n_estimators": t.suggest_int("n_estimators", 100, 600, log=True),
                "max_features": t.suggest_float("max_features", 0.2, 1.0),
                "min_samples_leaf": t.suggest_int("min_samples_leaf", 1, 10),
            },
        ),
        Candidate(
            "hist_gb",
            "tree",
            lambda p: HistGradientBoostingRegressor(**p, random_state=SEED),
            {"max_iter": 300, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 8},
            lambda t: {
                "max_iter": t.suggest_int("max_iter", 50, 800, log=True),
                "learning_rate": t.suggest_float("learning_rate", 0.01, 0.3, log=True),
                "max_leaf_nodes": t.suggest_int("max_leaf_nodes", 4, 48, log=True),
                "min_samples_leaf": t.suggest_int("min_samples_leaf", 2, 40, log=True),
                "l2_regularization": t.suggest_float("l2_regularization", 1e-6, 10.0, log=True),
            },
        ),
        Candidate(
            "xgboost",
            "tree",
            _xgb,
            {
                "n_estimators": 400,
                "learning_rate": 0.05,
                "max_depth": 3,
                "subsample": 0.8,
                "colsample_bytree": 0.8,
            },
            lambda t: {
                **_boosting_space(t),
                "max_depth": t.suggest_int("max_depth", 2, 8),
                "min_child_weight": t.suggest_float("min_child_weight", 0.5, 20, log=True),
                "reg_lambda": t.suggest_float("reg_lambda", 1e-3, 30, log=True),
            },
        ),
        Candidate(
            "lightgbm",
            "tree",
            _lgbm,
            {
                "n_estimators": 400,
                "learning_rate": 0.05,
                "num_leaves": 8,
                "min_child_samples": 8,
                "subsample": 0.8,
                "colsample_bytree": 0.8,
            },
            lambda t: {
                **_boosting_space(t),
                "num_leaves": t.suggest_int("num_leaves", 4, 48, log=True),
                "min_child_samples": t.suggest_int("min_child_samples", 3, 40, log=True),
                "reg_lambda": t.suggest_float("reg_lambda", 1e-3, 30, log=True),
            },
        ),
        Candidate(
            "catboost",
            "tree",
            _catboost,
            {"iterations": 500, "learning_rate": 0.05, "depth": 4},
            lambda t: {
                "iterations": t.suggest_int("iterations", 200, 1200, log=True),
                "learning_rate": t.suggest_float("learning_rate", 0.01, 0.2, log=True),
                "depth": t.suggest_int("depth", 2, 8),
                "l2_leaf_reg": t.suggest_float("l2_leaf_reg", 0.5, 30, log=True),
            },
        ),
        Candidate(
            "gaussian_process",
            "linear",
            _gaussian_process,
            {"nu": 2.5, "linear": True},
            lambda t: {
                "nu": t.suggest_categorical("nu", [0.5, 1.5, 2.5]),
                "linear": t.suggest_categorical("linear", [True, False]),
            },
        ),
        Candidate(
            "mlp",
            "linear",
            lambda p: MLPRegressor(**p, solver="lbfgs", max_iter=2000, random_state=SEED),
            {"hidden_layer_sizes": (16,), "alpha": 1.0},
            lambda t: {
                "hidden_layer_sizes": (t.suggest_int("width", 4, 64, log=True),),
                "alpha": t.suggest_float("alpha", 1e-3, 100.0, log=True),
            },
        ),
    ]
}
BASELINES = ("median_ppsf", "school_median_ppsf")
# Among candidates whose CV scores are within noise of each other, the earlier is preferred:
# fewer parameters and smoother in its inputs (a linear model, then kernels; the memory-based
# comparables and kNN jump as the set of nearest sales changes; then networks and trees).
SIMPLICITY = (
    "median_ppsf",
    "school_median_ppsf",
    "ridge",
    "elasticnet",
    "svr",
    "gaussian_process",
    "comparables",
    "knn",
    "mlp",
    "decision_tree",
    "lightgbm",
    "xgboost",
    "hist_gb",
    "catboost",
    "random_forest",
    "extra_trees",
)
BLEND = "blend"
STACK = "stack"
STACK_FOLDS = 5  # the stack's own out-of-fold predictions: members fit this many times + 1


def tunable_candidate(name: str) -> Candidate:
    """Return the candidate `name` when it has a search space; else ValueError in one sentence
    naming those that do (an unknown name, or a baseline, which has nothing to tune)."""
    candidate = CANDIDATES.get(name)
    if candidate is None or not candidate.tunable:
        names = ", ".join(n for n, c in CANDIDATES.items() if c.tunable)
        problem = (
            f"unknown candidate {name!r}" if candidate is None else f"{name} has no search space"
        )
        raise ValueError(f"{problem}; choose one of {names}")
    return candidate


def build_model(name: str, feature_set: FeatureSet, params: Params | None = None):
    """Return the unfitted model for candidate `name` (defaults overridden by `params`).

    Learned models fit the log price left after a log-log living-area trend
    (SqftElasticityTarget), tree models under monotonic constraints; baselines work in dollars.
    """
    candidate = CANDIDATES[name]
    merged = {**candidate.defaults, **(params or {})}
    regressor = candidate.make(merged)
    if candidate.family is None:
        select = ColumnSelector(numeric=("SqFtTotal",), text=(feature_set.school,))
        return Pipeline([("features", select), ("model", regressor)])
    return SqftElasticityTarget(
        Pipeline(
            [
                ("features", build_preprocessor(feature_set, candidate.family)),
                ("model", _constrained(candidate, regressor)),
            ]
        ),
        evidence=feature_set.evidence,
    )


def regressor_of(name: str, params: Params | None = None) -> RegressorMixin:
    """Return the unfitted regressor of learned candidate `name` (defaults overridden by
    `params`): what its model fits after the feature pipeline, constrained as build_model does."""
    candidate = CANDIDATES[name]
    return _constrained(candidate, candidate.make({**candidate.defaults, **(params or {})}))


def _constrained(candidate: Candidate, regressor: RegressorMixin) -> RegressorMixin:
    """Tree models get monotonic constraints in living area; others are returned as they are."""
    return MonotoneInSqft(regressor) if candidate.family == "tree" else regressor


def build_from_spec(spec: dict[str, Any], feature_set: FeatureSet):
    """Rebuild an unfitted model from its logged spec: a single candidate, a blend or a stack."""
    if spec["kind"] == "blend":
        return build_blend([(name, params) for name, params in spec["members"]], feature_set)
    if spec["kind"] == "stack":
        return build_stack([(name, params) for name, params in spec["members"]], feature_set)
    return build_model(spec["name"], feature_set, spec.get("params"))


def _members(members: list[tuple[str, Params]], feature_set: FeatureSet) -> list[tuple]:
    """Return (name, Pipeline(features -> regressor)) per member: each with the preprocessing
    its family needs, as the ensembles take them."""
    estimators = []
    for name, params in members:
        candidate = CANDIDATES[name]
        merged = {**candidate.defaults, **params}
        estimators.append(
            (
                name,
                Pipeline(
                    [
                        ("features", build_preprocessor(feature_set, candidate.family)),
                        ("model", _constrained(candidate, candidate.make(merged))),
                    ]
                ),
            )
        )
    return estimators


def build_blend(members: list[tuple[str, Params]], feature_set: FeatureSet) -> Pipeline:
    """Return an equal-weight blend (in log price) of the given candidates as one model."""
    return SqftElasticityTarget(
        VotingRegressor(_members(members, feature_set)), evidence=feature_set.evidence
    )


def build_stack(members: list[tuple[str, Params]], feature_set: FeatureSet):
    """Return scikit-learn's StackingRegressor of the given candidates, in log price: the
    members' out-of-fold predictions (their own 5 folds, inside whatever fold fits the stack)
    weighted by a linear meta-model with non-negative weights, so a member can only add its
    view, never be subtracted (and living-area monotone members stay monotone together)."""
    return SqftElasticityTarget(
        StackingRegressor(
            _members(members, feature_set),
            final_estimator=LinearRegression(positive=True),
            cv=KFold(STACK_FOLDS, shuffle=True, random_state=SEED),
        ),
        evidence=feature_set.evidence,
    )
