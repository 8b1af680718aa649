"""`homevision monitor`: a new export against the model's reference, with Evidently.

Loads the model and its reference (logged with it at training, or an export given instead),
values the new export with the model, runs the checks of homevision/monitoring/checks.py as two
Evidently reports (all rows; the sales), and writes under reports/monitoring/: the HTML reports,
a JSON summary and a Prometheus textfile (`homevision_drift_detected`, `homevision_drift_share`,
`homevision_drift_group_detected` for monitoring/alerts.yml, read by the node exporter's
textfile collector or pushed to a Pushgateway). Each run is also an MLflow run (stage
`monitor`) with the same files and figures.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from homevision import tracking
from homevision.config import load_params, paths
from homevision.data.errors import NotAnExportError
from homevision.data.listings import is_labelled, load_listings
from homevision.data.schema import MLS_ID
from homevision.features import FeatureSet, get_feature_set
from homevision.monitoring import checks as ck
from homevision.monitoring.reference import OOF_VALUATION, load_reference
from homevision.valuation.predict import value_frame

log = logging.getLogger(__name__)
HTML_ALL = "drift_report.html"
HTML_SALES = "drift_sales.html"
SUMMARY = "drift_summary.json"
PROM_FILE = "drift.prom"
GROUP_OF = {ck.VALUATION: "valuations", ck.PRICE: "sale_price", ck.LOG_ERROR: "errors"}


@dataclass
class DriftReport:
    """The verdict, the table behind it and where its files are."""

    detected: bool
    checks: list[ck.Check]
    groups: dict[str, bool]
    summary: dict[str, Any]
    files: list[Path] = field(default_factory=list)

    @property
    def drifted_columns(self) -> list[str]:
        return ck.drifted_columns(self.checks)

    @property
    def html_path(self) -> Path | None:
        return next((p for p in self.files if p.name == HTML_ALL), None)

    @property
    def json_path(self) -> Path | None:
        return next((p for p in self.files if p.name == SUMMARY), None)


def _settings() -> dict[str, Any]:
    return load_params()["monitoring"]


def _reference_frame(model, info: dict[str, Any], reference: Path | None) -> pd.DataFrame:
    """Return the reference rows with the model's valuations (and out-of-fold ones on sales
    when the reference was logged with the model)."""
    if reference is None:
        if not info.get("run_id"):
            raise LookupError(f"{info['uri']} names no training run to find its reference in")
        return load_reference(info["run_id"])
    typed, _ = accepted_rows(reference)
    frame = typed.copy()
    frame[ck.VALUATION] = value_frame(model, typed).frame["predicted_close_price"].to_numpy()
    frame[OOF_VALUATION] = np.nan  # not the model's training data: its errors are honest
    return frame.reset_index(drop=True)


def accepted_rows(path: Path) -> tuple[pd.DataFrame, int]:
    """Return the typed accepted rows of the export at `path` and how many rows validation
    rejected (the monitor reports them). NotAnExportError when none is accepted: there is
    nothing to compare (Evidently raised on the empty frame)."""
    listings = load_listings(path)
    if listings.typed.empty:
        rejected = len(listings.validation.rejected)
        raise NotAnExportError(
            f"{path}: none of its {rejected} rows passed validation, so there is nothing to"
            f" monitor; `homevision validate --data {path}` says why."
        )
    return listings.typed, len(listings.validation.rejected)


def _errors(frame: pd.DataFrame, valuation: str) -> pd.DataFrame:
    """Return the sales of `frame` with their price and log error against `valuation`."""
    sales = frame[is_labelled(frame)].copy()
    sales = sales[sales[valuation].notna() & (sales[valuation] > 0)]
    sales[ck.LOG_ERROR] = ck.log_errors(sales[ck.PRICE], sales[valuation])
    return sales


def _run_report(metrics: list, current, reference):
    """Run an Evidently report and return its snapshot (scipy's divide warnings on empty bins
    are Evidently's business, not the user's)."""
    from evidently import Report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return Report(metrics).run(current_data=current, reference_data=reference)


def _error_figures(sales: pd.DataFrame) -> dict[str, float]:
    """Return MdAPE and the median log error (bias) of valuations on `sales`."""
    if sales.empty:
        return {"sales": 0}
    ape = np.abs(np.expm1(sales[ck.LOG_ERROR].to_numpy()))
    return {
        "sales": len(sales),
        "mdape": float(np.median(ape)),
        "median_log_error": float(sales[ck.LOG_ERROR].median()),
    }


def _limits(cfg: dict[str, Any]) -> dict[str, float]:
    """Return the quality limits of the monitoring settings, as floats."""
    return {
        k: float(cfg[k])
        for k in ("max_missing_increase", "max_out_of_range", "max_new_category", "max_rejected")
    }


def compare_rows(
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    fs: FeatureSet,
    cfg: dict[str, Any],
    token_min_count: int,
) -> tuple[Any, list[ck.Check]]:
    """Return the Evidently snapshot of all rows of `cur` against `ref` (both holding the model's
    valuations) and its checks: drift of the feature set's input columns, of the annual fee and
    feature-list items derived from them (checks.derive; items common in `ref` by
    `token_min_count`) and of the valuations, and the quality counts. A column empty on one side
    (absent, or no row has a value) gets only the quality counts: Evidently cannot test its
    drift, and the missing check is the alarm. `cfg` is params' monitoring section."""
    numeric, categorical = ck.input_columns(fs)
    derived = ck.derive(fs, ref, token_min_count)
    ref, cur = derived.add(ref), derived.add(cur)
    numeric += derived.numeric
    tokens = derived.token_columns
    # High-cardinality columns and the raw feature lists only get the missing check (see
    # checks.input_columns; a list's items are tested one by one instead).
    hidden = [c for c in fs.high_cardinality if c in ref.columns and c in cur.columns]
    hidden += [c for c in derived.sources if c not in hidden]
    ref_rows = ck.as_typed(ref, [*numeric, ck.VALUATION], [*categorical, *hidden, *tokens])
    cur_rows = ck.as_typed(cur, [*numeric, ck.VALUATION], [*categorical, *hidden, *tokens])
    missing = {c: float(ref_rows[c].isna().mean()) for c in ref_rows.columns}
    rows = min(len(ref_rows), len(cur_rows))  # the smaller sample picks each test
    tests = ck.sample_tests(ref_rows, numeric, categorical, rows)
    metrics = ck.row_metrics(
        ref_rows,
        numeric,
        categorical,
        float(cfg["drift_share"]),
        hidden,
        tests | ck.token_tests(derived.tokens, rows),
        untested=ck.empty_columns(ref_rows, cur_rows),
        rows=rows,
    )
    all_numeric, all_categorical = [*numeric, ck.VALUATION], [*categorical, *hidden, *tokens]
    snapshot = _run_report(
        metrics,
        ck.dataset(cur_rows, all_numeric, all_categorical),
        ck.dataset(ref_rows, all_numeric, all_categorical),
    )
    checks = ck.read_checks(snapshot.dict(), missing, _limits(cfg), GROUP_OF)
    refused = ck.all_refused(ref_rows, cur_rows)
    return snapshot, ([refused] if refused else []) + checks


def run_monitor(
    current: Path,
    model_ref: str | None = None,
    reference: Path | None = None,
    out_dir: Path | None = None,
    log_to_mlflow: bool = True,
) -> DriftReport:
    """Return the drift report of export `current` against the model's reference, after
    writing its files to `out_dir` (default reports/monitoring/) and logging it to MLflow.
    Raises NotAnExportError for a file that is not an export, ModelNotFoundError for a model
    that does not resolve and LookupError for a model with no logged reference."""
    started = time.perf_counter()
    cfg = _settings()
    current_rows, rejected = accepted_rows(current)
    pinned = tracking.pin_model_uri(model_ref)  # one version for the model and its reference
    model = tracking.load_model(pinned)
    info = tracking.describe_model(model_ref, pinned)
    fs = get_feature_set(model.feature_set)
    ref = _reference_frame(model, info, reference)
    cur = current_rows.reset_index(drop=True)
    cur[ck.VALUATION] = value_frame(model, cur).frame["predicted_close_price"].to_numpy()
    token_min_count = int(load_params()["features"]["token_min_count"])
    snapshot, checks = compare_rows(ref, cur, fs, cfg, token_min_count)
    snapshots = {HTML_ALL: snapshot}
    limits = _limits(cfg)
    checks.append(ck.rejected_check(rejected, len(cur) + rejected, limits["max_rejected"]))
    refused = int(cur[ck.VALUATION].isna().sum())
    refused_sales = int((is_labelled(cur) & cur[ck.VALUATION].isna()).sum())

    ref_valuation = OOF_VALUATION if ref[OOF_VALUATION].notna().any() else ck.VALUATION
    ref_sales = _errors(ref, ref_valuation)
    cur_sales = _errors(cur, ck.VALUATION)
    seen = 0
    if ref_valuation == OOF_VALUATION:
        # Sales the model was fitted on have in-sample errors: only the others are compared.
        fitted_on = cur_sales[MLS_ID].isin(set(ref_sales[MLS_ID]))
        seen, cur_sales = int(fitted_on.sum()), cur_sales[~fitted_on]
    min_sales = int(cfg["min_sales"])
    sales_note = None
    if len(cur_sales) >= min_sales and len(ref_sales) >= min_sales:
        cols = [ck.PRICE, ck.LOG_ERROR]
        snapshots[HTML_SALES] = _run_report(
            ck.sales_metrics(min(len(cur_sales), len(ref_sales))),
            ck.dataset(ck.as_typed(cur_sales, cols, []), cols, []),
            ck.dataset(ck.as_typed(ref_sales, cols, []), cols, []),
        )
        checks += ck.read_checks(snapshots[HTML_SALES].dict(), {}, limits, GROUP_OF)
    else:
        sales_note = (
            f"price and error checks skipped: {len(cur_sales)} sales in the export the model "
            f"valued and was not trained on ({seen} it was, {refused_sales} it refused to "
            f"value), {len(ref_sales)} in the reference, {min_sales} needed"
        )
        log.debug(sales_note)

    groups = ck.verdicts(checks, float(cfg["drift_share"]))
    found = ck.detected(groups, list(cfg["triggers"]))
    summary = {
        "detected": found,
        "groups": groups,
        "triggers": list(cfg["triggers"]),
        "drifted_columns": ck.drifted_columns(checks),
        "input_drift_share": ck.input_drift_share(checks),
        "thresholds": {k: cfg[k] for k in ("drift_share", "min_sales", *limits)},
        "model": {k: info.get(k) for k in ("uri", "name", "version", "run_id", "feature_set")},
        "current": {
            "path": str(current),
            "rows": len(cur),
            "rejected": rejected,
            "refused": refused,
            "hash": tracking.file_hash(current),
        },
        "reference": {
            "source": str(reference) if reference else f"runs:/{info.get('run_id')}/reference",
            "rows": len(ref),
        },
        "errors": {
            "current": _error_figures(cur_sales),
            "reference": _error_figures(ref_sales),
            "reference_valuations": "out-of-fold" if ref_valuation == OOF_VALUATION else "model",
        },
        "sales_note": sales_note,
        "sales_seen_in_training": seen,
        "checks": [c.as_dict() for c in checks],
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 2),
    }
    files = _write(snapshots, summary, out_dir or paths().reports / "monitoring")
    report = DriftReport(found, checks, groups, summary, files)
    if log_to_mlflow:
        _log_run(report, current)
    return report


def _write(snapshots: dict[str, Any], summary: dict[str, Any], folder: Path) -> list[Path]:
    """Write the HTML reports, the JSON summary and the Prometheus textfile into `folder`,
    each by an atomic replace (a dashboard never reads half a file); return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        staged = Path(tmp)
        for name, snapshot in snapshots.items():
            snapshot.save_html(str(staged / name))
        (staged / SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n")
        write_textfile(summary, staged / PROM_FILE)
        for path in sorted(staged.iterdir()):
            os.replace(path, folder / path.name)
            out.append(folder / path.name)
    if HTML_SALES not in snapshots:
        (folder / HTML_SALES).unlink(missing_ok=True)  # a stale one would read as this run's
    return out


def drift_gauges(summary: dict[str, Any]):
    """Return a Prometheus registry holding the drift gauges of `summary`, labelled with the
    model: the verdict, the input columns' drift share, the time, and per group of checks its
    verdict (so an alert can say what drifted); what both the textfile and the Pushgateway
    carry."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    labels = {"model": model_label(summary)}
    gauges = (
        (
            "homevision_drift_detected",
            "1 when homevision monitor found drift in the last export, else 0",
            1 if summary["detected"] else 0,
        ),
        (
            "homevision_drift_share",
            "Share of the model's input columns that drifted in the last export (0 to 1)",
            summary["input_drift_share"],
        ),
        (
            "homevision_drift_last_run_timestamp_seconds",
            "When homevision monitor last ran (Unix time)",
            time.time(),
        ),
    )
    for name, description, value in gauges:
        Gauge(name, description, list(labels), registry=registry).labels(**labels).set(value)
    groups = Gauge(
        "homevision_drift_group_detected",
        "1 when this group of checks (inputs, valuations, sale_price, errors, quality) found "
        "drift in the last export, else 0: what the HomevisionDataDrift alert names",
        [*labels, "group"],
        registry=registry,
    )
    for group, flag in summary["groups"].items():
        groups.labels(**labels, group=group).set(1 if flag else 0)
    return registry


def write_textfile(summary: dict[str, Any], path: Path) -> None:
    """Write the drift gauges in Prometheus' text format (node exporter textfile collector)."""
    from prometheus_client import write_to_textfile

    write_to_textfile(str(path), drift_gauges(summary))


def push(summary: dict[str, Any], gateway: str) -> None:
    """Push the drift gauges to a Prometheus Pushgateway (job `homevision-monitor`, grouped by
    model: a push replaces its group, so one group per model keeps each model's gauges)."""
    from prometheus_client import push_to_gateway

    push_to_gateway(
        gateway,
        job="homevision-monitor",
        grouping_key={"model": model_label(summary)},
        registry=drift_gauges(summary),
    )


def model_label(summary: dict[str, Any]) -> str:
    """Return the name the drift gauges carry for the model: its registered name, else URI."""
    return str(summary["model"].get("name") or summary["model"]["uri"])


def metric_key(check: ck.Check) -> str:
    """Return the MLflow metric name of a check, `group.column`, with each character MLflow
    refuses or reads as a path (spaces, a feature-list item's colon, slash or brackets) as _."""
    return re.sub(r"[^\w.\-]", "_", f"{check.group}.{check.column}")


def _log_run(report: DriftReport, current: Path) -> None:
    """Log the report as an MLflow run (stage monitor): the verdicts, one score per check,
    and the files."""
    tracking.configure()
    summary = report.summary
    with mlflow.start_run(run_name="monitor"):
        mlflow.set_tags(
            {
                "homevision.stage": "monitor",
                "model_uri": str(summary["model"]["uri"]),
                "model_version": str(summary["model"].get("version")),
                "data_hash": summary["current"]["hash"],
                "drift_detected": str(report.detected).lower(),
                "drifted_columns": ",".join(report.drifted_columns)[:5000] or "none",
            }
        )
        mlflow.log_param("current", str(current)[:500])
        metrics = {"drift_detected": float(report.detected)}
        metrics["input_drift_share"] = float(summary["input_drift_share"])
        for check in report.checks:
            metrics[metric_key(check)] = float(check.score) if np.isfinite(check.score) else -1.0
        for side in ("current", "reference"):
            for name, value in summary["errors"][side].items():
                metrics[f"{side}_{name}"] = float(value)
        mlflow.log_metrics(metrics)
        for path in report.files:
            mlflow.log_artifact(str(path), "monitoring")
