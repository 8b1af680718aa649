"""The Streamlit app as a user drives it: Streamlit's AppTest for every page, and a real
headless Chromium (Playwright) filling the valuation form."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from streamlit.testing.v1 import AppTest

from homevision.tracking import describe_model, load_model, tracking_uri
from homevision.ui import APP, streamlit_command
from homevision.ui.predictor import metric_help

from .conftest import ROOT, free_port, wait_until_up

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _column_formats(frame_element) -> dict[str, str]:
    """The display format of each configured column of an st.dataframe."""
    config = json.loads(frame_element.proto.columns)
    return {name: c.get("type_config", {}).get("format") for name, c in config.items()}


DOLLARS = re.compile(r"^-?\$\d{1,3}(,\d{3})*$")  # "$463,745": whole dollars, separators


def test_pages_render_and_the_form_values_a_home(served_home):
    app = AppTest.from_file(str(APP), default_timeout=180)
    app.run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert [t.label for t in app.tabs] == ["Listings", "Value a home", "Model"]
    assert any("honest" in m.label for m in app.metric)
    assert any(DOLLARS.match(m.value) for m in app.metric if "RMSE" in m.label)
    listings = app.dataframe[0]
    assert {"predicted_close_price", "flag", "warning", "error"} <= set(listings.value.columns)
    formats = _column_formats(listings)
    for money in ("predicted_close_price", "close_price_low", "close_price_high", "ListPrice"):
        assert formats[money] == "dollar", formats
    # The form asks for every field the model reads (baths as full + half).
    model = load_model()
    keys = {w.key for w in [*app.number_input, *app.selectbox, *app.checkbox]}
    for column in model.raw_columns_:
        expected = (
            {"field_BathsFull", "field_BathsHalf"}
            if column == "BathsTotal"
            else {f"field_{column}"}
        )
        assert expected <= keys, (column, keys)
    app.number_input(key="field_SqFtTotal").set_value(3200)
    app.number_input[-1].set_value(400_000)  # an actual price, to see the error
    app.button[0].click()
    app.run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    labels = {m.label: m.value for m in app.metric}
    assert DOLLARS.match(labels["Estimated price"]), labels
    assert DOLLARS.match(labels["90% range, low"]) and DOLLARS.match(labels["90% range, high"])
    info = next(i.value for i in app.info if "Error against the actual price" in i.value)
    assert re.search(r"[+-]\$\d{1,3}(,\d{3})* \(", info), info
    assert len(app.get("imgs")) >= 1 or len(app.get("image")) >= 1  # the waterfall chart


def test_a_home_outside_the_training_data_is_flagged_in_the_form(served_home):
    app = AppTest.from_file(str(APP), default_timeout=180)
    app.run()
    app.number_input(key="field_SqFtTotal").set_value(60_000)
    app.button[0].click()
    app.run()
    assert not app.exception
    warning = " ".join(w.value for w in app.warning)
    assert "SqFtTotal 60,000 above the largest seen in training" in warning
    if app.error:  # refused: it says why, and shows no price
        assert "Not valued" in app.error[0].value
        assert "Estimated price" not in {m.label for m in app.metric}


def test_listings_tab_works_on_an_export_without_status_or_list_price(
    served_home, tmp_path, monkeypatch
):
    export = pd.read_csv(served_home / "data" / "raw" / "listings.csv", dtype=str).head(40)
    export = export.drop(columns=["Status", "ListPrice", "ClosePrice"])
    export.loc[3, "SqFtTotal"] = "abc"  # a row that cannot be valued
    path = tmp_path / "bare.csv"
    export.to_csv(path, index=False)
    monkeypatch.setenv("HOMEVISION_DATA", str(path))
    app = AppTest.from_file(str(APP), default_timeout=180)
    app.run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    table = app.dataframe[0].value
    assert len(table) == 40 and "Status" not in table and "ListPrice" not in table
    assert table.loc[3, "flag"] == "no valuation" and "SqFtTotal" in table.loc[3, "error"]
    assert set(table.drop(index=3)["flag"]) == {"no list price"}
    assert any("no Status or ListPrice column" in c.value for c in app.caption)


def test_listings_without_a_valuation_or_list_price_get_no_price_flag():
    from homevision.ui.predictor import flag_listings

    table = pd.DataFrame(
        {
            "predicted_close_price": [400_000.0, np.nan, 400_000.0, 400_000.0, 400_000.0],
            "close_price_low": [350_000.0, np.nan, 350_000.0, 350_000.0, 350_000.0],
            "close_price_high": [450_000.0, np.nan, 450_000.0, 450_000.0, 450_000.0],
            "error": ["", "not valued", "", "", ""],
            "ListPrice": [500_000.0, 500_000.0, np.nan, 300_000.0, 420_000.0],
        }
    )
    flagged = flag_listings(table)
    assert flagged["flag"].tolist() == [
        "over-priced",
        "no valuation",
        "no list price",
        "under-priced",
        "within range",
    ]
    assert flagged["gap_pct"].isna().tolist() == [False, True, True, False, False]
    bare = flag_listings(table.drop(columns=["ListPrice"]))
    assert bare["flag"].tolist() == ["no list price", "no valuation", *["no list price"] * 3]
    assert "gap_pct" not in bare


def test_the_model_page_shows_range_coverage_at_every_level(served_home):
    info = describe_model()
    if not info["ranges"]:  # a training run that logged no range figures: log some
        client = MlflowClient(tracking_uri())
        for key, value in {"range_90_coverage": 0.91, "range_90_width": 0.3}.items():
            client.log_metric(info["run_id"], key, value)
        info = describe_model()
    app = AppTest.from_file(str(APP), default_timeout=180)
    app.run()
    assert not app.exception
    tables = [d.value for d in app.dataframe if "coverage (random folds)" in d.value.columns]
    assert tables, "no range table on the Model page"
    assert sorted(tables[0]["range"].round(0)) == sorted(
        round(100 * r["level"]) for r in info["ranges"]
    )
    # Each honest figure's tooltip gives its bootstrap interval, as the model card does.
    helps = {m.label: m.proto.help for m in app.metric}
    honest = info["honest_metrics"]
    low, high = (f"{v:.1%}" for v in (honest["mape_low"], honest["mape_high"]))
    expected = f"90% interval over the sales scored: {low} to {high}"
    assert expected in helps["MAPE (honest, nested CV)"]


def test_the_model_page_tooltip_says_when_a_run_has_no_interval():
    old_run = metric_help({"mape": 0.08}, {"mape": 0.07}, "mape", "{:.1%}".format)
    assert old_run == "Selection CV: 7.0%"
    new_run = metric_help(
        {"mape": 0.08, "mape_low": 0.07, "mape_high": 0.09}, {}, "mape", "{:.1%}".format
    )
    assert new_run.startswith("90% interval over the sales scored: 7.0% to 9.0%")


def test_waterfall_and_money_read_in_dollars():
    from homevision.ui.charts import money, waterfall_figure

    assert money(463_745.2) == "$463,745" and money(-27_769.86) == "-$27,770"
    assert money(1_200, sign=True) == "+$1,200" and money(float("nan")) == "n/a"
    figure = waterfall_figure(
        450_000.0,
        {"SqFtTotal": 61_234.4, "CDOM": -27_769.86, "BedsTotal": 1_000.0},
        {"SqFtTotal": 3200.0, "CDOM": 90.0, "BedsTotal": 4.0},
    )
    texts = {t.get_text().strip() for t in figure.axes[0].texts}
    assert {"+$61,234", "-$27,770", "+$1,000"} <= texts
    ticks = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert "SqFtTotal = 3,200" in ticks
    assert "$484,465" in figure.axes[0].get_title()
    figure.canvas.draw()
    assert all(
        t.get_text() == "" or DOLLARS.match(t.get_text().replace("\u2212", "-"))
        for t in figure.axes[0].get_xticklabels()
    )


def test_the_launch_command_and_config_hide_the_developer_toolbar():
    command = streamlit_command(8599)
    assert command[command.index("--client.toolbarMode") + 1] == "viewer"
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert config["browser"]["gatherUsageStats"] is False
    assert config["client"]["toolbarMode"] == "viewer"


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
    """Value a home through the form, then look at the Listings and Model pages. With
    HOMEVISION_SCREENSHOTS set, the screenshots go to that folder: the docs' pictures of the
    app (`make screenshots`)."""
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("HOMEVISION_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
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
            running = page.get_by_test_id("stStatusWidget")  # Streamlit's "running" badge
            page.goto(url, timeout=120_000)
            page.get_by_role("tab", name="Value a home").click(timeout=120_000)
            area = page.get_by_role("spinbutton", name="Living area (sqft)")
            area.fill("3100")
            area.press("Enter")
            page.get_by_role("button", name="Value this home").click()
            page.get_by_text("Estimated price").wait_for(timeout=120_000)
            page.get_by_text("Why this price").wait_for(timeout=60_000)
            page.locator("img").first.wait_for(timeout=60_000)
            running.wait_for(state="hidden", timeout=120_000)  # every tab has rendered
            page.screenshot(path=str(shots / "app-valuation.png"), full_page=True)
            assert "$" in page.get_by_test_id("stMetricValue").first.inner_text()

            page.set_viewport_size({"width": 1400, "height": 900})
            page.get_by_role("tab", name="Listings").click()
            page.get_by_role("button", name="Download CSV").wait_for(timeout=60_000)
            page.screenshot(path=str(shots / "app-listings.png"))

            page.get_by_role("tab", name="Model").click()
            page.get_by_text("Price ranges").wait_for(timeout=60_000)
            page.get_by_text("Cross-validated leaderboard").wait_for(timeout=60_000)
            page.screenshot(path=str(shots / "app-model.png"))
            browser.close()
        for name in ("app-valuation.png", "app-listings.png", "app-model.png"):
            assert (shots / name).stat().st_size > 10_000, name
    finally:
        server.terminate()
        server.wait(timeout=30)
