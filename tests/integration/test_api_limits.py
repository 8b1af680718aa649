"""The API stays up and says one sentence under abuse: bodies capped before parsing, explain
batches capped, any model-loading failure a 503 (the server up, the old model kept), no internal
exception text in any answer, valuations off the event loop; and every face (CLI, Python API,
API) flags a listing outside the training data and refuses a valuation the model cannot
support."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from homevision.cli import app as cli
from homevision.serving.api import (
    INLINE_BATCH,
    BodySizeLimit,
    create_app,
    load_served,
    serving_settings,
)
from homevision.serving.schemas import MAX_BATCH
from homevision.tracking import configure, describe_model

from .test_api import HOME

SECRET = "s3cret-internal-detail"
LEAKS = ("Traceback", "RuntimeError", "OSError", "ImportError", "RestException", SECRET)


def _clean(response) -> None:
    """One JSON sentence, no exception text."""
    for leak in LEAKS:
        assert leak not in response.text, response.text


def _failing(error: Exception):
    def loader(ref):
        raise error

    return loader


# -- body size, before parsing ---------------------------------------------------------------


def test_a_body_over_the_cap_is_a_413_before_parsing():
    with TestClient(create_app(loader=_failing(RuntimeError(SECRET)), max_body_bytes=1000)) as c:
        # Not JSON at all: had it been parsed, this would be a 422.
        big = c.post(
            "/valuations", content=b"x" * 5000, headers={"content-type": "application/json"}
        )
        assert big.status_code == 413
        assert "the limit is 1000 bytes" in big.json()["detail"]

        def chunks():
            for _ in range(50):
                yield b"y" * 100

        streamed = c.post(
            "/valuations", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.request.headers.get("content-length") is None
        assert streamed.request.headers["transfer-encoding"] == "chunked"
        assert streamed.status_code == 413 and "1000 bytes" in streamed.json()["detail"]
        small = c.post("/valuations", json=HOME)  # within the cap: on to the app (no model)
        assert small.status_code == 503
        _clean(small)


def _call(middleware, headers, messages) -> tuple[list[dict], int]:
    """Drive the ASGI middleware by hand; return what it sent and how many body messages it
    read."""
    sent, read = [], 0
    queue = list(messages)

    async def receive():
        nonlocal read
        read += 1
        return queue.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/valuations", "headers": headers}
    asyncio.run(middleware(scope, receive, send))
    return sent, read


def test_the_middleware_reads_no_byte_of_a_declared_oversize_body_and_stops_a_stream():
    reached = []

    async def inner(scope, receive, send):
        while True:  # read the body as a route does, a message at a time
            message = await receive()
            reached.append(message)
            if not message.get("more_body", False):
                return

    limit = BodySizeLimit(inner, max_bytes=1000)
    sent, read = _call(limit, [(b"content-length", b"5000")], [])
    assert read == 0 and not reached and sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["detail"].startswith("request body too large")

    stream = [{"type": "http.request", "body": b"z" * 300, "more_body": True}] * 20
    sent, read = _call(limit, [], stream)
    assert sent[0]["status"] == 413 and read == 4  # stopped at the 4th chunk
    assert len(reached) == 3  # the route never saw the chunk that passed the cap
    reached.clear()

    fits = [
        {"type": "http.request", "body": b"a" * 400, "more_body": True},
        {"type": "http.request", "body": b"b" * 400, "more_body": False},
    ]
    _call(limit, [], fits)
    assert reached == fits  # a body within the cap is handed on as it came


def test_the_default_cap_takes_a_full_batch_of_listings():
    every_field = {
        **HOME,
        "MLSNumber": 123456789012,
        "ListPrice": 1234567.89,
        "NumberOfStories": 2,
        "ParkingSpacesGarage": 3,
        "NumberOfLivingAreas": 2,
        "FireplacesTotal": 1,
        "PoolYN": True,
        "PropertySubType": "Single Family Residence",
        "City": "Frisco",
        "YearBuiltDetails": "Preowned/Previously Owned",
        "HighSchoolName": "Frisco Centennial High School",
        "SubdivisionName": "Starwood Phase Twelve Estates",
        "ElementarySchoolName": "Christie Elementary School",
    }
    size = len(json.dumps([every_field] * MAX_BATCH).encode())
    assert size < serving_settings()["max_body_bytes"] <= 16_000_000


# -- model loading -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(SECRET),
        OSError(SECRET),
        ImportError(SECRET),
        mlflow.exceptions.RestException({"error_code": "INTERNAL_ERROR", "message": SECRET}),
    ],
)
def test_any_loading_failure_at_start_up_leaves_the_server_up_answering_503(error, admin_headers):
    with TestClient(create_app(loader=_failing(error)), headers=admin_headers) as c:
        assert c.get("/health").json() == {"status": "ok", "model_loaded": False}
        for response in (
            c.post("/valuations", json=HOME),
            c.get("/model"),
            c.post("/model/reload"),
        ):
            assert response.status_code == 503
            detail = response.json()["detail"]
            assert isinstance(detail, str) and detail.count(". ") == 0 and "\n" not in detail
            _clean(response)


def test_a_failed_reload_is_a_503_and_the_old_model_is_still_served(served_home, admin_headers):
    calls = []

    def flaky(ref):
        calls.append(ref)
        if len(calls) > 1:
            raise OSError(SECRET)
        return load_served(ref)

    with TestClient(create_app(loader=flaky), headers=admin_headers) as c:
        before = c.post("/valuations", json=HOME).json()["valuations"][0]
        reload = c.post("/model/reload")
        assert reload.status_code == 503
        assert reload.json()["detail"].endswith(
            "could not be loaded (see the server's log); still serving version 1"
        )
        _clean(reload)
        assert c.get("/health").json()["model_loaded"] is True
        after = c.post("/valuations", json=HOME).json()["valuations"][0]
        assert after == before


def test_a_reload_stopped_by_a_secret_file_others_can_read_says_which(
    served_home, admin_headers, tmp_path, monkeypatch
):
    """Stop 50's "left out": the CLI and `services` name a secret file others can read in one
    sentence; the reload route answered "see the server's log"."""
    from homevision.service_secrets import SIGNING_KEY, ensure_secret, secrets_dir

    services = tmp_path / "services"
    monkeypatch.setenv("HOMEVISION_SERVICES_DIR", str(services))
    monkeypatch.delenv("HOMEVISION_SIGNING_KEY", raising=False)
    with TestClient(create_app(), headers=admin_headers) as c:
        assert c.get("/health").json()["model_loaded"] is True
        key = ensure_secret(SIGNING_KEY, services)
        (secrets_dir(services) / SIGNING_KEY).chmod(0o644)  # a careless copy
        reload = c.post("/model/reload")
        assert reload.status_code == 503
        detail = reload.json()["detail"]
        assert "signing-key can be read by other users (mode -rw-r--r--)" in detail, detail
        assert detail.endswith("; still serving version 1") and key not in detail
        _clean(reload)


def test_an_unexpected_failure_is_a_500_with_a_fixed_sentence(served_home, monkeypatch):
    from homevision.valuation import predict

    def boom(*args, **kwargs):
        raise RuntimeError(SECRET)

    monkeypatch.setattr(predict, "value_matrix", boom)
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        response = c.post("/valuations", json=HOME)
        assert response.status_code == 500
        assert response.json() == {
            "detail": "internal error: the request could not be completed (the cause has "
            "been logged)"
        }
        _clean(response)


# -- explain cap, refusals, the event loop ---------------------------------------------------


def test_explain_batch_over_the_cap_is_a_413_naming_it(served_home):
    with TestClient(create_app()) as c:
        response = c.post("/valuations?explain=true", json=[HOME] * 101)
        assert response.status_code == 413
        assert "the limit is 100 per request" in response.json()["detail"]
        assert c.post("/valuations", json=[HOME] * 101).status_code == 200


MARK = 2345.5  # the living area of the listing whose valuation goes wild


def _wild(served):
    """Make the served model value the marked listing at a trillion dollars."""
    model = served.model
    original = model.predict_interval_matrix
    sqft = model.encoder_.index("SqFtTotal")

    def predict_interval_matrix(raw, confidence=None):
        out = [np.array(a, dtype=float) for a in original(raw, confidence)]
        for a in out:
            a[raw[:, sqft] == MARK] = 1e12
        return tuple(out)

    model.predict_interval_matrix = predict_interval_matrix
    return served


def test_a_refused_listing_does_not_fail_its_batch(served_home):
    with TestClient(create_app(loader=lambda ref: _wild(load_served(ref)))) as c:
        batch = [HOME, {**HOME, "MLSNumber": 2, "SqFtTotal": MARK}, {**HOME, "MLSNumber": 3}]
        response = c.post("/valuations?explain=true", json=batch)
        assert response.status_code == 200
        first, refused, third = response.json()["valuations"]
        assert "outside what this model supports" in refused["error"]
        assert refused["predicted_close_price"] is None and refused["close_price_low"] is None
        assert refused["close_price_high"] is None and refused["explanation"] is None
        for valued in (first, third):
            assert valued["error"] is None and valued["predicted_close_price"] > 10_000
            assert valued["explanation"] is not None


@pytest.mark.parametrize("case", ["a batch on the engine", "one listing on the scikit-learn path"])
def test_valuations_that_can_take_long_run_off_the_event_loop(served_home, case):
    """A batch larger than INLINE_BATCH, or any valuation off the compiled engine, can take
    long: it must not hold /health. (One engine listing costs well under a millisecond and is
    valued on the loop.)"""

    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow(served):
        model = served.model
        original = model.predict_interval_matrix
        sqft = model.encoder_.index("SqFtTotal")

        def predict_interval_matrix(raw, confidence=None):
            if (raw[:, sqft] == MARK).any():
                entered.set()
                release.wait(60)  # a long valuation: held until /health has answered
                finished.set()
            return original(raw, confidence)

        model.predict_interval_matrix = predict_interval_matrix
        if case.endswith("scikit-learn path"):
            model.engine_ = None
        return served

    body = {**HOME, "SqFtTotal": MARK}
    if case.startswith("a batch"):
        body = [body] * (INLINE_BATCH + 1)
    with TestClient(create_app(loader=lambda ref: slow(load_served(ref)))) as c:
        worker = threading.Thread(target=c.post, args=("/valuations",), kwargs={"json": body})
        worker.start()
        assert entered.wait(60)
        assert c.get("/health").status_code == 200
        assert not finished.is_set()  # answered while the valuation ran, not behind it
        release.set()
        worker.join()


# -- every face flags the same listing ---------------------------------------------------------


def test_every_face_warns_about_a_home_far_outside_training(served_home, tmp_path):
    import homevision

    export = pd.read_csv(served_home / "data" / "raw" / "listings.csv", dtype=str).head(3)
    export.loc[1, "SqFtTotal"] = "60000"
    export_path = tmp_path / "far.csv"
    export.to_csv(export_path, index=False)
    phrase = "SqFtTotal 60,000 above the largest seen in training"

    out = tmp_path / "valued.csv"
    result = CliRunner().invoke(cli, ["predict", "--data", str(export_path), "--output", str(out)])
    assert result.exit_code == 0, result.output
    csv = pd.read_csv(out, keep_default_na=False)
    assert list(csv.columns)[-2:] == ["error", "warning"]
    assert phrase in csv.loc[1, "warning"] and csv.loc[0, "warning"] == ""

    frame = homevision.value(export).frame
    assert phrase in frame.loc[1, "warning"] and frame.loc[0, "warning"] == ""

    with TestClient(create_app()) as c:
        body = c.post("/valuations", json={**HOME, "SqFtTotal": 60_000}).json()
        assert phrase in body["valuations"][0]["warning"]


# -- GET /model shows the range figures ------------------------------------------------------


def test_describe_model_reads_range_figures_at_every_level(tmp_path):
    configure()
    with mlflow.start_run() as run:
        mlflow.log_metrics(
            {
                "range_90_coverage": 0.91,
                "range_90_width": 0.31,
                "range_90_coverage_time": 0.87,
                "range_50_coverage": 0.52,
                "range_50_width": 0.12,
                "cv_rmse": 1.0,
            }
        )
    info = describe_model(run.info.run_id)
    assert info["ranges"] == [
        {"level": 0.5, "coverage": 0.52, "median_width": 0.12, "time_ordered_coverage": None},
        {"level": 0.9, "coverage": 0.91, "median_width": 0.31, "time_ordered_coverage": 0.87},
    ]
    with mlflow.start_run() as bare:
        mlflow.log_metric("cv_rmse", 1.0)
    assert describe_model(bare.info.run_id)["ranges"] == []


def test_lean_and_explained_paths_value_alike(served_home):
    """The API encodes parsed listings straight into the engine's matrix; explanations work on
    a listing frame. Asking for them must not change a price, an error or a warning, odd values
    included, and each explanation must add up to the price it explains."""
    batch = [
        HOME,
        {**HOME, "MLSNumber": 2, "ElementarySchoolName": "A school nobody has heard of"},
        {**HOME, "MLSNumber": 3, "ElementarySchoolName": None, "CDOM": None},
        {**HOME, "MLSNumber": 4, "BathsTotal": "2", "LotSizeAreaSQFT": None},
        {**HOME, "MLSNumber": 5, "SqFtTotal": 60_000},  # far outside training: a warning
    ]
    with TestClient(create_app()) as c:
        lean = c.post("/valuations", json=batch).json()["valuations"]
        explained = c.post("/valuations?explain=true", json=batch).json()["valuations"]
    keys = ("predicted_close_price", "close_price_low", "close_price_high", "error", "warning")
    for a, b in zip(lean, explained, strict=True):
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
    assert "SqFtTotal 60,000 above" in lean[4]["warning"]
    assert all(v["predicted_close_price"] for v in lean[:4])
    for valued in explained:
        reasons = valued["explanation"]
        if valued["predicted_close_price"] is None:  # refused: nothing to explain
            assert reasons is None
            continue
        total = reasons["base_value"] + sum(c["dollars"] for c in reasons["contributions"])
        assert abs(total - valued["predicted_close_price"]) <= 1.0  # prices are whole dollars


def test_concurrent_reloads_share_one_load_and_never_stall_valuations(served_home, admin_headers):
    """Issue 22, defect 6: 50 reloads held the threads that value listings while each waited
    for a lock, so a valuation waited for all of them."""
    calls: list[float] = []

    def slow(ref):
        calls.append(time.monotonic())
        if len(calls) > 1:  # start-up is quick; every reload takes 2 s
            time.sleep(2)
        return load_served(ref)

    with (
        TestClient(create_app(loader=slow), headers=admin_headers) as c,
        ThreadPoolExecutor(max_workers=50) as pool,
    ):
        reloads = [pool.submit(c.post, "/model/reload") for _ in range(50)]
        deadline = time.monotonic() + 30
        while len(calls) < 2 and time.monotonic() < deadline:  # a reload is loading
            time.sleep(0.01)
        start = time.perf_counter()
        valued = c.post("/valuations", json=HOME)
        waited = time.perf_counter() - start
        answers = [f.result(timeout=60) for f in reloads]
    assert valued.status_code == 200 and waited < 1.0, waited
    assert [a.status_code for a in answers] == [200] * 50
    assert {a.json()["version"] for a in answers} == {"1"}
    assert len(calls) - 1 <= 2  # the 50 requests shared one load (two if some came late)


def test_a_failed_start_up_load_is_retried_and_ready_says_when_it_succeeded(served_home):
    """Issue 22, defect 4: a worker whose start-up load failed answered 503 for ever while
    /health said ok."""
    calls = []

    def failing_twice(ref):
        calls.append(ref)
        if len(calls) <= 2:
            raise OSError(SECRET)
        return load_served(ref)

    with TestClient(create_app(loader=failing_twice, watch_seconds=5)) as c:
        assert c.get("/health/ready").status_code == 503
        assert c.get("/health/live").status_code == 200
        deadline = time.monotonic() + 30
        while c.get("/health/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        ready = c.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["model_loaded"] is True
        assert c.post("/valuations", json=HOME).status_code == 200
    assert len(calls) == 3  # start-up, then retries after 1 s and 2 s
