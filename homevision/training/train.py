"""`homevision train`, orchestration only: validate -> price the candidates -> plan to the budget
-> select and tune -> honest estimate (the same procedure, nested) -> ranges -> champion decision
-> refit -> log ONE MLflow model -> register -> move the alias only under the promotion rule."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from homevision import tracking
from homevision.config import PACKAGE_DIR, load_params, paths
from homevision.data.listings import Listings, load_listings, write_rejected
from homevision.data.schema import MLS_ID
from homevision.feature_sets import evidence_as_of, with_evidence
from homevision.features import FeatureSet, get_feature_set
from homevision.locks import reports_lock
from homevision.monitoring.reference import ARTIFACT_DIR as REFERENCE_DIR
from homevision.monitoring.reference import (
    OOF_VALUATION,
    build_reference,
    load_reference,
    write_reference,
)
from homevision.training import plots, promotion
from homevision.training.budget import (
    NESTED_ROW_FACTOR,
    PARALLEL_SPEEDUP,
    TUNING_COST_FACTOR,
    Clock,
    Prices,
    cv_seconds,
    plan_halving,
    plan_variants,
    probe_prices,
)
from homevision.training.candidates import CANDIDATES, STACK_FOLDS, build_from_spec
from homevision.training.card import (
    leaderboard_markdown,
    metrics_summary,
    model_reference,
    render_model_card,
)
from homevision.training.evaluation import (
    CVPlan,
    time_ordered_metrics,
    time_ordered_split,
    warm_workers,
)
from homevision.training.interval_choice import (
    carried_levels,
    choose_variant,
    compare_variants,
    sales_needed,
    time_ordered_scores,
)
from homevision.training.metrics import select_by
from homevision.training.params_check import check_training_params
from homevision.training.plan import (
    FILE_NAME,
    PlanError,
    TrainPlan,
    check_plan,
    replay_notes,
    replay_selection,
)
from homevision.training.scale import large_data_plan
from homevision.training.selection import (
    SelectionResult,
    SelectionSettings,
    nested_estimate,
    replay_settings,
    select_and_tune,
    time_ordered_estimate,
)
from homevision.training.tune_job import TrialRunLogger
from homevision.valuation.explain import global_importance, summary_plot
from homevision.valuation.intervals import applicable_variants
from homevision.valuation.model import MODEL_ARTIFACT, ValuationModel
from homevision.valuation.predict import value_frame
from homevision.valuation.pyfunc import ValuationPyfunc

log = logging.getLogger(__name__)
TARGET = "ClosePrice"
MIN_TRAIN_SALES = 30  # labelled rows (sales) a training run needs


class TooFewSalesError(ValueError):
    """The data holds fewer labelled rows than a training run needs: `sales` of `needed`, and
    `why` that many (the flow skips its retrain with this, and merges the sales anyway)."""

    def __init__(self, sales: int, needed: int = MIN_TRAIN_SALES, why: str = ""):
        self.sales, self.needed, self.why = sales, needed, why
        super().__init__(
            f"only {sales} labelled rows (Sold with ClosePrice): need at least {needed}{why}"
        )

    def __reduce__(self):
        return (TooFewSalesError, (self.sales, self.needed, self.why))


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
    budget_notes: list[str]
    model_name: str
    time_ordered: dict[str, Any] | None = None  # the procedure scored on later sales
    champion_before: str | None = None  # the champion the decision compared against


def base_settings(storage: str | None, fs: FeatureSet | None = None) -> SelectionSettings:
    """Return the selection settings of params.yaml before the budget trims them (ranked by
    the feature set's own `select_by` when it names one)."""
    cfg = load_params()["train"]
    return SelectionSettings(
        plan=CVPlan(folds=int(cfg["folds"]), repeats=int(cfg["repeats"]), seed=int(cfg["seed"])),
        candidates=tuple(cfg["candidates"]),
        tune_top=int(cfg["tune_top"]),
        tuning_trials=int(cfg["tuning_trials"]),
        tuning_timeout=None,
        blend_top=int(cfg["blend_top"]),
        stack=bool(cfg.get("stack", False)),
        storage=storage,  # None: studies in memory, never shared with another run
        show_progress=True,
        metric=select_by(cfg, fs),
    )


def _check_sales(sales: int, plan: TrainPlan | None = None) -> None:
    """Raise TooFewSalesError, before any work, for an export with fewer sales than the run
    needs: MIN_TRAIN_SALES to select at all, and enough that every outer training fold of the
    price-range comparison calibrates the least demanding variant at the highest level (MAPIE
    refuses fewer calibration scores than 1/(1 - level): 50 sales at 95% on 5 outer folds)."""
    cfg = load_params()["intervals"]
    levels = [float(v) for v in cfg["levels"]]
    variants = list(cfg["variants"]) if plan is None else list(plan.interval_variants)
    folds = int(cfg["outer_folds"]) if plan is None else int(plan.interval_outer_folds)
    ranged = min((sales_needed(v, levels, folds) for v in variants), default=0)
    needed = max(MIN_TRAIN_SALES, ranged)
    if sales < needed:
        raise TooFewSalesError(
            sales,
            needed,
            f", for the {100 * max(levels):g}% price range to be calibrated on each of {folds} "
            "outer folds' training sales (intervals.levels, intervals.outer_folds)",
        )


def plan_procedure(
    prices: Prices, settings: SelectionSettings, seconds: float, outer_folds: int
) -> tuple[SelectionSettings, list[str]]:
    """Return the selection settings that fit `seconds` together with their replay in every
    outer fold of the nested estimate, and the degradations made to fit: a successive-halving
    sweep (budget.plan_halving) that always leaves Optuna its share."""
    cfg = load_params()["train"]
    own = seconds / (1 + NESTED_ROW_FACTOR * outer_folds)
    halving = plan_halving(
        prices,
        list(settings.candidates),
        settings.plan.folds,
        settings.plan.repeats,
        own,
        keep=float(cfg.get("keep", 0.5)),
        tuning_share=float(cfg.get("tuning_share", 0.4)),
        stack_members=settings.blend_top,
        stack=settings.stack,
    )
    planned = replace(
        settings,
        stack=halving.stack,
        plan=replace(settings.plan, repeats=halving.rungs[-1]),
        candidates=tuple(halving.candidates),
        rungs=halving.rungs,
        keep=halving.keep,
        rung_seconds=halving.rung_seconds,
        tuning_seconds=halving.tuning_seconds,
        tuning_timeout=1.5 * halving.tuning_seconds + 1.0,  # safety net; the trial count rules
        costs=prices.model,
    )
    return planned, list(halving.degraded)


def train(
    data_path: Path,
    feature_set_name: str = "task6",
    budget: float | None = None,
    promote: bool = False,
    storage: str | None = None,
    move_alias: bool = True,
    plan: TrainPlan | None = None,
) -> TrainOutcome:
    """Run the whole training job within `budget` seconds and return its outcome. With
    `move_alias=False` the champion rule decides but the alias stays: `promoted` then says the
    version should become champion, and `champion_before` which version it must replace (the
    flow moves it once the history it was trained on is committed). With `plan` (a recorded
    TrainPlan) the run makes no timing-based decision: it replays the plan exactly, and the
    budget is not enforced."""
    check_training_params(load_params())  # a bad setting stops here, not minutes later
    cfg = load_params()["train"]
    if plan is not None:
        check_plan(plan)
        if plan.feature_set != feature_set_name:
            raise PlanError(
                f"the plan is for feature set {plan.feature_set}, not {feature_set_name}"
            )
    budget = float(budget if budget is not None else cfg["budget_seconds"])
    # Fixed overhead, not budget: a new store's schema set-up (~10 s once) and the CV workers'
    # start-up (~5 s once per process).
    tracking.configure()
    warm_workers()
    # The fixed reserve pays for logging the model and writing the card; the rest is planned.
    clock = Clock(max(1.0, budget - float(cfg["reserve_seconds"])))
    shares = cfg["budget_shares"]
    listings = load_listings(data_path)
    fs = get_feature_set(feature_set_name)
    _check_columns(listings, fs)
    X = listings.labelled.reset_index(drop=True)
    y = X[TARGET].astype(float)
    fs = with_evidence(fs, listings.to_value, X)
    _check_sales(len(X), plan)
    data_hash = tracking.file_hash(data_path)
    name = tracking.model_name(fs.name)
    log.info("Training on %d labelled rows of %s, feature set %s", len(X), data_path, fs.name)
    if fs.evidence is not None:
        log.info(
            "Evidence: %d listings under contract (%s) at asking price x the sale-to-list ratio",
            len(fs.evidence),
            ", ".join(fs.evidence_statuses),
        )

    with mlflow.start_run(run_name=f"train-{fs.name}") as parent:
        run_id = parent.info.run_id
        workdir = paths().reports / "runs" / run_id  # this run's files: no other run writes here
        workdir.mkdir(parents=True, exist_ok=True)
        mlflow.log_artifact(str(write_rejected(listings.validation, workdir / "rejected.csv")))
        mlflow.set_tags(
            {
                "homevision.stage": "train",
                "data_hash": data_hash,
                "git_commit": tracking.git_commit(),
                "feature_set": fs.name,
            }
        )
        settings = base_settings(storage, fs)
        if plan is None:
            kept, scale_notes = large_data_plan(len(X), settings.candidates, cfg["large_data"])
            settings = replace(settings, candidates=kept)
            prices = probe_prices(
                X,
                y,
                fs,
                list(settings.candidates),
                settings.plan.seed,
                clock.remaining * float(shares["pricing"]),
            )
            costs = prices.full
            unpriced = [n for n in settings.candidates if n not in costs]
            kept = tuple(n for n in settings.candidates if n in costs)
            settings = replace(settings, candidates=kept)
            outer_folds = int(cfg["nested_outer_folds"])
            procedure_seconds = clock.remaining * float(shares["procedure"])
            # One replay more than the outer folds: the time-ordered estimate.
            settings, notes = plan_procedure(prices, settings, procedure_seconds, outer_folds + 1)
            if unpriced:
                notes.insert(0, f"not priced in time, skipped: {', '.join(unpriced)}")
            notes[:0] = scale_notes
        else:
            settings = replay_selection(plan, settings)
            costs, outer_folds = {}, plan.outer_folds
            notes = replay_notes(plan)
            mlflow.set_tag("plan_source", plan.source_run or "file")
        mlflow.log_params(
            {
                "feature_set": fs.name,
                "data_path": str(data_path),
                "data_hash": data_hash[:16],
                "rows": listings.validation.rows,
                "labelled": len(X),
                "evidence_rows": 0 if fs.evidence is None else len(fs.evidence),
                "rejected": len(listings.validation.rejected),
                "cv": settings.plan.describe(),
                "budget_seconds": budget,
                "candidates": ",".join(settings.candidates)[:500],
            }
        )
        log.info("Budget %.0f s: %s", budget, "; ".join(notes) or "the full procedure fits")

        selection = select_and_tune(
            X, y, fs, settings, on_result=log_candidate, on_trial=trial_logger
        )
        table = selection.table
        planned_trials = settings.tuning_trials
        if plan is not None:
            pass  # the plan's own trial counts ran
        elif selection.tuned and min(selection.tuned.values()) < (planned_trials or 0):
            notes.append(f"Optuna trials {planned_trials} -> {min(selection.tuned.values())}")
        elif not selection.tuned and settings.tune_top:
            notes.append("no tuning (not even 4 trials fit the budget)")
        log.info(
            "Winner: %s (CV RMSE %s)",
            selection.winner,
            f"{table.loc[selection.winner, 'rmse']:,.0f}",
        )

        replay = replay_settings(settings, selection)
        later_share = float(cfg["later_share"])
        dates = close_dates(X)
        split = time_ordered_split(dates, later_share)
        if split is not None:
            known = evidence_as_of(fs, split[1])  # no contract signed after the cut
            models = {n: build_from_spec(selection.specs[n], known) for n in table.index}
            table = table.join(time_ordered_metrics(models, X, y, split[0]))
        log.info("Time-ordered estimate: the procedure re-run on the earlier sales...")
        timed = time_ordered_estimate(X, y, dates, fs, replay, later_share, split)
        time_ordered = None
        if timed is not None:
            figures = {**timed.metrics, **timed.bounds}
            time_ordered = {**figures, **vars(timed)}
            del time_ordered["metrics"], time_ordered["bounds"]
            mlflow.log_metrics({f"later_{k}": v for k, v in figures.items()})
            log.info(
                "Time-ordered (sales from %s): RMSE %s, MAPE %.1f%%",
                timed.cut,
                f"{timed.metrics['rmse']:,.0f}",
                100 * timed.metrics["mape"],
            )
        log.info("Honest estimate: the same procedure re-run inside %d outer folds...", outer_folds)
        outer = CVPlan(folds=outer_folds, repeats=1, seed=settings.plan.seed + 7)
        nested = nested_estimate(
            X,
            y,
            fs,
            replay,
            outer,
            on_fold=lambda i, n: log.info("  outer fold %d/%d done", i, n),
            # Whatever the rest of the run will not need goes to the honest estimate.
            seconds=None
            if plan is not None
            else max(1.0, clock.remaining - _after_procedure_seconds(selection, costs)),
            max_folds=None if plan is None else plan.outer_folds_run,
        )
        if nested.folds_done < nested.folds_planned:
            notes.append(
                f"honest estimate on {nested.folds_done} of {nested.folds_planned} outer folds"
            )
        figures = {**nested.metrics, **nested.bounds}
        honest = {
            **figures,
            "rows_scored": nested.rows_scored,
            "method": nested.method,
            "winners": nested.winners,
        }
        mlflow.log_metrics({f"honest_{k}": v for k, v in figures.items()})
        winner_cv = table.loc[selection.winner]
        mlflow.log_metrics({f"cv_{k}": float(winner_cv[k]) for k in table.columns})
        mlflow.log_metrics(
            {
                f"selection_optimism_{m}": float(nested.metrics[m]) - float(winner_cv[m])
                for m in ("rmse", "mape", "mdape")
            }
        )

        winner_cost = _winner_cost(selection, costs)
        intervals = _measure_intervals(
            build_from_spec(selection.spec, fs),
            X,
            y,
            settings.plan.seed,
            winner_cost,
            clock.remaining * float(shares["intervals"]) / (1 - float(shares["procedure"])),
            notes,
            fixed=None if plan is None else (plan.interval_variants, plan.interval_outer_folds),
        )
        decision = _decide(
            selection,
            fs,
            X,
            y,
            promote,
            winner_cost,
            clock,
            shares,
            notes,
            repeats=None if plan is None else plan.promotion_repeats,
            unseen=promotion.Unseen(nested.oof, nested.fold_of, nested.folds_planned),
        )

        explain_cfg = load_params()["explain"]
        model = ValuationModel(
            build_from_spec(selection.spec, fs),
            feature_set=fs.name,
            interval_variant=intervals["variant"],
            levels=tuple(intervals["carried"]),
            confidence=intervals["default"],
            background_rows=int(explain_cfg["background_rows"]),
            comparables=int(explain_cfg["comparables"]),
            seed=settings.plan.seed,
        ).fit(X, y)
        importance, contributions, shap_rows = _importance(
            model, X, clock.remaining * 0.4, notes, None if plan is None else plan.shap_rows
        )
        made = TrainPlan(
            feature_set=fs.name,
            raw_columns=list(fs.raw_columns),
            evidence_statuses=list(fs.evidence_statuses),
            select_by=settings.metric,
            seed=settings.plan.seed,
            folds=settings.plan.folds,
            repeats=settings.plan.repeats,
            candidates=list(settings.candidates),
            trials=dict(selection.tuned),
            trials_run=True if plan is None else plan.trials_run,
            blend_top=settings.blend_top,
            stack=settings.stack,
            rungs=list(settings.rungs or ()),
            keep=settings.keep,
            rung_seconds=settings.rung_seconds,
            costs=dict(settings.costs or {}),
            one_se=settings.one_se,
            blend_noise=settings.blend_noise,
            tuning_seconds=settings.tuning_seconds,
            slowdown=selection.slowdown,
            outer_folds=outer.folds,
            outer_folds_run=nested.folds_done,
            interval_variants=intervals["measured"],
            interval_outer_folds=intervals["folds"],
            promotion_repeats=int(decision.extra["repeats"]),
            shap_rows=shap_rows,
            budget_notes=list(notes),
            source_run=run_id if plan is None else plan.source_run,
        )
        (workdir / FILE_NAME).write_text(made.to_json(), encoding="utf-8")
        _log_reference(model, listings, selection)
        version, promoted, note = _log_and_register(
            model, X, fs, selection, data_hash, decision, name, run_id, move_alias
        )
        ctx = locals_for_card(
            listings, fs, selection, honest, data_path, data_hash, version, note, run_id, y
        )
        ctx |= {
            "table": table,
            "leaderboard_md": leaderboard_markdown(table, selection.repeats_run),
            "choice": selection.choice,
            "halving": halving_text(selection),
            "time_ordered": time_ordered,
            "model_name": name,
            "intervals": intervals,
            "importance": importance,
            "contributions": contributions,
            "encoder": model.encoder_,
            "engine": model.engine_note_,
            "background_rows": len(model.background_),
            "budget": budget,
            "budget_notes": notes,
            "decision": decision,
            "promoted": promoted,
            "champion_version": _champion_version(name),
            "rule": promotion.RULE.format(
                alpha=float(load_params()["promotion"]["alpha"]),
                min_fresh=int(load_params()["promotion"]["min_fresh_sales"]),
            ),
        }
        mlflow.set_tag("budget_notes", "; ".join(notes)[:5000] or "none")
        mlflow.set_tag("engine", model.engine_note_[:5000])
        card_path = _write_artifacts(ctx, workdir)
    seconds = clock.elapsed
    log.info("Training finished in %.0f s (budget %.0f s)", seconds, budget)
    return TrainOutcome(
        run_id,
        version,
        promoted,
        note,
        selection,
        honest,
        card_path,
        seconds,
        notes,
        name,
        time_ordered,
        decision.champion_version,
    )


def halving_text(selection: SelectionResult) -> str:
    """Return how far each candidate went in the successive-halving sweep, in words: the
    dropped ones weakest first, as the sweep dropped them (fewest repeats first, then the
    worst CV score in the ranking metric first)."""
    full = selection.plan.repeats
    table, metric = selection.table, selection.metric
    dropped = sorted(
        (n for n, r in selection.reached.items() if r < full),
        key=lambda n: (
            selection.reached[n],
            -float(table.loc[n, metric]) if n in table.index else 0.0,
            n,
        ),
    )
    if not dropped:
        return f"every candidate ran all {full} repeats"
    return (
        f"dropped after fewer repeats (weakest first: fewest repeats, then worst CV "
        f"{metric.upper()}): {', '.join(dropped)}; the rest ran all {full} repeats"
    )


def _spec_text(spec: dict[str, Any]) -> str:
    """Return the winner as text with every hyper-parameter (defaults included)."""
    members = ", ".join(m[0] for m in spec.get("members", []))
    if spec["kind"] == "blend":
        return f"equal-weight blend in log space of {members}"
    if spec["kind"] == "stack":
        return f"stack in log space of {members} (non-negative linear meta-model)"
    merged = {**CANDIDATES[spec["name"]].defaults, **spec["params"]}
    params = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in merged.items()
    )
    return f"{spec['name']}({params})"


def _flat_params(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["kind"] in ("blend", "stack"):
        return {"kind": spec["kind"], "members": ",".join(m[0] for m in spec["members"])}
    return {"candidate": spec["name"], **{k: str(v)[:250] for k, v in spec["params"].items()}}


def _after_procedure_seconds(selection: SelectionResult, costs: dict[str, float]) -> float:
    """Seconds the run needs after the honest estimate, at the least: one interval variant on
    the outer folds (on both cores) plus the time-ordered check and the final fit with its
    calibration (MAPIE fits their 6 models one after another), a promotion check of one
    repeat (on both cores), and SHAP importance on a few homes."""
    fit = _winner_cost(selection, costs)
    interval_cfg, promotion_cfg = load_params()["intervals"], load_params()["promotion"]
    both_cores = 6 * int(interval_cfg["outer_folds"]) + 2 * int(promotion_cfg["folds"])
    return (both_cores / PARALLEL_SPEEDUP + 6 + 6) * fit + 10.0


def _winner_cost(selection: SelectionResult, costs: dict[str, float]) -> float:
    """Seconds one fit of the winner is expected to take: its own fits' mean in the selection's
    CV where it ran there, else its price from the candidates' defaults. Why: a tuned
    configuration costs more than its defaults (an MLP tuned to 60 units: 0.29 s a fit against
    the default's 0.19 s, on one thread), and the ranges and the promotion check are planned
    from this."""
    result = selection.results.get(selection.winner)
    measured = 0.0 if result is None else result.fit_seconds / selection.plan.folds
    if measured > 0:
        return measured
    return _spec_cost(selection.spec, costs) * selection.slowdown


def _spec_cost(spec: dict[str, Any], costs: dict[str, float]) -> float:
    """Seconds one fit of a spec is expected to take (tuned members cost a little more)."""
    if spec["kind"] in ("blend", "stack"):
        members = sum(
            costs.get(m[0], 1.0) * (TUNING_COST_FACTOR if m[1] else 1) for m in spec["members"]
        )
        return members * (STACK_FOLDS + 1 if spec["kind"] == "stack" else 1)
    return costs.get(spec["name"], 1.0) * (TUNING_COST_FACTOR if spec.get("params") else 1)


def evidence_text(fs: FeatureSet) -> str:
    """Return the card's line on the listings under contract fitted beside the sales ("" for
    none): what they are and how they are priced."""
    if fs.evidence is None:
        return ""
    return (
        f"{len(fs.evidence)} listings under contract ({', '.join(fs.evidence_statuses)}) "
        "fitted beside the sales at asking price x the training sales' median sale-to-list "
        "ratio; never scored, and none is a home that sold in this export"
    )


def _decide(
    selection, fs, X, y, promote, winner_cost, clock, shares, notes, repeats=None, unseen=None
) -> promotion.Decision:
    """Decide the champion BEFORE anything is registered, on fresh folds sized to the budget
    (or on `repeats` of them, a replayed plan's)."""
    pcfg = load_params()["promotion"]
    name = tracking.model_name(fs.name)
    current, logged = tracking.champion_spec(name)
    fixed = repeats is not None
    repeats = int(pcfg["repeats"]) if repeats is None else int(repeats)
    seconds = clock.remaining * float(shares["promotion"]) / (1 - float(shares["procedure"]))
    trimmed = ""
    if current is not None and not promote and not fixed:
        per_repeat = cv_seconds(2 * winner_cost, int(pcfg["folds"]), 1)
        fit = max(1, min(repeats, int(seconds // max(per_repeat, 1e-9))))
        if fit < repeats:
            trimmed = f"promotion check on {fit} of {repeats} fresh CV repeats"
        repeats = fit
    plan = CVPlan(folds=int(pcfg["folds"]), repeats=repeats, seed=int(pcfg["seed"]))
    deployed = (
        None
        if promote
        else _deployed(current, name, X, int(pcfg["min_fresh_sales"]), fs.evidence_statuses)
    )
    decision = promotion.decide(
        selection.spec,
        fs.name,
        X,
        y,
        current,
        logged,
        plan,
        float(pcfg["alpha"]),
        promote,
        deployed=deployed,
        evidence=fs.evidence,
        unseen=unseen,
    )
    if trimmed and decision.comparison is not None and decision.comparison.per:
        notes.append(trimmed)  # only where fresh CV repeats ran: not for the per-sale test
    if decision.comparison is not None:
        c = decision.comparison
        mlflow.log_metrics(
            {
                "promotion_mean_gain": c.mean_gain,
                "promotion_std_error": c.std_error,
                "promotion_p_value": c.p_value,
            }
        )
        mlflow.log_dict(c.as_dict(), "promotion_comparison.json")
    decision.extra["repeats"] = repeats
    log.info("Champion decision: %s", decision.note)
    return decision


def _deployed(
    current, name: str, X: pd.DataFrame, min_fresh: int, evidence_statuses=()
) -> promotion.Deployed | None:
    """Return the champion as deployed and the sales of X it never saw (neither its sales nor
    its listings under contract, of `evidence_statuses`), when there are at least `min_fresh`
    of them and its reference (which names the homes it was fitted on) is complete; else None
    (the champion's procedure is then re-fitted instead)."""
    if current is None or not current.run_id:
        return None
    try:
        reference = load_reference(current.run_id)
    except LookupError:
        return None
    if len(reference) >= int(load_params()["monitoring"]["reference_max_rows"]):
        return None  # a sample: training sales outside it would pass for fresh ones
    seen = promotion.learnt_from(reference, evidence_statuses, OOF_VALUATION, MLS_ID, "Status")
    fresh = promotion.fresh_sales(X[MLS_ID], seen)
    if fresh.sum() < min_fresh:
        return None
    try:
        model = tracking.load_model(f"models:/{name}/{current.version}")
    except tracking.ModelNotFoundError as err:
        log.warning("Champion v%s cannot be loaded as deployed: %s", current.version, err)
        return None
    log.info(
        "Champion v%s is scored as deployed on %d sales it never saw", current.version, fresh.sum()
    )
    return promotion.Deployed(model, fresh)


def _measure_intervals(
    estimator,
    X,
    y,
    seed: int,
    winner_cost: float,
    seconds: float,
    notes: list[str],
    fixed: tuple[list[str], int] | None = None,
) -> dict[str, Any]:
    """Compare the MAPIE variants that fit the budget by outer CV at every level (or, `fixed`,
    exactly these variants on that many outer folds: a replayed plan); keep the levels whose
    coverage holds; check the chosen variant on later sales (time-ordered)."""
    cfg = load_params()["intervals"]
    level = float(cfg["confidence"])
    levels = [float(v) for v in cfg["levels"]]
    tolerance = float(cfg["coverage_tolerance"])
    outer_folds = int(cfg["outer_folds"])
    # A variant that these sales cannot calibrate at the highest level (CQR conformalizes on
    # only a share of each training fold) is not measured: MAPIE would refuse it.
    configured = list(cfg["variants"]) if fixed is None else list(fixed[0])
    folds = outer_folds if fixed is None else int(fixed[1])
    too_few = {
        v: f"needs {sales_needed(v, levels, folds)} sales for {100 * max(levels):g}% ranges"
        for v in configured
        if sales_needed(v, levels, folds) > len(X)
    }
    configured = [v for v in configured if v not in too_few]
    if fixed is not None:
        planned, outer_folds = configured, folds
        seconds = float("inf")
    else:
        planned = plan_variants(winner_cost, configured, outer_folds, seconds)
    # A variant that cannot range this winner (CQR on a baseline) is not measured, not even
    # when a plan lists it: it would stop the run after the honest estimate.
    planned, inapplicable = applicable_variants(estimator, planned)
    if not planned:  # the one the budget kept cannot range this winner: the next one can
        planned = applicable_variants(estimator, configured)[0][:1]
    inapplicable |= too_few
    notes.extend(f"interval variant {v} not applicable ({why})" for v, why in inapplicable.items())
    if (
        fixed is None
        and len(planned) == 1
        and outer_folds > 3
        and sales_needed(planned[0], levels, 3) <= len(X)
    ):
        # Not even one variant fits at full size: measure it on 3 outer folds.
        cost = winner_cost * outer_folds * 6 / PARALLEL_SPEEDUP
        if cost > seconds:
            notes.append(f"interval outer folds {outer_folds} -> 3")
            outer_folds = 3
    # The time-ordered check below costs about one variant's worth; keep room for it.
    clock = Clock(seconds * len(planned) / (len(planned) + 1))
    scores, variants = [], []
    for variant in planned:
        if variants and clock.elapsed * (len(variants) + 1) / len(variants) > clock.seconds:
            break  # the next variant would overrun: the first one is always measured
        scores += compare_variants(estimator, X, y, [variant], levels, outer_folds, seed)
        variants.append(variant)
    if fixed is None and len(variants) < len(cfg["variants"]):
        skipped = [v for v in cfg["variants"] if v not in variants and v not in inapplicable]
        if skipped:
            notes.append(f"interval variants skipped: {', '.join(skipped)}")
    at_default = [s for s in scores if s.level == level]
    chosen = choose_variant(at_default, tolerance, float(cfg.get("fast_within", 0.0)))
    mine = [s for s in scores if s.variant == chosen.variant]
    carried = carried_levels(mine, tolerance) or [max(mine, key=lambda s: s.coverage).level]
    default = level if level in carried else max(carried)
    dates = close_dates(X)
    later = time_ordered_scores(
        estimator, X, y, dates, chosen.variant, levels, float(cfg["later_share"]), seed
    )
    timed = {s.level: s for s in later}
    for s in scores:
        mlflow.log_metrics(
            {
                f"interval_{s.variant}_{round(100 * s.level)}_coverage": s.coverage,
                f"interval_{s.variant}_{round(100 * s.level)}_width": s.median_relative_width,
            }
        )
    for s in mine:
        pct = round(100 * s.level)
        mlflow.log_metrics(
            {f"range_{pct}_coverage": s.coverage, f"range_{pct}_width": s.median_relative_width}
        )
        if s.level in timed:
            mlflow.log_metric(f"range_{pct}_coverage_time", timed[s.level].coverage)
    mlflow.log_metrics(
        {
            "interval_coverage": chosen.coverage,
            "interval_median_rel_width": chosen.median_relative_width,
        }
    )
    mlflow.log_params({"interval_variant": chosen.variant, "interval_confidence": default})
    dropped = [lv for lv in levels if lv not in carried]
    if dropped:
        notes.append(
            "levels not carried (coverage short): " + ", ".join(f"{100 * v:.0f}%" for v in dropped)
        )
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
        "default": default,
        "levels": levels,
        "carried": carried,
        "coverage": chosen.coverage,
        "width": chosen.median_relative_width,
        "scores": scores,
        "chosen_scores": mine,
        "time_ordered": later,
        "later_share": float(cfg["later_share"]),
        "folds": outer_folds,
        "measured": variants,
    }


def _importance(
    model: ValuationModel, X: pd.DataFrame, seconds: float, notes: list[str], rows=None
):
    """Explain a fixed sample of training rows, as many as fit `seconds` (5 to 100), or
    `rows` of them (a replayed plan); return mean |SHAP| per raw feature, the contributions
    and the rows explained."""
    if rows is None:
        # The first call may pay a one-off set-up (SHAP's JIT compile above 10 columns): untimed.
        model.explain(X.head(1))
        start = time.perf_counter()
        model.explain(X.head(1))
        one = max(time.perf_counter() - start, 1e-3)
        rows = int(np.clip(seconds / one, 5, 100))
        if rows < min(100, len(X)):
            notes.append(f"SHAP importance on {rows} homes (not 100)")
    contributions = model.explain(X.sample(min(rows, len(X)), random_state=0))
    importance = global_importance(contributions)
    mlflow.log_metrics({f"importance_{k}": float(v) for k, v in importance.items()})
    return importance, contributions, int(rows)


def _log_reference(model: ValuationModel, listings: Listings, selection) -> None:
    """Log the monitoring reference (homevision/monitoring/reference.py) with the run: the
    accepted rows, their valuations and the winner's out-of-fold valuations of the sales."""
    cfg = load_params()["monitoring"]
    typed = listings.typed
    sales = listings.labelled
    oof = pd.Series(selection.results[selection.winner].oof_mean, index=sales.index)
    valued = value_frame(model, typed).frame["predicted_close_price"].to_numpy()
    frame = build_reference(
        typed, model.raw_columns_, valued, oof, int(cfg["reference_max_rows"]), model.seed
    )
    with tempfile.TemporaryDirectory() as tmp:  # not the run's folder: reports/ publishes that
        mlflow.log_artifact(str(write_reference(frame, Path(tmp))), REFERENCE_DIR)


def close_dates(X: pd.DataFrame) -> pd.Series:
    """Return each sale's CloseDate (missing where the export has none)."""
    if "CloseDate" in X.columns:
        return X["CloseDate"]
    return pd.Series(np.nan, index=X.index)


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


def trial_logger(candidate: str) -> TrialRunLogger:
    """Return the callback that logs each of `candidate`'s trials as a child of the active run."""
    run = mlflow.active_run()
    return TrialRunLogger(
        candidate, run.info.run_id, mlflow.get_tracking_uri(), run.info.experiment_id
    )


def _log_and_register(model, X, fs, selection, data_hash, decision, name, run_id, move_alias=True):
    """Log the model, register it as a new version of `name`, and move the champion alias when
    the decision (taken before) says so and nobody moved it meanwhile (unless `move_alias` is
    off: the caller moves it). Never fails after the version is registered because of the
    champion."""
    with tempfile.TemporaryDirectory() as folder:
        arguments = pyfunc_arguments(model, X[fs.raw_columns].head(5), Path(folder))
        info = mlflow.pyfunc.log_model(name="model", **arguments)
    mlflow.set_tag(tracking.SPEC_TAG, json.dumps({"spec": selection.spec, "feature_set": fs.name}))
    new_rmse = float(selection.table.loc[selection.winner, "rmse"])
    version = tracking.register(
        info.model_uri,
        run_id,
        {"cv_rmse": f"{new_rmse:.2f}", "feature_set": fs.name, "data_hash": data_hash},
        name,
        model_id=info.model_id,
    )
    promoted, note = decision.promote, decision.note
    if promoted and move_alias:
        try:
            moved = tracking.set_champion(version, name, expected=decision.champion_version)
        except Exception as err:  # a registry hiccup must not lose the registered version
            log.warning("Could not move the champion alias: %s", err)
            moved = False
        if not moved:
            promoted = False
            note = (
                f"not promoted: the champion changed or could not be set during this run ({note})"
            )
    mlflow.set_tag("champion_decision", note[:5000])
    log.info("Registered %s version %s: %s", name, version, note)
    return version, promoted, note


def pyfunc_arguments(model, example: pd.DataFrame, folder: Path) -> dict[str, Any]:
    """Return the arguments of mlflow.pyfunc.log_model (or save_model) that log `model` as
    homevision registers it, its fitted form dumped into `folder` (keep it until logged):
    the pyfunc as code (valuation/pyfunc_model.py) with the fitted model as an artifact, the
    package beside it (code_paths: `mlflow models serve` needs no install), the signature
    and input example of `example` (rows of the raw columns), pinned requirements."""
    signature = infer_signature(
        example,
        ValuationPyfunc(model).predict(None, example),
        params={"confidence": model.confidence, "checked": False},
    )
    fitted = folder / "valuation_model.joblib"
    joblib.dump(model, fitted)
    return {
        "python_model": str(PACKAGE_DIR / "valuation" / "pyfunc_model.py"),
        "artifacts": {MODEL_ARTIFACT: str(fitted)},
        "signature": signature,
        "input_example": example,
        "code_paths": [str(PACKAGE_DIR)],
        "pip_requirements": _requirements(),
    }


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
        "evidence": evidence_text(fs),
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
        "leaderboard_md": leaderboard_markdown(table, selection.repeats_run),
        "choice": selection.choice,
        "halving": halving_text(selection),
        "table": table,
        "y": y.to_numpy(),
        "oof": selection.results[selection.winner].oof_mean,
    }


def _champion_version(name: str) -> str | None:
    """Return the version holding `name`'s champion alias now (None when there is none)."""
    current = tracking.champion(name)
    return None if current is None else str(current.version)


def _write_artifacts(ctx: dict[str, Any], workdir: Path) -> Path:
    """Write the card, leaderboard, plots, metrics.json (`dvc metrics`) and model.json (the
    registered version and the champion) into this run's own folder, log them to the active
    run, then publish them to reports/ with atomic replaces, the whole set under one lock (two
    trains at once never leave a half-written card, nor one run's card beside the other's
    metrics). Return the published card's path."""
    figures = {
        "shap_summary.png": summary_plot(ctx["contributions"], ctx["encoder"]),
        "leaderboard.png": plots.leaderboard_chart(ctx["table"]),
        "predicted_vs_actual.png": plots.predicted_vs_actual(
            ctx["y"], ctx["oof"], f"{ctx['winner']}: out-of-fold valuations"
        ),
        "residuals.png": plots.residual_plot(ctx["y"], ctx["oof"], f"{ctx['winner']}: errors"),
    }
    for name, fig in figures.items():
        fig.savefig(workdir / name, dpi=110)
        plots.close(fig)
    ctx["table"].to_csv(workdir / "leaderboard.csv")
    (workdir / "model_card.md").write_text(render_model_card(ctx), encoding="utf-8")
    for name, content in (
        ("metrics.json", metrics_summary(ctx)),
        ("model.json", model_reference(ctx)),
    ):
        (workdir / name).write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    (workdir / "honest_estimate.json").write_text(json.dumps(ctx["honest"], indent=2, default=str))
    published = paths().reports
    files = [p for p in sorted(workdir.iterdir()) if p.name != "rejected.csv"]  # logged earlier
    for path in files:
        mlflow.log_artifact(str(path))
    publish(files, published, ctx["run_id"])
    return published / "model_card.md"


def publish(files: list[Path], folder: Path, run_id: str) -> None:
    """Copy `files` into `folder` (reports/), each by an atomic replace, the whole set under
    one lock: two trains finishing together leave one run's set, never a mix (issue 22,
    defect 12)."""
    with reports_lock(folder):
        for path in files:
            tmp = folder / f".{path.name}.{run_id}"
            shutil.copyfile(path, tmp)
            os.replace(tmp, folder / path.name)


def run_selection(data_path: Path, feature_set_name: str = "task6") -> SelectionResult:
    """The take-home's model_v1 experiment: CV every candidate with default hyper-parameters
    (no tuning), tracked as one MLflow parent run with a child per candidate."""
    listings = load_listings(data_path)
    fs = get_feature_set(feature_set_name)
    _check_columns(listings, fs)
    X = listings.labelled.reset_index(drop=True)
    y = X[TARGET].astype(float)
    fs = with_evidence(fs, listings.to_value, X)
    settings = replace(base_settings(None, fs), tune_top=0, show_progress=False)
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
