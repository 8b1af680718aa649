"""The monitoring checks' pure parts: verdicts from Evidently results, typing, the reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from homevision.features import get_feature_set
from homevision.monitoring import checks as ck
from homevision.monitoring.reference import OOF_VALUATION, VALUATION, build_reference

LIMITS = {"max_missing_increase": 0.05, "max_out_of_range": 0.05, "max_new_category": 0.05}


def test_the_pandas_shim_is_still_needed():
    """When Evidently stops importing the name pandas 3 removed, drop homevision/monitoring/
    _compat.py's shim (this test then fails on purpose)."""
    import evidently

    source = Path(evidently.__file__).parent / "legacy" / "tests" / "data_integrity_tests.py"
    assert "infer_dtype_from_object" in source.read_text()


def _snapshot(*metrics: dict) -> dict:
    return {"metrics": list(metrics)}


def _drift(column: str, method: str, value: float, threshold: float) -> dict:
    config = {"type": "evidently:metric_v2:ValueDrift", "column": column}
    return {"config": config | {"method": method, "threshold": threshold}, "value": value}


def test_p_values_drift_below_and_distances_at_or_above_their_threshold():
    checks = ck.read_checks(
        _snapshot(
            _drift("SqFtTotal", "K-S p_value", 0.01, 0.05),
            _drift("CDOM", "K-S p_value", 0.30, 0.05),
            _drift("BedsTotal", "Wasserstein distance (normed)", 0.10, 0.1),
            _drift("valuation", "Jensen-Shannon distance", 0.02, 0.1),
        ),
        {},
        LIMITS,
        {"valuation": "valuations"},
    )
    assert [(c.column, c.group, c.drifted) for c in checks] == [
        ("SqFtTotal", "inputs", True),
        ("CDOM", "inputs", False),
        ("BedsTotal", "inputs", True),
        ("valuation", "valuations", False),
    ]


def test_quality_shares_are_judged_against_the_reference_and_the_limits():
    missing = {"config": {"type": "x:MissingValueCount", "column": "Lot"}, "value": {"share": 0.08}}
    out = {"config": {"type": "x:OutRangeValueCount", "column": "SqFt"}, "value": {"share": 0.02}}
    new = {"config": {"type": "x:OutListValueCount", "column": "School"}, "value": {"share": 0.2}}
    checks = ck.read_checks(_snapshot(missing, out, new), {"Lot": 0.05}, LIMITS, {})
    assert [(c.column, round(c.score, 3), c.drifted) for c in checks] == [
        ("Lot", 0.03, False),  # 8% missing, but the reference had 5%: +3 points only
        ("SqFt", 0.02, False),
        ("School", 0.2, True),
    ]


def test_inputs_drift_by_share_and_only_triggers_count():
    def check(group: str, drifted: bool) -> ck.Check:
        return ck.Check(group, "c", "K-S p_value", 0.0, 0.05, drifted)

    inputs = [check("inputs", d) for d in (True, False, False, False, False, False)]
    verdicts = ck.verdicts([*inputs, check("sale_price", True)], drift_share=0.3)
    assert verdicts["inputs"] is False  # 1 of 6 is under 0.3
    assert verdicts["sale_price"] is True
    assert not ck.detected(verdicts, ["inputs", "valuations", "errors", "quality"])
    assert ck.detected(verdicts, ["sale_price"])
    two = [check("inputs", True), *inputs[1:]]
    assert ck.verdicts(two, drift_share=0.3)["inputs"] is False
    two = [check("inputs", True), *inputs[:-1]]
    assert ck.verdicts(two, drift_share=0.3)["inputs"] is True  # 2 of task6's 6 columns
    assert ck.input_drift_share(two) == pytest.approx(2 / 6)


def test_typing_reads_booleans_and_text_numbers_and_keeps_missing_categories():
    frame = pd.DataFrame(
        {
            "PoolYN": ["True", "False", None],
            "SqFt": ["2000", "x", "1500"],
            "School": ["A", None, "B"],
        }
    )
    typed = ck.as_typed(frame, ["PoolYN", "SqFt"], ["School"])
    assert typed["PoolYN"].tolist()[:2] == [1.0, 0.0] and np.isnan(typed["PoolYN"].iloc[2])
    assert np.isnan(typed["SqFt"].iloc[1])
    assert typed["School"].isna().tolist() == [False, True, False]


def test_input_columns_leave_high_cardinality_to_the_missing_check():
    numeric, categorical = ck.input_columns(get_feature_set("offmarket"))
    assert "SubdivisionName" not in numeric + categorical
    assert "BathsTotal" in numeric and "ElementarySchoolName" in categorical


def test_reference_holds_valuations_and_oof_on_sales_only_and_is_bounded():
    typed = pd.DataFrame(
        {"MLSNumber": range(10), "Status": ["Sold"] * 4 + ["Active"] * 6, "SqFtTotal": range(10)},
        index=range(100, 110),
    )
    oof = pd.Series([1.0, 2.0, 3.0, 4.0], index=range(100, 104))
    frame = build_reference(typed, ["SqFtTotal"], np.arange(10.0), oof, max_rows=10)
    assert frame[VALUATION].tolist() == list(np.arange(10.0))
    assert frame[OOF_VALUATION].notna().sum() == 4
    small = build_reference(typed, ["SqFtTotal"], np.arange(10.0), oof, max_rows=5, seed=1)
    assert len(small) == 5
    assert small.equals(build_reference(typed, ["SqFtTotal"], np.arange(10.0), oof, 5, seed=1))


def test_log_errors_are_signed_and_relative():
    errors = ck.log_errors(pd.Series([110.0, 100.0]), pd.Series([100.0, 100.0]))
    assert errors.round(4).tolist() == [round(np.log(1.1), 4), 0.0]


def test_drift_gauges_carry_the_verdict_share_model_and_each_groups_verdict():
    """Review (ops) D7: the alert said "drift in 0% of the monitored columns" for drift in the
    errors alone; a gauge per group lets it name what drifted."""
    from prometheus_client import generate_latest

    from homevision.monitoring.drift import drift_gauges

    summary = {"model": {"name": "homevision-price", "uri": "x"}, "detected": True}
    summary["groups"] = {"inputs": False, "errors": True}
    text = generate_latest(drift_gauges({**summary, "input_drift_share": 0.5})).decode()
    assert 'homevision_drift_detected{model="homevision-price"} 1.0' in text
    assert 'homevision_drift_share{model="homevision-price"} 0.5' in text
    assert "homevision_drift_last_run_timestamp_seconds{" in text
    group = "homevision_drift_group_detected"
    assert f'{group}{{group="errors",model="homevision-price"}} 1.0' in text
    assert f'{group}{{group="inputs",model="homevision-price"}} 0.0' in text


def test_an_export_with_no_accepted_row_is_one_sentence_not_a_crash(tmp_path):
    """Every row rejected: Evidently raised on the empty frame, after a model was loaded."""
    from homevision.data.errors import NotAnExportError
    from homevision.data.synthetic import generate_listings, write_listings
    from homevision.monitoring.drift import accepted_rows

    path = write_listings(generate_listings(20, 4).assign(SqFtTotal="abc"), tmp_path / "x.csv")
    with pytest.raises(NotAnExportError, match="none of its 20 rows passed validation"):
        accepted_rows(path)
