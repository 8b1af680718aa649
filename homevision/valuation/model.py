"""The registered model: point valuation, conformal price range, SHAP reasons and comparable
sales, all in one fitted object that reads raw listing columns."""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd
from sklearn import config_context
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from homevision.data.schema import BATHS, MIN_LIST_PRICE
from homevision.features import FeatureSet, get_feature_set
from homevision.valuation.comps import ComparableFrames, ComparablesIndex, model_comparables
from homevision.valuation.engine import (
    RawEncoder,
    UnsupportedError,
    compile_conformal,
    compile_model,
)
from homevision.valuation.engine.coalitions import CoalitionValues
from homevision.valuation.engine.raw import encode_baths, split_baths_codes
from homevision.valuation.engine.walks import WalkValues
from homevision.valuation.explain import (
    Contributions,
    DollarExplainer,
    samples,
    summarize_background,
)
from homevision.valuation.intervals import (
    CONSTANT_FACTOR,
    constant_factors,
    interval_bounds,
    make_conformal,
)
from homevision.valuation.records import Records, as_frame
from homevision.valuation.sales_comparison import find_sales_comparison

log = logging.getLogger(__name__)
ENGINE_SWITCH = "HOMEVISION_ENGINE"
PRICE_RANGE_QUANTILES = (0.01, 0.99)  # the training prices that bound the refusal band


class ValuationModel(RegressorMixin, BaseEstimator):
    """Wraps a price estimator with MAPIE ranges at `levels`, a SHAP explainer and comps.

    Fitting also compiles the model into the numpy engine (homevision.valuation.engine), which
    every predict, range and explanation uses unless `engine=False` asks for the scikit-learn
    path; a model the engine cannot compile stays on scikit-learn and `engine_note_` says why.
    """

    def __init__(
        self,
        estimator=None,
        feature_set: str = "task6",
        interval_variant: str = "cv_plus",
        levels: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95),
        confidence: float = 0.9,
        background_rows: int = 24,
        comparables: int = 5,
        seed: int = 0,
    ):
        self.estimator = estimator
        self.feature_set = feature_set
        self.interval_variant = interval_variant
        self.levels = levels
        self.confidence = confidence
        self.background_rows = background_rows
        self.comparables = comparables
        self.seed = seed

    def fit(self, X: pd.DataFrame, y) -> ValuationModel:
        """Fit the point model on all rows, calibrate the ranges, index the sales, compile."""
        if self.confidence not in self.levels:
            raise ValueError(f"confidence {self.confidence} must be one of levels {self.levels}")
        fs = get_feature_set(self.feature_set)
        self.raw_columns_ = fs.raw_columns
        y = np.asarray(y, dtype=float)
        self.estimator_ = clone(self.estimator).fit(X, y)
        conformal = make_conformal(
            self.interval_variant, self.estimator, list(self.levels), self.seed
        ).fit_conformalize(X, y)
        if self.interval_variant in CONSTANT_FACTOR:
            # Ranges are the valuation times a factor per level: keep the factors, not the
            # fold models, so a range costs no more than the valuation itself.
            self.factors_ = constant_factors(conformal, X.head(20), list(self.levels))
            self.conformal_ = None
        else:
            self.factors_ = None
            self.conformal_ = conformal
        self.comps_ = ComparablesIndex(fs, self.comparables).fit(X, y)
        # Reference homes for explanations: k-medoids of the training homes, weighted.
        rows, self.background_weights_ = summarize_background(
            self.comps_.points_, self.background_rows, self.seed
        )
        self.background_ = X.iloc[rows][self.raw_columns_].reset_index(drop=True)
        # What the model has seen: prediction flags listings outside these ranges (a warning)
        # and refuses valuations far outside the training prices (see valuation.predict).
        self.training_ranges_ = training_ranges(X, fs)
        # Robust ends (1% and 99% quantiles): one mistyped sale cannot widen the refusal band.
        low, high = np.quantile(np.asarray(y, dtype=float), PRICE_RANGE_QUANTILES)
        self.price_range_ = (float(low), float(high))
        # The engine's vocabulary and its compile check cover every row the estimator learnt
        # from, listings under contract included: a category only they carry (a new
        # subdivision, a "Proposed" build) must not be coded as unseen.
        learnt = fitted_rows(self.estimator_, X, y)
        self.encoder_ = RawEncoder.fit(learnt, fs)
        self._compile(learnt)
        return self

    def _compile(self, X: pd.DataFrame) -> None:
        """Compile the point model and the range's fold models; on failure keep scikit-learn
        and record why (the engine is all or nothing, so a range never mixes the two paths)."""
        self.engine_, self.fast_conformal_, self.engine_note_ = None, None, ""
        try:
            engine = compile_model(self.estimator_, self.encoder_, X)
            fast = None
            if self.conformal_ is not None:
                fast = compile_conformal(self.conformal_, self.encoder_)
        except UnsupportedError as err:
            self.engine_note_ = f"scikit-learn path: the engine does not cover {err}"
            log.warning("Valuation engine not used: %s", err)
            return
        self.engine_, self.fast_conformal_ = engine, fast
        self.engine_note_ = f"numpy engine: {engine.description}"

    def __setstate__(self, state: dict) -> None:
        """Unpickle; a model logged before the engine existed gets the scikit-learn path and an
        encoder built from what it carries (its reference homes and its sold homes' schools);
        one whose encoder misses categories of its evidence rows gets them (`_cover_evidence`)."""
        super().__setstate__(state)
        if "estimator_" not in state:
            return
        if "encoder_" not in state:
            fs = get_feature_set(self.feature_set)
            known = self.background_
            sold = getattr(getattr(self, "comps_", None), "sold_", None)
            if sold is not None and "school" in sold:
                schools = sold["school"].rename(fs.school).to_frame()
                known = pd.concat([known, schools], ignore_index=True)
            self.encoder_ = RawEncoder.fit(known, fs)
            self.engine_ = self.fast_conformal_ = self.engine_note_ = None
        self._cover_evidence()

    def _cover_evidence(self) -> None:
        """Widen the encoder of a model fitted before it covered the evidence rows (the listings
        under contract its estimator learnt beside the sales) by the categories only they carry,
        and recompile the engine on them and the reference homes; nothing to do otherwise.
        Without it such a model codes those categories as unseen on every path, and values
        homes in them unlike its estimator (up to 3.9% on the first registered champion)."""
        evidence = learnt_evidence(self.estimator_)
        if evidence is None:
            return
        wider = self.encoder_.widened(evidence)
        if wider is self.encoder_:
            return
        self.encoder_ = wider
        self.__dict__.pop("_explainers", None)
        if getattr(self, "engine_", None) is not None:
            rows = evidence.reindex(columns=self.raw_columns_)
            self._compile(pd.concat([rows, self.background_], ignore_index=True))

    @property
    def uses_engine(self) -> bool:
        """True when valuations go through the compiled engine: it compiled, and the
        HOMEVISION_ENGINE switch (every face honours it) is not "0"."""
        return getattr(self, "engine_", None) is not None and engine_enabled()

    def predict(self, X: pd.DataFrame, engine: bool = True) -> np.ndarray:
        """Return the point valuation in dollars (the engine's unless `engine=False`)."""
        check_is_fitted(self, "estimator_")
        if engine and self.uses_engine:
            return self.engine_.predict(X)
        # Names spelt as the engine reads them ("VAUGHN" is "Vaughn": RawEncoder.respell).
        return self._sklearn_predict(self.encoder_.respell(X))

    def _sklearn_predict(self, X: pd.DataFrame) -> np.ndarray:
        # Inputs were validated on the way in; skip scikit-learn's per-call re-checks.
        with config_context(assume_finite=True, skip_parameter_validation=True):
            return self.estimator_.predict(X)

    def predict_interval(
        self, X: pd.DataFrame, confidence: float | None = None, engine: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (point, low, high) in dollars at `confidence` (one of `levels`).

        The range is widened, if needed, to contain the point valuation.
        """
        level = self._level(confidence)
        if engine and self.uses_engine:
            return self.predict_interval_matrix(self.encoder_.encode(X), level)
        X = self.encoder_.respell(X)  # as predict: the names the engine reads
        return self._with_range(self._sklearn_predict(X), self.conformal_, X, level)

    def predict_interval_matrix(
        self, raw: np.ndarray, confidence: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`predict_interval` for rows already in the engine's raw matrix (`encoder_`): what
        the API and value_frame call, so a listing is encoded once. Off the engine, the rows are
        decoded back to a listing frame for scikit-learn."""
        level = self._level(confidence)
        if not self.uses_engine:
            return self.predict_interval(self.encoder_.decode(raw), level, engine=False)
        point = self.engine_.predict_matrix(raw)
        return self._with_range(point, self.fast_conformal_, raw, level)

    def _with_range(self, point: np.ndarray, conformal, rows, level: float) -> tuple:
        """Return (point, low, high): constant factors, or `conformal` on `rows` (MAPIE with
        scikit-learn fold models on a frame, or compiled ones on the raw matrix), the range
        widened if needed to contain the point."""
        if self.factors_ is not None:
            low_factor, high_factor = self.factors_[level]
            low, high = point * low_factor, point * high_factor
        else:
            with config_context(assume_finite=True, skip_parameter_validation=True):
                bounds = interval_bounds(conformal, rows, list(self.levels), wanted=level)[level]
            low, high = bounds[:, 0], bounds[:, 1]
        return point, np.minimum(low, point), np.maximum(high, point)

    def _level(self, confidence: float | None) -> float:
        level = self.confidence if confidence is None else confidence
        if level not in self.levels:
            raise ValueError(
                f"confidence {level} not carried by this model; use one of "
                f"{', '.join(str(v) for v in self.levels)}"
            )
        return level

    def explainer(self, engine: bool = True) -> DollarExplainer:
        """Return the Shapley explainer of this model over its raw columns (built once per
        path and kept: it holds the encoded reference homes)."""
        fast = engine and self.uses_engine
        cache = self.__dict__.setdefault("_explainers", {})
        if fast not in cache:
            cache[fast] = self._make_explainer(fast)
        return cache[fast]

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # a copy: the live model keeps its cache
        state.pop("_explainers", None)  # a cache, rebuilt on first use
        return state

    def _make_explainer(self, fast: bool) -> DollarExplainer:
        encoder = self.encoder_
        coalitions = None
        if fast:
            predict_matrix = self.engine_.predict_matrix
            # Every coalition (exact): the SVR's kernel factors; a permutation plan: its walk.
            kind = WalkValues if samples(len(encoder.columns)) else CoalitionValues
            coalitions = kind.for_program(self.engine_.program)
        else:

            def predict_matrix(raw: np.ndarray) -> np.ndarray:
                return self._sklearn_predict(encoder.decode(raw))

        weights = getattr(self, "background_weights_", None)
        # The engine's programs are pure numpy; the scikit-learn path stays on one thread.
        threads = None if fast else 1
        return DollarExplainer(
            predict_matrix, encoder, self.background_, weights, threads, coalitions
        )

    def explain(
        self, X: pd.DataFrame | Records, engine: bool = True, matrix: np.ndarray | None = None
    ) -> Contributions:
        """Return per-row SHAP contributions in dollars (base + sum = valuation); `matrix`: X
        in the engine's raw matrix already (then X may be records)."""
        return self.explainer(engine).explain(X, matrix)

    @property
    def comparables_order(self) -> str:
        """How `comparable_sales` orders a home's comparables, in words for a caption: the
        comparable-sales model's own neighbours ignore the school order."""
        if find_sales_comparison(self.estimator_) is not None:
            return "the sales the comparable-sales model compared it with, nearest first"
        return "same school first"

    def comparable_sales(self, X: pd.DataFrame | Records, k: int | None = None) -> ComparableFrames:
        """Return, per home (a row of X, or a record), the k most similar sold listings (never
        the listing itself): the comparables the comparable-sales model used when it is (or is
        in) the model, else the nearest sales of the same school first."""
        if isinstance(X, pd.DataFrame):
            X = X.reset_index(drop=True)
        found = find_sales_comparison(self.estimator_)
        if found is not None:
            homes = self.encoder_.respell(as_frame(X, self.raw_columns_))  # as the model reads
            return model_comparables(self.comps_, *found, homes, k)
        return self.comps_.query(X, k)


def learnt_evidence(estimator: object) -> pd.DataFrame | None:
    """Return the listings under contract a fitted estimator learnt beside its sales (the rows
    its evidence added), or None when it fitted sales alone."""
    evidence = getattr(estimator, "evidence", None)
    if evidence is None or not getattr(estimator, "evidence_rows_", 0):
        return None
    return evidence.frame


def fitted_rows(estimator: object, X: pd.DataFrame, y) -> pd.DataFrame:
    """Return the rows a fitted estimator learnt from: the sales X, followed by the listings
    under contract its evidence added (as SqftElasticityTarget.fit adds them)."""
    if learnt_evidence(estimator) is None:
        return X
    return estimator.evidence.augment(X, y)[0]


def engine_enabled() -> bool:
    """False when HOMEVISION_ENGINE=0: every face then values on the scikit-learn path (to
    compare the two, or to rule the engine out while investigating a valuation)."""
    return os.environ.get(ENGINE_SWITCH, "1").strip() != "0"


def engine_note(model: object) -> str:
    """Return one sentence on how `model` values homes (engine, fallback and why, or off)."""
    note = getattr(model, "engine_note_", None)
    if note is None:
        return "scikit-learn path: the model was logged before the valuation engine existed"
    if getattr(model, "engine_", None) is not None and not engine_enabled():
        return f"scikit-learn path: {ENGINE_SWITCH}=0 (compiled: {note})"
    return note


def support_values(X: pd.DataFrame, column: str) -> np.ndarray:
    """Return the values of `column` as the model understands them, for range checks: baths as
    the number of bathrooms (full + half), days on market without sign errors, asking prices
    below MIN_LIST_PRICE as missing (the pipeline repairs these the same way); NaN = missing."""
    if column not in X:
        return np.full(len(X), np.nan)
    if column == BATHS:
        full, half = split_baths_codes(encode_baths(X[column]))
        return full + half
    values = X[column]
    if values.dtype.kind in "fiu":
        values = values.to_numpy(dtype=float)
    else:
        values = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if column == "CDOM":
        return np.abs(values)
    if column == "ListPrice":
        return np.where(values >= MIN_LIST_PRICE, values, np.nan)
    return values


def matrix_support_values(encoder: RawEncoder, raw: np.ndarray, column: str) -> np.ndarray:
    """`support_values` read from the engine's raw matrix (the same repairs: baths as full +
    half, CDOM without sign errors, implausible asking prices as missing)."""
    if column not in encoder.columns:
        return np.full(len(raw), np.nan)
    values = raw[:, encoder.index(column)]
    if column == encoder.baths:
        full, half = split_baths_codes(values)
        return full + half
    if column == "CDOM":
        return np.abs(values)
    if column == "ListPrice":
        return np.where(values >= MIN_LIST_PRICE, values, np.nan)
    return values


def training_ranges(X: pd.DataFrame, fs: FeatureSet) -> dict[str, tuple[float, float]]:
    """Return {column: (min, max)} over the training rows for every numeric raw column the
    feature set reads (and the bathroom count); columns with no value are left out."""
    ranges = {}
    for column in [*fs.numeric, fs.baths]:
        values = support_values(X, column)
        values = values[np.isfinite(values)]
        if values.size:
            ranges[column] = (float(values.min()), float(values.max()))
    return ranges


MODEL_ARTIFACT = "valuation_model"  # the fitted ValuationModel, a joblib file beside the pyfunc


def __getattr__(name: str):
    """ValuationPyfunc lives in homevision.valuation.pyfunc (it needs MLflow, which a worker
    that only values does not); the models logged before it moved import it from here."""
    if name == "ValuationPyfunc":
        from homevision.valuation.pyfunc import ValuationPyfunc

        return ValuationPyfunc
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
