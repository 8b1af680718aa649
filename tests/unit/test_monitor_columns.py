"""The monitor watches what the model derives from its newer columns: the annual association fee
(amount x payments a year) and the items of comma-separated feature lists (ExteriorFeatures...).
Small synthetic markets where only one of them moves, run through Evidently as `monitor` does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.utils.validation import _validate_metric_name

from homevision.config import load_params
from homevision.features import FeatureSet, get_feature_set
from homevision.monitoring import checks as ck
from homevision.monitoring.drift import compare_rows, metric_key

ROWS = 400
MIN_COUNT = 10
LIST = "ExteriorFeatures"
GUTTERS = ck.token_column(LIST, "Gutters")
PER_YEAR = {"Monthly": 12, "Quarterly": 4, "Annual": 1}
# task6's columns plus an association fee and one feature list: the two new kinds of input.
FS = FeatureSet(
    name="fee_and_list",
    numeric=("BedsTotal", "CDOM", "LotSizeAreaSQFT", "SqFtTotal"),
    baths="BathsTotal",
    school="ElementarySchoolName",
    fee=("AssociationFee", "AssociationFeeFrequency"),
    token_lists=(LIST,),
)


def homes(
    seed: int,
    gutters: float = 0.8,
    monthly_billed_as: str = "Monthly",
    unknown_frequency: float = 0.0,
    rows: int = ROWS,
) -> pd.DataFrame:
    """Return `rows` listings of one market with valuations: an annual fee of about $600 billed
    monthly, quarterly or annually (10% of homes without an association), Gutters on `gutters`
    of the homes, a sprinkler on half, a patio on 30%, an outdoor kitchen on 1% (too rare to
    test). `monthly_billed_as="Annual"` keeps the monthly amounts but bills them once a year;
    `unknown_frequency` of the homes get the frequency "Other"."""
    rng = np.random.default_rng(seed)
    sqft = rng.normal(2500, 400, rows).round()
    frequency = rng.choice(list(PER_YEAR), rows, p=[0.5, 0.2, 0.3])
    annual = rng.lognormal(np.log(600), 0.3, rows)
    amount = (annual / np.array([PER_YEAR[f] for f in frequency])).round()
    frequency = np.where(frequency == "Monthly", monthly_billed_as, frequency).astype(object)
    frequency[rng.random(rows) < unknown_frequency] = "Other"
    no_association = rng.random(rows) < 0.1
    items = {"Gutters": gutters, "Sprinkler System": 0.5, "Covered Patio/Porch": 0.3}
    items["Outdoor Kitchen"] = 0.01
    held = {item: rng.random(rows) < share for item, share in items.items()}
    lists = [", ".join(i for i in items if held[i][row]) or None for row in range(rows)]
    return pd.DataFrame(
        {
            "BedsTotal": rng.integers(2, 6, rows).astype(float),
            "CDOM": rng.integers(0, 90, rows).astype(float),
            "LotSizeAreaSQFT": sqft * rng.uniform(2, 4, rows),
            "SqFtTotal": sqft,
            "BathsTotal": rng.choice(["2", "2.1", "3", "3.1"], rows),
            "ElementarySchoolName": rng.choice(["Anderson", "Bledsoe", "Curtsinger"], rows),
            "AssociationFee": pd.Series(amount).where(~no_association),
            "AssociationFeeFrequency": pd.Series(frequency).where(~no_association),
            LIST: lists,
            ck.VALUATION: sqft * 180.0,
        }
    )


def run(current: pd.DataFrame, fs: FeatureSet = FS) -> list[ck.Check]:
    """Return the all-rows checks of `current` against the market's reference (seed 1)."""
    cfg = load_params()["monitoring"]
    return compare_rows(homes(seed=1), current, fs, cfg, MIN_COUNT)[1]


def drifted(checks: list[ck.Check], group: str) -> set[str]:
    return {c.column for c in checks if c.group == group and c.drifted}


def one(checks: list[ck.Check], group: str, column: str, method: str = "") -> ck.Check:
    """Return the one check of `column` in `group` whose method starts with `method`."""
    found = [c for c in checks if (c.group, c.column) == (group, column)]
    found = [c for c in found if c.method.startswith(method)]
    assert len(found) == 1, (group, column, [(c.group, c.column, c.method) for c in checks])
    return found[0]


def test_a_new_sample_of_the_same_market_drifts_nowhere_and_each_new_column_is_tested():
    checks = run(homes(seed=2))
    assert drifted(checks, "inputs") == set() and drifted(checks, "quality") == set()
    tested = {c.column for c in checks if c.group == "inputs"}
    items = {
        ck.token_column(LIST, t) for t in ("Covered Patio/Porch", "Gutters", "Sprinkler System")
    }
    assert {ck.ANNUAL_FEE, *items} <= tested
    assert ck.token_column(LIST, "Outdoor Kitchen") not in tested  # ~4 homes: under MIN_COUNT
    assert one(checks, "quality", ck.ANNUAL_FEE, "missing").score == pytest.approx(0.0)


def test_monthly_fees_billed_as_annual_drift_the_annual_fee_only():
    # Same amounts, once a year instead of twelve times: half the homes' fee falls 12x.
    checks = run(homes(seed=2, monthly_billed_as="Annual"))
    assert drifted(checks, "inputs") == {ck.ANNUAL_FEE}
    assert "p_value" in one(checks, "inputs", ck.ANNUAL_FEE).method
    assert ck.ANNUAL_FEE in ck.drifted_columns(checks)


def test_an_items_share_falling_drifts_that_item_by_its_list_and_name():
    checks = run(homes(seed=2, gutters=0.1))  # Gutters on 80% of the homes, then 10%
    assert drifted(checks, "inputs") == {GUTTERS} == {"ExteriorFeatures: Gutters"}
    check = one(checks, "inputs", GUTTERS)
    assert check.method == "Z-test p_value" and check.threshold == pytest.approx(0.05 / 3)
    # The list is one input column of the share, however many of its items drifted.
    assert ck.input_drift_share(checks) == pytest.approx(1 / 8)  # 4 + baths + school + fee + list


def test_fees_at_an_unknown_frequency_raise_the_annual_fees_missing_share():
    checks = run(homes(seed=2, unknown_frequency=0.2))  # "Other": the model cannot annualise it
    assert one(checks, "quality", ck.ANNUAL_FEE, "missing").score == pytest.approx(0.2, abs=0.05)
    assert drifted(checks, "quality") == {ck.ANNUAL_FEE}


def test_a_feature_set_without_fee_or_lists_is_checked_as_before():
    task6 = get_feature_set("task6")
    reference = homes(seed=1)
    derived = ck.derive(task6, reference, MIN_COUNT)
    assert derived == ck.Derived() and derived.add(reference).equals(reference)
    checks = run(homes(seed=2, gutters=0.1, monthly_billed_as="Annual"), task6)
    numeric, categorical = ck.input_columns(task6)
    assert {c.column for c in checks} == {*numeric, *categorical, ck.VALUATION}
    assert drifted(checks, "inputs") == set()


def test_a_reference_without_the_new_columns_skips_them():
    reference = homes(seed=1).drop(columns=["AssociationFeeFrequency", LIST])
    assert ck.derive(FS, reference, MIN_COUNT) == ck.Derived()


def test_the_annual_fee_is_the_models_own():
    frame = pd.DataFrame(
        {
            "AssociationFee": [50.0, "600", 150.0, np.nan, 300.0],
            "AssociationFeeFrequency": ["Monthly", "Annual", "Quarterly", None, "Other"],
        }
    )
    fee = ck.annual_fee(frame, ("AssociationFee", "AssociationFeeFrequency"))
    assert fee.name == ck.ANNUAL_FEE
    np.testing.assert_array_equal(fee.to_numpy()[:4], [600.0, 600.0, 600.0, 0.0])
    assert np.isnan(fee.iloc[4])


def test_items_tested_are_the_common_ones_capped_and_split_as_the_model_splits():
    reference = pd.DataFrame({LIST: ["A, B", "A,C", " A ", None, "B, A", "D"]})
    assert ck.token_vocabulary(reference, [LIST], min_count=2) == {LIST: ["A", "B"]}
    assert ck.token_vocabulary(reference, [LIST], min_count=1, most=2) == {LIST: ["A", "B"]}
    presence = ck.token_presence(reference, {LIST: ["A", "B"]})
    assert presence[ck.token_column(LIST, "A")].tolist() == [True, True, True, False, True, False]
    assert presence[ck.token_column(LIST, "B")].tolist() == [True, False, False, False, True, False]


def test_item_tests_are_bonferroni_z_tests_on_small_references_and_distances_on_large():
    vocabulary = {LIST: ["A", "B", "C", "D"], "CommunityFeatures": ["Pool"]}
    small = ck.token_tests(vocabulary, rows=1000)
    assert small[ck.token_column(LIST, "A")] == ("z", pytest.approx(0.05 / 4))
    assert small[ck.token_column("CommunityFeatures", "Pool")] == ("z", pytest.approx(0.05))
    large = ck.token_tests(vocabulary, rows=1001)
    assert set(large.values()) == {("jensenshannon", 0.1)}


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_a_small_export_of_the_same_market_is_no_drift_against_a_large_reference(seed):
    """Review (ops) D2: Evidently picks its tests by the reference's size alone. Above 1,000
    rows it uses distances (effect sizes at 0.1) that 80 same-market rows exceed by chance: 5 of
    6 inputs drifted, and the flow retrained on every small drop. The smaller side decides."""
    cfg = load_params()["monitoring"]
    reference, current = homes(seed=1, rows=1500), homes(seed=seed, rows=80)
    checks = compare_rows(reference, current, FS, cfg, MIN_COUNT)[1]
    assert ck.verdicts(checks, float(cfg["drift_share"]))["inputs"] is False
    assert drifted(checks, "valuations") == set()
    assert one(checks, "inputs", "SqFtTotal").method == "K-S p_value"
    assert one(checks, "inputs", "ElementarySchoolName").method == "chi-square p_value"
    assert one(checks, "valuations", ck.VALUATION).method == "K-S p_value"
    assert one(checks, "inputs", GUTTERS).method == "Z-test p_value"


def test_two_large_samples_keep_evidentlys_distances():
    cfg = load_params()["monitoring"]
    checks = compare_rows(homes(seed=1, rows=1500), homes(seed=2, rows=1200), FS, cfg, 10)[1]
    assert one(checks, "inputs", "SqFtTotal").method == "Wasserstein distance (normed)"
    assert one(checks, "valuations", ck.VALUATION).method == "Wasserstein distance (normed)"
    assert drifted(checks, "inputs") == set()


def test_a_lists_items_count_once_in_the_input_share():
    def check(column: str, flag: bool) -> ck.Check:
        return ck.Check("inputs", column, "Z-test p_value", 0.0, 0.05, flag)

    checks = [check("SqFtTotal", False), check(GUTTERS, True), check(f"{LIST}: Stone", True)]
    assert ck.input_verdicts(checks) == [False, True]
    assert ck.input_drift_share([*checks, check(ck.ANNUAL_FEE, False)]) == pytest.approx(1 / 3)


@pytest.mark.parametrize("item", ["Covered Patio/Porch", "Pool (Private)", "Deck & Rail"])
def test_an_items_metric_name_is_one_mlflow_accepts(item):
    key = metric_key(ck.Check("inputs", ck.token_column(LIST, item), "z", 0.0, 0.05, False))
    _validate_metric_name(key)  # raises on a character MLflow refuses or a path it rewrites
    assert key.startswith("inputs.ExteriorFeatures_")
    assert metric_key(ck.Check("inputs", "SqFtTotal", "z", 0.0, 0.05, False)) == "inputs.SqFtTotal"


@pytest.mark.parametrize("side", ["current", "reference"])
@pytest.mark.parametrize("column", ["LotSizeAreaSQFT", "ElementarySchoolName"])
def test_a_column_all_missing_on_one_side_is_a_missing_alarm_not_a_crash(side, column):
    """Evidently refuses to test the drift of a column empty on one side ("An empty column ...
    was provided for drift calculation"): monitor crashed on an export validate accepted. The
    column is left out of the drift test; its missing check is what fires."""
    frames = {"reference": homes(seed=1), "current": homes(seed=2)}
    frames[side][column] = np.nan
    cfg = load_params()["monitoring"]
    checks = compare_rows(frames["reference"], frames["current"], FS, cfg, MIN_COUNT)[1]
    assert column not in {c.column for c in checks if c.group == "inputs"}
    assert one(checks, "quality", column, "missing").drifted == (side == "current")


def test_a_column_the_export_lacks_is_all_missing():
    """An optional column absent from the export (NumberOfStories) raised KeyError."""
    current = homes(seed=2).drop(columns=["LotSizeAreaSQFT"])
    checks = run(current)
    assert "LotSizeAreaSQFT" not in {c.column for c in checks if c.group == "inputs"}
    assert one(checks, "quality", "LotSizeAreaSQFT", "missing").drifted


def test_an_export_the_model_refused_to_value_is_drift_not_an_untested_column():
    """Review (ops) D1: a column the model needs absent from the export, every row refused
    (valuation NaN): the valuation was left untested and nothing counted the refusals, so
    `monitor` said "No drift found" (exit 0) for an export the model could not value."""
    current = homes(seed=2)
    current[ck.VALUATION] = np.nan
    checks = run(current)
    assert one(checks, "valuations", ck.VALUATION).drifted
    refused = one(checks, "quality", ck.VALUATION, ck.REFUSED)
    assert refused.score == pytest.approx(1.0) and refused.drifted
    groups = ck.verdicts(checks, 0.3)
    assert groups["valuations"] and groups["quality"]


def test_a_few_refused_rows_are_counted_against_the_missing_limit():
    current = homes(seed=2)
    current.loc[: ROWS // 10 - 1, ck.VALUATION] = np.nan  # 10% refused, the reference 0%
    checks = run(current)
    assert one(checks, "quality", ck.VALUATION, ck.REFUSED).score == pytest.approx(0.1)
    assert drifted(checks, "quality") == {ck.VALUATION}
    assert one(checks, "valuations", ck.VALUATION).method == "K-S p_value"  # still tested


def test_a_list_and_a_fee_frequency_the_export_lacks_count_as_all_missing():
    """Review (ops) D1: derive skipped a list or fee whose source column the export lacked, so
    a dropped list got no check at all; the docs say an absent column counts as all missing."""
    current = homes(seed=2).drop(columns=[LIST, "AssociationFeeFrequency"])
    checks = run(current)
    assert {LIST, "AssociationFeeFrequency", ck.ANNUAL_FEE} <= drifted(checks, "quality")
    assert GUTTERS in drifted(checks, "inputs")  # no home holds it now


def test_rejected_rows_are_a_quality_check_on_their_share():
    assert not ck.rejected_check(0, 600, 0.05).drifted
    check = ck.rejected_check(157, 600, 0.05)
    assert (check.group, check.column, check.method) == ("quality", ck.ROWS, ck.REJECTED)
    assert check.score == pytest.approx(157 / 600) and check.drifted
