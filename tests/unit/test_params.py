"""Feature sets are configuration; the leakage list is enforced against every one of them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from homevision.features import feature_set_names, get_feature_set, is_leaky, leakage_columns


def test_the_three_documented_feature_sets_exist():
    assert {"task6", "offmarket", "onmarket"} <= set(feature_set_names())


def test_task6_is_the_take_homes_six_features():
    fs = get_feature_set("task6")
    assert sorted(fs.raw_columns) == sorted(
        ["BathsTotal", "BedsTotal", "CDOM", "LotSizeAreaSQFT", "SqFtTotal", "ElementarySchoolName"]
    )


@pytest.mark.parametrize("name", ["task6", "offmarket", "onmarket"])
def test_no_feature_set_uses_a_leaky_column(name):
    leaky = [c for c in get_feature_set(name).raw_columns if is_leaky(c)]
    assert leaky == []


def test_leakage_list_catches_known_leaks_and_prefixes():
    for column in [
        "ClosePrice",
        "CurrentPrice",
        "RATIO_ClosePrice_By_ListPrice",
        "SellingAgentFullName",
        "SellingOfficeName",
        "CloseDate",
    ]:
        assert is_leaky(column), column
    assert not is_leaky("ListPrice")
    assert "CurrentPrice" in leakage_columns()


def test_a_leaky_feature_set_would_be_caught():
    assert is_leaky("CurrentPrice", ["CurrentPrice"])
    assert is_leaky("RATIO_CurrentPrice_By_SQFT", ["RATIO_CurrentPrice_*"])


def test_only_onmarket_sees_the_asking_price():
    assert "ListPrice" in get_feature_set("onmarket").raw_columns
    assert "ListPrice" not in get_feature_set("offmarket").raw_columns
    assert "ListPrice" not in get_feature_set("task6").raw_columns


def test_a_feature_set_with_current_price_is_refused(tmp_path, monkeypatch):
    """Negative control: the leakage guard catches a set that sneaks in CurrentPrice."""
    import yaml

    from homevision.config import params_file

    params = yaml.safe_load(params_file().read_text())
    params["feature_sets"]["sneaky"] = {
        **params["feature_sets"]["task6"],
        "numeric": [*params["feature_sets"]["task6"]["numeric"], "CurrentPrice"],
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    monkeypatch.setenv("HOMEVISION_PARAMS", str(path))
    with pytest.raises(ValueError, match="CurrentPrice"):
        get_feature_set("sneaky")
    assert [c for c in get_feature_set("task6").raw_columns if is_leaky(c)] == []


def test_offmarket_does_not_use_days_on_market_but_onmarket_does():
    assert "CDOM" not in get_feature_set("offmarket").raw_columns
    assert "CDOM" in get_feature_set("onmarket").raw_columns


def test_params_ship_inside_the_package():
    from homevision.config import PACKAGE_DIR

    assert (PACKAGE_DIR / "params.yaml").is_file()


def test_an_older_params_file_gets_new_settings_at_their_default(tmp_path, monkeypatch):
    from homevision.config import load_params

    old = yaml.safe_load((Path(__file__).parents[2] / "params.yaml").read_text())
    del old["monitoring"]
    del old["promotion"]["min_fresh_sales"]
    old["promotion"]["alpha"] = 0.01
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(old))
    monkeypatch.setenv("HOMEVISION_PARAMS", str(path))
    params = load_params()
    assert params["promotion"]["alpha"] == 0.01  # the file's own value
    assert params["promotion"]["min_fresh_sales"] == 30  # the shipped default
    assert params["monitoring"]["drift_share"] == 0.3
