"""monitoring/: the alerting rules read only metrics the API exports; they and the Prometheus
configuration pass promtool, and the rules' unit tests (monitoring/alerts_test.yml) show each
alert firing when it should and not otherwise. promtool comes with Debian's `prometheus`
package; without it those tests skip on a laptop and fail in CI (HOMEVISION_REQUIRE_SERVICES=1),
which installs it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml
from fastapi.testclient import TestClient

from homevision.serving.api import create_app

from .conftest import ROOT
from .test_api import HOME
from .test_metrics import scrape

MONITORING = ROOT / "monitoring"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is not installed: `apt-get install prometheus` (Debian) brings it"
        if os.environ.get("HOMEVISION_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.mark.parametrize(
    "args",
    [
        ("check", "rules", "alerts.yml"),
        ("check", "config", "prometheus.yml"),  # loads alerts.yml too
        ("test", "rules", "alerts_test.yml"),
    ],
    ids=["check-rules", "check-config", "test-rules"],
)
def test_promtool(promtool, args):
    proc = subprocess.run(
        [promtool, *args], cwd=MONITORING, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alert_rules_read_metrics_the_api_exports(served_home):
    """Every homevision_* metric the rules read is one the API exports (or the drift metrics
    `homevision monitor` will publish: the one forward reference)."""
    with TestClient(create_app()) as c:
        c.post("/valuations", json=HOME)
        exported = {name for name, _ in scrape(c)}
    read = set(re.findall(r"\bhomevision_\w+", (MONITORING / "alerts.yml").read_text()))
    read -= {
        "homevision_drift_detected",
        "homevision_drift_share",
        "homevision_drift_group_detected",
    }
    assert read and not read - exported, read - exported


def test_the_shipped_drift_scrape_job_uncommented_is_a_valid_config(promtool, tmp_path):
    """Review (ops) D7: the shipped config scraped the API only, which exports no drift gauge,
    so HomevisionDataDrift could never fire and nothing said what to add."""
    lines = (MONITORING / "prometheus.yml").read_text().splitlines()
    start = lines.index("  # - job_name: homevision-monitor")
    job = [line.replace("  # ", "  ", 1) for line in lines[start : start + 4]]
    (tmp_path / "prometheus.yml").write_text("\n".join([*lines, *job]) + "\n")
    shutil.copy(MONITORING / "alerts.yml", tmp_path)
    config = yaml.safe_load((tmp_path / "prometheus.yml").read_text())
    jobs = {c["job_name"]: c for c in config["scrape_configs"]}
    assert jobs["homevision-monitor"]["honor_labels"] is True  # keeps each push's model label
    proc = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
