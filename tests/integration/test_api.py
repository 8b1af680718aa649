"""The REST API as clients use it: in-process (TestClient) and over HTTP against `homevision
serve` started on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from homevision.data.synthetic import generate_listings, write_listings
from homevision.serving.api import create_app, load_served
from homevision.serving.schemas import MAX_BATCH, Listing
from homevision.valuation import predict
from homevision.valuation.records import records_frame

from .conftest import served_api, train_in

HOME = {
    "MLSNumber": 1,
    "SqFtTotal": 2400,
    "BedsTotal": 4,
    "BathsTotal": "2.1",
    "CDOM": 30,
    "LotSizeAreaSQFT": 7000,
    "ElementarySchoolName": "Aspen",
}


@pytest.fixture
def client(served_home):
    with TestClient(create_app()) as c:
        yield c


def test_health_model_and_docs(client):
    assert client.get("/health").json() == {"status": "ok", "model_loaded": True}
    info = client.get("/model").json()
    assert info["name"] == "homevision-price" and info["alias"] == "champion"
    assert info["version"] == "1" and info["feature_set"] == "task6"
    assert info["cv_metrics"]["rmse"] > 0 and info["honest_metrics"]["mape"] > 0
    honest = info["honest_metrics"]  # with each figure's bootstrap interval
    assert honest["mape_low"] <= honest["mape"] <= honest["mape_high"]
    assert info["data_hash"] and info["trained_at"]
    assert isinstance(info["ranges"], list)
    for figure in info["ranges"]:
        assert set(figure) == {"level", "coverage", "median_width", "time_ordered_coverage"}
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/valuations" in spec["paths"]


def test_one_listing_gets_price_range_and_model(client):
    body = client.post("/valuations", json=HOME).json()
    (valuation,) = body["valuations"]
    assert valuation["MLSNumber"] == 1
    assert valuation["close_price_low"] <= valuation["predicted_close_price"]
    assert valuation["predicted_close_price"] <= valuation["close_price_high"]
    assert valuation["confidence"] == 0.9 and valuation["explanation"] is None
    assert valuation["error"] is None and valuation["warning"] is None
    assert body["model"]["version"] == "1" and body["model"]["run_id"]


def test_a_home_far_outside_training_is_flagged(client):
    body = client.post("/valuations", json=[HOME, {**HOME, "SqFtTotal": 60_000}]).json()
    typical, huge = body["valuations"]
    assert typical["warning"] is None
    assert "SqFtTotal 60,000 above the largest seen in training" in huge["warning"]
    # Valued with the warning, or refused with its reason: never a silent number.
    assert (huge["predicted_close_price"] is None) == (huge["error"] is not None)


def test_batch_explain_adds_up_and_lists_comps(client):
    batch = [
        HOME,
        {
            **HOME,
            "MLSNumber": 2,
            "ElementarySchoolName": "A brand-new school",
            "BathsTotal": "3.1",  # F.H text: a JSON decimal is ambiguous (422)
            "LotSizeAreaSQFT": None,
        },
    ]
    body = client.post("/valuations?explain=true&confidence=0.8", json=batch).json()
    assert [v["MLSNumber"] for v in body["valuations"]] == [1, 2]
    for v in body["valuations"]:
        exp = v["explanation"]
        total = exp["base_value"] + sum(c["dollars"] for c in exp["contributions"])
        assert abs(total - v["predicted_close_price"]) < 1.0
        assert len(exp["comparables"]) == 5 and v["confidence"] == 0.8


def test_explanations_run_one_at_a_time_and_valuations_pass_them(client, monkeypatch):
    """Concurrent explain requests to one worker are explained one after another (side by side
    they convoy on the GIL), and a plain valuation is answered while they wait."""
    explain_rows, lock = predict.explain_rows, threading.Lock()
    running, most, done = [0], [0], []
    started, release = threading.Event(), threading.Event()

    def slow_explain(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        started.set()
        release.wait(60)  # held until the plain valuation is answered
        time.sleep(0.2)  # long enough for a second explanation to overlap, were it let in
        with lock:
            running[0] -= 1
            done.append(time.perf_counter())
        return explain_rows(*args, **kwargs)

    monkeypatch.setattr(predict, "explain_rows", slow_explain)
    with ThreadPoolExecutor(4) as pool:
        explained = [
            pool.submit(client.post, "/valuations?explain=true", json={**HOME, "MLSNumber": i})
            for i in range(1, 4)
        ]
        assert started.wait(60)  # the first explanation is running, the others wait
        plain = pool.submit(client.post, "/valuations", json=HOME).result(timeout=60)
        assert not done  # answered while the explanation was held
        release.set()
        answers = [future.result() for future in explained]
    assert plain.status_code == 200
    assert [a.status_code for a in answers] == [200] * 3
    assert all(a.json()["valuations"][0]["explanation"] for a in answers)
    assert most[0] == 1


def test_explanations_over_the_api_are_the_ones_a_frame_of_the_listings_gets(client):
    """The API explains its parsed listings as records (no frame); the in-process path explains
    a frame of the same listings: the same reasons and comparables, one listing without an
    MLSNumber and without a school among them."""
    batch = [HOME, {**HOME, "MLSNumber": None, "SqFtTotal": 1900, "ElementarySchoolName": None}]
    body = client.post("/valuations?explain=true", json=batch).json()
    model = load_served(None).model
    records = [Listing.model_validate(home).model_dump() for home in batch]
    expected = predict.explain_rows(model, records_frame(records, model.raw_columns_), ["", ""])
    for valuation, exp in zip(body["valuations"], expected, strict=True):
        got = valuation["explanation"]
        assert got["base_value"] == pytest.approx(exp.base_value, rel=1e-12)
        dollars = {c["feature"]: c["dollars"] for c in got["contributions"]}
        assert dollars == pytest.approx(exp.contributions, rel=1e-9, abs=1e-6)
        comps = [(c["MLSNumber"], c["distance"]) for c in got["comparables"]]
        ids, distances = exp.comparable_values("MLSNumber"), exp.comparable_values("distance")
        assert comps == [(str(m), d) for m, d in zip(ids, distances, strict=True)]


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"SqFtTotal": -5}, "SqFtTotal", "greater_than_equal"),
        ({"SqFtTotal": "big"}, "SqFtTotal", "not_a_number"),
        ({"BedsTotal": 2.5}, "BedsTotal", "int_from_float"),
        ({"BathsTotal": "2,1"}, "BathsTotal", "baths_format"),
        ({"LotSizeAreaSQFT": -1}, "LotSizeAreaSQFT", "greater_than_equal"),
        ({"SqFtTotal": None}, "SqFtTotal", "float_type"),
    ],
)
def test_a_bad_field_is_a_422_naming_field_and_rule(client, change, field, rule):
    response = client.post("/valuations", json={**HOME, **change})
    assert response.status_code == 422
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["body", field] and detail["type"] == rule


def test_batch_errors_name_the_index_and_missing_fields(client):
    response = client.post("/valuations", json=[HOME, {"BedsTotal": 3, "BathsTotal": "2"}])
    assert response.status_code == 422
    locs = [d["loc"] for d in response.json()["detail"]]
    assert ["body", 1, "SqFtTotal"] in locs


@pytest.mark.parametrize(
    ("body", "loc", "said"),
    [
        (b'{"SqFtTotal": "\xff"}', ["body", 15], "not UTF-8: byte 0xff at position 15"),
        (b"[" * 100_000 + b"]" * 100_000, ["body"], "nests arrays or objects too deeply"),
        (
            b'{"SqFtTotal": ' + b"9" * 5000 + b"}",
            ["body"],
            "a number in the body has too many digits",
        ),
    ],
)
def test_a_body_json_cannot_decode_is_a_422_saying_why(client, body, loc, said):
    """Before, FastAPI's one sentence for all three: 400 "There was an error parsing the
    body"."""
    response = client.post(
        "/valuations", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    (detail,) = response.json()["detail"]
    assert detail["loc"] == loc and detail["type"] == "json_invalid" and said in detail["msg"]


def test_too_many_listings_is_a_413_with_a_message(client):
    response = client.post("/valuations", json=[HOME] * (MAX_BATCH + 1))
    assert response.status_code == 413
    assert "limit is 10,000" in response.json()["detail"]


def test_unsupported_confidence_is_a_422(client):
    response = client.post("/valuations?confidence=0.99", json=HOME)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "confidence"]


def test_no_model_is_a_503_not_a_crash(tmp_path, admin_headers):
    with TestClient(create_app(), headers=admin_headers) as c:
        assert c.get("/health").json()["model_loaded"] is False
        response = c.post("/valuations", json=HOME)
        assert response.status_code == 503 and "homevision train" in response.json()["detail"]
        reload = c.post("/model/reload")
        assert reload.status_code == 503
        detail = reload.json()["detail"]
        assert "could not be loaded (no model at models:/homevision-price@champion" in detail
        assert detail.endswith("; no model is being served")


def test_reload_picks_up_a_new_champion(tmp_path, monkeypatch, admin_headers):
    export = write_listings(generate_listings(400, seed=4), tmp_path / "listings.csv")
    train_in(tmp_path, export, ["median_ppsf"])
    monkeypatch.setenv("HOMEVISION_HOME", str(tmp_path))
    with TestClient(create_app(watch_seconds=0), headers=admin_headers) as c:
        assert c.get("/model").json()["version"] == "1"
        train_in(tmp_path, export, ["median_ppsf", "ridge"], "--promote")
        assert c.get("/model").json()["version"] == "1"  # loaded once, until asked
        assert c.post("/model/reload").json()["version"] == "2"
        assert c.post("/valuations", json=HOME).json()["model"]["version"] == "2"

    # Issue 22, defect 5: the alias moves back to v1 while v2 is being loaded; the server must
    # report the version it loaded (v2), not the one the alias names by the time it asks.
    from mlflow.tracking import MlflowClient

    import homevision.serving.api as api
    from homevision.tracking import CHAMPION, MODEL_NAME, tracking_uri

    loaded: list[str] = []
    original = api.load_model

    def load_then_move(ref):
        model = original(ref)
        loaded.append(ref)
        MlflowClient(tracking_uri()).set_registered_model_alias(MODEL_NAME, CHAMPION, "1")
        return model

    monkeypatch.setattr(api, "load_model", load_then_move)
    client = MlflowClient(tracking_uri())
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, "2")
    with TestClient(create_app(watch_seconds=0), headers=admin_headers) as c:
        info = c.get("/model").json()
        assert loaded == ["models:/homevision-price/2"]
        assert (info["version"], info["alias"]) == ("2", "champion")
        assert info["run_id"] == client.get_model_version(MODEL_NAME, "2").run_id
    monkeypatch.setattr(api, "load_model", original)

    # Issue 22, defect 4: a worker notices that the alias moved (here back to v1, above) within
    # its watch period, without being asked to reload.
    with TestClient(create_app(watch_seconds=0.2), headers=admin_headers) as c:
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, "2")
        deadline = time.monotonic() + 30
        while c.get("/model").json()["version"] != "2" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert c.get("/model").json()["version"] == "2"
        assert c.post("/valuations", json=HOME).json()["model"]["version"] == "2"


def test_over_http_against_homevision_serve(served_home):
    env = {**os.environ, "HOMEVISION_HOME": str(served_home)}
    with served_api(served_home, env) as server:
        base = server.base
        assert httpx.get(f"{base}/health", timeout=30).json()["model_loaded"]
        ok = httpx.post(f"{base}/valuations", json=[HOME] * 3, timeout=30)
        assert ok.status_code == 200 and len(ok.json()["valuations"]) == 3
        bad = httpx.post(f"{base}/valuations", json={**HOME, "BedsTotal": -1}, timeout=30)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "BedsTotal"]
        garbage = httpx.post(
            f"{base}/valuations",
            content=b"\x00not json",
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert 400 <= garbage.status_code < 500
        # Concurrent requests are valued together (serving.coalesce): each still gets the
        # answer its own listing gets alone.
        homes = [{**HOME, "MLSNumber": i + 1, "SqFtTotal": 1500 + 75 * i} for i in range(16)]
        alone = [httpx.post(f"{base}/valuations", json=h, timeout=30).json() for h in homes]
        with ThreadPoolExecutor(8) as pool:
            together = list(
                pool.map(lambda h: httpx.post(f"{base}/valuations", json=h, timeout=30), homes)
            )
        assert [r.json()["valuations"] for r in together] == [a["valuations"] for a in alone]


def test_concurrent_valuations_share_one_engine_call_and_keep_their_own_answers(served_home):
    """Single-listing requests parsed in one turn of a worker's event loop are valued in one
    call of the engine; each answer is the one its listing gets alone, refusals and
    extrapolation warnings included, and a request at another confidence level is valued
    apart."""
    app = create_app(watch_seconds=0)
    homes = [{**HOME, "MLSNumber": i + 1, "SqFtTotal": 1500 + 75 * i} for i in range(8)]
    homes[3] = {**HOME, "MLSNumber": 3, "SqFtTotal": 90_000}  # beyond training: a warning
    homes[5] = {**HOME, "MLSNumber": 5, "LotSizeAreaSQFT": 9_000_000}

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client,
        ):
            alone = [(await client.post("/valuations", json=h)).json() for h in homes]
            before = (app.state.joiner.calls, (await client.get("/metrics")).text)
            together = await asyncio.gather(
                *(client.post("/valuations", json=h) for h in homes),
                client.post("/valuations?confidence=0.8", json=homes[0]),
            )
            after = (app.state.joiner.calls, (await client.get("/metrics")).text)
            return alone, before, after, [r.json() for r in together]

    alone, before, after, together = asyncio.run(main())
    assert [t["valuations"] for t in together[:-1]] == [a["valuations"] for a in alone]
    assert alone[3]["valuations"][0]["warning"] and alone[5]["valuations"][0]["warning"]
    assert together[-1]["valuations"][0]["confidence"] == 0.8
    assert after[0] - before[0] == 2  # the eight at the default level together, 0.8 apart
    # The metrics say so: 2 calls for 9 listings.
    name = "homevision_valuation_call_listings"
    moved = [
        _sample(after[1], f"{name}_{s}") - _sample(before[1], f"{name}_{s}")
        for s in ("count", "sum")
    ]
    assert moved == [2, 9]


def _sample(text: str, name: str) -> float:
    """The value of the unlabelled sample `name` in a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    families = text_string_to_metric_families(text)
    return next(s.value for f in families for s in f.samples if s.name == name and not s.labels)


def test_an_offmarket_listing_without_association_or_feature_lists_is_accepted():
    """No association and no listed features are answers, not gaps: an off-market model's
    request may leave them out; a structural field it reads may not."""
    from homevision.features import get_feature_set
    from homevision.serving.api import _missing_required
    from homevision.serving.schemas import Listing

    home = Listing(SqFtTotal=2400, BedsTotal=4, BathsTotal="3.1", NumberOfStories=2)
    errors = _missing_required([home], get_feature_set("offmarket").raw_columns)
    missing = {e["loc"][2] for e in errors}
    assert "ParkingSpacesGarage" in missing and "NumberOfStories" not in missing
    for column in ("AssociationFee", "AssociationFeeFrequency", "CommunityFeatures"):
        assert column not in missing


def test_the_serve_docs_examples_carry_what_their_feature_set_requires():
    """docs/how-to/serve.md's curl bodies: the task6 one for the default champion, the
    offmarket one for an offmarket model, which refuses the task6 body (its stricter rule)."""
    import json
    import re
    from pathlib import Path

    from homevision.features import get_feature_set
    from homevision.serving.api import _missing_required

    page = (Path(__file__).resolve().parents[2] / "docs" / "how-to" / "serve.md").read_text()
    bodies = [json.loads(b) for b in re.findall(r"-d '(\{.*?\})'", page, flags=re.S)]
    task6, offmarket = (Listing(**b) for b in bodies[:2])
    assert _missing_required([task6], get_feature_set("task6").raw_columns) == []
    assert _missing_required([offmarket], get_feature_set("offmarket").raw_columns) == []
    assert _missing_required([task6], get_feature_set("offmarket").raw_columns)
