"""The REST API: `create_app(model_ref)` returns a FastAPI app that loads the model once at
start-up and values one listing or a batch per request."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from homevision.serving.schemas import (
    MAX_BATCH,
    Comparable,
    Contribution,
    Explanation,
    Health,
    Listing,
    ModelInfo,
    Valuation,
    ValuationResponse,
)
from homevision.tracking import ModelNotFoundError, describe_model, load_model

log = logging.getLogger(__name__)


@dataclass
class Served:
    """The model being served and what it is."""

    model: Any
    info: ModelInfo


def load_served(ref: str | None) -> Served:
    """Load the model behind `ref` and describe it."""
    model = load_model(ref)
    info = ModelInfo(**describe_model(ref), confidence_levels=list(model.levels))
    return Served(model, info)


def listings_frame(listings: list[Listing], columns: list[str]) -> pd.DataFrame:
    """Return the listings as the raw-column frame the model reads (missing fields as NaN)."""
    rows = [item.model_dump() for item in listings]
    frame = pd.DataFrame(rows)
    if "PoolYN" in frame:
        frame["PoolYN"] = frame["PoolYN"].map({True: 1.0, False: 0.0})
    for col in columns:
        if col not in frame:
            frame[col] = np.nan
    return frame


def _missing_required(listings: list[Listing], required: list[str]) -> list[dict[str, Any]]:
    """422 details for fields the served model's feature set needs but a listing lacks."""
    optional_ok = {"CDOM", "LotSizeAreaSQFT", "ElementarySchoolName"}  # repaired in pipeline
    errors = []
    for i, item in enumerate(listings):
        for col in required:
            if col not in optional_ok and getattr(item, col, None) is None:
                errors.append(
                    {
                        "loc": ["body", i, col],
                        "type": "missing",
                        "msg": f"Field required by this model's feature set: {col}",
                    }
                )
    return errors


def create_app(
    model_ref: str | None = None, loader: Callable[[str | None], Served] = load_served
) -> FastAPI:
    """Return the API; the model is loaded at start-up and on POST /model/reload."""
    state: dict[str, Served | None] = {"served": None}
    lock = threading.Lock()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            state["served"] = loader(model_ref)
            log.info("Serving %s", state["served"].info.uri)
        except ModelNotFoundError as err:
            log.error("%s", err)
        yield

    app = FastAPI(
        title="homevision",
        version="1",
        summary="Home valuations from MLS listing fields, with a price range and reasons.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return JSONResponse(status_code=422, content={"detail": _clean_errors(exc)})

    def served() -> Served:
        current = state["served"]
        if current is None:
            raise HTTPException(
                503, "no model loaded: train one (homevision train) and POST /model/reload"
            )
        return current

    @app.get("/health", response_model=Health)
    def health() -> Health:
        return Health(status="ok", model_loaded=state["served"] is not None)

    @app.get("/model", response_model=ModelInfo)
    def model_info() -> ModelInfo:
        return served().info

    @app.post("/model/reload", response_model=ModelInfo)
    def reload() -> ModelInfo:
        with lock:
            try:
                state["served"] = loader(model_ref)
            except ModelNotFoundError as err:
                raise HTTPException(404, str(err)) from None
        return state["served"].info

    @app.post(
        "/valuations",
        response_model=ValuationResponse,
        responses={
            413: {"description": f"More than {MAX_BATCH:,} listings in one request"},
            422: {"description": "A field is missing or breaks its rule"},
        },
    )
    def valuations(
        listings: Annotated[
            Listing | list[Listing],
            Body(description=f"One listing, or a list of at most {MAX_BATCH:,}."),
        ],
        explain: Annotated[bool, Query(description="Add SHAP reasons and comparables.")] = False,
        confidence: Annotated[
            float | None,
            Query(description="Range confidence; one the model carries (default 0.9)."),
        ] = None,
    ) -> ValuationResponse:
        current = served()
        batch = listings if isinstance(listings, list) else [listings]
        if len(batch) > MAX_BATCH:
            raise HTTPException(
                413,
                f"{len(batch):,} listings in one request; the limit is "
                f"{MAX_BATCH:,}: split the batch",
            )
        if not batch:
            return ValuationResponse(model=current.info, valuations=[])
        model = current.model
        level = model.confidence if confidence is None else confidence
        if level not in model.levels:
            raise HTTPException(
                422,
                [
                    {
                        "loc": ["query", "confidence"],
                        "type": "value_error",
                        "msg": f"confidence must be one of {list(model.levels)}",
                    }
                ],
            )
        if errors := _missing_required(batch, model.raw_columns_):
            raise HTTPException(422, errors)
        frame = listings_frame(batch, model.raw_columns_)
        try:
            point, low, high = model.predict_interval(frame, level)
        except ValueError as err:  # a value the model cannot use: the client's 422, logged
            log.warning("valuation refused: %s", err)
            raise HTTPException(
                422,
                [
                    {
                        "loc": ["body"],
                        "type": "value_error",
                        "msg": f"these values cannot be valued: {err}",
                    }
                ],
            ) from None
        if not (np.isfinite(point).all() and np.isfinite(low).all() and np.isfinite(high).all()):
            bad = [i for i in range(len(batch)) if not math.isfinite(float(high[i]))]
            raise HTTPException(
                422,
                [
                    {
                        "loc": ["body", i],
                        "type": "value_error",
                        "msg": "these values are outside what the model can value",
                    }
                    for i in bad or [0]
                ],
            )
        explanations = _explanations(model, frame) if explain else [None] * len(batch)
        return ValuationResponse(
            model=current.info,
            valuations=[
                Valuation(
                    MLSNumber=item.MLSNumber,
                    predicted_close_price=round(float(point[i]), 2),
                    close_price_low=round(float(low[i]), 2),
                    close_price_high=round(float(high[i]), 2),
                    confidence=level,
                    explanation=explanations[i],
                )
                for i, item in enumerate(batch)
            ],
        )

    return app


_UNION_TAGS = {"Listing", "list[Listing]"}


def _clean_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Return 422 details naming the field and the rule, without the one-or-many union noise:
    a single listing reports its fields, a batch reports [index, field]."""
    body = getattr(exc, "body", None)
    wrong_branch = "Listing" if isinstance(body, list) else "list[Listing]"
    details = []
    for err in exc.errors():
        loc = list(err.get("loc", []))
        if len(loc) > 1 and loc[0] == "body" and loc[1] in _UNION_TAGS:
            if loc[1] == wrong_branch and isinstance(body, list | dict):
                continue
            loc = [loc[0], *loc[2:]]
        details.append({"loc": loc, "type": err.get("type"), "msg": err.get("msg")})
    return details


def _explanations(model, frame: pd.DataFrame) -> list[Explanation]:
    contributions = model.explain(frame)
    comps = model.comparable_sales(frame)
    out = []
    for i in range(len(frame)):
        row = contributions.values.iloc[i]
        ranked = row.reindex(row.abs().sort_values(ascending=False).index)
        out.append(
            Explanation(
                base_value=float(contributions.base_values[i]),
                contributions=[
                    Contribution(feature=str(k), dollars=float(v)) for k, v in ranked.items()
                ],
                comparables=[Comparable(**_comp(r)) for r in comps[i].to_dict(orient="records")],
            )
        )
    return out


def _comp(record: dict[str, Any]) -> dict[str, Any]:
    clean = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()
    }
    clean["MLSNumber"] = str(clean["MLSNumber"])
    clean["ElementarySchoolName"] = (
        None if clean["ElementarySchoolName"] is None else str(clean["ElementarySchoolName"])
    )
    for key in ("sqft_diff", "beds_diff", "baths_diff"):
        clean[key] = 0.0 if clean[key] is None else float(clean[key])
    return clean
