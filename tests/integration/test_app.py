"""The Streamlit app as a user drives it: Streamlit's AppTest for every page, and a real
headless Chromium (Playwright) filling the valuation form."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from homevision.ui import APP, streamlit_command

from .conftest import free_port, wait_until_up

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_pages_render_and_the_form_values_a_home(served_home):
    app = AppTest.from_file(str(APP), default_timeout=180)
    app.run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert [t.label for t in app.tabs] == ["Listings", "Value a home", "Model"]
    assert any("honest" in m.label for m in app.metric)
    assert len(app.dataframe) >= 1  # the listings table
    app.number_input[0].set_value(3200)
    app.number_input[-1].set_value(400_000)  # an actual price, to see the error
    app.button[0].click()
    app.run()
    labels = {m.label: m.value for m in app.metric}
    assert labels["Estimated price"].startswith("$")
    assert any("Error against the actual price" in i.value for i in app.info)
    assert len(app.get("imgs")) >= 1 or len(app.get("image")) >= 1  # the waterfall chart


def test_a_missing_model_is_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HOMEVISION_MODEL", "models:/no-such-model@champion")
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.run()
    assert not app.exception
    assert "Cannot load the model" in app.error[0].value


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian chromium not installed (.ci/run installs it with apt-get)",
)
def test_in_a_real_browser(served_home, tmp_path):
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {**os.environ, "HOMEVISION_HOME": str(served_home)}
    server = subprocess.Popen(
        streamlit_command(port),
        env=env,
        cwd=served_home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/_stcore/health", server)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(url, timeout=120_000)
            page.get_by_role("tab", name="Value a home").click(timeout=120_000)
            area = page.get_by_label("Living area (sqft)")
            area.fill("3100")
            area.press("Enter")
            page.get_by_role("button", name="Value this home").click()
            page.get_by_text("Estimated price").wait_for(timeout=120_000)
            page.get_by_text("Why this price").wait_for(timeout=60_000)
            page.locator("img").first.wait_for(timeout=60_000)
            page.screenshot(path=str(tmp_path / "valuation.png"), full_page=True)
            assert "$" in page.get_by_test_id("stMetricValue").first.inner_text()
            browser.close()
        assert (tmp_path / "valuation.png").stat().st_size > 10_000
    finally:
        server.terminate()
        server.wait(timeout=30)
