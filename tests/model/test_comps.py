"""Comparable sales from the nearest-neighbour index: the same frames as the brute-force lookup it
replaced (same school first, ties by sold row, never the listing itself), and fast on 100k homes."""

from __future__ import annotations

import pickle
import time

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from homevision.data.listings import coerce_types
from homevision.data.synthetic import generate_listings
from homevision.features import get_feature_set
from homevision.valuation.comps import COMP_COLUMNS, ComparablesIndex
from homevision.valuation.records import records_frame

SCHOOL = "ElementarySchoolName"


def brute_force(index: ComparablesIndex, X: pd.DataFrame, k: int | None = None) -> list:
    """Return the comps of each row of X as the lookup did before the index: a full distance
    computation and a stable sort over every sold home per row (the reference)."""
    k = k or index.k
    points, attrs = index._embed(X), pd.DataFrame(index._attributes(X))
    sold = index.sold_
    out = []
    for i in range(len(X)):
        distance = np.sqrt(((index.points_ - points[i]) ** 2).sum(axis=1))
        same = (sold["school"] == attrs.at[i, "school"]).to_numpy()
        itself = (sold["MLSNumber"].astype(str) == str(attrs.at[i, "MLSNumber"])).to_numpy()
        order = np.lexsort((distance, ~same))  # same school first, then nearest
        order = order[~itself[order]][:k]
        comps = sold.iloc[order]
        out.append(
            pd.DataFrame(
                {
                    "MLSNumber": comps["MLSNumber"].to_numpy(),
                    "ClosePrice": comps["ClosePrice"].to_numpy(),
                    "distance": distance[order].round(3),
                    "same_school": same[order],
                    "ElementarySchoolName": comps["school"].to_numpy(),
                    "sqft_diff": comps["sqft"].to_numpy() - attrs.at[i, "sqft"],
                    "beds_diff": comps["beds"].to_numpy() - attrs.at[i, "beds"],
                    "baths_diff": comps["baths"].to_numpy() - attrs.at[i, "baths"],
                    "lot_diff": comps["lot"].to_numpy() - attrs.at[i, "lot"],
                }
            )
        )
    return out


def assert_same_comps(got: list[pd.DataFrame], expected: list[pd.DataFrame]) -> None:
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert list(g.columns) == COMP_COLUMNS, i
        pd.testing.assert_frame_equal(g, e, check_exact=True, obj=f"comps of row {i}")


def assert_values_read_as_frames(got) -> None:
    """A batch's comps read as lists (ComparableFrames.values, what a text column reads) hold
    what each home's frame holds, whether or not its frame was built first; a frame read twice
    is the same frame."""
    for i in range(len(got)):
        for column in got.columns:
            values, expected = got.values(i, column), got[i][column].tolist()
            assert len(values) == len(expected), (i, column)
            for a, b in zip(values, expected, strict=True):  # the same values, NaN included
                assert type(a) is type(b) and (a == b or (a != a and b != b)), (i, column, a, b)
        assert got[i] is got[i]
    assert got[-1] is got[len(got) - 1]


def listings(rows: int, seed: int) -> pd.DataFrame:
    """Synthetic listings of one market (all statuses), typed as the loader types them."""
    frame = coerce_types(generate_listings(rows, seed, market_seed=0).astype(object))
    return frame.reset_index(drop=True)


@pytest.fixture(scope="module")
def awkward_sold() -> pd.DataFrame:
    """A few hundred sold homes with the awkward cases: a school with 3 homes, homes without a
    school (None and NaN), 8 copies of one home (ties at distance 0) and 4 of another in a
    school of its own, and two homes sharing an MLSNumber."""
    frame = listings(1200, seed=3)
    sold = frame[frame["Status"] == "Sold"].reset_index(drop=True)
    sold[SCHOOL] = sold[SCHOOL].astype(object)
    sold.loc[[3, 40, 77], SCHOOL] = "Tiny"
    sold.loc[[5, 50], SCHOOL] = None
    sold.loc[[6, 60], SCHOOL] = np.nan
    copies = pd.concat([sold.iloc[[10]]] * 8 + [sold.iloc[[20]].assign(**{SCHOOL: "Twin"})] * 4)
    copies["MLSNumber"] = np.arange(9_000_000, 9_000_000 + len(copies))
    sold = pd.concat([sold, copies], ignore_index=True)
    sold.loc[len(sold) - 1, "MLSNumber"] = sold.loc[len(sold) - 2, "MLSNumber"]
    sold["MLSNumber"] = sold["MLSNumber"].astype("Int64")
    return sold


@pytest.fixture(scope="module")
def fitted(awkward_sold: pd.DataFrame) -> ComparablesIndex:
    return ComparablesIndex(get_feature_set("task6"), k=5).fit(
        awkward_sold, awkward_sold["ClosePrice"]
    )


@pytest.fixture(scope="module")
def queries(awkward_sold: pd.DataFrame) -> pd.DataFrame:
    """Sold homes asked about themselves (every awkward one included), fresh listings (some of
    an unseen school) and fresh listings given the awkward schools."""
    fresh = listings(120, seed=8)
    fresh[SCHOOL] = fresh[SCHOOL].astype(object)
    assert (fresh[SCHOOL] == "Zephyr Ridge").any()  # a school no sold home has
    retagged = fresh.head(12).copy()
    retagged[SCHOOL] = ["Tiny", "Tiny", "Twin", "Twin", None, np.nan, "Nowhere"] + [None] * 5
    itself = awkward_sold.iloc[[*range(0, 80), *range(len(awkward_sold) - 12, len(awkward_sold))]]
    return pd.concat([itself, fresh, retagged], ignore_index=True)


def test_query_returns_the_brute_force_comps(fitted, queries):
    assert_same_comps(fitted.query(queries), brute_force(fitted, queries))


@pytest.mark.parametrize("k", [1, 3, 12])
def test_other_k_returns_the_brute_force_comps(fitted, queries, k):
    assert_same_comps(fitted.query(queries, k=k), brute_force(fitted, queries, k=k))


def test_the_awkward_cases_are_what_they_claim(fitted, queries, awkward_sold):
    comps = fitted.query(queries)
    for i in range(len(queries)):
        assert str(queries["MLSNumber"].iloc[i]) not in set(comps[i]["MLSNumber"].astype(str))
    sold_ids = list(awkward_sold["MLSNumber"])
    # A "Tiny" home: its two schoolmates first, then three homes of other schools.
    tiny = comps[sold_ids.index(awkward_sold["MLSNumber"].iloc[3])]
    assert tiny["same_school"].tolist() == [True, True, False, False, False]
    # A home without a school has no same-school comps.
    assert not comps[5]["same_school"].any() and not comps[6]["same_school"].any()
    # Copies of one home: the other copies at distance 0, the lowest rows first.
    first_copy = len(awkward_sold) - 12
    copy_comps = comps[80]
    assert str(queries["MLSNumber"].iloc[80]) == str(awkward_sold["MLSNumber"].iloc[first_copy])
    assert copy_comps["distance"].tolist()[:5] == [0.0] * 5
    expected = awkward_sold["MLSNumber"].iloc[[10, first_copy + 1, first_copy + 2, first_copy + 3]]
    assert copy_comps["MLSNumber"].tolist()[:4] == expected.tolist()


def test_ties_resolve_by_sold_row_as_the_stable_sort_did():
    """Sixty identical homes in one school and twenty in another, shuffled among the others:
    every answer is a tie, which the k-d tree returns in no particular order; the comps are the
    tied homes of the lowest rows, as the stable sort gave."""
    base = listings(400, seed=5)
    base = base[base["Status"] == "Sold"].reset_index(drop=True)
    home = base.iloc[[0]]
    copies = [home.assign(**{SCHOOL: "Aspen"})] * 60 + [home.assign(**{SCHOOL: "Birch"})] * 20
    sold = pd.concat([base, *copies], ignore_index=True)
    sold = sold.sample(frac=1, random_state=0).reset_index(drop=True)
    sold["MLSNumber"] = np.arange(len(sold))
    index = ComparablesIndex(get_feature_set("task6"), k=5).fit(sold, sold["ClosePrice"])
    tied = sold[sold["SqFtTotal"] == home["SqFtTotal"].iloc[0]]
    aspen = tied.index[tied[SCHOOL] == "Aspen"]
    queries = sold.iloc[[aspen[0], aspen[30], *tied.index[tied[SCHOOL] == "Birch"][:2]]]
    queries = pd.concat([queries, queries.assign(**{SCHOOL: "Nowhere"})], ignore_index=True)
    for k in (5, 25, 70):
        assert_same_comps(index.query(queries, k=k), brute_force(index, queries, k=k))
    first = index.query(queries.iloc[[1]], k=5)[0]
    assert first["MLSNumber"].tolist() == aspen[:5].tolist()  # aspen[30] is not among them
    assert first["distance"].tolist() == [0.0] * 5


def test_text_columns_get_the_dtype_a_frame_of_their_own_gets(awkward_sold):
    """pandas infers a text column's dtype per frame: str for text (and missing values), object
    for no text at all (an empty frame, comps without a school) or a mix with numbers."""
    sold = awkward_sold.head(60).copy()
    sold[SCHOOL] = sold[SCHOOL].where(np.arange(len(sold)) % 2 == 0, None)
    sold["MLSNumber"] = [f"A{i}" for i in range(len(sold))]
    index = ComparablesIndex(get_feature_set("task6"), k=3).fit(sold, sold["ClosePrice"])
    queries = pd.concat([sold, sold.assign(**{SCHOOL: None})], ignore_index=True)
    got = index.query(queries)
    assert_values_read_as_frames(index.query(queries))  # lists first, then the frames
    assert_same_comps(got, brute_force(index, queries))
    assert {str(c[SCHOOL].dtype) for c in got} == {"str", "object"}

    sold["MLSNumber"] = [f"A{i}" if i % 3 else i for i in range(len(sold))]
    index = ComparablesIndex(get_feature_set("task6"), k=3).fit(sold, sold["ClosePrice"])
    got = index.query(queries)
    assert_values_read_as_frames(index.query(queries))
    assert_same_comps(got, brute_force(index, queries))
    assert {str(c["MLSNumber"].dtype) for c in got} == {"str", "object"}

    one = ComparablesIndex(get_feature_set("task6"), k=3).fit(
        sold.iloc[[1]], sold["ClosePrice"][:1]
    )
    alone = one.query(sold.iloc[[1, 2]])
    assert [len(c) for c in alone] == [0, 1]
    assert_same_comps(alone, brute_force(one, sold.iloc[[1, 2]]))


def test_comps_read_as_lists_hold_what_their_frames_hold():
    """Homes whose comps are cut from the batch's frame (text with a missing value: pandas
    turns None into NaN there) and homes with a frame of their own (no text at all)."""
    from homevision.valuation.comps import ComparableFrames

    columns = {
        "MLSNumber": np.array(["A1", None, "A3", None, 7, "A9"], dtype=object),
        "ClosePrice": np.array([1.0, np.nan, 3.0, 4.0, 5.0, 6.0]),
        "ElementarySchoolName": np.array(["x", None, None, None, "y", "z"], dtype=object),
    }
    frames = ComparableFrames(columns, np.array([3, 1, 0, 2]))
    assert len(frames) == 4 and frames.alone.tolist() == [True, True, True, True]
    columns["MLSNumber"][4] = "A7"
    frames = ComparableFrames(columns, np.array([3, 1, 0, 2]))
    assert frames.alone.tolist() == [False, True, True, False]
    school = frames.values(0, "ElementarySchoolName")
    assert school[0] == "x" and all(isinstance(v, float) and v != v for v in school[1:])
    assert frames.values(1, "MLSNumber") == [None]  # a frame of its own keeps None
    assert_values_read_as_frames(frames)
    assert frames[2].empty and list(frames[2].columns) == list(columns)


def test_fewer_sold_homes_than_k_gives_them_all(fitted, awkward_sold):
    rows = awkward_sold.head(2)
    small = ComparablesIndex(get_feature_set("task6"), k=5).fit(rows, rows["ClosePrice"])
    got = small.query(awkward_sold.head(3))
    assert [len(c) for c in got] == [1, 1, 2]
    assert_same_comps(got, brute_force(small, awkward_sold.head(3)))


def test_rows_without_mlsnumber_are_numbered_as_before(fitted, queries):
    rows = queries.drop(columns="MLSNumber").head(20)
    assert_same_comps(fitted.query(rows), brute_force(fitted, rows))


def test_homes_given_as_records_get_the_comps_their_frame_gets(fitted, queries):
    """The API's records (Python values, None where missing; baths and a size as text, as a
    body may give them) read as the frame of those records does, and as the typed rows do."""
    rows = queries.head(60).astype(object)
    records = [
        {k: (None if pd.isna(v) else v) for k, v in row.items()}
        for row in rows.to_dict(orient="records")
    ]
    records[0]["SqFtTotal"] = str(records[0]["SqFtTotal"])
    records[1]["BathsTotal"] = "2.1"
    frame = records_frame(records, get_feature_set("task6").raw_columns)
    assert_same_comps(fitted.query(records), list(fitted.query(frame)))
    assert_same_comps(fitted.query(records[2:]), list(fitted.query(queries.iloc[2:60])))
    # A listing without an MLSNumber beside a sold one: a frame of the two holds the sold one's
    # id as a float ("20000508.0"), which matches no sold home, so it was its own first comp
    # (the API's frame did that); its record keeps the id, and the home is not among its comps.
    itself = records[5]["MLSNumber"]
    pair = [records[5], {**records[6], "MLSNumber": None}]
    assert str(itself) in set(fitted.ids_)
    assert str(itself) not in {str(v) for v in fitted.query(pair)[0]["MLSNumber"]}
    pickled = pickle.loads(pickle.dumps(fitted))  # the columns it caches are not pickled
    assert "_sold_columns" in vars(fitted) and "_sold_columns" not in vars(pickled)
    pickled.compiled_ = None  # a space the engine cannot compile: scikit-learn's transform
    assert_same_comps(pickled.query(records), list(fitted.query(frame)))


def test_a_pickled_index_answers_the_same(fitted, queries):
    expected = fitted.query(queries.head(40))
    assert_same_comps(pickle.loads(cloudpickle.dumps(fitted)).query(queries.head(40)), expected)
    # An index pickled before comps were indexed has only the sold homes: it indexes them.
    old = pickle.loads(pickle.dumps(fitted))
    for name in ("index_", "schools_", "ids_", "school_codes_"):
        delattr(old, name)
    assert_same_comps(old.query(queries.head(40)), expected)


def hundred_thousand_sold(seed: int = 0) -> pd.DataFrame:
    """100,000 sold homes: 6,000-odd synthetic ones resampled, sizes jittered by a few percent."""
    frame = listings(20_000, seed)
    sold = frame[frame["Status"] == "Sold"].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    big = sold.iloc[rng.integers(0, len(sold), 100_000)].reset_index(drop=True)
    for column in ("SqFtTotal", "LotSizeAreaSQFT"):
        big[column] = (big[column] * rng.uniform(0.97, 1.03, len(big))).round()
    big["MLSNumber"] = np.arange(10_000_000, 10_100_000)
    return big


def test_a_thousand_homes_against_100k_sold_take_seconds():
    sold = hundred_thousand_sold()
    index = ComparablesIndex(get_feature_set("task6"), k=5).fit(sold, sold["ClosePrice"])
    fresh = listings(1_000, seed=1)
    rows = pd.concat([fresh.head(900), sold.sample(100, random_state=2)], ignore_index=True)
    start = time.perf_counter()
    comps = index.query(rows)
    elapsed = time.perf_counter() - start
    assert elapsed < 20, elapsed  # the brute-force lookup took ~27 s on 2 cores
    assert [len(c) for c in comps] == [5] * len(rows)
    sample = [0, 1, 2, 450, 899, 900, 999]
    assert_same_comps([comps[i] for i in sample], brute_force(index, rows.iloc[sample]))


def test_with_the_comparable_sales_model_the_explanation_shows_its_comparables():
    from homevision.training.candidates import build_blend, build_model
    from homevision.valuation.model import ValuationModel
    from homevision.valuation.sales_comparison import find_sales_comparison

    frame = coerce_types(generate_listings(500, seed=4).astype(object))
    sold = frame[frame["Status"] == "Sold"].reset_index(drop=True)
    X, y = sold.head(200), sold["ClosePrice"].head(200).astype(float)
    fs = get_feature_set("task6")
    for estimator in (
        build_model("comparables", fs, {"n_comps": 4}),
        build_blend([("svr", {}), ("comparables", {"n_comps": 4})], fs),
    ):
        model = ValuationModel(estimator, interval_variant="cv_base", background_rows=8)
        model.fit(X, y)
        assert model.comparables_order.startswith("the sales the comparable-sales model")
        features, sales = find_sales_comparison(model.estimator_)
        homes = X.head(3)
        frames = model.comparable_sales(homes, k=4)
        rows, _ = sales.nearest(features.transform(homes), 5)
        for i, comps in enumerate(frames):
            assert list(comps.columns) == COMP_COLUMNS and len(comps) == 4
            own = str(homes["MLSNumber"].iloc[i])
            assert own not in comps["MLSNumber"].astype(str).tolist()  # never itself
            expected = [
                str(X["MLSNumber"].iloc[r]) for r in rows[i] if str(X["MLSNumber"].iloc[r]) != own
            ][:4]
            assert comps["MLSNumber"].astype(str).tolist() == expected
            assert (np.diff(comps["distance"].to_numpy()) >= 0).all()
            same = comps[SCHOOL].to_numpy(object) == homes[SCHOOL].iloc[i]
            assert comps["same_school"].tolist() == same.tolist()
    ridge = ValuationModel(build_model("ridge", fs)).fit(X, y)
    assert find_sales_comparison(ridge.estimator_) is None
    assert ridge.comparables_order == "same school first"


def test_a_comparable_sales_model_fitted_with_evidence_shows_sales_only():
    from homevision.feature_sets import with_evidence
    from homevision.training.candidates import build_model
    from homevision.valuation.model import ValuationModel
    from homevision.valuation.sales_comparison import find_sales_comparison

    frame = coerce_types(generate_listings(500, seed=4).astype(object))
    sold = frame[frame["Status"] == "Sold"].reset_index(drop=True).head(200)
    unsold = frame[frame["Status"] != "Sold"].reset_index(drop=True)
    fs = with_evidence(get_feature_set("task6"), unsold, sold)
    y = sold["ClosePrice"].astype(float)
    model = ValuationModel(build_model("comparables", fs, {"n_comps": 4}), "task6", "cv_base")
    model.fit(sold, y)
    features, sales = find_sales_comparison(model.estimator_)
    assert model.estimator_.evidence_rows_ == len(fs.evidence) > 0
    homes = fs.evidence.frame.head(5)  # each is nearest to its own contract, not a sale
    frames = model.comparable_sales(homes, k=4)
    rows, _ = sales.nearest(features.transform(homes), len(sales.sales_))
    sold_ids = sold["MLSNumber"].astype(str).tolist()
    for i, comps in enumerate(frames):
        expected = [sold_ids[r] for r in rows[i] if r < len(sold)][:4]
        assert comps["MLSNumber"].astype(str).tolist() == expected
        assert comps["ClosePrice"].tolist() == [y.iloc[sold_ids.index(m)] for m in expected]
