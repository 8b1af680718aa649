"""Streamlit app: `homevision ui [--model REF]` or, as in the take-home,
`streamlit run homevision/ui/predictor.py [RUN_ID]`.

Three pages: every unsold listing with our valuation and range against its list price; a form
that values one home and shows why (SHAP waterfall in dollars) and its comparable sales; and the
served model's figures read from its MLflow run. Everything is in dollars and real units.
"""

from __future__ import annotations

import os
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import shap
import streamlit as st

from homevision.data.listings import NotAnExportError, coerce_types, read_export
from homevision.data.sources import resolve_data_path
from homevision.tracking import (
    ModelNotFoundError,
    describe_model,
    load_model,
    tracking_uri,
)
from homevision.valuation.predict import unsold_rows, value_listings

OTHER_SCHOOL = "Other (type a name)"
TASK6 = ["SqFtTotal", "BedsTotal", "BathsTotal", "LotSizeAreaSQFT", "CDOM", "ElementarySchoolName"]


def model_ref() -> str | None:
    """The model to serve: the script argument (a run id or any reference), else
    HOMEVISION_MODEL, else the champion."""
    # Under `streamlit run predictor.py RUN_ID`, argv[0] is this script; elsewhere (tests,
    # other launchers) argv belongs to someone else.
    ours = sys.argv and sys.argv[0].endswith("predictor.py")
    args = [a for a in sys.argv[1:] if not a.startswith("-")] if ours else []
    return args[0] if args else os.environ.get("HOMEVISION_MODEL") or None


@st.cache_resource(show_spinner="Loading the model...")
def get_model(ref: str | None):
    return load_model(ref)


@st.cache_data(show_spinner="Reading the model's run...")
def get_info(ref: str | None) -> dict:
    return describe_model(ref)


@st.cache_data(show_spinner="Valuing the listings...")
def valued_listings(ref: str | None) -> pd.DataFrame:
    """Every unsold listing of the default data with valuation, range and list-price gap."""
    raw = read_export(resolve_data_path(None))
    rows = unsold_rows(raw).reset_index(drop=True)
    frame = value_listings(get_model(ref), rows).frame
    typed = coerce_types(rows)
    out = pd.concat(
        [frame, typed[["Status", "ListPrice", "SqFtTotal", "ElementarySchoolName"]]], axis=1
    )
    out["gap_pct"] = (
        100 * (out["ListPrice"] - out["predicted_close_price"]) / out["predicted_close_price"]
    )
    out["flag"] = np.select(
        [out["ListPrice"] > out["close_price_high"], out["ListPrice"] < out["close_price_low"]],
        ["over-priced", "under-priced"],
        default="within range",
    )
    return out


def listings_page(ref: str | None) -> None:
    st.subheader("Unsold listings: list price against our valuation")
    try:
        table = valued_listings(ref)
    except NotAnExportError as err:
        st.error(f"The default data cannot be read: {err}")
        return
    flags = st.multiselect(
        "Show",
        ["over-priced", "under-priced", "within range"],
        default=["over-priced", "under-priced", "within range"],
    )
    schools = sorted(table["ElementarySchoolName"].dropna().astype(str).unique())
    chosen = st.multiselect("Elementary school", schools)
    shown = table[table["flag"].isin(flags)]
    if chosen:
        shown = shown[shown["ElementarySchoolName"].astype(str).isin(chosen)]
    st.caption(f"{len(shown):,} of {len(table):,} listings. Click a column header to sort.")
    st.dataframe(
        shown,
        hide_index=True,
        column_config={
            "predicted_close_price": st.column_config.NumberColumn("valuation", format="$%d"),
            "close_price_low": st.column_config.NumberColumn("low", format="$%d"),
            "close_price_high": st.column_config.NumberColumn("high", format="$%d"),
            "ListPrice": st.column_config.NumberColumn("list price", format="$%d"),
            "gap_pct": st.column_config.NumberColumn("list vs valuation", format="%.1f%%"),
            "SqFtTotal": st.column_config.NumberColumn("sqft", format="%d"),
        },
    )
    st.download_button("Download CSV", shown.to_csv(index=False), "valuations.csv", "text/csv")


def _defaults(model) -> dict:
    """Typical values (median / most common) of the model's reference homes."""
    background = model.background_
    out = {}
    for col in background.columns:
        values = background[col].dropna()
        if values.empty:
            out[col] = None
        elif pd.api.types.is_numeric_dtype(values):
            out[col] = float(values.median())
        else:
            out[col] = values.astype(str).mode().iloc[0]
    return out


def value_page(ref: str | None) -> None:
    model = get_model(ref)
    background = model.background_
    defaults = _defaults(model)
    sold = model.comps_.sold_
    st.subheader("Value a home")
    with st.form("home"):
        left, right = st.columns(2)
        sqft = left.number_input(
            "Living area (sqft)",
            min_value=300,
            max_value=20_000,
            value=int(defaults["SqFtTotal"]),
            step=50,
        )
        beds = left.number_input(
            "Bedrooms", min_value=0, max_value=12, value=int(defaults["BedsTotal"])
        )
        full = left.number_input("Full baths", min_value=0, max_value=12, value=2)
        half = left.number_input("Half baths", min_value=0, max_value=9, value=1)
        lot = right.number_input(
            "Lot size (sqft, 0 for a townhouse)",
            min_value=0,
            max_value=2_000_000,
            value=int(defaults["LotSizeAreaSQFT"]),
            step=100,
        )
        cdom = right.number_input(
            "Days on market", min_value=0, max_value=5000, value=int(defaults["CDOM"])
        )
        schools = sorted(sold["school"].dropna().astype(str).unique())
        school = right.selectbox("Elementary school", [*schools, OTHER_SCHOOL])
        other = right.text_input("New school name (when not in the list)")
        actual = right.number_input(
            "Actual sale price, if known (USD)", min_value=0, value=0, step=1000
        )
        submitted = st.form_submit_button("Value this home")
    if not submitted:
        st.caption(
            f"Ranges drawn from the {len(background)} reference homes; other columns the "
            "model reads take their typical value."
        )
        return
    home = {
        **defaults,
        "SqFtTotal": float(sqft),
        "BedsTotal": float(beds),
        "BathsTotal": f"{int(full)}.{int(half)}" if half else str(int(full)),
        "LotSizeAreaSQFT": float(lot),
        "CDOM": float(cdom),
        "ElementarySchoolName": (other.strip() or "Unknown") if school == OTHER_SCHOOL else school,
    }
    frame = pd.DataFrame([home])[model.raw_columns_]
    point, low, high = model.predict_interval(frame)
    a, b, c = st.columns(3)
    a.metric("Estimated price", f"${point[0]:,.0f}")
    b.metric(f"{100 * model.confidence:.0f}% range, low", f"${low[0]:,.0f}")
    c.metric(f"{100 * model.confidence:.0f}% range, high", f"${high[0]:,.0f}")
    if actual:
        error = point[0] - actual
        st.info(f"Error against the actual price: ${error:+,.0f} ({100 * error / actual:+.1f}%)")
    contributions = model.explain(frame)
    st.markdown("**Why this price** (SHAP contributions in dollars; they add up to the estimate)")
    explanation = shap.Explanation(
        values=contributions.values.to_numpy()[0],
        base_values=float(contributions.base_values[0]),
        data=np.array([str(v) for v in frame.iloc[0].to_numpy()], dtype=object),
        feature_names=list(frame.columns),
    )
    shap.plots.waterfall(explanation, show=False)
    st.pyplot(plt.gcf(), clear_figure=True)
    st.markdown("**Comparable sales** (same school first)")
    comps = model.comparable_sales(frame)[0]
    st.dataframe(
        comps,
        hide_index=True,
        column_config={"ClosePrice": st.column_config.NumberColumn("sale price", format="$%d")},
    )


def model_page(ref: str | None) -> None:
    info = get_info(ref)
    st.subheader(f"Model {info.get('name') or ''} v{info.get('version') or '-'}")
    st.write(
        f"Feature set **{info.get('feature_set')}**, trained {info.get('trained_at')}, "
        f"run `{info.get('run_id')}`."
    )
    honest, cv = info.get("honest_metrics", {}), info.get("cv_metrics", {})
    cols = st.columns(4)
    for col, (label, key, fmt) in zip(
        cols,
        [
            ("RMSE", "rmse", "${:,.0f}"),
            ("MAE", "mae", "${:,.0f}"),
            ("MAPE", "mape", "{:.1%}"),
            ("MdAPE", "mdape", "{:.1%}"),
        ],
        strict=True,
    ):
        if key in honest:
            col.metric(
                f"{label} (honest, nested CV)",
                fmt.format(honest[key]),
                help=f"Selection CV: {fmt.format(cv.get(key, float('nan')))}",
            )
    run_id = info.get("run_id")
    if not run_id:
        return
    mlflow.set_tracking_uri(tracking_uri())
    with tempfile.TemporaryDirectory() as tmp:
        for name, caption in [
            ("leaderboard.png", "Cross-validated leaderboard"),
            ("predicted_vs_actual.png", "Predicted vs actual (out of fold)"),
            ("shap_summary.png", "What drives the valuations"),
        ]:
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=name, dst_path=tmp
                )
            except Exception:  # an older run without this figure: skip it, say so
                st.caption(f"({name} not logged for this run)")
                continue
            st.image(path, caption=caption)


def main() -> None:
    st.set_page_config(page_title="homevision", layout="wide")
    st.title("homevision: home valuations")
    ref = model_ref()
    try:
        get_model(ref)
    except ModelNotFoundError as err:
        st.error(f"Cannot load the model: {err}")
        st.stop()
    listings, value, model = st.tabs(["Listings", "Value a home", "Model"])
    with value:
        value_page(ref)
    with listings:
        listings_page(ref)
    with model:
        model_page(ref)


main()
