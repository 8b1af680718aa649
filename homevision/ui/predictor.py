"""Streamlit app: `homevision ui [--model REF]` or, as in the take-home,
`streamlit run homevision/ui/predictor.py [RUN_ID]` (both bind 127.0.0.1 with the developer
toolbar hidden: see .streamlit/config.toml and homevision.ui.streamlit_command).

Three pages: every unsold listing with our valuation and range against its list price; a form
that asks for every field the served model reads and values one home, with why (a SHAP
waterfall in dollars) and its comparable sales; and the served model's figures read from its
MLflow run, range coverage at every level included. Everything is in dollars and real units; a
listing the model cannot value says why, and one outside its training data says so.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
import streamlit as st

from homevision.data.fields import FIELDS, FieldRule, format_baths, parse_baths
from homevision.data.listings import NotAnExportError, coerce_types, read_export
from homevision.data.sources import resolve_data_path
from homevision.tracking import (
    ModelNotFoundError,
    describe_model,
    load_model,
    pin_model_uri,
    tracking_uri,
)
from homevision.training.metrics import BOUND_LEVEL
from homevision.ui.charts import money, waterfall_figure
from homevision.valuation.predict import unsold_rows, value_frame, value_listings

log = logging.getLogger("homevision.ui")
OTHER = "Other (type a name)"
SCHOOL = "ElementarySchoolName"
LISTING_COLUMNS = ["Status", "ListPrice", "SqFtTotal", SCHOOL]  # shown when the export has them
FLAGS = ["over-priced", "under-priced", "within range", "no list price", "no valuation"]
MONEY = {"format": "dollar", "step": 1}  # "$463,745": whole dollars, thousands separators


def model_ref() -> str | None:
    """The model to serve: the script argument (a run id or any reference), else
    HOMEVISION_MODEL, else the champion."""
    # Under `streamlit run predictor.py RUN_ID`, argv[0] is this script; elsewhere (tests,
    # other launchers) argv belongs to someone else.
    ours = sys.argv and sys.argv[0].endswith("predictor.py")
    args = [a for a in sys.argv[1:] if not a.startswith("-")] if ours else []
    return args[0] if args else os.environ.get("HOMEVISION_MODEL") or None


ALIAS_CHECK_SECONDS = 30  # a new champion shows in the app within this long (issue 22)


def pinned(ref: str | None) -> str:
    """The version `ref` names now (models:/NAME/VERSION for an alias), asked of the registry
    at most every ALIAS_CHECK_SECONDS: models and figures are cached per version, so the app
    notices a new champion instead of keeping the first one for ever."""
    return _pinned(ref, tracking_uri())


@st.cache_data(ttl=ALIAS_CHECK_SECONDS, show_spinner=False)
def _pinned(ref: str | None, store: str) -> str:
    return pin_model_uri(ref)


def get_model(ref: str | None):
    """The model behind `ref` in the tracking store in force (loaded once per version)."""
    return _model(pinned(ref), tracking_uri())


@st.cache_resource(show_spinner="Loading the model...")
def _model(version_uri: str, store: str):
    return load_model(version_uri)


def get_info(ref: str | None) -> dict:
    return _info(ref, pinned(ref), tracking_uri())


@st.cache_data(show_spinner="Reading the model's run...")
def _info(ref: str | None, version_uri: str, store: str) -> dict:
    return describe_model(ref, version_uri)


def flag_listings(table: pd.DataFrame) -> pd.DataFrame:
    """Add `gap_pct` (list price vs valuation) and `flag`: over-/under-priced or within range
    only for a listing that has both a valuation and a list price; the others say which is
    missing (a NaN never reads as "within range")."""
    out = table.copy()
    valued = out["error"].eq("") & out["predicted_close_price"].notna()
    price = out["ListPrice"] if "ListPrice" in out else pd.Series(np.nan, index=out.index)
    listed = price.notna()
    out["flag"] = np.select(
        [
            ~valued,
            ~listed,
            price > out["close_price_high"],
            price < out["close_price_low"],
        ],
        ["no valuation", "no list price", "over-priced", "under-priced"],
        default="within range",
    )
    if "ListPrice" in out:
        gap = 100 * (price - out["predicted_close_price"]) / out["predicted_close_price"]
        out["gap_pct"] = gap.where(valued & listed)
    return out


def valued_listings(ref: str | None) -> pd.DataFrame:
    """Every unsold listing of the default data with valuation, range, flags, and whichever of
    Status, ListPrice, SqFtTotal and school the export has (cached per model, file and its
    modification time)."""
    path = resolve_data_path(None)
    stamp = path.stat().st_mtime_ns if path.exists() else 0
    return _valued_listings(pinned(ref), tracking_uri(), str(path), stamp)


@st.cache_data(show_spinner="Valuing the listings...")
def _valued_listings(ref: str, store: str, path: str, stamp: int) -> pd.DataFrame:
    raw = read_export(path)
    rows = unsold_rows(raw).reset_index(drop=True)
    frame = value_listings(get_model(ref), rows).frame
    typed = coerce_types(rows)
    present = [c for c in LISTING_COLUMNS if c in typed.columns]
    table = flag_listings(pd.concat([frame, typed[present]], axis=1))
    order = [
        "MLSNumber",
        "Status",
        "ListPrice",
        "predicted_close_price",
        "close_price_low",
        "close_price_high",
        "gap_pct",
        "flag",
        "SqFtTotal",
        SCHOOL,
        "warning",
        "error",
    ]
    return table[[c for c in order if c in table.columns]]


def listing_columns() -> dict:
    """Column labels and formats of the listings table (money in dollars)."""
    return {
        "MLSNumber": st.column_config.TextColumn("MLS number"),
        "predicted_close_price": st.column_config.NumberColumn("valuation", **MONEY),
        "close_price_low": st.column_config.NumberColumn("low", **MONEY),
        "close_price_high": st.column_config.NumberColumn("high", **MONEY),
        "ListPrice": st.column_config.NumberColumn("list price", **MONEY),
        "gap_pct": st.column_config.NumberColumn("list vs valuation", format="%.1f%%"),
        "SqFtTotal": st.column_config.NumberColumn("sqft", format="localized", step=1),
        SCHOOL: st.column_config.TextColumn("elementary school"),
    }


def listings_page(ref: str | None) -> None:
    st.subheader("Unsold listings: list price against our valuation")
    try:
        table = valued_listings(ref)
    except NotAnExportError as err:
        st.error(f"The default data cannot be read: {err}")
        return
    present = [f for f in FLAGS if f in set(table["flag"])]
    flags = st.multiselect("Show", present, default=present)
    shown = table[table["flag"].isin(flags)]
    if SCHOOL in table:
        schools = sorted(table[SCHOOL].dropna().astype(str).unique())
        chosen = st.multiselect("Elementary school", schools)
        if chosen:
            shown = shown[shown[SCHOOL].astype(str).isin(chosen)]
    missing = [c for c in ("Status", "ListPrice") if c not in table]
    note = f" This export has no {' or '.join(missing)} column." if missing else ""
    st.caption(
        f"{len(shown):,} of {len(table):,} listings. Click a column header to sort. Listings "
        f"without a valuation (see error) or a list price are not compared.{note}"
    )
    st.dataframe(shown, hide_index=True, column_config=listing_columns())
    st.download_button("Download CSV", shown.to_csv(index=False), "valuations.csv", "text/csv")


# ---- the valuation form ------------------------------------------------------------------


def form_rules(model) -> list[FieldRule]:
    """The field rules of every raw column the model reads, in the export's usual order (a
    column without a rule gets a plain text rule)."""
    columns = list(model.raw_columns_)
    known = [rule for name, rule in FIELDS.items() if name in columns]
    unknown = [FieldRule(c, "text", c, c) for c in columns if c not in FIELDS]
    return known + unknown


def seen_values(model, column: str) -> list[str]:
    """Values of a text column in the model's reference data (its background homes and, for
    the school, its comparable sales)."""
    values = list(model.background_[column]) if column in model.background_ else []
    sold = getattr(getattr(model, "comps_", None), "sold_", None)
    if column == SCHOOL and sold is not None and "school" in sold:
        values += list(sold["school"])
    return sorted({str(v) for v in values if v is not None and not pd.isna(v)})


def typical(model, column: str) -> object:
    """The most typical value of a column in the reference homes (median / most common)."""
    values = model.background_[column].dropna() if column in model.background_ else []
    if len(values) == 0:
        return None
    if pd.api.types.is_numeric_dtype(values):
        return float(values.median())
    return values.astype(str).mode().iloc[0]


def needs_entry(rule: FieldRule) -> bool:
    """Money fields start empty and must be entered: no typical asking price is assumed."""
    return rule.unit == "USD"


def _bounds(rule: FieldRule) -> tuple[float | None, float | None]:
    """A form's bounds: the field's own, raised to where the pipeline stops repairing (days on
    market from 0, asking price from 10,000), since lower values are typos."""
    low = rule.minimum
    if rule.repair_below is not None and (low is None or low < rule.repair_below):
        low = rule.repair_below
    return low, rule.maximum


def number_widget(container, rule: FieldRule, default: object):
    low, high = _bounds(rule)
    if rule.kind == "integer":
        value = None if default is None else round(float(default))
        if value is not None:
            value = min(max(value, int(low or 0)), int(high if high is not None else value))
        return container.number_input(
            rule.label,
            min_value=None if low is None else int(low),
            max_value=None if high is None else int(high),
            value=value,
            step=int(rule.step or 1),
            help=rule.description,
            key=f"field_{rule.name}",
        )
    value = None if default is None else float(default)
    if value is not None and low is not None:
        value = max(value, float(low))
    if value is not None and high is not None:
        value = min(value, float(high))
    return container.number_input(
        rule.label,
        min_value=None if low is None else float(low),
        max_value=None if high is None else float(high),
        value=value,
        step=float(rule.step or 1),
        format="%.0f" if (rule.step or 1) >= 1 else None,
        placeholder="required" if needs_entry(rule) else None,
        help=rule.description,
        key=f"field_{rule.name}",
    )


def field_widgets(model, rule: FieldRule, container) -> object:
    """Draw the input(s) of one field; return a function of nothing that gives its raw value
    once the form is submitted (text choices need the 'Other' box read too)."""
    default = None if needs_entry(rule) else typical(model, rule.name)
    if rule.kind in ("integer", "number"):
        value = number_widget(container, rule, default)
        return lambda: None if value is None else float(value)
    if rule.kind == "baths":
        full_rule, half_rule = rule.parts
        try:
            full0, half0 = parse_baths(default) or (2, 0)
        except ValueError:
            full0, half0 = 2, 0
        full = number_widget(container, full_rule, full0)
        half = number_widget(container, half_rule, half0)
        return lambda: format_baths(full, half)
    if rule.kind == "boolean":
        checked = container.checkbox(
            rule.label, value=bool(default), help=rule.description, key=f"field_{rule.name}"
        )
        return lambda: 1.0 if checked else 0.0
    options = [*seen_values(model, rule.name), OTHER]
    index = options.index(default) if default in options else 0
    choice = container.selectbox(
        rule.label, options, index=index, help=rule.description, key=f"field_{rule.name}"
    )
    other = container.text_input(
        f"{rule.label}: a name not in the list",
        max_chars=rule.max_length,
        help=f"Used when '{OTHER}' is chosen; new names are accepted.",
        key=f"other_{rule.name}",
    )
    return lambda: (other.strip() or None) if choice == OTHER else choice


def value_page(ref: str | None) -> None:
    model = get_model(ref)
    rules = form_rules(model)
    st.subheader("Value a home")
    with st.form("home"):
        columns = st.columns(2)
        readers = {
            rule.name: field_widgets(model, rule, columns[i % 2]) for i, rule in enumerate(rules)
        }
        actual = st.number_input(
            "Actual sale price, if known (USD)", min_value=0, value=0, step=1000
        )
        submitted = st.form_submit_button("Value this home")
    entered = [r.label for r in rules if needs_entry(r)]
    if not submitted:
        st.caption(
            f"The form asks for every field this model reads. Fields start at the typical "
            f"value of its {len(model.background_)} reference homes"
            + (f"; {', '.join(entered)} starts empty and must be entered." if entered else ".")
        )
        return
    home = {name: read() for name, read in readers.items()}
    missing = [r.label for r in rules if needs_entry(r) and home[r.name] is None]
    if missing:
        st.error(f"Enter {', '.join(missing)}: this model reads it, and no value is assumed.")
        return
    frame = pd.DataFrame([home])[model.raw_columns_]
    try:
        valued = value_frame(model, frame, explain=True)
    except Exception:  # an unexpected failure: one sentence here, the cause in the log
        log.exception("The form's home could not be valued")
        st.error("This home could not be valued (the cause has been logged).")
        return
    row = valued.frame.iloc[0]
    if row["warning"]:
        st.warning(f"Outside the training data: {row['warning']}")
    if row["error"]:
        st.error(f"Not valued: {row['error']}")
        return
    a, b, c = st.columns(3)
    level = f"{100 * valued.confidence:.0f}%"
    a.metric("Estimated price", money(row["predicted_close_price"]))
    b.metric(f"{level} range, low", money(row["close_price_low"]))
    c.metric(f"{level} range, high", money(row["close_price_high"]))
    if actual:
        error = row["predicted_close_price"] - actual
        st.info(
            f"Error against the actual price: {money(error, sign=True)} "
            f"({100 * error / actual:+.1f}%)"
        )
    explanation = valued.explanations[0]
    st.markdown("**Why this price** (SHAP contributions in dollars; they add up to the estimate)")
    figure = waterfall_figure(
        explanation.base_value, explanation.contributions, frame.iloc[0].to_dict()
    )
    st.pyplot(figure, clear_figure=True)
    plt.close(figure)
    st.markdown(f"**Comparable sales** ({model.comparables_order})")
    st.dataframe(
        explanation.comparables,
        hide_index=True,
        column_config={
            "MLSNumber": st.column_config.TextColumn("MLS number"),
            "ClosePrice": st.column_config.NumberColumn("sale price", **MONEY),
            "sqft_diff": st.column_config.NumberColumn("sqft vs this home", format="%+.0f"),
            "lot_diff": st.column_config.NumberColumn("lot vs this home", format="%+.0f"),
        },
    )


# ---- the model page ----------------------------------------------------------------------


def ranges_table(ranges: list[dict]) -> pd.DataFrame:
    """The range figures per carried level as a table of percentages."""
    table = pd.DataFrame(
        ranges, columns=["level", "coverage", "median_width", "time_ordered_coverage"]
    ).astype(float)
    table = 100 * table
    return table.rename(
        columns={
            "level": "range",
            "coverage": "coverage (random folds)",
            "median_width": "median width (% of valuation)",
            "time_ordered_coverage": "coverage (later sales)",
        }
    )


def metric_help(
    honest: dict[str, float], cv: dict[str, float], key: str, fmt: Callable[[float], str]
) -> str:
    """Return the tooltip of an honest figure on the Model page: its 90% bootstrap interval
    over the sales scored (when the run logged one), then the optimistic selection CV."""
    parts = []
    low, high = honest.get(f"{key}_low"), honest.get(f"{key}_high")
    if low is not None and high is not None:
        parts.append(
            f"{100 * BOUND_LEVEL:.0f}% interval over the sales scored: {fmt(low)} to {fmt(high)} "
            "(how far it could move on other sales like them)."
        )
    parts.append(f"Selection CV: {fmt(cv.get(key, float('nan')))}")
    return " ".join(parts)


def model_page(ref: str | None) -> None:
    try:
        info = get_info(ref)
    except Exception:  # the run cannot be read: say so, keep the other pages
        log.exception("Could not read the model's run")
        st.error("The model's run cannot be read from the tracking store.")
        return
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
            ("RMSE", "rmse", money),
            ("MAE", "mae", money),
            ("MAPE", "mape", "{:.1%}".format),
            ("MdAPE", "mdape", "{:.1%}".format),
        ],
        strict=True,
    ):
        if key in honest:
            col.metric(
                f"{label} (honest, nested CV)",
                fmt(honest[key]),
                help=metric_help(honest, cv, key, fmt),
            )
    ranges = info.get("ranges") or []
    if ranges:
        st.markdown(
            "**Price ranges**: how often the sale price fell inside the range at each level, "
            "and how wide the range is"
        )
        percent = st.column_config.NumberColumn(format="%.1f%%")
        table = ranges_table(ranges)
        st.dataframe(
            table,
            hide_index=True,
            column_config={c: percent for c in table.columns}
            | {"range": st.column_config.NumberColumn(format="%.0f%%")},
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
    st.set_option("client.toolbarMode", "viewer")  # no developer menu, whatever the launcher
    st.title("homevision: home valuations")
    ref = model_ref()
    try:
        get_model(ref)
    except ModelNotFoundError as err:  # a reference that resolves to no model: say which
        st.error(f"Cannot load the model: {err}")
        st.stop()
    except Exception:  # a corrupt artifact, an unpickling error: one sentence, cause logged
        log.exception("Could not load the model")
        st.error("Cannot load the model: it could not be read (the cause has been logged).")
        st.stop()
    listings, value, model = st.tabs(["Listings", "Value a home", "Model"])
    with value:
        value_page(ref)
    with listings:
        listings_page(ref)
    with model:
        model_page(ref)


if __name__ == "__main__":  # `streamlit run` and AppTest run the file as __main__
    main()
