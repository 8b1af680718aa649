"""Soak benchmark of `homevision flow run` (issue 23): months of drifting monthly exports, with
faults mixed in, through the real CLI, one run after another, in one temporary project.

    .venv/bin/python benchmarks/flow_soak.py [--months 24] [--rows 250] [--base-rows 1500]
        [--budget 20] [--min-new-sales 30] [--write-seconds 12] [--keep]

What it drops, in one drop folder, one `flow run --json` per drop (a subprocess, its own
project: HOMEVISION_HOME, MLflow store, history, Dagster instance):

* a base export (the year before month 1, `2020-06.csv`): with no champion yet, the first run
  trains and promotes v1;
* `--months` monthly exports `YYYY-MM.csv` (month 1 is 2020-07, synthetic.FIRST_DRIFT_MONTH).
  The market moves: prices +1.5%/month from a quarter of the way in, the mix shifts to bigger,
  newer, attached homes from half-way, a new school opens at three quarters (24 months: months
  6, 12, 18). Listings recur: each month `--rows` homes come on the market (its export holds
  them as Active, with their asking price); each home's fate is the status the generator drew
  for it, reached 1 or 2 months later (Sold with the generator's ClosePrice and a CloseDate that
  month, Pending, Cancelled, Expired...: a newer row for the same MLSNumber), homes drawn Active
  stay on the market and appear once; 3% of the sold homes are re-listed (Active again, no
  sale) 2 months after their sale: a newer row that un-sells them. A month's export holds every
  row whose status changed that month (about 1.7 x --rows rows), each with a
  StatusChangeTimestamp inside its month (the generator makes none; added here);

and three faults:

1. a late, older export: after month ~14 (of 24) a copy of month ~10's export, its rows in
   reverse order (other bytes, so it is not skipped as already merged), named
   `YYYY-MM-resent.csv`, in a run of its own: its rows that the history holds newer facts about
   must be left out (rows_stale > 0, exactly as many as the benchmark expects) and it must
   remove no sale;
2. an unreadable file (`YYYY-MM-colleague.csv`, month ~7): as root it is made another user's
   (uid 65534, mode 0600) and that month's run goes under `setpriv` without the capabilities to
   read other users' files; as anyone else it is chmod 000. It must land in failed/ with a
   reason;
3. a file written while the flow runs (month ~19): a thread appends its rows over
   `--write-seconds` under its final name while `flow run --settle-seconds 5` runs: that run
   must leave it waiting, and the next run (once it has been still for 5 s) takes it whole.

Other runs pass `--settle-seconds 0`. Training is kept cheap: median_ppsf and ridge with few
folds (tests/integration/conftest.py tiny_params) and `--budget 20`.

After every run one line on stderr; at the end a markdown table (one row per run, then totals)
and the invariants as PASS/FAIL lines: every file dropped is accounted for, one history row per
MLSNumber, no sale lost (the history's sales are exactly the MLSNumbers whose newest merged row
is a sale), the manifest's history_sha256 is the history's, the champion's data_hash is a
history the manifest recorded, and each fault had the effect it must. Exit status 1 when an
invariant fails. Figures are measured, never hard-coded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.measure import project  # noqa: E402
from homevision.data.synthetic import (  # noqa: E402
    FIRST_DRIFT_MONTH,
    MarketDrift,
    export_csv_bytes,
    generate_listings,
    write_listings,
)
from tests.integration.conftest import tiny_params  # noqa: E402

STATUS_TIME = "StatusChangeTimestamp"
EVENT = "_event_month"  # the month a row's status changed (dropped before writing)
TREND = 0.015  # per month, compounding, from the trend's first month
MIX = 0.5
NEW_SCHOOL = "Quartz Hollow"
RELIST_SHARE = 0.03  # sold homes listed again 2 months after their sale
SLOW_SETTLE = 5.0  # --settle-seconds of the run that meets the file being written
CANDIDATES = ["median_ppsf", "ridge"]
DROP_ROOTS_PRIVILEGE = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
    "--",
]


@dataclass(frozen=True)
class Schedule:
    """Which month each drift and each fault comes in (scaled from the 24-month plan)."""

    months: int
    trend_from: int
    mix_from: int
    school_from: int
    unreadable: int  # the month whose run also finds another user's unreadable file
    resent_source: int  # the month whose export comes again, late
    resent_after: int  # the month after whose run it comes
    slow: int  # the month whose export is still being written while the flow runs

    @classmethod
    def scaled(cls, months: int) -> Schedule:
        """Return the plan for `months` (at least 4): 24 months give drift from months 6, 12
        and 18, the unreadable file in month 7, month 10 resent after month 14, month 19 slow."""
        if months < 4:
            raise SystemExit("--months must be at least 4 (the faults need room)")

        def at(share: float, low: int = 1) -> int:
            return min(months, max(low, round(share * months)))

        source = at(10 / 24)
        return cls(
            months=months,
            trend_from=at(6 / 24),
            mix_from=at(12 / 24),
            school_from=at(18 / 24),
            unreadable=at(7 / 24),
            resent_source=source,
            resent_after=max(source + 2, at(14 / 24)),
            slow=at(19 / 24),
        )

    def drift(self, month: int) -> MarketDrift:
        """Return the market of `month`. MarketDrift compounds its trend from month 1; a trend
        that starts at `trend_from` is the per-month rate giving the same shift at `month`."""
        shift = max(0, month - self.trend_from + 1) * np.log1p(TREND)
        return MarketDrift(
            month=month,
            price_trend=float(np.expm1(shift / month)) if month else 0.0,
            mix_shift=MIX if month >= self.mix_from else 0.0,
            new_school=NEW_SCHOOL if month >= self.school_from else None,
        )


def month_start(month: int) -> pd.Timestamp:
    """Return the first day of `month` (month 1 is synthetic.FIRST_DRIFT_MONTH)."""
    return FIRST_DRIFT_MONTH + pd.DateOffset(months=month - 1)


def file_name(month: int, suffix: str = "") -> str:
    """Return a month's export name, YYYY-MM[suffix].csv."""
    return f"{month_start(month):%Y-%m}{suffix}.csv"


def stamp(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Give each row a StatusChangeTimestamp inside its event month (a Sold row's CloseDate is
    that day); return the frame."""
    starts = [month_start(m) for m in frame[EVENT]]
    days = np.array([(s + pd.DateOffset(months=1) - s).days for s in starts])
    offsets = rng.integers(0, days) * 86400 + rng.integers(8 * 3600, 20 * 3600, len(frame))
    times = pd.DatetimeIndex(starts) + pd.to_timedelta(offsets, unit="s")
    frame[STATUS_TIME] = times.strftime("%Y-%m-%d %H:%M:%S")
    sold = frame["Status"].astype(str).eq("Sold").to_numpy()
    frame.loc[sold, "CloseDate"] = times[sold].strftime("%Y-%m-%d")
    return frame


def base_year(rows: int) -> pd.DataFrame:
    """Return the base export (month 0, the year before month 1): the generator's rows as they
    are, each stamped on its CloseDate (sold) or a day of that year (the others)."""
    frame = generate_listings(rows, seed=0, market_seed=0)
    rng = np.random.default_rng(0)
    day = pd.Timestamp("2019-07-01") + pd.to_timedelta(rng.integers(0, 366, rows), unit="D")
    close = pd.to_datetime(frame["CloseDate"], errors="coerce")
    when = close.fillna(pd.Series(day, index=frame.index))
    when = when + pd.to_timedelta(rng.integers(8 * 3600, 20 * 3600, rows), unit="s")
    frame[STATUS_TIME] = when.dt.strftime("%Y-%m-%d %H:%M:%S")
    frame[EVENT] = 0
    return frame


def lifecycles(month: int, rows: int, schedule: Schedule) -> pd.DataFrame:
    """Return every status change of the `rows` homes listed in `month` (EVENT: its month):
    Active that month; the generator's status 1 or 2 months later (homes drawn Active stay
    so); RELIST_SHARE of the sales Active again 2 months after the sale."""
    fresh = generate_listings(rows, seed=100 + month, market_seed=0, drift=schedule.drift(month))
    rng = np.random.default_rng([month, 23])
    fate = fresh["Status"].astype(str)
    listed = fresh.assign(Status="Active", ClosePrice=pd.NA, CloseDate=pd.NA)
    listed[EVENT] = month
    ended = fresh[fate.ne("Active").to_numpy()].copy()
    ended[EVENT] = month + rng.integers(1, 3, len(ended))
    sold = ended[ended["Status"].astype(str).eq("Sold").to_numpy()]
    relisted = sold[rng.random(len(sold)) < RELIST_SHARE].assign(
        Status="Active", ClosePrice=pd.NA, CloseDate=pd.NA
    )
    relisted[EVENT] = relisted[EVENT] + 2
    events = pd.concat([listed, ended, relisted], ignore_index=True)
    return stamp(events, rng)


def all_events(schedule: Schedule, rows: int, base_rows: int) -> pd.DataFrame:
    """Return every row of every export (EVENT 0 is the base export), events past the last
    month left out: they are never exported."""
    frames = [base_year(base_rows)]
    frames += [lifecycles(m, rows, schedule) for m in range(1, schedule.months + 1)]
    events = pd.concat(frames, ignore_index=True)
    return events[events[EVENT] <= schedule.months].reset_index(drop=True)


def export_of(events: pd.DataFrame, month: int) -> pd.DataFrame:
    """Return a month's export: the rows whose status changed that month, by MLSNumber."""
    rows = events[events[EVENT] == month].sort_values("MLSNumber", kind="stable")
    return rows.drop(columns=[EVENT]).reset_index(drop=True)


def sha256(path: Path) -> str:
    """Return a file's SHA-256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resent_bytes(path: Path) -> bytes:
    """Return an export's bytes with its rows in reverse order (same rows, other bytes)."""
    header, *rows = path.read_bytes().split(b"\r\n")
    rows = [r for r in rows if r]
    return b"\r\n".join([header, *reversed(rows)]) + b"\r\n"


def someone_elses(path: Path) -> list[str]:
    """Make `path` another user's file, readable by them only, and return the command prefix
    under which the flow cannot read it: as root, setpriv without the capabilities to read
    other users' files; as anyone else the file simply has no read bit."""
    if os.geteuid() == 0 and shutil.which("setpriv"):
        os.chown(path, 65534, 65534)  # nobody
        os.chmod(path, 0o600)
        return DROP_ROOTS_PRIVILEGE
    os.chmod(path, 0o000)
    return []


class SlowWriter(threading.Thread):
    """Writes an export under its final name a few rows at a time over `seconds` (a producer
    still at it while the flow runs)."""

    def __init__(self, frame: pd.DataFrame, path: Path, seconds: float, pieces: int = 24):
        super().__init__(daemon=True)
        self.frame, self.path, self.seconds, self.pieces = frame, path, seconds, pieces
        self.started_writing = threading.Event()

    def run(self) -> None:
        chunks = np.array_split(np.arange(len(self.frame)), self.pieces)
        with self.path.open("wb") as out:
            out.write(export_csv_bytes(self.frame.iloc[0:0], header=True))
            for i, rows in enumerate(chunks):
                out.write(export_csv_bytes(self.frame.iloc[rows], header=False))
                out.flush()
                self.started_writing.set()
                if i + 1 < len(chunks):
                    time.sleep(self.seconds / (self.pieces - 1))


@dataclass
class Run:
    """One `flow run`: what was dropped, what it printed, how long it took."""

    label: str
    wall_s: float
    returncode: int
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def flow_run(
    home: Path,
    incoming: Path,
    env: dict[str, str],
    args: argparse.Namespace,
    settle: float,
    prefix: list[str] | None = None,
) -> tuple[float, int, dict[str, Any], str]:
    """Run `homevision flow run --json` in `home`; return wall seconds, exit code, the JSON
    summary (empty on failure) and the output's tail when it failed."""
    command = [
        *(prefix or []), sys.executable, "-m", "homevision.cli", "flow", "run",
        "--incoming", str(incoming), "--json", "--budget", str(args.budget),
        "--min-new-sales", str(args.min_new_sales), "--settle-seconds", f"{settle:g}",
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=home, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode == 0 and lines:
        return wall, 0, json.loads(lines[-1]), ""
    return wall, proc.returncode or 1, {}, (proc.stdout + proc.stderr)[-3000:]


def progress(run: Run) -> None:
    """Write one line about a finished run on stderr."""
    s = run.summary
    if not s:
        print(f"[{run.label}] FAILED (exit {run.returncode}): {run.error[-300:]}", file=sys.stderr)
        return
    print(
        f"[{run.label}] {run.wall_s:.1f} s: merged {len(s['files_processed'])}, failed "
        f"{len(s['files_refused'])}, waiting {len(s['files_waiting'])}; {s['changed']}",
        file=sys.stderr,
        flush=True,
    )


class Soak:
    """The temporary project, its drop folder and the runs made so far."""

    def __init__(self, args: argparse.Namespace, home: Path):
        self.args, self.home = args, home
        self.incoming = home / "incoming"
        self.incoming.mkdir(parents=True)
        self.schedule = Schedule.scaled(args.months)
        self.events = all_events(self.schedule, args.rows, args.base_rows)
        self.exports: dict[str, pd.DataFrame] = {}  # every file dropped -> its rows
        self.hashes: dict[str, str] = {}  # every file dropped -> its SHA-256 when complete
        self.runs: list[Run] = []
        params = tiny_params(home, CANDIDATES)
        self.env = {**project(home), "HOMEVISION_PARAMS": str(params)}
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
        )
        for name in ("COLUMNS", "LINES"):
            self.env.pop(name, None)

    def drop(self, name: str, frame: pd.DataFrame) -> Path:
        """Write an export into the drop folder and remember its rows and bytes."""
        path = write_listings(frame, self.incoming / name)
        self.exports[name], self.hashes[name] = frame, sha256(path)
        return path

    def run(self, label: str, settle: float = 0.0, prefix: list[str] | None = None) -> Run:
        """Run the flow once, keep and report the result."""
        wall, code, summary, error = flow_run(
            self.home, self.incoming, self.env, self.args, settle, prefix
        )
        run = Run(label, wall, code, summary, error)
        self.runs.append(run)
        progress(run)
        return run

    def month(self, month: int) -> None:
        """Drop a month's export (and that month's fault) and run the flow."""
        name, frame = file_name(month), export_of(self.events, month)
        label = f"{month:2d} {name[:-4]}"
        if month == self.schedule.slow:
            self.slow_month(month, name, frame, label)
            return
        self.drop(name, frame)
        prefix = None
        if month == self.schedule.unreadable:
            other = file_name(month, "-colleague")
            path = self.drop(other, generate_listings(40, seed=999, market_seed=0))
            prefix = someone_elses(path)
            label += " +unreadable"
        self.run(label, prefix=prefix)
        if month == self.schedule.resent_after:
            self.late_export()

    def slow_month(self, month: int, name: str, frame: pd.DataFrame, label: str) -> None:
        """Write the month's export slowly while `flow run --settle-seconds 5` runs."""
        path = self.incoming / name
        writer = SlowWriter(frame, path, self.args.write_seconds)
        writer.start()
        writer.started_writing.wait()
        self.exports[name] = frame
        self.run(label + " (being written)", settle=SLOW_SETTLE)
        writer.join()
        self.hashes[name] = sha256(path)
        self.settle(path)

    def settle(self, path: Path) -> None:
        """Wait until `path` has been still for SLOW_SETTLE seconds (with a margin)."""
        if path.exists():
            time.sleep(max(0.0, SLOW_SETTLE + 0.5 - (time.time() - path.stat().st_mtime)))

    def late_export(self) -> None:
        """Drop the resent (reordered) copy of an older month's export, in a run of its own."""
        source = file_name(self.schedule.resent_source)
        name = file_name(self.schedule.resent_source, "-resent")
        archived = self.archived_copy(source)
        if archived is None:
            print(f"[late] {source} was not archived: late export skipped", file=sys.stderr)
            return
        path = self.incoming / name
        path.write_bytes(resent_bytes(archived))
        self.exports[name], self.hashes[name] = self.exports[source], sha256(path)
        self.run(f"   {name[:-4]} (late)")

    def archived_copy(self, name: str) -> Path | None:
        """Return the archived file whose bytes are the export `name`'s, None when none is."""
        for path in sorted((self.incoming / "archive").glob("*")):
            if path.is_file() and sha256(path) == self.hashes[name]:
                return path
        return None

    def soak(self) -> None:
        """Drop the base export, then every month (with its faults), one run each; a last run
        when a file is still waiting at the end."""
        self.drop(file_name(0), export_of(self.events, 0))
        self.run(" 0 base year")
        for month in range(1, self.schedule.months + 1):
            self.month(month)
        if self.runs[-1].summary.get("files_waiting"):
            self.settle(self.incoming / self.runs[-1].summary["files_waiting"][0]["file"])
            self.run("   drain", settle=SLOW_SETTLE)


# The report.


def cell(run: Run) -> dict[str, str]:
    """Return one run's table cells."""
    s = run.summary
    if not s:
        return {"run": run.label, "changed": f"FAILED (exit {run.returncode})"}
    drift = "-"
    if s["drift_checked"]:
        drift = f"yes ({', '.join(s['drifted_columns'])})" if s["drift_detected"] else "no"
    version = f"v{s['version']}" if s["version"] else "-"
    return {
        "run": run.label,
        "merged": str(len(s["files_processed"])),
        "failed": str(len(s["files_refused"])),
        "waiting": str(len(s["files_waiting"])),
        "rows added": str(s["rows_added"]),
        "rows stale": str(s["rows_stale"]),
        "sales added": str(s["new_sales"]),
        "sales removed": str(s["sales_removed"]),
        "drift (columns)": drift,
        "retrained": version if s["retrained"] else "no",
        "promoted": version if s["promoted"] else "-",
        "wall s": f"{run.wall_s:.1f}",
        "changed": s["changed"],
    }


COLUMNS = [
    "run", "merged", "failed", "waiting", "rows added", "rows stale", "sales added",
    "sales removed", "drift (columns)", "retrained", "promoted", "wall s", "changed",
]  # fmt: skip


def totals(runs: list[Run]) -> dict[str, str]:
    """Return the totals row: files merged, failed, waiting-then-taken, sales added and
    removed, drift detections, retrains, promotions, wall time."""
    done = [r.summary for r in runs if r.summary]
    waited = {w["file"] for s in done for w in s["files_waiting"]}
    taken = {f for s in done for f in s["files_processed"]}

    def total(key: str) -> int:
        return sum(len(s[key]) if isinstance(s[key], list) else int(s[key]) for s in done)

    return {
        "run": f"**total ({len(runs)} runs)**",
        "merged": str(total("files_processed")),
        "failed": str(total("files_refused")),
        "waiting": f"{len(waited & taken)} waited, then taken",
        "rows added": str(total("rows_added")),
        "rows stale": str(total("rows_stale")),
        "sales added": str(total("new_sales")),
        "sales removed": str(total("sales_removed")),
        "drift (columns)": f"{sum(bool(s['drift_detected']) for s in done)} detections",
        "retrained": str(sum(bool(s["retrained"]) for s in done)),
        "promoted": str(sum(bool(s["promoted"]) for s in done)),
        "wall s": f"{sum(r.wall_s for r in runs):.1f}",
        "changed": f"{sum(1 for r in runs if not r.summary)} run(s) failed",
    }


def table(runs: list[Run]) -> str:
    """Return the runs and their totals as a markdown table."""
    rows = [cell(r) for r in runs] + [totals(runs)]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r.get(c, "") for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


# The invariants.


def read_history(home: Path) -> pd.DataFrame:
    """Return the committed history (strings), empty when there is none."""
    path = home / "data" / "history" / "listings.csv"
    return pd.read_csv(path, dtype=str, keep_default_na=False) if path.exists() else pd.DataFrame()


def manifest(home: Path) -> dict[str, Any]:
    """Return the committed manifest (empty without one)."""
    path = home / "data" / "history" / "manifest.json"
    return json.loads(path.read_text()) if path.exists() else {}


def accounted(soak: Soak) -> tuple[bool, str]:
    """Every file dropped is archived (by its bytes), in failed/ with a reason, or still in the
    drop folder with a waiting reason from the last run."""
    archive = soak.incoming / "archive"
    archived = {sha256(p) for p in archive.glob("*") if p.is_file()} if archive.is_dir() else set()
    last = soak.runs[-1].summary
    waiting = {w["file"]: w["reason"] for w in last.get("files_waiting", [])}
    failed = soak.incoming / "failed"
    lost, where = [], {"archived": 0, "failed": 0, "waiting": 0}
    for name, digest in soak.hashes.items():
        reason = failed / f"{name}.reason.txt"
        if digest in archived:
            where["archived"] += 1
        elif (failed / name).exists() and reason.exists() and reason.read_text().strip():
            where["failed"] += 1
        elif (soak.incoming / name).exists() and waiting.get(name):
            where["waiting"] += 1
        else:
            lost.append(name)
    detail = ", ".join(f"{v} {k}" for k, v in where.items())
    return not lost, f"{len(soak.hashes)} dropped: {detail}" + (f"; LOST {lost}" if lost else "")


def merged_names(soak: Soak) -> list[str]:
    """Return the files merged, in the order the runs merged them."""
    return [f for r in soak.runs for f in r.summary.get("files_processed", [])]


def expected_sales(soak: Soak) -> tuple[set[int], set[int], int]:
    """Return (MLSNumbers whose newest merged row is a sale, MLSNumbers sold in some merged
    export, how many of those a newer row un-sold)."""
    names = merged_names(soak)
    rows = pd.concat([soak.exports[n] for n in names], ignore_index=True)
    rows = rows.assign(_id=rows["MLSNumber"].astype("int64"), _order=np.arange(len(rows)))
    sold_rows = rows["Status"].astype(str).eq("Sold") & (
        pd.to_numeric(rows["ClosePrice"], errors="coerce") > 0
    )
    ever = set(rows.loc[sold_rows, "_id"])
    newest = rows.assign(_sold=sold_rows).sort_values([STATUS_TIME, "_order"], kind="stable")
    newest = newest.drop_duplicates("_id", keep="last")
    now = set(newest.loc[newest["_sold"], "_id"])
    return now, ever, len(ever - now)


def history_sales(history: pd.DataFrame) -> set[int]:
    """Return the MLSNumbers the history holds as sales (Sold with a positive ClosePrice)."""
    if history.empty:
        return set()
    sold = history["Status"].eq("Sold") & (pd.to_numeric(history["ClosePrice"], "coerce") > 0)
    return set(history.loc[sold, "MLSNumber"].astype("int64"))


def champion_hash(home: Path) -> tuple[str | None, str | None]:
    """Return the champion's version and its training run's data_hash tag (None, None without
    a champion)."""
    from mlflow.tracking import MlflowClient

    from homevision.tracking import CHAMPION, MODEL_NAME

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    try:
        version = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    except Exception:  # no registered model or no alias
        return None, None
    return str(version.version), client.get_run(version.run_id).data.tags.get("data_hash")


def late_export_check(soak: Soak) -> list[tuple[bool, str]]:
    """The late export's own manifest entry: stale rows as expected, no sale removed."""
    schedule = soak.schedule
    name = file_name(schedule.resent_source, "-resent")
    entry = next((e for e in manifest(soak.home).get("merges", []) if e["file"] == name), None)
    if entry is None:
        return [(False, f"late export {name}: not merged")]
    source = soak.exports[name]
    later = soak.events[
        (soak.events[EVENT] > schedule.resent_source)
        & (soak.events[EVENT] <= schedule.resent_after)
    ]
    expected = int(source["MLSNumber"].isin(later["MLSNumber"]).sum())
    stale, removed = entry["rows_stale"], entry["sales_removed"]
    return [
        (
            stale > 0 and stale == expected,
            f"late export {name}: {stale} rows left out as older than the history "
            f"(expected {expected}, of {entry['rows']})",
        ),
        (removed == 0, f"late export {name}: {removed} sales removed (must be 0)"),
    ]


def waiting_names(run: Run) -> set[str]:
    """Return the files a run left waiting."""
    return {w["file"] for w in run.summary.get("files_waiting", [])}


def fault_checks(soak: Soak) -> list[tuple[bool, str]]:
    """The unreadable file in failed/ with a reason; the slow file waited, then taken whole."""
    schedule = soak.schedule
    other = file_name(schedule.unreadable, "-colleague")
    reason_file = soak.incoming / "failed" / f"{other}.reason.txt"
    reason = reason_file.read_text().strip() if reason_file.exists() else ""
    checks = [(bool(reason), f"unreadable {other}: in failed/ with reason '{reason}'")]
    slow = file_name(schedule.slow)
    waited = [
        r.label
        for r in soak.runs
        if slow in {w["file"] for w in r.summary.get("files_waiting", [])}
    ]
    taken = [r.label.strip() for r in soak.runs if slow in r.summary.get("files_processed", [])]
    entry = next((e for e in manifest(soak.home).get("merges", []) if e["file"] == slow), None)
    whole = entry is not None and entry["sha256"] == soak.hashes.get(slow)
    rows = entry["rows"] if entry else 0
    checks.append(
        (
            bool(waited) and bool(taken) and whole and rows == len(soak.exports[slow]),
            f"file being written {slow}: waiting in {len(waited)} run(s), taken in "
            f"{taken or 'none'}, {rows} of {len(soak.exports[slow])} rows, final bytes: {whole}",
        )
    )
    return checks


def invariants(soak: Soak) -> list[tuple[bool, str]]:
    """Return every invariant as (passed, sentence)."""
    home = soak.home
    history = read_history(home)
    found = manifest(home)
    checks = [accounted(soak)]
    ids = history["MLSNumber"] if not history.empty else pd.Series(dtype=str)
    checks.append(
        (
            not history.empty and ids.is_unique and ids.ne("").all(),
            f"history: {len(history)} rows, {ids.nunique()} distinct MLSNumbers",
        )
    )
    now, ever, unsold = expected_sales(soak)
    held = history_sales(history)
    checks.append(
        (
            held == now,
            f"sales: {len(held)} in the history; {len(ever)} sold in some merged export, "
            f"{unsold} un-sold by a newer row (re-listed) -> {len(now)} expected; missing "
            f"{len(now - held)}, unexpected {len(held - now)}",
        )
    )
    path = home / "data" / "history" / "listings.csv"
    actual = sha256(path) if path.exists() else None
    checks.append(
        (
            actual is not None and found.get("history_sha256") == actual,
            f"manifest history_sha256 {str(found.get('history_sha256'))[:12]} == history "
            f"{str(actual)[:12]}",
        )
    )
    committed = {e["history_sha256"] for e in found.get("merges", [])}
    version, data_hash = champion_hash(home)
    checks.append(
        (
            data_hash in committed,
            f"champion v{version}: data_hash {str(data_hash)[:12]} is a committed history "
            f"({len(committed)} in the manifest)",
        )
    )
    failed_runs = [r.label.strip() for r in soak.runs if not r.summary]
    checks.append((not failed_runs, f"every run exited 0 (failed: {failed_runs or 'none'})"))
    return checks + late_export_check(soak) + fault_checks(soak)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--rows", type=int, default=250, help="homes listed per month")
    parser.add_argument("--base-rows", type=int, default=1500, help="rows of the base export")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per training")
    parser.add_argument("--min-new-sales", type=int, default=30, help="flow run's threshold")
    parser.add_argument(
        "--write-seconds", type=float, default=12.0, help="how long the slow file takes to write"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary project")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="hv-flow-soak-"))
    started = time.perf_counter()
    soak = Soak(args, home)
    s = soak.schedule
    print(
        f"project {home}; {args.months} months, {args.rows} homes listed a month, base "
        f"{args.base_rows} rows; drift: trend from month {s.trend_from}, mix from {s.mix_from}, "
        f"new school from {s.school_from}; faults: unreadable file in month {s.unreadable}, "
        f"month {s.resent_source} resent after month {s.resent_after}, month {s.slow} written "
        "during the run",
        file=sys.stderr,
    )
    try:
        soak.soak()
        results = invariants(soak)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    elapsed = time.perf_counter() - started
    sizes = [len(soak.exports[file_name(m)]) for m in range(1, args.months + 1)]
    print(
        f"\n`homevision flow run`, {len(soak.runs)} runs: base export {args.base_rows} rows, "
        f"{args.months} monthly exports of {min(sizes)}-{max(sizes)} rows; "
        f"candidates {', '.join(CANDIDATES)}, budget {args.budget:g} s, min new sales "
        f"{args.min_new_sales}; {elapsed:.0f} s in all ({os.cpu_count()} cores)\n"
    )
    print(table(soak.runs))
    print("\nInvariants:")
    for passed, sentence in results:
        print(f"{'PASS' if passed else 'FAIL'}: {sentence}")
    return 0 if all(passed for passed, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
