"""The REST API: `create_app(model_ref)` returns a FastAPI app that loads the model at start-up
(and on POST /model/reload) and values one listing or a batch per request.

Operable: request bodies are capped before they are parsed (BodySizeLimit), explanations per
request are capped, a model that cannot be loaded is a 503 with one sentence while the server
stays up, and no answer carries internal exception text (it goes to the log). Valuing goes
through valuation.predict.value_frame, as in the CLI and the Python API, so a valuation the
model cannot support is refused (error, null prices) and an extrapolation warned, per listing.
Stricter than the CLI on purpose: a listing must carry every field the model reads but those
the pipeline repairs or whose absence means "none" (`_missing_required`), or the request is a 422.

Guarded: every route says who may call it (serving.auth): valuations and model info need a
`value` API key, /metrics a `metrics` key, reload an `admin` key; the health probes and the
API's description (/docs, /openapi.json) are open.

Observable: GET /metrics answers Prometheus metrics (requests and latency by route and status,
valuations, refused and extrapolated listings, the model served), every worker's together when
the server runs several (serving.metrics describes each metric).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException, Query, Request, Response, Security
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from homevision.api_keys import KeyRing
from homevision.api_keys import Scope as KeyScope
from homevision.config import load_params
from homevision.data.fields import NONE_WHEN_MISSING
from homevision.service_secrets import SecretFileError
from homevision.serving.auth import KeyCheckedRoute, Requirement
from homevision.serving.coalesce import Coalescer
from homevision.serving.metrics import Metrics, RequestMetrics
from homevision.serving.metrics import metrics as process_metrics
from homevision.serving.schemas import (
    MAX_BATCH,
    Comparable,
    Contribution,
    Explanation,
    Health,
    Listing,
    ModelInfo,
    Problem,
    Valuation,
    ValuationResponse,
)
from homevision.tracking import (
    DEFAULT_REF,
    ModelNotFoundError,
    describe_model,
    load_model,
    pin_model_uri,
)
from homevision.valuation import predict
from homevision.valuation.comps import COMP_COLUMNS
from homevision.valuation.model import engine_note

log = logging.getLogger(__name__)


@dataclass
class Served:
    """The model being served and what it is."""

    model: Any
    info: ModelInfo


def load_served(ref: str | None) -> Served:
    """Load the model behind `ref` and describe it: the alias is resolved once, so the version
    described is the version loaded (issue 22, defect 5)."""
    pinned = pin_model_uri(ref)
    model = load_model(pinned)
    info = ModelInfo(
        **describe_model(ref, pinned),
        confidence_levels=list(model.levels),
        engine=engine_note(model),
    )
    return Served(model, info)


def _missing_required(listings: list[Listing], required: list[str]) -> list[dict[str, Any]]:
    """422 details for fields the served model's feature set needs but a listing lacks: all it
    reads but those the pipeline repairs or whose absence means "none", stricter than the CLI
    and the pyfunc (which impute an export's empty cells) so that a client written for another
    feature set is told, not valued on imputed fields (docs/how-to/serve.md)."""
    # Repaired in the pipeline, or empty meaning none (no association, no listed features).
    optional_ok = {"CDOM", "LotSizeAreaSQFT", "ElementarySchoolName", *NONE_WHEN_MISSING}
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


DEFAULT_MAX_BODY_BYTES = 8_000_000  # a 10,000-listing batch with every field fits
DEFAULT_MAX_EXPLAIN_BATCH = 100
# Up to this many listings, without explanations and on the compiled engine, are valued on
# the event loop, in one call with the other such requests of the same turn (serving.coalesce):
# a fraction of a millisecond, and a third of what the hop to a pool thread
# costs in CPU on a 2-core machine (measured: 855 vs 1,270-1,400 us a request). Larger
# batches, explanations and the scikit-learn path, which can take long, go to the pool, so
# the loop keeps answering /health while they run.
INLINE_BATCH = 8
DEFAULT_WATCH_SECONDS = 30.0  # how often each worker checks its alias (0: never)
FIRST_RETRY_SECONDS = 1.0  # a failed load is retried after 1, 2, 4... s, up to the watch period
WORKER_HEADER = "X-Worker-Pid"  # on /health: which worker process answered
INTERNAL_ERROR = "internal error: the request could not be completed (the cause has been logged)"


def serving_settings() -> dict[str, int]:
    """Return params.yaml's serving limits (defaults where the file or key is absent)."""
    try:
        section = load_params().get("serving") or {}
    except FileNotFoundError:
        section = {}
    return {
        "max_body_bytes": int(section.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES)),
        "max_explain_batch": int(section.get("max_explain_batch", DEFAULT_MAX_EXPLAIN_BATCH)),
        "watch_seconds": float(section.get("watch_seconds", DEFAULT_WATCH_SECONDS)),
    }


class BodyTooLarge(HTTPException):
    """413 for a body that has passed the cap while it streams in: raised from the request's
    `receive`, it reaches FastAPI's HTTPException handler like any other, before a byte of the
    body is parsed."""

    def __init__(self, max_bytes: int):
        super().__init__(413, _too_large(max_bytes), headers={"connection": "close"})


def _too_large(max_bytes: int) -> str:
    return (
        f"request body too large: the limit is {max_bytes} bytes ({max_bytes:,}); "
        "send fewer listings per request"
    )


class BodySizeLimit:
    """Pure ASGI middleware: answer 413 to a request body over `max_bytes` before anything
    parses it. A declared Content-Length over the cap is refused without reading a byte; a
    body without one (chunked) is counted as the route reads it and refused the moment it
    passes the cap. The body is not read here: a route that answers without it (a request
    without a valid API key, serving.auth.KeyCheckedRoute) never waits for it."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        size = 0
        started = False

        async def counted() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:  # read outside a route's handler: nobody has answered yet
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            status_code=413,
            content={"detail": _too_large(self.max_bytes)},
            headers={"connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # malformed: the streamed bytes are counted instead
    return None


def create_app(
    model_ref: str | None = None,
    loader: Callable[[str | None], Served] = load_served,
    max_body_bytes: int | None = None,
    max_explain_batch: int | None = None,
    metrics: bool = True,
    keys: KeyRing | None = None,
    watch_seconds: float | None = None,
) -> FastAPI:
    """Return the API; the model is loaded at start-up and on POST /model/reload. Limits
    default to params.yaml's `serving` section. `metrics=False` leaves out the Prometheus
    metrics and GET /metrics (to measure what they cost). `keys`: the API keys that may call
    it (default: the project's key file, homevision.api_keys; serving.auth says who may call
    which route). Every `watch_seconds` (params.yaml serving.watch_seconds) the app checks
    whether its alias moved and loads the new version, so every worker of a server serves the
    champion within that time of a promotion; a load that failed is retried with backoff."""
    settings = serving_settings()
    body_cap = settings["max_body_bytes"] if max_body_bytes is None else max_body_bytes
    explain_cap = settings["max_explain_batch"] if max_explain_batch is None else max_explain_batch
    watch = settings["watch_seconds"] if watch_seconds is None else float(watch_seconds)
    support = predict.support_factor()  # read once: a file look-up per request costs 0.2 ms
    target = model_ref or DEFAULT_REF
    state: dict[str, Served | None] = {"served": None}
    # Reloads run on their own thread, never on the pool that values listings, and concurrent
    # reload requests share the one in flight (issue 22, defect 6: 50 reloads starved /valuations).
    reloader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="homevision-reload")
    # Explanations run one at a time per worker, in arrival order, on a thread of their own.
    # The walk is thousands of small numpy steps that hold the GIL: side by side on the request
    # pool's threads they convoy (in process, 4 at once gave 76 explanations a second, one
    # after another 158; over HTTP, 8 clients on 2 workers sometimes fell to 52 a second).
    explainer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="homevision-explain")
    in_flight: dict[str, asyncio.Future | None] = {"load": None}
    recorder: Metrics | None = process_metrics() if metrics else None

    failure: dict[str, str] = {"reason": ""}  # why the last load failed, safe to answer

    def load() -> Served | None:
        """Load the model, or log why not and return None (never raises). A refusal the
        registry or the signature check explains in one sentence is kept for reload's answer;
        anything else only goes to the log."""
        try:
            return loader(model_ref)
        except (ModelNotFoundError, SecretFileError) as err:  # UnverifiedModelError included
            failure["reason"] = str(err)  # a secret file's sentence names it, never its value
            log.error("Could not load the model %s: %s", target, err)
            return None
        except Exception:  # MLflow, a corrupt artifact, unpickling: all mean "no model"
            failure["reason"] = "see the server's log"
            log.exception("Could not load the model %s", target)
            return None

    def adopt(fresh: Served) -> None:
        """Serve `fresh` from the next request on (called on the event loop: a request sees
        the old model or the new one, whole)."""
        state["served"] = fresh
        if recorder is not None:
            recorder.serving(fresh.info)

    async def watch_model() -> None:
        """Retry a failed load with backoff; reload when the alias names another version."""
        retry = FIRST_RETRY_SECONDS
        while True:
            current = state["served"]
            await asyncio.sleep(min(retry, watch) if current is None else watch)
            if current is None:
                fresh = await load_once()
                if fresh is not None:
                    adopt(fresh)
                    log.info("Serving %s (loaded on retry)", fresh.info.uri)
                retry = FIRST_RETRY_SECONDS if fresh is not None else retry * 2
                continue
            if "@" not in target:  # a version or a run never moves
                continue
            try:
                pinned = await asyncio.get_running_loop().run_in_executor(
                    reloader, pin_model_uri, model_ref
                )
            except Exception as err:  # the registry is down: keep serving, ask again later
                log.warning("Could not check %s: %s", target, err)
                continue
            if pinned != f"models:/{current.info.name}/{current.info.version}":
                fresh = await load_once()
                if fresh is not None:
                    adopt(fresh)
                    log.info("Serving %s v%s (the alias moved)", target, fresh.info.version)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        served_now = await run_in_threadpool(load)
        state["served"] = served_now
        if recorder is not None:
            recorder.serving(None if served_now is None else served_now.info)
        if served_now is not None:
            log.info("Serving %s", served_now.info.uri)
        watcher = asyncio.create_task(watch_model()) if watch > 0 else None
        yield
        if watcher is not None:
            watcher.cancel()
        reloader.shutdown(wait=False, cancel_futures=True)
        explainer.shutdown(wait=False, cancel_futures=True)

    async def load_once() -> Served | None:
        """Load on the reload thread; a call while a load is in flight awaits that load."""
        pending = in_flight["load"]
        if pending is None:
            pending = asyncio.get_running_loop().run_in_executor(reloader, load)
            in_flight["load"] = pending
            pending.add_done_callback(lambda _: in_flight.update(load=None))
        return await asyncio.shield(pending)

    app = FastAPI(
        title="homevision",
        version="1",
        summary="Home valuations from MLS listing fields, with a price range and reasons.",
        lifespan=lifespan,
    )
    app.router.route_class = KeyCheckedRoute  # keys are checked before a body is read
    app.add_middleware(BodySizeLimit, max_bytes=body_cap)
    if recorder is not None:  # added last: the outermost, so it sees the body limit's 413s
        app.add_middleware(RequestMetrics, recorder=recorder, routes=app.router.routes)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        route = request.scope.get("route")
        if recorder is not None and getattr(route, "path", None) == "/valuations":
            body = getattr(exc, "body", None)
            recorder.invalid(len(body) if isinstance(body, list) else int(isinstance(body, dict)))
        return JSONResponse(status_code=422, content={"detail": _clean_errors(exc)})

    # FastAPI raises Starlette's HTTPException for a body it could not parse (fastapi's own is
    # a subclass): this handler sees both and keeps FastAPI's answer for all but that one.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        unparsable = _unparsable(exc)
        if unparsable is None:
            return await http_exception_handler(request, exc)
        return JSONResponse(status_code=422, content={"detail": [unparsable]})

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        log.error("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(status_code=500, content={"detail": INTERNAL_ERROR})

    def served() -> Served:
        current = state["served"]
        if current is None:
            raise HTTPException(
                503,
                f"no model is loaded from {target}: train one (homevision train) or fix the "
                "reference, then POST /model/reload",
            )
        return current

    unavailable = {503: {"model": Problem, "description": "No model is loaded"}}
    ring = keys or KeyRing()
    may_value = [Security(Requirement(KeyScope.value, ring))]
    may_admin = [Security(Requirement(KeyScope.admin, ring))]
    may_scrape = [Security(Requirement(KeyScope.metrics, ring))]
    refused = {
        401: {"model": Problem, "description": "No API key, or one that is not valid"},
        403: {"model": Problem, "description": "The key's scope does not reach this route"},
    }

    @app.get(
        "/health",
        response_model=Health,
        responses={
            200: {
                "headers": {
                    WORKER_HEADER: {
                        "description": "Process id of the server worker that answered.",
                        "schema": {"type": "integer"},
                    }
                }
            }
        },
    )
    async def health(response: Response) -> Health:
        """Whether a model is loaded; the X-Worker-Pid header names the worker that answered."""
        # async on purpose: no blocking work here, so a probe is answered on the event loop and
        # never waits behind valuations for a thread of the pool.
        response.headers[WORKER_HEADER] = str(os.getpid())
        return Health(status="ok", model_loaded=state["served"] is not None)

    @app.get("/health/live", response_model=Health)
    async def live(response: Response) -> Health:
        """Liveness (Kubernetes' livenessProbe): the process answers; 200 whether or not a model
        is loaded, so a worker waiting for its model is not restarted for it."""
        response.headers[WORKER_HEADER] = str(os.getpid())
        return Health(status="ok", model_loaded=state["served"] is not None)

    @app.get(
        "/health/ready",
        response_model=Health,
        responses={503: {"model": Health, "description": "No model is loaded yet"}},
    )
    async def ready(response: Response) -> Health:
        """Readiness (Kubernetes' readinessProbe): 200 once a model is loaded, 503 until then,
        so a load balancer sends valuations only to workers that can answer them."""
        response.headers[WORKER_HEADER] = str(os.getpid())
        loaded = state["served"] is not None
        if not loaded:
            response.status_code = 503
        return Health(status="ok" if loaded else "loading", model_loaded=loaded)

    @app.get(
        "/model",
        response_model=ModelInfo,
        responses={**refused, **unavailable},
        dependencies=may_value,
    )
    def model_info() -> ModelInfo:
        """The model being served (needs a `value` key when keys are configured)."""
        return served().info

    @app.post(
        "/model/reload",
        response_model=ModelInfo,
        responses={
            **refused,
            503: {"model": Problem, "description": "The model could not be loaded"},
        },
        dependencies=may_admin,
    )
    async def reload() -> ModelInfo:
        """Load the model reference again (needs an `admin` key; off without keys)."""
        fresh = await load_once()
        if recorder is not None:
            recorder.reloaded(fresh is not None)
        if fresh is None:
            current = state["served"]
            still = (
                f"still serving version {current.info.version or current.info.uri}"
                if current is not None
                else "no model is being served"
            )
            raise HTTPException(
                503, f"the model at {target} could not be loaded ({failure['reason']}); {still}"
            )
        adopt(fresh)
        return fresh.info

    @app.post(
        "/valuations",
        response_model=ValuationResponse,
        responses={
            413: {
                "model": Problem,
                "description": f"Body over the byte limit, more than {MAX_BATCH:,} listings, or "
                f"more than {explain_cap:,} with explain=true",
            },
            422: {"description": "A field is missing or breaks its rule"},
            **refused,
            **unavailable,
        },
        dependencies=may_value,
    )
    async def valuations(
        listings: Annotated[
            Listing | list[Listing],
            Body(description=f"One listing, or a list of at most {MAX_BATCH:,}."),
        ],
        explain: Annotated[
            bool,
            Query(
                description="Add SHAP reasons and comparables (a smaller batch: "
                "params.yaml serving.max_explain_batch listings per request)."
            ),
        ] = False,
        confidence: Annotated[
            float | None,
            Query(description="Range confidence; one the model carries (default 0.9)."),
        ] = None,
    ) -> Response:
        current = served()
        batch = listings if isinstance(listings, list) else [listings]
        if explain:
            run = contextvars.copy_context().run  # as run_in_threadpool: the request's context
            return await asyncio.get_running_loop().run_in_executor(
                explainer, run, value_batch, current, batch, explain, confidence
            )
        if len(batch) > INLINE_BATCH or not current.model.uses_engine:
            return await run_in_threadpool(value_batch, current, batch, explain, confidence)
        return await value_inline(current, batch, confidence)

    def value_batch(
        current: Served, batch: list[Listing], explain: bool, confidence: float | None
    ) -> Response:
        """Answer POST /valuations for the parsed `batch` with the `current` model."""
        level = checked_level(current, batch, explain, confidence)
        if not batch:
            return ValuationResponse(model=current.info, valuations=[])
        model = current.model
        # Parsed listings straight into the engine's matrix; reasons and comparables read the
        # same records (no frame: a frame of one listing costs more than its comparables).
        records = [item.model_dump() for item in batch]
        raw, (prices, errors, warnings) = value_records(model, level, records)
        explanations = [None] * len(batch)
        if explain:
            explanations = predict.explain_rows(model, records, errors, raw)
        return answer(current, batch, level, prices, errors, warnings, explanations)

    def value_records(model: Any, level: float, records: list[dict[str, Any]]) -> tuple:
        """(the engine's raw matrix, (prices (n, 3), errors, warnings)) of parsed listings:
        one call of the valuation, counted in the metrics."""
        raw = model.encoder_.encode_records(records)
        if recorder is not None:
            recorder.called(len(records))
        return raw, predict.value_matrix(model, raw, level, support)

    def value_joined(key: tuple[Any, float], records: list[dict[str, Any]]) -> tuple:
        """value_records' columns for the records the coalescer joined into this call."""
        return value_records(*key, records)[1]

    joiner: Coalescer[dict[str, Any]] = Coalescer(value_joined)
    app.state.joiner = joiner

    async def value_inline(
        current: Served, batch: list[Listing], confidence: float | None
    ) -> Response:
        """Answer a small batch on the event loop, valued in one engine call with the other
        small requests that reach it in the same turn (serving.coalesce): the same
        numbers as alone."""
        level = checked_level(current, batch, False, confidence)
        if not batch:
            return ValuationResponse(model=current.info, valuations=[])
        records = [item.model_dump() for item in batch]
        prices, errors, warnings = await joiner.submit((current.model, level), records)
        return answer(current, batch, level, prices, errors, warnings, [None] * len(batch))

    def checked_level(
        current: Served, batch: list[Listing], explain: bool, confidence: float | None
    ) -> float:
        """Return the range level to value `batch` at; raise the 413 or 422 that refuses it."""
        if len(batch) > MAX_BATCH:
            raise HTTPException(
                413,
                f"{len(batch):,} listings in one request; the limit is "
                f"{MAX_BATCH:,}: split the batch",
            )
        if explain and len(batch) > explain_cap:
            raise HTTPException(
                413,
                f"{len(batch):,} listings with explain=true; the limit is {explain_cap:,} "
                "per request: split the batch or leave explain off",
            )
        model = current.model
        level = model.confidence if confidence is None else confidence
        if not batch:
            return level
        if level not in model.levels:
            if recorder is not None:
                recorder.invalid(len(batch))
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
            if recorder is not None:
                recorder.invalid(len(batch))
            raise HTTPException(422, errors)
        return level

    def answer(
        current: Served,
        batch: list[Listing],
        level: float,
        prices: Any,
        errors: list[str],
        warnings: list[str],
        explanations: list[predict.Explanation | None],
    ) -> Response:
        """The JSON answer for `batch` valued as `prices` (n, 3), counted in the metrics."""
        if recorder is not None:
            recorder.valued(prices[:, 0], errors, warnings)
        response = ValuationResponse(
            model=current.info,
            valuations=[
                Valuation(
                    MLSNumber=item.MLSNumber,
                    predicted_close_price=_money(prices[i, 0]),
                    close_price_low=_money(prices[i, 1]),
                    close_price_high=_money(prices[i, 2]),
                    confidence=level,
                    error=errors[i] or None,
                    warning=warnings[i] or None,
                    explanation=_explanation(explanations[i]),
                )
                for i, item in enumerate(batch)
            ],
        )
        # Already validated by construction: skip FastAPI's second validation of the answer.
        return Response(response.model_dump_json(), media_type="application/json")

    if recorder is not None:

        @app.get("/metrics", include_in_schema=False, dependencies=may_scrape)
        def prometheus_metrics() -> Response:
            """Prometheus metrics, text format: every worker's when the server runs several
            (needs a `metrics` key when keys are configured; loopback only without)."""
            body, content_type = recorder.exposition()
            return Response(body, headers={"Content-Type": content_type})

    return app


# FastAPI's answer to a body that its JSON decoder failed on other than by JSONDecodeError.
BODY_PARSE_ERROR = "There was an error parsing the body"


def _unparsable(exc: StarletteHTTPException) -> dict[str, Any] | None:
    """Return a 422 detail saying why the body could not be read as JSON, where FastAPI only
    says "There was an error parsing the body" (a 400): bytes that are not UTF-8 (with their
    position), nesting too deep for the decoder, a number too long to convert. None for any
    other HTTPException, which keeps FastAPI's answer."""
    cause = exc.__cause__
    if exc.status_code != 400 or exc.detail != BODY_PARSE_ERROR or cause is None:
        return None
    if isinstance(cause, UnicodeDecodeError):
        byte = cause.object[cause.start : cause.start + 1].hex()
        loc: list[Any] = ["body", cause.start]
        msg = f"the body is not UTF-8: byte 0x{byte} at position {cause.start}"
    elif isinstance(cause, RecursionError):
        loc, msg = ["body"], "the body nests arrays or objects too deeply to be read"
    elif isinstance(cause, ValueError) and "digits" in str(cause):
        loc, msg = ["body"], "a number in the body has too many digits to read"
    else:
        return None
    return {"loc": loc, "type": "json_invalid", "msg": msg}


def _money(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


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


def _explanation(exp: predict.Explanation | None) -> Explanation | None:
    """The API's Explanation of one valued row: contributions largest first, comparables."""
    if exp is None:
        return None
    ranked = sorted(exp.contributions.items(), key=lambda kv: -abs(kv[1]))
    return Explanation(
        base_value=exp.base_value,
        contributions=[Contribution(feature=str(k), dollars=float(v)) for k, v in ranked],
        comparables=[Comparable(**_comp(r)) for r in _records(exp)],
    )


def _records(exp: predict.Explanation) -> list[dict[str, Any]]:
    """exp.comparables.to_dict(orient="records") (Python values), from whole columns and
    without building the comps frame (Explanation.comparable_values)."""
    columns = [exp.comparable_values(c) for c in COMP_COLUMNS]
    return [dict(zip(COMP_COLUMNS, row, strict=True)) for row in zip(*columns, strict=True)]


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
