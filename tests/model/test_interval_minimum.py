"""The fewest sales the price-range comparison can calibrate (review 3, defect 1): computed from
the levels, the outer folds and CQR's conformalizing share, and exactly what MAPIE accepts."""

from __future__ import annotations

import pandas as pd
import pytest

from homevision.data.listings import coerce_types
from homevision.data.synthetic import generate_listings
from homevision.features import get_feature_set
from homevision.training.candidates import build_model
from homevision.training.interval_choice import compare_variants, sales_needed

LEVELS = [0.5, 0.8, 0.9, 0.95]  # params.yaml's


def _sold(rows: int) -> pd.DataFrame:
    frame = coerce_types(generate_listings(rows, 3, market_seed=0).astype(object))
    return frame[frame["Status"] == "Sold"].reset_index(drop=True)


def test_the_default_levels_need_50_sales_on_5_outer_folds_and_cqr_164():
    # MAPIE counts half the gamma scores per bound and wants 1/(1 - 0.95) = 20 of them: 40
    # training rows, the 4/5 of 50 sales. CQR wants 1/0.025 = 40 scores, one tail at a time,
    # and conformalizes on 30% of the rows: 131 training rows, the 4/5 of 164 sales.
    assert sales_needed("cv_base", LEVELS, 5) == 50
    assert sales_needed("cv_plus", LEVELS, 3) == 60
    assert sales_needed("cqr", LEVELS, 5) == 164
    assert sales_needed("cv_base", [0.5, 0.8], 5) == 13  # 1/(1 - 0.8) is 5 scores, as MAPIE has it


@pytest.mark.parametrize(("variant", "levels"), [("cv_base", LEVELS), ("cqr", [0.9])])
def test_mapie_calibrates_at_the_minimum_and_refuses_one_sale_fewer(variant, levels):
    sold = _sold(400)
    estimator = build_model("ridge", get_feature_set("task6"))
    need = sales_needed(variant, levels, 5)
    X = sold.head(need)
    scores = compare_variants(estimator, X, X["ClosePrice"], [variant], levels, 5, n_jobs=1)
    assert len(scores) == len(levels)
    X = sold.head(need - 1)
    with pytest.raises(ValueError, match="too low"):
        compare_variants(estimator, X, X["ClosePrice"], [variant], levels, 5, n_jobs=1)
