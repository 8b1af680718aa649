"""No fitted step ever sees the rows it is scored on."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone

from homevision.features import get_feature_set
from homevision.training.candidates import build_model
from homevision.training.evaluation import CVPlan, cross_validate_model

FITTED_ON: list[frozenset[int]] = []


class SpyRegressor(RegressorMixin, BaseEstimator):
    """Records the MLSNumbers it is fitted on (in a module list, so clones in workers report
    back through the returned predictions instead: see predict)."""

    def fit(self, X, y):
        self.seen_ = frozenset(int(v) for v in X["MLSNumber"])
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        # Encode "was this row in my training set?" in the prediction itself: 1 if seen.
        return np.array([1.0 if int(v) in self.seen_ else 2.0 for v in X["MLSNumber"]])


def _frame(n: int = 60) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"MLSNumber": np.arange(n) + 1000, "SqFtTotal": rng.uniform(1e3, 4e3, n)})
    return X, pd.Series(100 * X["SqFtTotal"] * rng.lognormal(0, 0.1, n))


def test_cross_validation_never_scores_a_row_the_model_was_fitted_on():
    X, y = _frame()
    splits = CVPlan(folds=5, repeats=3, seed=1).splits(y)
    result = cross_validate_model(SpyRegressor(), X, y, splits, n_jobs=2)
    # Every out-of-fold prediction says "never seen": no validation row reached fit.
    assert (result.oof == 2.0).all()


def test_the_spy_would_catch_a_leak():
    """Negative case: fit on everything, then 'validate' (the classic leak): the spy flags it."""
    X, y = _frame()
    leaky = clone(SpyRegressor()).fit(X, y)
    assert (leaky.predict(X.iloc[:10]) == 1.0).all()


def test_folds_partition_the_rows_each_repeat():
    _, y = _frame(97)
    for folds in CVPlan(folds=5, repeats=2, seed=3).splits(y):
        tests = np.concatenate([test for _, test in folds])
        assert sorted(tests) == list(range(97))
        for train, test in folds:
            assert not set(train) & set(test)


def test_target_encoder_does_not_memorise_validation_prices(labelled):
    """A school name unique to each home is pure noise: if a fitted encoder saw validation
    rows, the tree model would value them near-perfectly. It must not beat the real schools."""
    X, y = labelled
    X = X.copy()
    fs = get_feature_set("task6")
    splits = CVPlan(folds=5, repeats=1, seed=0).splits(y)
    honest = cross_validate_model(build_model("extra_trees", fs), X, y, splits).summary()
    X["ElementarySchoolName"] = [f"id-{i}" for i in range(len(X))]
    noise = cross_validate_model(build_model("extra_trees", fs), X, y, splits).summary()
    assert noise["mape"] > 0.03  # a leak would drive this toward 0
    assert noise["mape"] >= honest["mape"] * 0.95
