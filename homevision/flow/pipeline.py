"""The continuous-training flow as a Dagster job: pick up new exports -> merge them into the
training history (staged) -> check drift against the champion's reference -> retrain when it is
worth it (the champion rule decides; the alias does not move yet) -> commit.

Every drop-folder entry gets a verdict (homevision.flow.intake): a complete export is copied,
hashed, validated chunk by chunk and merged (the history keeps the newest fact about each
listing by the export's own timestamps: homevision.flow.history); a file still being written
stays for the next run; a symlink, an unreadable file or one that is not an export goes to
failed/ with its reason; anything else is left alone with a sentence. Nothing is committed
before the last op: `commit` (homevision.flow.commit) writes a journal, then replaces the
history and manifest, archives the files and moves the champion alias, in that order, all or
nothing; a run killed midway is completed by the next one. Then the API is told. One run at a
time: a resource holds a lock on data/history/ for the whole run.

`defs` (Definitions) is what `dagster dev -m homevision.flow.pipeline` loads: the job, its
resources and a schedule whose run config comes from HOMEVISION_FLOW_* variables
(`homevision flow serve` sets them).
"""

# No `from __future__ import annotations`: Dagster reads the ops' type hints at definition time.
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dagster import (
    ConfigurableResource,
    DagsterInstance,
    DefaultScheduleStatus,
    Definitions,
    Failure,
    HookContext,
    InitResourceContext,
    MetadataValue,
    OpExecutionContext,
    Output,
    ScheduleDefinition,
    failure_hook,
    in_process_executor,
    job,
    op,
)

from homevision.config import DEFAULT_CHUNK_ROWS, load_params, paths, project_root
from homevision.data.errors import NotAnExportError
from homevision.data.listings import read_export
from homevision.data.synthetic import write_listings
from homevision.flow import commit as journal
from homevision.flow import intake as drop
from homevision.flow.faults import failpoint
from homevision.flow.history import (
    free_name,
    history_dir,
    history_path,
    load_history,
    load_manifest,
    manifest_path,
    manifest_text,
    merge_changes,
    merge_export,
    processed_hashes,
    with_merges,
)
from homevision.model_errors import first_line

log = logging.getLogger(__name__)
JOB_NAME = "continuous_training"
SCHEDULE_NAME = "continuous_training_schedule"
DEFAULT_CRON = "0 6 * * *"
DEFAULT_MIN_NEW_SALES = 30
DEFAULT_SETTLE_SECONDS = 10.0
RELOAD_TIMEOUT_SECONDS = 30
API_KEY_ENV = "HOMEVISION_API_KEY"  # an admin key for POST /model/reload
MLFLOW_RUN_FILE = "mlflow_run_id"
# `homevision flow serve` passes its options to the definitions through these variables.
ENV_INCOMING = "HOMEVISION_FLOW_INCOMING"
ENV_CRON = "HOMEVISION_FLOW_CRON"
ENV_FEATURES = "HOMEVISION_FLOW_FEATURES"
ENV_BUDGET = "HOMEVISION_FLOW_BUDGET"
ENV_MIN_NEW_SALES = "HOMEVISION_FLOW_MIN_NEW_SALES"
ENV_API_URL = "HOMEVISION_API_URL"


class FlowSettings(ConfigurableResource):
    """What a flow run works on: the drop folder, the feature set, the training budget, the
    new-sales threshold and the API to tell about a new champion."""

    incoming: str
    features: str = "task6"
    budget: float | None = None
    min_new_sales: int = DEFAULT_MIN_NEW_SALES
    api_url: str | None = None
    settle_seconds: float | None = None  # None: params.yaml flow.settle_seconds


class HistoryLock(ConfigurableResource):
    """Held for the whole run: a second flow run on the same history fails at once instead of
    merging the same files twice."""

    @contextmanager
    def yield_for_execution(self, context: InitResourceContext) -> Iterator["HistoryLock"]:
        folder = history_dir()
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / ".lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Failure(
                    f"another flow run is working on {folder}; try again when it has finished"
                ) from None
            try:
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class NewExport:
    """An export taken in this run: its identity, row counts and staged files."""

    name: str
    path: str
    sha256: str
    rows: int
    accepted: int
    rejected: int
    staged: str | None  # accepted rows, export format (None when none was accepted)
    rejected_report: str | None  # rejected rows with the reason (None when none was)
    copy: str  # the bytes taken (archived at commit)
    signature: list[int]  # [size, mtime_ns] of the file when it was read
    snapshot: str  # the export's snapshot time (history.snapshot_time)


@dataclass
class Refused:
    """A drop-folder file that goes to failed/, and why."""

    name: str
    path: str
    sha256: str | None
    reason: str


@dataclass
class Skipped:
    """A file merged by an earlier run (same SHA-256): archived again, not merged."""

    name: str
    path: str
    sha256: str
    copy: str
    signature: list[int]


@dataclass
class Intake:
    """What the drop folder held: new exports, files merged before, files refused, files left
    in place (still being written, or not the flow's) and files that vanished."""

    staging: str
    mlflow_run_id: str
    new: list[NewExport] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    waiting: list[dict[str, str]] = field(default_factory=list)  # {file, reason}
    left: list[dict[str, str]] = field(default_factory=list)
    gone: list[dict[str, str]] = field(default_factory=list)
    recovered: str | None = None  # what was done about a commit a killed run left


@dataclass
class Merged:
    """The staged history and what the new exports changed in it."""

    staged_history: str | None
    staged_new: str | None  # this run's new rows alone: what drift is checked on
    entries: list[dict[str, Any]]
    rows_added: int = 0
    rows_updated: int = 0
    rows_rejected: int = 0
    rows_stale: int = 0  # older than the history's row for their listing: left out
    new_sales: int = 0
    sales_updated: int = 0
    sales_removed: int = 0
    history_rows: int = 0
    history_sha256: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class DriftCheck:
    """Whether the new rows drifted from the champion's reference (checked=False: no check)."""

    has_champion: bool
    checked: bool
    detected: bool = False
    columns: list[str] = field(default_factory=list)
    reason: str = ""
    files: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class Training:
    """Whether the flow retrained, why, and what the champion rule decided."""

    retrained: bool
    reasons: list[str]
    model_name: str
    version: str | None = None
    promoted: bool = False  # the champion rule's verdict; the alias moves at commit
    champion_note: str = ""
    run_id: str | None = None
    champion_before: str | None = None  # the champion the decision compared against
    skipped: str = ""  # why a retrain the reasons called for did not run (too few sales)


@dataclass
class Reload:
    """Whether the API was told to load the new champion, and its answer."""

    attempted: bool
    ok: bool | None
    detail: str


def staging_dir(run_id: str) -> Path:
    """Return this run's staging folder (removed when the run ends, whatever happened)."""
    return history_dir() / f".staging-{run_id}"


def retrain_reasons(
    new_files: int,
    has_champion: bool,
    drift: DriftCheck,
    new_sales: int,
    min_new_sales: int,
) -> list[str]:
    """Return why the flow should retrain (empty: it should not). Nothing new, nothing to do;
    otherwise no champion yet, drift found, or at least `min_new_sales` new sales are each
    reason enough."""
    if new_files == 0:
        return []
    reasons = []
    if not has_champion:
        reasons.append("no champion yet")
    if drift.detected:
        reasons.append(f"drift in {', '.join(drift.columns) or 'the data'}")
    if new_sales >= min_new_sales:
        reasons.append(f"{new_sales} new sales (threshold {min_new_sales})")
    return reasons


# MLflow: one run per flow run, created by the first op, filled by each op, ended by commit (or
# marked FAILED by the failure hook). Made with the client, not mlflow.start_run, so `train`
# can open its own run meanwhile.


def _client():
    from mlflow.tracking import MlflowClient

    from homevision import tracking

    return MlflowClient(tracking.tracking_uri())


def _start_mlflow_run(dagster_run_id: str, incoming: str) -> str:
    """Create the flow's MLflow run (name `flow`, tag homevision.stage=flow); return its id."""
    from homevision import tracking

    experiment_id = tracking.configure()
    run = _client().create_run(
        experiment_id,
        run_name="flow",
        tags={
            "homevision.stage": "flow",
            "dagster_run_id": dagster_run_id,
            "incoming": incoming,
            "git_commit": tracking.git_commit(),
        },
    )
    return run.info.run_id


def _log_mlflow(
    run_id: str,
    params: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
) -> None:
    """Log params (text, at most 500 characters), tags and metrics to the flow's run."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    _client().log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
        params=[Param(k, str(v)[:500]) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()],
    )


# The ops.


def flow_param(key: str, default: float) -> float:
    """Return params.yaml's flow.<key> (the default where the file or key is absent)."""
    try:
        section = load_params().get("flow") or {}
    except FileNotFoundError:
        section = {}
    return float(section.get(key, default))


def settle_seconds(settings: FlowSettings) -> float:
    """Return how long a file must be still before it is taken (the run's option, else
    params.yaml flow.settle_seconds)."""
    if settings.settle_seconds is not None:
        return float(settings.settle_seconds)
    return flow_param("settle_seconds", DEFAULT_SETTLE_SECONDS)


@op(description="Sort the drop folder: take complete exports (copied, validated), say why not.")
def pick_up(
    context: OpExecutionContext, settings: FlowSettings, history_lock: HistoryLock
) -> Output[Intake]:
    """Return the drop folder's entries sorted into new exports (copied, validated chunk by
    chunk, accepted and rejected rows staged), files already merged, files refused, files
    left in place and files that vanished. First completes (or undoes) a commit that a killed
    run left."""
    for stale in history_dir().glob(".staging-*"):  # left by a killed run: we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    recovered = journal.recover()
    staging = staging_dir(context.run_id)
    staging.mkdir(parents=True)
    mlflow_run_id = _start_mlflow_run(context.run_id, settings.incoming)
    (staging / MLFLOW_RUN_FILE).write_text(mlflow_run_id)
    intake = Intake(str(staging), mlflow_run_id, recovered=recovered)
    if recovered:
        context.log.warning(f"Recovery: {recovered}")
    seen = processed_hashes(load_manifest(manifest_path()))
    for verdict in drop.survey(Path(settings.incoming), settle_seconds(settings)):
        _sort(context, verdict, staging, seen, intake)
    if not intake.new:
        context.log.info(f"Nothing to merge: no new complete export in {settings.incoming}")
    _log_mlflow(
        mlflow_run_id,
        params={
            "files_processed": len(intake.new),
            "files": ",".join(e.name for e in intake.new) or "none",
            "files_skipped": len(intake.skipped),
            "files_refused": len(intake.refused),
            "files_waiting": len(intake.waiting),
            "features": settings.features,
        },
    )
    failpoint("after:pick_up")
    return Output(
        intake,
        metadata={
            "new exports": MetadataValue.json([asdict(e) for e in intake.new]),
            "already merged (archived)": MetadataValue.json([e.name for e in intake.skipped]),
            "refused (to failed/)": MetadataValue.json([asdict(r) for r in intake.refused]),
            "waiting (still being written)": MetadataValue.json(intake.waiting),
            "left alone": MetadataValue.json(intake.left),
            "vanished": MetadataValue.json(intake.gone),
            "mlflow run": MetadataValue.text(mlflow_run_id),
        },
    )


def _sort(
    context: OpExecutionContext,
    verdict: drop.Verdict,
    staging: Path,
    seen: set[str],
    intake: Intake,
) -> None:
    """Put one drop-folder entry where it belongs in `intake` (never raises for the entry's
    sake: a bad file is a sentence, and the rest of the drop goes on)."""
    name, path = verdict.name, Path(verdict.path)
    if verdict.action == drop.WAIT:
        intake.waiting.append({"file": name, "reason": verdict.reason})
    elif verdict.action == drop.LEAVE:
        intake.left.append({"file": name, "reason": verdict.reason})
    elif verdict.action == drop.GONE:
        intake.gone.append({"file": name, "reason": verdict.reason})
    elif verdict.action == drop.FAIL:
        intake.refused.append(Refused(name, str(path), None, verdict.reason))
    if verdict.action != drop.TAKE:
        if verdict.action in (drop.FAIL, drop.WAIT):
            context.log.warning(f"{name}: {verdict.reason}")
        return
    copy = staging / "files" / name
    try:
        sha = drop.copy_and_hash(path, copy)
        info = copy.stat()
        signature = [info.st_size, info.st_mtime_ns]
    except FileNotFoundError:
        intake.gone.append({"file": name, "reason": "removed while it was being read"})
        return
    except drop.ChangedWhileReadError:
        reason = "changed while it was being read: still being written, taken next run"
        intake.waiting.append({"file": name, "reason": reason})
        context.log.warning(f"{name}: {reason}")
        return
    except drop.StagingWriteError:  # the flow's own disk: the run fails, the file waits
        raise
    except OSError as err:
        reason = f"cannot be read: {err.strerror or type(err).__name__}"
        intake.refused.append(Refused(name, str(path), None, reason))
        context.log.warning(f"{name}: {reason}")
        return
    if sha in seen:
        intake.skipped.append(Skipped(name, str(path), sha, str(copy), signature))
        return
    seen.add(sha)
    try:
        staged = drop.stage_rows(copy, staging / "rows" / name, _chunk_rows())
    except NotAnExportError as err:
        intake.refused.append(Refused(name, str(path), sha, str(err)))
        context.log.warning(f"Refused {name}: {err}")
        return
    except OSError:  # writing the staging folder: the flow's own trouble, not the file's
        raise
    except Exception as err:  # a value no rule foresaw: this file is refused, the rest go on
        log.exception("Could not stage %s", name)
        reason = f"could not be read as an export: {type(err).__name__}: {first_line(err, 500)}"
        intake.refused.append(Refused(name, str(path), sha, reason))
        context.log.warning(f"Refused {name}: {reason}")
        return
    intake.new.append(
        NewExport(
            name,
            str(path),
            sha,
            staged.rows,
            staged.accepted,
            staged.rejected,
            str(staged.accepted_path) if staged.accepted_path else None,
            str(staged.rejected_path) if staged.rejected_path else None,
            str(copy),
            signature,
            staged.snapshot,
        )
    )


def _chunk_rows() -> int:
    """Rows per chunk when reading an export (params.yaml flow.chunk_rows)."""
    return int(flow_param("chunk_rows", DEFAULT_CHUNK_ROWS))


@op(description="Merge the new exports into a staged copy of the training history.")
def merge_history(context: OpExecutionContext, intake: Intake) -> Output[Merged]:
    """Return the staged history (one row per MLSNumber, the newest fact winning) and this
    run's manifest entries, one per new export, each with what it changed (rows and sales
    added, updated, removed, rows too old to count) and the history SHA-256 it produced."""
    from homevision.tracking import file_hash

    current = history_path()
    history = load_history(current)
    merged = Merged(
        None,
        None,
        [],
        history_rows=len(history),
        history_sha256=file_hash(current) if current.exists() else None,
    )
    if not intake.new:
        failpoint("after:merge_history")
        return Output(merged, metadata={"merged": MetadataValue.text("nothing new")})
    staging = Path(intake.staging)
    new_rows = history.iloc[0:0]
    for export in intake.new:
        rows = read_export(export.staged) if export.staged else new_rows.iloc[0:0]
        history, counts, changed = merge_changes(history, rows, export.snapshot)
        # Drift is checked on the rows that changed the history: a late, older export whose
        # rows are all stale (or unchanged) brings nothing to check nor to retrain on.
        new_rows, _ = merge_export(new_rows, changed)
        merged.rows_added += counts.added
        merged.rows_updated += counts.updated
        merged.rows_rejected += export.rejected
        merged.rows_stale += counts.stale
        merged.new_sales += counts.new_sales
        merged.sales_updated += counts.sales_updated
        merged.sales_removed += counts.sales_removed
        sha = merged.history_sha256
        if len(history):
            sha = file_hash(write_listings(history, staging / "listings.csv"))
            merged.staged_history = str(staging / "listings.csv")
        merged.history_sha256, merged.history_rows = sha, len(history)
        merged.entries.append(
            {
                "file": export.name,
                "sha256": export.sha256,
                "snapshot": export.snapshot,
                "rows": export.rows,
                "rows_rejected": export.rejected,
                **{
                    f"rows_{k}": v
                    for k, v in counts.as_dict().items()
                    if not k.startswith(("new_", "sales_"))
                },
                "sales_added": counts.new_sales,
                "sales_updated": counts.sales_updated,
                "sales_removed": counts.sales_removed,
                "history_sha256": sha,
                "history_rows": len(history),
                "merged_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "dagster_run_id": context.run_id,
            }
        )
        if counts.sales_removed:
            merged.warnings.append(
                f"{export.name} removed {counts.sales_removed} sale(s) from the history: a "
                "newer row says those homes are not sold (a sale that fell through?)"
            )
            context.log.warning(merged.warnings[-1])
        context.log.info(
            f"Merged {export.name}: {counts.added} added, {counts.updated} updated, "
            f"{counts.stale} older than the history (left out), {counts.new_sales} new sales, "
            f"{export.rejected} rejected"
        )
    if len(new_rows):
        merged.staged_new = str(write_listings(new_rows, staging / "new-listings.csv"))
    _log_mlflow(
        intake.mlflow_run_id,
        params={
            "rows_added": merged.rows_added,
            "rows_updated": merged.rows_updated,
            "new_sales": merged.new_sales,
        },
        metrics={
            "rows_added": merged.rows_added,
            "rows_updated": merged.rows_updated,
            "rows_rejected": merged.rows_rejected,
            "rows_stale": merged.rows_stale,
            "new_sales": merged.new_sales,
            "sales_removed": merged.sales_removed,
            "history_rows": merged.history_rows,
        },
        tags={"history_sha256": merged.history_sha256 or ""},
    )
    failpoint("after:merge_history")
    return Output(
        merged,
        metadata={
            "rows added": merged.rows_added,
            "rows updated": merged.rows_updated,
            "rows rejected": merged.rows_rejected,
            "rows older than the history": merged.rows_stale,
            "new sales": merged.new_sales,
            "sales removed": merged.sales_removed,
            "history rows": merged.history_rows,
            "history sha256": MetadataValue.text(merged.history_sha256 or ""),
            "merges": MetadataValue.json(merged.entries),
        },
    )


@op(description="Check the new rows for drift against the champion's reference data.")
def check_drift(
    context: OpExecutionContext, settings: FlowSettings, intake: Intake, merged: Merged
) -> Output[DriftCheck]:
    """Return the drift check of this run's new rows against the champion's reference (no
    check without new rows, and none without a champion: there is nothing to compare with)."""
    from homevision import tracking

    name = tracking.model_name(settings.features)
    has_champion = tracking.champion(name) is not None
    if merged.staged_new is None:
        drift = DriftCheck(has_champion, False, reason="nothing new to check")
    elif not has_champion:
        drift = DriftCheck(False, False, reason=f"no champion of {name} yet: nothing to compare")
    else:
        drift = _run_monitor(Path(merged.staged_new), f"models:/{name}@{tracking.CHAMPION}")
        for path in drift.files:
            _client().log_artifact(intake.mlflow_run_id, path, "drift")
    context.log.info(
        f"Drift: {'detected in ' + ', '.join(drift.columns) if drift.detected else 'none'}"
        + (f" ({drift.reason})" if drift.reason else "")
    )
    if merged.staged_new is not None:
        _log_mlflow(
            intake.mlflow_run_id,
            params={
                "drift_checked": drift.checked,
                "drift_detected": drift.detected,
                "drifted_columns": ",".join(drift.columns) or "none",
            },
            tags={"drift_reason": drift.reason} if drift.reason else None,
        )
    metadata: dict[str, Any] = {
        "checked": drift.checked,
        "detected": drift.detected,
        "drifted columns": MetadataValue.json(drift.columns),
        "why not checked": MetadataValue.text(drift.reason),
        "summary": MetadataValue.json(drift.summary),
    }
    if drift.files:
        metadata["reports"] = MetadataValue.text(
            f"MLflow run {intake.mlflow_run_id}, artifacts drift/; reports/flow/{context.run_id}/"
        )
    failpoint("after:check_drift")
    return Output(drift, metadata=metadata)


def _run_monitor(current: Path, model_ref: str) -> DriftCheck:
    """Return the monitor's drift check of `current` against `model_ref`'s logged reference,
    with its files written beside the staged history (logged to the flow's own MLflow run, not
    a monitor run of their own). A champion without a logged reference cannot be compared:
    the check is then reported as not done, and retraining gives the next champion one."""
    from homevision.monitoring.drift import run_monitor

    try:
        report = run_monitor(
            current, model_ref=model_ref, out_dir=current.parent / "drift", log_to_mlflow=False
        )
    except LookupError as err:
        log.warning("Drift not checked: %s", err)
        return DriftCheck(
            True, False, reason=f"no reference to compare with: {first_line(err, 500)}"
        )
    return DriftCheck(
        True,
        True,
        bool(report.detected),
        list(report.drifted_columns),
        files=[str(p) for p in report.files],
        summary=json.loads(json.dumps(report.summary, default=str)),
    )


@op(description="Retrain on the staged history when drift, new sales or no champion call for it.")
def retrain(
    context: OpExecutionContext,
    settings: FlowSettings,
    intake: Intake,
    merged: Merged,
    drift: DriftCheck,
) -> Output[Training]:
    """Return the training decision and, when it retrained, the registered version and the
    champion rule's verdict (the flow never forces a promotion)."""
    from homevision import tracking

    changed = merged.rows_added + merged.rows_updated  # a history that did not change: no
    reasons = retrain_reasons(  # reason to train again on the same rows
        len(intake.new) if changed else 0,
        drift.has_champion,
        drift,
        merged.new_sales,
        settings.min_new_sales,
    )
    training = Training(bool(reasons), reasons, tracking.model_name(settings.features))
    if reasons and merged.staged_history is None:
        raise Failure("the history holds no accepted rows: nothing to train on")
    outcome = None
    if reasons:
        from homevision.training.train import TooFewSalesError, train

        context.log.info(f"Retraining ({'; '.join(reasons)})")
        try:
            outcome = train(
                Path(merged.staged_history),
                settings.features,
                budget=settings.budget,
                promote=False,
                move_alias=False,  # commit moves it, once the history it learnt from is in place
            )
        except TooFewSalesError as err:  # the merge still commits; a later drop adds sales
            training.retrained = False
            training.skipped = f"too few sales to retrain: {err.sales} of {err.needed}"
            context.log.warning(f"Not retrained: {training.skipped}")
    if outcome is not None:
        training.version = outcome.version
        training.promoted = outcome.promoted
        training.champion_note = outcome.champion_note
        training.run_id = outcome.run_id
        training.model_name = outcome.model_name
        training.champion_before = outcome.champion_before
        context.log.info(f"{outcome.model_name} v{outcome.version}: {outcome.champion_note}")
    elif not reasons:
        context.log.info("No retraining: no drift, too few new sales, a champion in place")
    if intake.new:
        _log_mlflow(
            intake.mlflow_run_id,
            params={
                "retrained": training.retrained,
                "retrain_reason": "; ".join(reasons) or "none",
                "retrain_skipped": training.skipped or "no",
                "version": training.version or "none",
                "promoted": training.promoted,
            },
            tags={
                "champion_note": training.champion_note or "not retrained",
                "train_run_id": training.run_id or "",
            },
        )
    failpoint("after:retrain")
    return Output(
        training,
        metadata={
            "retrained": training.retrained,
            "why": MetadataValue.text("; ".join(reasons) or "no reason to retrain"),
            "skipped": MetadataValue.text(training.skipped or "no"),
            "model": MetadataValue.text(training.model_name),
            "version": MetadataValue.text(training.version or "none"),
            "to promote": training.promoted,
            "champion note": MetadataValue.text(training.champion_note),
            "train mlflow run": MetadataValue.text(training.run_id or ""),
        },
    )


def post_reload(api_url: str, timeout: float = RELOAD_TIMEOUT_SECONDS) -> Reload:
    """POST API_URL/model/reload, with the admin key in HOMEVISION_API_KEY as a bearer token
    when set, and return the outcome (never raises: a server that is down is a failed reload
    to report, not a failed flow)."""
    url = api_url.rstrip("/") + "/model/reload"
    headers = {"Authorization": f"Bearer {key}"} if (key := os.environ.get(API_KEY_ENV)) else {}
    request = urllib.request.Request(url, data=b"", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reload(True, True, f"{url}: HTTP {response.status}")
    except urllib.error.HTTPError as err:
        return Reload(True, False, f"{url}: HTTP {err.code}")
    except (OSError, ValueError) as err:
        return Reload(True, False, f"{url}: {getattr(err, 'reason', err)}")


@op(description="Commit all or nothing: history, manifest, files, champion; then tell the API.")
def commit(
    context: OpExecutionContext,
    settings: FlowSettings,
    history_lock: HistoryLock,
    intake: Intake,
    merged: Merged,
    drift: DriftCheck,
    training: Training,
) -> Output[dict]:
    """Commit the run through a journal (homevision.flow.commit: history, manifest, archive and
    failed/, then the champion alias; undone whole if a step fails), tell the API when the
    champion moved, end the MLflow run, and return the run's decisions as one JSON-able dict."""
    plan = journal.prepare(
        context.run_id,
        Path(merged.staged_history) if merged.entries and merged.staged_history else None,
        merged.history_sha256,
        _manifest_text(context.run_id, intake, merged),
        _moves(settings, intake),
        _alias_move(training),
    )
    try:
        journal.apply(plan)
    except journal.RollbackIncompleteError as err:
        raise Failure(f"the commit failed and could not be wholly undone: {err}") from err
    except Exception as err:
        raise Failure(
            f"the commit failed and was undone, nothing changed: {first_line(err, 500)}"
        ) from err
    promoted = training.promoted and _champion_is(training.model_name, training.version)
    reload = _reload(context, settings, promoted)
    summary = decisions(context.run_id, intake, merged, drift, training, reload)
    summary["promoted"] = promoted
    summary["commit_notes"] = plan.notes
    if training.promoted and not promoted:
        summary["champion_note"] = "; ".join(plan.notes) or summary["champion_note"]
    kept = paths().reports / "flow" / context.run_id  # the drift reports outlive the staging
    summary["drift_reports"] = [str(_copy(Path(p), kept)) for p in drift.files]
    summary["changed"] = change_sentence(summary)
    _log_mlflow(
        intake.mlflow_run_id,
        params={
            "promoted": promoted,
            "reloaded": reload.ok if reload.attempted else "not attempted",
        },
        tags={
            "nothing_to_do": summary["nothing_to_do"],
            "reload_detail": reload.detail,
            "changed": summary["changed"],
        },
    )
    _client().log_dict(intake.mlflow_run_id, summary, "flow_decisions.json")
    _client().set_terminated(intake.mlflow_run_id, "FINISHED")
    shutil.rmtree(intake.staging, ignore_errors=True)
    context.log.info(summary["changed"])
    metadata: dict[str, Any] = {"decisions": MetadataValue.json(summary)}
    for path in summary["drift_reports"]:
        metadata[Path(path).name] = MetadataValue.path(path)
    return Output(summary, metadata=metadata)


def _manifest_text(run_id: str, intake: Intake, merged: Merged) -> str | None:
    """Return the new manifest (this run's merges and refusals added), None when unchanged."""
    if not merged.entries and not intake.refused:
        return None
    manifest = load_manifest(manifest_path())
    if merged.entries:
        manifest = with_merges(manifest, merged.entries, merged.history_sha256, merged.history_rows)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    refused = [
        {"file": r.name, "sha256": r.sha256, "reason": r.reason, "at": now, "run": run_id}
        for r in intake.refused
    ]
    return manifest_text({**manifest, "refused": [*manifest.get("refused", []), *refused]})


def _moves(settings: FlowSettings, intake: Intake) -> list[journal.Move]:
    """Return where each file taken or refused goes: archive/ (from the copy that was read,
    with the rejected rows beside it) or failed/ (the file itself, with its reason)."""
    incoming = Path(settings.incoming)
    archive, failed = incoming / "archive", incoming / "failed"
    moves, taken = [], set()

    def target(folder: Path, name: str, sha: str) -> str:
        path = str(free_name(folder, name, sha, taken))  # two files of this run: two names
        taken.add(path)
        return path

    for export in intake.new:
        archived = target(archive, export.name, export.sha256)
        moves.append(journal.Move(export.path, archived, export.copy, export.signature))
        if export.rejected_report:
            moves.append(journal.Move(None, archived + ".rejected.csv", export.rejected_report))
    for skipped in intake.skipped:
        archived = target(archive, skipped.name, skipped.sha256)
        moves.append(journal.Move(skipped.path, archived, skipped.copy, skipped.signature))
    for refused in intake.refused:
        sha = refused.sha256 or hashlib.sha256(refused.path.encode()).hexdigest()
        destination = target(failed, refused.name, sha)
        moves.append(journal.Move(refused.path, destination, reason=refused.reason))
    return moves


def _alias_move(training: Training) -> journal.AliasMove | None:
    """Return the champion move the training decided on (None when it did not promote)."""
    if not (training.retrained and training.promoted and training.version):
        return None
    return journal.AliasMove(training.model_name, training.version, training.champion_before)


def _champion_is(name: str, version: str | None) -> bool:
    from homevision import tracking

    current = tracking.champion(name)
    return version is not None and current is not None and str(current.version) == version


def _reload(context: OpExecutionContext, settings: FlowSettings, promoted: bool) -> Reload:
    """Tell the API about a new champion (no call without one or without an API URL; a failed
    call is reported, not fatal: each API worker also finds the champion within its watch
    period)."""
    if not promoted:
        return Reload(False, None, "no new champion")
    if not settings.api_url:
        return Reload(False, None, "no API URL given (--api / HOMEVISION_API_URL)")
    reload = post_reload(settings.api_url)
    if reload.ok:
        context.log.info(
            f"The API worker that answered reloaded the champion ({reload.detail}); the "
            "others load it within their watch period (serving.watch_seconds)"
        )
    else:
        context.log.warning(f"API reload failed: {reload.detail}")
    return reload


def _copy(path: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(path, folder / path.name))


def decisions(
    dagster_run_id: str,
    intake: Intake,
    merged: Merged,
    drift: DriftCheck,
    training: Training,
    reload: Reload,
) -> dict[str, Any]:
    """Return one flow run's decisions as a JSON-able dict (what `flow run --json` prints)."""
    return {
        "dagster_run_id": dagster_run_id,
        "mlflow_run_id": intake.mlflow_run_id,
        "nothing_to_do": not intake.new,
        "recovered": intake.recovered,
        "files_processed": [e.name for e in intake.new],
        "files_skipped": [e.name for e in intake.skipped],
        "files_refused": [{"file": r.name, "reason": r.reason} for r in intake.refused],
        "files_waiting": intake.waiting,
        "files_left": intake.left,
        "files_vanished": intake.gone,
        "rows_added": merged.rows_added,
        "rows_updated": merged.rows_updated,
        "rows_rejected": merged.rows_rejected,
        "rows_stale": merged.rows_stale,
        "new_sales": merged.new_sales,
        "sales_updated": merged.sales_updated,
        "sales_removed": merged.sales_removed,
        "warnings": merged.warnings,
        "history_rows": merged.history_rows,
        "history_sha256": merged.history_sha256,
        "drift_checked": drift.checked,
        "drift_detected": drift.detected,
        "drifted_columns": drift.columns,
        "drift_note": drift.reason,
        "retrained": training.retrained,
        "retrain_reasons": training.reasons,
        "retrain_skipped": training.skipped,
        "model_name": training.model_name,
        "version": training.version,
        "promoted": training.promoted,
        "champion_before": training.champion_before,
        "champion_note": training.champion_note,
        "train_run_id": training.run_id,
        "reload_attempted": reload.attempted,
        "reloaded": reload.ok,
        "reload_detail": reload.detail,
    }


def change_sentence(summary: dict[str, Any]) -> str:
    """Return the one sentence that says exactly what this run changed (the CLI's last line)."""
    parts = []
    if summary.get("recovered"):
        parts.append(summary["recovered"])
    if summary["files_processed"]:
        parts.append(
            f"history now {summary['history_rows']:,} rows ({summary['rows_added']:,} added, "
            f"{summary['rows_updated']:,} updated, {summary['new_sales']:,} new sales, "
            f"{summary['sales_removed']:,} sales removed)"
        )
    archived = len(summary["files_processed"]) + len(summary["files_skipped"])
    if archived:
        parts.append(f"{archived} file(s) archived")
    if summary["files_refused"]:
        parts.append(f"{len(summary['files_refused'])} file(s) moved to failed/")
    if summary["promoted"]:
        before = summary.get("champion_before")
        moved = f"v{before} -> v{summary['version']}" if before else f"v{summary['version']}"
        parts.append(f"champion {summary['model_name']} {moved}")
        if summary["reload_attempted"]:
            parts.append("API reloaded" if summary["reloaded"] else "API reload failed")
    elif summary["retrained"]:
        parts.append(f"v{summary['version']} registered, champion unchanged")
    if summary["files_waiting"]:
        parts.append(f"{len(summary['files_waiting'])} file(s) left to settle")
    return ("Changed: " + "; ".join(parts) + ".") if parts else "Nothing changed."


@failure_hook(name="discard_staging")
def discard_staging(context: HookContext) -> None:
    """On a failed op: mark the flow's MLflow run FAILED with the error and remove the staging
    folder; the history, manifest, drop folder and champion were never touched."""
    staging = staging_dir(context.run_id)
    marker = staging / MLFLOW_RUN_FILE
    if marker.exists():
        run_id = marker.read_text().strip()
        error = first_line(context.op_exception, 500) if context.op_exception else "failed"
        try:
            _log_mlflow(run_id, tags={"error": error, "failed_op": context.op.name})
            _client().set_terminated(run_id, "FAILED")
        except Exception:  # the store may be what failed: the error is in Dagster's log anyway
            log.exception("Could not mark the flow's MLflow run %s as failed", run_id)
    shutil.rmtree(staging, ignore_errors=True)


@job(
    name=JOB_NAME,
    executor_def=in_process_executor,
    hooks={discard_staging},
    description="Continuous training: new exports -> history -> drift -> retrain -> commit.",
)
def continuous_training() -> None:
    intake = pick_up()
    merged = merge_history(intake)
    drift = check_drift(intake, merged)
    training = retrain(intake, merged, drift)
    commit(intake, merged, drift, training)


def run_config(
    incoming: Path | str,
    features: str = "task6",
    budget: float | None = None,
    min_new_sales: int = DEFAULT_MIN_NEW_SALES,
    api_url: str | None = None,
    settle_seconds: float | None = None,
) -> dict[str, Any]:
    """Return the job's run config for these options (the `settings` resource's config)."""
    config: dict[str, Any] = {
        "incoming": str(Path(incoming).resolve()),
        "features": features,
        "min_new_sales": min_new_sales,
    }
    if budget is not None:
        config["budget"] = float(budget)
    if settle_seconds is not None:
        config["settle_seconds"] = float(settle_seconds)
    if api_url:
        config["api_url"] = api_url
    return {"resources": {"settings": {"config": config}}}


def budget_seconds(text: str | None) -> float | None:
    """Return the training budget that HOMEVISION_FLOW_BUDGET holds (None when unset), or raise
    ValueError in one sentence naming it when it is not a positive number of seconds."""
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ValueError(
            f"the training budget (--budget, {ENV_BUDGET}) must be a positive number of"
            f" seconds, not {text!r}"
        )
    return seconds


def settings_from_env(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Return run_config's options from HOMEVISION_FLOW_* variables (the drop folder defaults
    to data/incoming/ of the project)."""
    env = dict(os.environ if env is None else env)
    return {
        "incoming": env.get(ENV_INCOMING) or str(project_root() / "data" / "incoming"),
        "features": env.get(ENV_FEATURES) or "task6",
        "budget": budget_seconds(env.get(ENV_BUDGET)),
        "min_new_sales": int(env.get(ENV_MIN_NEW_SALES) or DEFAULT_MIN_NEW_SALES),
        "api_url": env.get(ENV_API_URL) or None,
    }


def build_definitions(cron: str = DEFAULT_CRON, **options: Any) -> Definitions:
    """Return the Definitions: the job, its resources (settings configured at launch, so
    every run names its drop folder) and a schedule (running by default) whose run config
    carries `options` (run_config's arguments)."""
    schedule = ScheduleDefinition(
        name=SCHEDULE_NAME,
        job=continuous_training,
        cron_schedule=cron,
        run_config=run_config(**options),
        default_status=DefaultScheduleStatus.RUNNING,
        description="Run the continuous-training flow on the drop folder.",
    )
    return Definitions(
        jobs=[continuous_training],
        schedules=[schedule],
        resources={
            "settings": FlowSettings.configure_at_launch(),
            "history_lock": HistoryLock(),
        },
    )


def dagster_home(root: Path | None = None) -> Path:
    """Return <project>/.dagster (created, with telemetry off), where Dagster keeps its run
    history for `flow run` and `dagster dev` alike."""
    home = (root or project_root()) / ".dagster"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return home


class FlowError(RuntimeError):
    """A flow run that failed. The message is one sentence; `unfinished` is True when a commit
    is left half done (its journal stays: the next run completes it), False when nothing was
    committed."""

    def __init__(self, message: str, unfinished: bool = False) -> None:
        super().__init__(message)
        self.unfinished = unfinished


def run_flow(log_level: str = "INFO", **options: Any) -> dict[str, Any]:
    """Run the flow once, in this process, recorded in the project's Dagster instance (its
    console log at `log_level`); return its decisions, or raise FlowError with the failing
    op's error in one sentence (and whether a commit was left unfinished)."""
    os.environ["DAGSTER_HOME"] = str(dagster_home())
    job_def = build_definitions(**options).resolve_job_def(JOB_NAME)
    config = run_config(**options) | {"loggers": {"console": {"config": {"log_level": log_level}}}}
    with DagsterInstance.get() as instance:
        result = job_def.execute_in_process(
            run_config=config, instance=instance, raise_on_error=False
        )
        if result.success:
            return result.output_for_node("commit")
        raise FlowError(_failure_sentence(result), journal.journal_path().exists())


def _failure_sentence(result) -> str:
    """Return the first failure of a run as one sentence: the op (or resource) and its error,
    the innermost cause only (Dagster wraps the user's exception)."""
    for event in result.all_events:
        if event.is_step_failure:
            where, error = event.step_key, event.step_failure_data.error
        elif event.event_type_value == "RESOURCE_INIT_FAILURE":
            where, error = "start", event.engine_event_data.error
        else:
            continue
        while error is not None and error.cause is not None:
            error = error.cause
        message = (error.message if error else "").strip().splitlines()
        text = message[0] if message else "failed"
        for wrapper in ("dagster._core.definitions.events.", "Failure: "):
            text = text.removeprefix(wrapper)
        return f"{where} failed: {text}"
    return "the flow run failed"


defs = build_definitions(
    os.environ.get(ENV_CRON) or DEFAULT_CRON,
    **settings_from_env(),
)
