"""`homevision monitor` as a user runs it: a champion trained on a synthetic market, then a new
export from the same market (no drift: exit 0) and one from a market that moved (exit 3)."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import threading
from pathlib import Path
from typing import ClassVar

import mlflow
import pandas as pd
import pytest

from homevision.data.synthetic import MarketDrift, generate_listings, write_listings

from .conftest import cli, tiny_params, train_in

pytestmark = pytest.mark.slow


def monitor(home: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `homevision monitor ARGS` in `home`; return the finished process (any exit code)."""
    params = {"HOMEVISION_PARAMS": str(home / "params-median_ppsf-ridge.yaml")}
    return cli(home, "monitor", *args, env=params)


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> Path:
    """A project with a champion trained on month 0 of market 3, and three new exports."""
    home = tmp_path_factory.mktemp("monitor")
    base = write_listings(generate_listings(600, seed=3), home / "data" / "base.csv")
    tiny_params(home, ["median_ppsf", "ridge"])
    train_in(home, base, ["median_ppsf", "ridge"])
    same = generate_listings(400, seed=11, market_seed=3, drift=MarketDrift(month=1))
    write_listings(same, home / "data" / "same.csv")
    moved = MarketDrift(month=6, price_trend=0.02, mix_shift=0.6, new_school="Zephyr Park")
    write_listings(
        generate_listings(400, seed=12, market_seed=3, drift=moved), home / "data" / "drift.csv"
    )
    (home / "data" / "notes.csv").write_text("a,b\n1,2\n")
    return home


def test_same_market_exits_0_and_writes_its_reports(market):
    proc = monitor(market, "--current", "data/same.csv", "--json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["detected"] is False
    assert summary["reference"]["source"].startswith("runs:/")  # the model's own training data
    assert summary["errors"]["reference_valuations"] == "out-of-fold"
    folder = market / "reports" / "monitoring"
    for name in ("drift_report.html", "drift_sales.html", "drift_summary.json", "drift.prom"):
        assert (folder / name).stat().st_size > 0, name
    prom = (folder / "drift.prom").read_text()
    assert 'homevision_drift_detected{model="homevision-price"} 0.0' in prom


def test_moved_market_exits_3_and_names_the_drifted_columns(market):
    proc = monitor(market, "--current", "data/drift.csv")
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Drift found" in proc.stdout
    summary = json.loads((market / "reports" / "monitoring" / "drift_summary.json").read_text())
    assert summary["detected"] is True
    drifted = set(summary["drifted_columns"])
    # the mix shift (bigger homes), the new school, and prices 12% up: errors grow
    assert {"SqFtTotal", "ElementarySchoolName", "log_error"} <= drifted
    assert summary["groups"]["quality"] is True  # Zephyr Park is a category never seen
    assert summary["errors"]["current"]["mdape"] > summary["errors"]["reference"]["mdape"]
    prom = (market / "reports" / "monitoring" / "drift.prom").read_text()
    assert 'homevision_drift_detected{model="homevision-price"} 1.0' in prom


def test_each_check_is_an_mlflow_run_with_its_reports(market):
    mlflow.set_tracking_uri(f"sqlite:///{market / 'mlflow.db'}")
    runs = mlflow.search_runs(
        experiment_names=["homevision"], filter_string="tags.`homevision.stage` = 'monitor'"
    )
    assert len(runs) >= 2
    assert set(runs["tags.drift_detected"]) == {"true", "false"}
    artifacts = mlflow.artifacts.list_artifacts(
        run_id=runs.iloc[0]["run_id"], artifact_path="monitoring"
    )
    assert {"drift_report.html", "drift_summary.json"} <= {Path(a.path).name for a in artifacts}


def test_an_explicit_reference_export_is_compared_instead(market):
    proc = monitor(market, "--current", "data/drift.csv", "--reference", "data/same.csv", "--json")
    assert proc.returncode == 3, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["reference"]["source"].endswith("same.csv")
    assert summary["errors"]["reference_valuations"] == "model"


def test_not_an_export_exits_2_with_one_sentence(market):
    proc = monitor(market, "--current", "data/notes.csv")
    assert proc.returncode == 2
    assert "error:" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr


def test_sales_the_model_was_trained_on_are_not_compared(market):
    proc = monitor(market, "--current", "data/base.csv", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["sales_seen_in_training"] > 100  # in-sample errors would look too good
    assert not any(c["group"] in ("errors", "sale_price") for c in summary["checks"])
    assert "checks skipped" in summary["sales_note"]


class _Gateway(http.server.BaseHTTPRequestHandler):
    """A Pushgateway that records the path of each push."""

    pushed: ClassVar[list[str]] = []

    def do_PUT(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Gateway.pushed.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_drift_gauges_are_pushed_in_a_group_of_their_model(market):
    """Review (ops) D5: every model's push went to one group (job only), and a push replaces
    its group: a second model's gauges deleted the first's."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gateway = f"127.0.0.1:{server.server_address[1]}"
        proc = monitor(market, "--current", "data/same.csv", "--pushgateway", gateway)
        assert proc.returncode == 0, proc.stderr[-2000:]
    finally:
        server.shutdown()
    assert _Gateway.pushed == ["/metrics/job/homevision-monitor/model/homevision-price"]


def test_an_unreachable_pushgateway_is_a_warning_and_the_verdict_stands(market):
    """Review (ops) D4: a traceback and exit 1, the verdict never printed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once it is closed
    proc = monitor(market, "--current", "data/drift.csv", "--pushgateway", closed)
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Drift found" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    assert f"the drift gauges were not pushed to {closed}" in proc.stderr


def test_rejected_rows_are_reported_and_checked(market):
    """Review (ops) D1: sales priced in thousands were all rejected by validation and the
    monitor said only "0 sales in the export": rejected rows were invisible to it."""
    frame = pd.read_csv(market / "data" / "same.csv")
    frame["ClosePrice"] = frame["ClosePrice"] / 1000
    frame.to_csv(market / "data" / "kprice.csv", index=False)
    proc = monitor(market, "--current", "data/kprice.csv")
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((market / "reports" / "monitoring" / "drift_summary.json").read_text())
    sales = int(frame["ClosePrice"].notna().sum())
    assert summary["current"]["rejected"] == sales > 0
    rejected = next(c for c in summary["checks"] if c["method"] == "rejected rows, share")
    assert rejected["drifted"] and rejected["score"] == pytest.approx(sales / len(frame))
    assert f"{sales:,} rows rejected by validation" in proc.stdout
