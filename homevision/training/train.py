"""`homevision train`, orchestration only: validate -> select -> tune -> honest estimate ->
refit -> log ONE MLflow model -> register -> move the champion alias only on improvement."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import infer_signature

from homevision import tracking
from homevision.config import PACKAGE_DIR, load_params, paths
from homevision.data.listings import Listings, load_listings, write_rejected
from homevision.features import FeatureSet, get_feature_set
from homevision.training import plots
from homevision.training.candidates import CANDIDATES, build_from_spec
from homevision.training.card import leaderboard_markdown, render_model_card
from homevision.training.evaluation import CVPlan, cross_validate_model
from homevision.training.interval_choice import choose_variant, compare_variants
from homevision.training.selection import (
    SelectionResult,
    SelectionSettings,
    inner_settings,
    nested_estimate,
    select_and_tune,
)
from homevision.valuation.explain import global_importance, summary_plot
from homevision.valuation.model import ValuationModel, ValuationPyfunc

log = logging.getLogger(__name__)
TARGET = "ClosePrice"


@dataclass
class TrainOutcome:
    """What a training run produced, for the CLI to print."""

    run_id: str
    version: str
    promoted: bool
    champion_note: str
    selection: SelectionResult
    honest: dict[str, Any]
    card_path: Path
    seconds: float


def settings_from_params(budget: float | None, storage: str | None) -> SelectionSettings:
    """Return selection settings from params.yaml, with the tuning time scaled to the budget."""
    cfg = load_params()["train"]
    budget = float(budget if budget is not None else cfg["budget_seconds"])
    return SelectionSettings(
        plan=CVPlan(folds=int(cfg["folds"]), repeats=int(cfg["repeats"]), seed=int(cfg["seed"])),
        candidates=tuple(cfg["candidates"]),
        tune_top=int(cfg["tune_top"]),
        tuning_trials=int(cfg["tuning_trials"]),
        tuning_timeout=max(1.0, budget * float(cfg["tuning_share"])),
        blend_top=int(cfg["blend_top"]),
        storage=storage or f"sqlite:///{paths().root / 'optuna.db'}",
        show_progress=True,
    )


def _spec_text(spec: dict[str, Any]) -> str:
    """Return the winner as text with every hyper-parameter (defaults included)."""
    if spec["kind"] == "blend":
        return "equal-weight blend in log space of " + ", ".join(m[0] for m in spec["members"])
    merged = {**CANDIDATES[spec["name"]].defaults, **spec["params"]}
    params = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in merged.items()
    )
    return f"{spec['name']}({params})"


def _flat_params(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["kind"] == "blend":
        return {"members": ",".join(m[0] for m in spec["members"])}
    return {"candidate": spec["name"], **{k: str(v)[:250] for k, v in spec["params"].items()}}


def train(
    data_path: Path,
    feature_set_name: str = "task6",
    budget: float | None = None,
    promote: bool = False,
    storage: str | None = None,
) -> TrainOutcome:
    """Run the whole training job and return its outcome (see module docstring)."""
    start = time.perf_counter()
    listings = load_listings(data_path)
    write_rejected(listings.validation, paths().rejected)
    fs = get_feature_set(feature_set_name)
    _check_columns(listings, fs)
    X = listings.labelled.reset_index(drop=True)
    y = X[TARGET].astype(float)
    if len(X) < 30:
        raise ValueError(f"only {len(X)} labelled rows (Sold with ClosePrice): need at least 30")
    settings = settings_from_params(budget, storage)
    cfg = load_params()["train"]
    data_hash = tracking.file_hash(data_path)
    log.info("Training on %d labelled rows of %s, feature set %s", len(X), data_path, fs.name)

    tracking.configure()
    with mlflow.start_run(run_name=f"train-{fs.name}") as parent:
        mlflow.set_tags(
            {
                "homevision.stage": "train",
                "data_hash": data_hash,
                "git_commit": tracking.git_commit(),
                "feature_set": fs.name,
            }
        )
        mlflow.log_params(
            {
                "feature_set": fs.name,
                "data_path": str(data_path),
                "data_hash": data_hash[:16],
                "rows": listings.validation.rows,
                "labelled": len(X),
                "rejected": len(listings.validation.rejected),
                "cv": settings.plan.describe(),
                "budget_seconds": budget if budget is not None else cfg["budget_seconds"],
            }
        )

        selection = select_and_tune(
            X, y, fs, settings, on_result=log_candidate, on_trial=trial_logger
        )
        table = selection.table
        log.info(
            "Winner: %s (CV RMSE %s)",
            selection.winner,
            f"{table.loc[selection.winner, 'rmse']:,.0f}",
        )

        log.info("Honest estimate: nested CV over the whole selection procedure...")
        outer = CVPlan(folds=int(cfg["nested_outer_folds"]), repeats=1, seed=settings.plan.seed + 7)
        nested = nested_estimate(
            X,
            y,
            fs,
            inner_settings(
                settings, int(cfg["nested_inner_trials"]), int(cfg["nested_inner_folds"])
            ),
            outer,
            on_fold=lambda i, n: log.info("  outer fold %d/%d done", i, n),
        )
        honest = {**nested.metrics, "method": nested.method, "winners": nested.winners}
        mlflow.log_metrics({f"honest_{k}": v for k, v in nested.metrics.items()})
        winner_cv = table.loc[selection.winner]
        mlflow.log_metrics({f"cv_{k}": float(winner_cv[k]) for k in table.columns})

        intervals = _measure_intervals(build_from_spec(selection.spec, fs), X, y, settings)
        explain_cfg = load_params()["explain"]
        model = ValuationModel(
            build_from_spec(selection.spec, fs),
            feature_set=fs.name,
            interval_variant=intervals["variant"],
            levels=tuple(intervals["levels"]),
            confidence=intervals["level"],
            background_rows=int(explain_cfg["background_rows"]),
            comparables=int(explain_cfg["comparables"]),
            seed=settings.plan.seed,
        ).fit(X, y)
        importance, contributions = _importance(model, X)
        version, promoted, note = _log_and_register(
            model, X, y, fs, selection, settings, data_hash, promote, parent.info.run_id
        )
        ctx = locals_for_card(
            listings,
            fs,
            selection,
            honest,
            data_path,
            data_hash,
            version,
            note,
            parent.info.run_id,
            y,
        )
        ctx |= {
            "intervals": intervals,
            "importance": importance,
            "contributions": contributions,
            "codec": model.explainer().codec,
        }
        card_path = _write_artifacts(ctx)
    seconds = time.perf_counter() - start
    log.info("Training finished in %.0f s", seconds)
    return TrainOutcome(
        parent.info.run_id, version, promoted, note, selection, honest, card_path, seconds
    )


def _measure_intervals(estimator, X, y, settings) -> dict[str, Any]:
    """Compare the configured MAPIE variants by outer CV; return the chosen one and all scores."""
    cfg = load_params()["intervals"]
    level = float(cfg["confidence"])
    scores = compare_variants(
        estimator, X, y, list(cfg["variants"]), level, int(cfg["outer_folds"]), settings.plan.seed
    )
    chosen = choose_variant(
        scores, float(cfg["coverage_tolerance"]), float(cfg.get("fast_within", 0.0))
    )
    for s in scores:
        mlflow.log_metrics(
            {
                f"interval_{s.variant}_coverage": s.coverage,
                f"interval_{s.variant}_median_rel_width": s.median_relative_width,
            }
        )
    mlflow.log_metrics(
        {
            "interval_coverage": chosen.coverage,
            "interval_median_rel_width": chosen.median_relative_width,
        }
    )
    mlflow.log_params({"interval_variant": chosen.variant, "interval_confidence": level})
    log.info(
        "Price range: %s, %.0f%% confidence: outer-CV coverage %.1f%%, median width %.1f%%",
        chosen.variant,
        100 * level,
        100 * chosen.coverage,
        100 * chosen.median_relative_width,
    )
    return {
        "variant": chosen.variant,
        "level": level,
        "levels": [float(v) for v in cfg["levels"]],
        "coverage": chosen.coverage,
        "width": chosen.median_relative_width,
        "scores": scores,
        "folds": int(cfg["outer_folds"]),
    }


def _importance(model: ValuationModel, X: pd.DataFrame):
    """Explain a fixed sample of training rows; return mean |SHAP| per raw feature and them."""
    sample = X.sample(min(100, len(X)), random_state=0)
    contributions = model.explain(sample)
    importance = global_importance(contributions)
    mlflow.log_metrics({f"importance_{k}": float(v) for k, v in importance.items()})
    return importance, contributions


def _check_columns(listings: Listings, fs: FeatureSet) -> None:
    missing = [c for c in fs.raw_columns if c not in listings.typed.columns]
    if missing:
        raise ValueError(
            f"feature set {fs.name!r} needs column(s) absent from the export: {', '.join(missing)}"
        )


def log_candidate(name: str, spec: dict[str, Any], result) -> None:
    summary = result.summary()
    with mlflow.start_run(run_name=name, nested=True):
        mlflow.set_tags({"homevision.stage": "candidate", "candidate": name})
        mlflow.log_params(_flat_params(spec))
        mlflow.log_metrics({k: v for k, v in summary.items()})
    log.info(
        "  %-22s CV RMSE %10s ± %-8s MAPE %5.1f%%",
        name,
        f"{summary['rmse']:,.0f}",
        f"{summary['rmse_std']:,.0f}",
        100 * summary["mape"],
    )


def trial_logger(candidate: str):
    def log_trial(trial, params, result) -> None:
        with mlflow.start_run(run_name=f"{candidate}-trial-{trial.number}", nested=True):
            mlflow.set_tags(
                {
                    "homevision.stage": "trial",
                    "candidate": candidate,
                    "pruned": str(result is None or len(result.per_repeat) == 0),
                }
            )
            mlflow.log_params({k: str(v)[:250] for k, v in params.items()})
            if result is not None and len(result.per_repeat):
                mlflow.log_metrics(result.summary())

    return log_trial


def _log_and_register(model, X, y, fs, selection, settings, data_hash, promote, run_id):
    example = X[fs.raw_columns].head(5)
    pyfunc = ValuationPyfunc(model)
    signature = infer_signature(
        example, pyfunc.predict(None, example), params={"confidence": model.confidence}
    )
    # The package travels with the model (code_paths): `mlflow models serve` needs no install.
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=pyfunc,
        signature=signature,
        input_example=example,
        code_paths=[str(PACKAGE_DIR)],
        pip_requirements=_requirements(),
    )
    mlflow.set_tag(tracking.SPEC_TAG, json.dumps({"spec": selection.spec, "feature_set": fs.name}))
    new_rmse = float(selection.table.loc[selection.winner, "rmse"])
    version = tracking.register(
        info.model_uri,
        run_id,
        {"cv_rmse": f"{new_rmse:.2f}", "feature_set": fs.name, "data_hash": data_hash},
    )
    promoted, note = _decide_champion(X, y, selection, settings, new_rmse, promote)
    if promoted:
        tracking.set_champion(version)
    mlflow.set_tag("champion_decision", note)
    log.info("Registered %s version %s: %s", tracking.MODEL_NAME, version, note)
    return version, promoted, note


def _requirements() -> list[str]:
    """Return pinned requirements of the logged model (what is installed here)."""
    from importlib.metadata import PackageNotFoundError, version

    names = [
        "mlflow",
        "numpy",
        "pandas",
        "scikit-learn",
        "mapie",
        "shap",
        "xgboost",
        "lightgbm",
        "catboost",
        "pyyaml",
        "pandera",
        "optuna",
        "cloudpickle",
    ]
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def _decide_champion(X, y, selection, settings, new_rmse, promote) -> tuple[bool, str]:
    """Move the alias when forced, when there is no champion, or when the new model's CV RMSE
    beats the champion's re-evaluated on the same rows and the same folds."""
    if promote:
        return True, "promoted to champion (--promote)"
    current, logged = tracking.champion_spec()
    if current is None:
        return True, "promoted to champion (there was none)"
    if logged is None:
        return False, f"kept champion v{current.version}: its spec is unknown, use --promote"
    old_model = build_from_spec(logged["spec"], get_feature_set(logged["feature_set"]))
    old_rmse = cross_validate_model(
        old_model, X, y, selection.plan.splits(y), n_jobs=settings.n_jobs
    ).summary()["rmse"]
    if new_rmse < old_rmse:
        return True, (
            f"promoted: CV RMSE {new_rmse:,.0f} beats champion "
            f"v{current.version}'s {old_rmse:,.0f} on the same data"
        )
    return False, (
        f"kept champion v{current.version}: its CV RMSE {old_rmse:,.0f} is not worse "
        f"than {new_rmse:,.0f} on the same data"
    )


def locals_for_card(
    listings, fs, selection, honest, data_path, data_hash, version, note, run_id, y
) -> dict[str, Any]:
    """Collect everything the model card and plots need."""
    res = listings.validation
    table = selection.table
    return {
        "model_name": tracking.MODEL_NAME,
        "version": version,
        "winner": selection.winner,
        "spec_text": _spec_text(selection.spec),
        "feature_set": fs.name,
        "feature_description": fs.description,
        "raw_columns": fs.raw_columns,
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git_commit": tracking.git_commit(),
        "run_id": run_id,
        "champion_note": note,
        "data_path": str(data_path),
        "data_hash": data_hash,
        "rows": res.rows,
        "accepted": len(res.accepted),
        "rejected": len(res.rejected),
        "labelled": len(listings.labelled),
        "to_value": len(listings.to_value),
        "repaired": ", ".join(f"{k} {v}" for k, v in res.repaired.items()),
        "honest": honest,
        "cv": table.loc[selection.winner].to_dict(),
        "plan": selection.plan.describe(),
        "excluded": ", ".join(
            f"{name} ({100 * share:.0f}% of homes tried)"
            for name, share in selection.gate.items()
            if share > 0
        )
        or "none",
        "leaderboard_md": leaderboard_markdown(table),
        "table": table,
        "y": y.to_numpy(),
        "oof": selection.results[selection.winner].oof_mean,
    }


def _write_artifacts(ctx: dict[str, Any]) -> Path:
    """Write the card, leaderboard and plots under reports/ and log them to the active run."""
    out = paths().reports
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "shap_summary.png": summary_plot(ctx["contributions"], ctx["codec"]),
        "leaderboard.png": plots.leaderboard_chart(ctx["table"]),
        "predicted_vs_actual.png": plots.predicted_vs_actual(
            ctx["y"], ctx["oof"], f"{ctx['winner']}: out-of-fold valuations"
        ),
        "residuals.png": plots.residual_plot(ctx["y"], ctx["oof"], f"{ctx['winner']}: errors"),
    }
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
        mlflow.log_figure(fig, name)
        plots.close(fig)
    ctx["table"].to_csv(out / "leaderboard.csv")
    mlflow.log_artifact(str(out / "leaderboard.csv"))
    card = out / "model_card.md"
    card.write_text(render_model_card(ctx), encoding="utf-8")
    mlflow.log_artifact(str(card))
    with tempfile.TemporaryDirectory() as tmp:
        honest = Path(tmp) / "honest_estimate.json"
        honest.write_text(json.dumps(ctx["honest"], indent=2, default=str))
        mlflow.log_artifact(str(honest))
    return card


def run_selection(data_path: Path, feature_set_name: str = "task6") -> SelectionResult:
    """The take-home's model_v1 experiment: CV every candidate with default hyper-parameters
    (no tuning), tracked as one MLflow parent run with a child per candidate."""
    listings = load_listings(data_path)
    fs = get_feature_set(feature_set_name)
    _check_columns(listings, fs)
    X = listings.labelled.reset_index(drop=True)
    y = X[TARGET].astype(float)
    settings = replace(settings_from_params(None, None), tune_top=0, show_progress=False)
    tracking.configure()
    with mlflow.start_run(run_name=f"model_v1-{fs.name}"):
        mlflow.set_tags(
            {
                "homevision.stage": "selection",
                "data_hash": tracking.file_hash(data_path),
                "git_commit": tracking.git_commit(),
                "feature_set": fs.name,
            }
        )
        selection = select_and_tune(X, y, fs, settings, on_result=log_candidate)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "leaderboard.csv"
            selection.table.to_csv(path)
            mlflow.log_artifact(str(path))
        fig = plots.leaderboard_chart(selection.table)
        mlflow.log_figure(fig, "leaderboard.png")
        plots.close(fig)
    return selection
