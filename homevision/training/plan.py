"""A training plan: every decision the budget made, written down so a run can be replayed.

`homevision train` plans from timings measured during the run (what each candidate costs, how
many repeats, trials and outer folds fit), so two runs on the same data can choose different
procedures. Every run records its plan (`plan.json`, an artifact of the run and in reports/);
`homevision train --plan FILE` (or `--replay RUN_ID`, or `train.plan` in params.yaml, which the
DVC pipeline and the MLproject read) runs exactly that plan with no timing-based decision: the
same data, plan, code and library versions give the same model, valuations equal to the cent,
on any machine however fast. Optuna trials are replayed by count (seeded sampler, no timeout),
one study per candidate in memory.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

PLAN_VERSION = 2  # 2: successive halving and the one-standard-error choice
FILE_NAME = "plan.json"


class PlanError(ValueError):
    """A plan this code cannot replay, said in one sentence."""


@dataclass(frozen=True)
class TrainPlan:
    """What one training run did (and what a replay does)."""

    feature_set: str
    raw_columns: list[str]  # the feature set's columns when the plan was made
    seed: int  # the CV seed (folds, Optuna samplers, the model's own seed)
    folds: int
    repeats: int
    candidates: list[str]  # cross-validated, in order
    trials: dict[str, int]  # candidate -> Optuna trials run (empty: no tuning)
    blend_top: int
    stack: bool
    outer_folds: int  # the honest estimate's outer folds (planned)
    outer_folds_run: int  # of which the run completed (the replay runs as many)
    interval_variants: list[str]  # the range variants compared, in order
    interval_outer_folds: int
    promotion_repeats: int
    shap_rows: int
    budget_notes: list[str] = field(default_factory=list)  # what the budget gave up, and why
    # The successive-halving sweep: repeats per rung (empty: one rung, all on every repeat),
    # the share kept, the later rungs' allowance and the model prices it was decided with.
    rungs: list[int] = field(default_factory=list)
    keep: float = 0.5
    rung_seconds: float | None = None
    costs: dict[str, float] = field(default_factory=dict)
    one_se: bool = True
    select_by: str = "rmse"  # the CV metric that ranked, tuned and blended the candidates
    # Blend members had to beat the fold noise (selection.forward_blend); plans recorded
    # before that rule lack the key and replay without it.
    blend_noise: bool = False
    tuning_seconds: float | None = None  # the tuning allowance the trial counts were planned in
    # `trials` counts every trial run, pruned ones included (Optuna's n_trials). Plans recorded
    # before lack the key: they counted completed trials only, so where the run pruned some
    # their replay tunes with fewer trials (the replay's budget notes say so).
    trials_run: bool = False
    slowdown: float | None = None  # the price calibration measured by the run
    source_run: str | None = None  # the run that made the plan (or that it replays)
    # Listing statuses fitted beside the sales as evidence (empty: sales only).
    evidence_statuses: list[str] = field(default_factory=list)
    version: int = PLAN_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainPlan:
        """Return the plan of a decoded plan.json; PlanError names what is missing or extra."""
        names = {f.name for f in fields(cls)}
        required = {
            f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
        }
        missing, unknown = sorted(required - set(data)), sorted(set(data) - names)
        if missing or unknown:
            what = ", ".join(
                [*(f"missing {m}" for m in missing), *(f"unknown {u}" for u in unknown)]
            )
            raise PlanError(f"not a training plan ({what})")
        if data.get("version", PLAN_VERSION) != PLAN_VERSION:
            raise PlanError(
                f"plan version {data['version']} is not {PLAN_VERSION}: re-record it with "
                "this code (homevision train, then reports/plan.json)"
            )
        return cls(**data)


def load_plan(path: str | Path) -> TrainPlan:
    """Return the plan in a plan.json file. Raises PlanError in one sentence for a file that
    is not one (the path named)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"{path}: no such plan file") from None
    except IsADirectoryError:
        raise PlanError(f"{path}: is a directory, not a plan file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PlanError(f"{path}: not a JSON plan ({err})") from None
    if not isinstance(data, dict):
        raise PlanError(f"{path}: not a training plan (a JSON object is expected)")
    try:
        return TrainPlan.from_dict(data)
    except PlanError as err:
        raise PlanError(f"{path}: {err}") from None


def check_plan(plan: TrainPlan) -> None:
    """Raise PlanError, in one sentence, when this code cannot replay `plan`: a feature set,
    column, candidate or range variant it no longer has."""
    from homevision.features import get_feature_set
    from homevision.training.candidates import BASELINES, CANDIDATES
    from homevision.valuation.intervals import VARIANTS

    try:
        fs = get_feature_set(plan.feature_set)
    except KeyError as err:
        raise PlanError(f"the plan's {err.args[0]}") from None
    if list(fs.raw_columns) != list(plan.raw_columns):
        gone = [c for c in plan.raw_columns if c not in fs.raw_columns]
        new = [c for c in fs.raw_columns if c not in plan.raw_columns]
        raise PlanError(
            f"the plan's feature set {plan.feature_set} read other columns than this code's "
            f"(the plan only: {', '.join(gone) or 'none'}; "
            f"the code only: {', '.join(new) or 'none'})"
        )
    if list(fs.evidence_statuses) != list(plan.evidence_statuses):
        raise PlanError(
            f"the plan's feature set {plan.feature_set} fitted other listings beside the sales "
            f"than this code's (the plan: {', '.join(plan.evidence_statuses) or 'none'}; "
            f"the code: {', '.join(fs.evidence_statuses) or 'none'})"
        )
    known = set(CANDIDATES) | set(BASELINES)
    unknown = [c for c in [*plan.candidates, *plan.trials] if c not in known]
    if unknown:
        raise PlanError(
            f"the plan names candidate(s) this code does not have: {', '.join(unknown)}"
        )
    odd = [v for v in plan.interval_variants if v not in VARIANTS]
    if odd or not plan.interval_variants:
        raise PlanError(
            f"the plan names range variant(s) this code does not have: {', '.join(odd) or 'none'}"
        )


def replay_notes(plan: TrainPlan) -> list[str]:
    """Return the budget notes a replay of `plan` starts with: whose plan it is, and when it
    cannot tune exactly as the run did (a plan that counted completed trials only)."""
    notes = [f"replays the plan of run {plan.source_run or 'unknown'}: no timing decided"]
    if plan.trials and not plan.trials_run:
        notes.append(
            "the plan counts completed Optuna trials only (recorded before pruned trials were "
            "counted): where the run pruned some, this replay tunes with fewer"
        )
    return notes


def replay_selection(plan: TrainPlan, base):
    """Return the selection settings (a SelectionSettings) that run `plan` exactly: its CV
    plan, candidates, trial counts per tuned candidate (no timeout, studies in memory so no
    earlier trial is reused), blend and stack."""
    from dataclasses import replace

    from homevision.training.evaluation import CVPlan

    return replace(
        base,
        plan=CVPlan(folds=plan.folds, repeats=plan.repeats, seed=plan.seed),
        candidates=tuple(plan.candidates),
        tune_top=len(plan.trials),
        tuning_trials=max(plan.trials.values()) if plan.trials else None,
        tuning_timeout=None,
        tuning_seconds=plan.tuning_seconds,
        slowdown=plan.slowdown,
        costs=dict(plan.costs) or None,
        rungs=tuple(plan.rungs) or None,
        keep=plan.keep,
        rung_seconds=plan.rung_seconds,
        one_se=plan.one_se,
        blend_noise=plan.blend_noise,
        metric=plan.select_by,
        blend_top=plan.blend_top,
        stack=plan.stack,
        storage=None,
        trials_by_candidate=dict(plan.trials),
    )
