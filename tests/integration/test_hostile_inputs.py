"""Hostile values through the faces a user drives: `homevision validate` names every one and sets
its row aside (the rest of the export is kept), and POST /valuations answers 422 naming the field
before any model is needed. The values come from the one table that drives both rule faces
(tests/unit/test_fields.py)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from homevision.cli import app
from homevision.data.synthetic import generate_listings, write_listings
from homevision.serving.api import create_app
from homevision.tracking import ModelNotFoundError

from ..unit.test_fields import HOSTILE, api_home

runner = CliRunner()


def test_validate_names_every_hostile_value_and_keeps_the_other_rows(tmp_path):
    export = write_listings(generate_listings(60, seed=3), tmp_path / "clean.csv")
    frame = pd.read_csv(export, dtype=str, keep_default_na=True)
    damaged_rows = {}
    for offset, (column, text, _, rule) in enumerate(HOSTILE):
        row = 2 * offset  # every other row, so a damaged MLSNumber cannot collide
        frame.loc[row, column] = text
        if text == "nan":  # a CSV reader takes the text nan for an empty cell
            text, rule = "", "missing_value"
        damaged_rows[row + 1] = (column, text, rule)
    damaged = tmp_path / "damaged.csv"
    frame.to_csv(damaged, index=False)

    result = runner.invoke(app, ["validate", "--data", str(damaged), "--json"])

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    report = json.loads(result.stdout)
    assert report["rows"] == 60 == report["accepted"] + report["rejected"]
    assert report["rejected"] == len(damaged_rows)
    fatal = {(v["row"], v["column"], v["value"], v["rule"]) for v in report["violations"]}
    for row, (column, text, rule) in damaged_rows.items():
        assert (row, column, text, rule) in fatal, (row, column, text, rule)
    assert {v["row"] for v in report["violations"] if v["fatal"]} == set(damaged_rows)


def test_validate_finds_duplicate_ids_after_normalising(tmp_path):
    frame = generate_listings(10, seed=5).astype(str)
    frame["MLSNumber"] = ["1", "1.0", " 1", "inf", "1e20", "2", "3", "4", "5", "6"]
    path = tmp_path / "ids.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["validate", "--data", str(path), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    rules = {v["row"]: v["rule"] for v in report["violations"] if v["fatal"]}
    assert rules == {2: "duplicate", 3: "duplicate", 4: "not_a_number", 5: "implausible"}
    assert report["accepted"] == 6


def _no_model(ref):
    raise ModelNotFoundError("no model in this test")


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(loader=_no_model)) as c:
        yield c


def _post(client, body) -> object:
    # json.dumps writes Infinity for inf (as a lax client would); httpx's encoder refuses it.
    return client.post(
        "/valuations", content=json.dumps(body), headers={"content-type": "application/json"}
    )


def test_a_valid_listing_passes_validation_and_only_then_needs_a_model(client):
    assert _post(client, api_home()).status_code == 503
    parts = {k: v for k, v in api_home().items() if k != "BathsTotal"}
    assert _post(client, {**parts, "BathsFull": 2, "BathsHalf": 1}).status_code == 503


@pytest.mark.parametrize(("column", "text", "api_value", "rule"), HOSTILE)
def test_a_hostile_field_is_a_422_naming_it_without_a_model(client, column, text, api_value, rule):
    response = _post(client, {**api_home(), column: api_value})
    assert response.status_code == 422, response.text
    assert ["body", column] in [d["loc"] for d in response.json()["detail"]]
    batch = _post(client, [api_home(), {**api_home(), column: api_value}])
    assert batch.status_code == 422
    assert {tuple(d["loc"]) for d in batch.json()["detail"]} == {("body", 1, column)}


def test_a_decimal_baths_number_says_what_to_send(client):
    response = _post(client, {**api_home(), "BathsTotal": 2.5})
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["body", "BathsTotal"] and detail["type"] == "baths_ambiguous"
    assert '"2.1"' in detail["msg"] and "BathsFull" in detail["msg"]


def test_no_baths_at_all_is_a_422(client):
    home = {k: v for k, v in api_home().items() if k != "BathsTotal"}
    (detail,) = _post(client, home).json()["detail"]
    assert detail["loc"] == ["body", "BathsTotal"] and detail["type"] == "missing"
