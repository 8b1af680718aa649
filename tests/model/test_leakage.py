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


def test_subdivision_encoder_does_not_memorise_validation_prices(labelled):
    """The same check for the off-market set's cross-fitted subdivision encoding, the column
    with the most names: a subdivision unique to each home must not beat the real ones."""
    X, y = labelled
    X = X.head(500).copy()
    y = y.head(500)
    fs = get_feature_set("offmarket")
    splits = CVPlan(folds=5, repeats=1, seed=0).splits(y)
    honest = cross_validate_model(build_model("hist_gb", fs), X, y, splits).summary()
    X["SubdivisionName"] = [f"id-{i}" for i in range(len(X))]
    noise = cross_validate_model(build_model("hist_gb", fs), X, y, splits).summary()
    assert noise["mape"] >= honest["mape"] * 0.95


def test_feature_list_vocabulary_comes_from_the_training_rows_only(labelled):
    """Items that only the held-out homes carry never become indicator columns of a model
    fitted on the other rows (so a scored home cannot bring its own item to the fit)."""
    X, y = labelled
    X = X.head(300).copy()
    fs = get_feature_set("offmarket")
    column = fs.token_lists[0]
    held_out = X.index[250:]
    X.loc[held_out, column] = "Only held-out homes have this"
    model = build_model("ridge", fs).fit(X.drop(held_out), y.head(300).drop(held_out))
    tokens = model.estimator_.named_steps["features"].named_steps["encode"].named_transformers_
    assert "Only held-out homes have this" not in tokens["tokens"].tokens_[column]
    assert tokens["tokens"].tokens_[column]  # the training rows' own items are there


def test_every_off_market_column_is_known_before_the_sale_and_without_a_listing():
    fs = get_feature_set("offmarket")
    from homevision.features import is_leaky

    assert not [c for c in fs.raw_columns if is_leaky(c)]
    listing_only = {"CDOM", "ListPrice", "OriginalListPrice", "PublicRemarks", "ListAgentFullName"}
    assert not listing_only & set(fs.raw_columns)
    assert fs.fee and fs.token_lists  # the richer columns are in use
