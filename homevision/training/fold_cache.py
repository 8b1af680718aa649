"""Cross-validation with the feature pipeline fitted once per fold, not once per model.

Every learned candidate is SqftElasticityTarget(Pipeline(features -> regressor)): the living-area
trend and the feature pipeline (imputers, scalers, encoders, target encoding, feature lists) are
fitted on the training fold and depend on the fold alone, never on the regressor or its
hyper-parameters. So they are fitted once per (fold, family) and every candidate, Optuna trial
and blend of that family reuses them: a fold's fit then costs the regressor's fit only. The
predictions are those of the whole model fitted on the fold (a unit test checks equality with
`cross_validate_model` on the full estimator), and nothing fitted ever sees its test rows.

A blend's out-of-fold predictions are the geometric mean of its members' (the VotingRegressor
averages log prices over one shared trend), so blends are scored from the members' results.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import Pipeline

from homevision.features import Family, FeatureSet, build_preprocessor
from homevision.training.candidates import CANDIDATES, Params, regressor_of
from homevision.training.evaluation import CVResult, Split
from homevision.training.metrics import valuation_metrics
from homevision.valuation.estimators import SqftElasticityTarget, to_price


@dataclass
class PreparedFold:
    """One training fold's fitted features, applied to its training and test rows."""

    train: pd.DataFrame
    target: np.ndarray  # log price less the fold's living-area trend (training rows)
    test: pd.DataFrame
    offset: np.ndarray  # the trend at the test rows (added back to predictions)
    test_rows: np.ndarray


def prepare_fold(
    X: pd.DataFrame, y: np.ndarray, features: Pipeline, split: Split, evidence=None
) -> PreparedFold:
    """Return one fold's prepared matrices: exactly what SqftElasticityTarget(Pipeline(...),
    evidence=evidence) computes before its regressor when fitted on the fold's training rows
    (the evidence, listings under contract, joins them). `features` is the unfitted feature
    pipeline, built by the caller (a worker process may not see the same params.yaml) and
    cloned here."""
    train, test = split
    trend = SqftElasticityTarget(None)
    fit_rows, fit_y = X.iloc[train], y[train]
    if evidence is not None:
        fit_rows, fit_y = evidence.augment(fit_rows, fit_y)
    elasticity, target = trend.trend(fit_rows, fit_y)
    features = clone(features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # rare categories in small folds
        encoded = features.fit_transform(fit_rows, target)
        encoded_test = features.transform(X.iloc[test])
    offset = elasticity * trend._log_sqft(X.iloc[test])
    return PreparedFold(encoded, target, encoded_test, offset, np.asarray(test))


def fit_prepared(name: str, params: Params, fold: PreparedFold) -> tuple[np.ndarray, float]:
    """Return (log price predicted for the fold's test rows, seconds the fit took)."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = clone(regressor_of(name, params)).fit(fold.train, fold.target)
        log_price = model.predict(fold.test) + fold.offset
    return log_price, time.perf_counter() - start


@dataclass
class FoldCache:
    """The prepared folds of (X, y) for each model family, computed when first asked for."""

    X: pd.DataFrame
    y: np.ndarray
    feature_set: FeatureSet
    splits: list[list[Split]]
    n_jobs: int = 2
    _folds: dict[str, list[list[PreparedFold]]] = field(default_factory=dict)
    prepare_seconds: float = 0.0

    def folds(self, family: Family, repeats: int) -> list[list[PreparedFold]]:
        """Return the prepared folds of the first `repeats` repeats for `family`."""
        done = self._folds.setdefault(family, [])
        if len(done) < repeats:
            start = time.perf_counter()
            todo = [s for r in self.splits[len(done) : repeats] for s in r]
            features = build_preprocessor(self.feature_set, family)
            with Parallel(n_jobs=self.n_jobs) as parallel:
                evidence = self.feature_set.evidence
                made = parallel(
                    delayed(prepare_fold)(self.X, self.y, features, s, evidence) for s in todo
                )
            k = len(self.splits[0])
            done.extend(made[i : i + k] for i in range(0, len(made), k))
            self.prepare_seconds += time.perf_counter() - start
        return done[:repeats]


@dataclass
class LogCVResult(CVResult):
    """A CVResult that also keeps the log-price predictions (what blends average)."""

    log_oof: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))


def cross_validate_cached(
    name: str,
    params: Params,
    cache: FoldCache,
    repeats: int,
    on_repeat: Callable[[int, float], None] | None = None,
    start_from: LogCVResult | None = None,
    metric: str = "rmse",
) -> LogCVResult:
    """Cross-validate candidate `name` with `params` on the first `repeats` repeats of the
    cache's splits; `start_from` (the same candidate on fewer repeats) is extended, not redone.
    `on_repeat(r, running)`: the running mean of `metric`, as in cross_validate_model (Optuna
    prunes through it)."""
    family = CANDIDATES[name].family
    if family is None:
        raise ValueError(f"{name} is a baseline: it reads raw columns, not prepared folds")
    y = cache.y
    n = len(y)
    logs = [] if start_from is None else list(start_from.log_oof)
    rows = [] if start_from is None else start_from.per_repeat.to_dict("records")
    seconds = 0.0 if start_from is None else start_from.fit_seconds * len(logs)
    folds = cache.folds(family, repeats)
    with Parallel(n_jobs=cache.n_jobs) as parallel:
        for r in range(len(logs), repeats):
            log_oof = np.full(n, np.nan)
            fitted = parallel(delayed(fit_prepared)(name, params, f) for f in folds[r])
            for fold, (log_price, took) in zip(folds[r], fitted, strict=True):
                log_oof[fold.test_rows] = log_price
                seconds += took
            logs.append(log_oof)
            rows.append(valuation_metrics(y, to_price(log_oof)))
            if on_repeat is not None:
                on_repeat(r, float(np.mean([row[metric] for row in rows])))
    log_oof = np.array(logs)
    return LogCVResult(
        pd.DataFrame(rows), to_price(log_oof), seconds / max(1, len(logs)), log_oof=log_oof
    )


def blend_result(members: list[LogCVResult], y: np.ndarray) -> LogCVResult:
    """Return the CV result of the equal-weight blend (in log price) of `members`, all scored
    on the same splits: the geometric mean of their out-of-fold prices."""
    repeats = min(len(m.log_oof) for m in members)
    log_oof = np.mean([m.log_oof[:repeats] for m in members], axis=0)
    rows = [valuation_metrics(y, to_price(r)) for r in log_oof]
    seconds = float(sum(m.fit_seconds for m in members))
    return LogCVResult(pd.DataFrame(rows), to_price(log_oof), seconds, log_oof=log_oof)
