"""Benchmark: value millions of listings and train on many, side by side. Three tables:

1. scoring - one synthetic Parquet file (default 2,000,000 rows) valued by the same small model
   (median_ppsf + ridge, trained on 2,000 rows in a temporary project) through the CLI:
   `predict` streamed in pandas (--workers: one per core) against `predict --engine spark` on
   local[1] and local[2]: wall time, rows/s, speed-up against local[1], cores kept busy on
   average (the JVM reads and writes while a task's Python worker values, so local[1] already
   uses more than one), peak summed RSS of the process tree (driver, JVM and Python workers).
   Targets: local[2] >= 1.7x local[1] (issue 12); local[2] at least as fast as pandas on the
   same file (issue 25).
2. csv     - an export in the MLS format (CSV, 250 columns, about 3.2 KB a row: the real
   sample's other columns drawn beside the synthetic ones; default 1,000,000 rows, cached as
   benchmarks/throughput.py caches it) valued through the CLI, `predict --data export.csv`
   with the default workers, start-up included. Target: >= 25,000 rows/s (issue 25).
3. memory  - the streamed pandas path as the file grows (default 1M and 4M rows): `sample-data`
   and `predict` time, rows/s and peak RSS. Target: peak memory flat as the file grows.
4. training - `train --features offmarket` on 20k, 50k and 200k rows within the default budget
   (benchmarks/scale_training.py): wall, peak RSS, winner, CV and honest RMSE against the
   generator's noise floor. Target: 200k within the budget, RMSE <= 1.05x the floor.

    python benchmarks/scale.py                                   # all four (about an hour)
    python benchmarks/scale.py --only scoring --scoring-rows 200000
    python benchmarks/scale.py --only csv --csv-rows 1000000      # from the project's root

Figures are printed, never asserted; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.exports import export_file  # noqa: E402
from benchmarks.measure import (  # noqa: E402
    measured_cli,
    run_predict,
    train_model,
)
from benchmarks.scale_training import train_once, training_table  # noqa: E402
from homevision.data.synthetic import write_listings_chunked  # noqa: E402
from homevision.serving.app import default_workers  # noqa: E402

log = logging.getLogger(__name__)
SECTIONS = ("scoring", "csv", "memory", "training")
CSV_TARGET = 25_000  # rows/s, a 250-column export through the CLI (issue 25)
TARGET_SPEEDUP = 1.7  # local[2] against local[1]
SPARK_MASTERS = ("local[1]", "local[2]")


def scoring(rows: int, chunk_rows: int | None) -> list[dict]:
    """Return the scoring rows: pandas streamed, Spark local[1], Spark local[2] on one file."""
    home = Path(tempfile.mkdtemp(prefix="hv-scale-scoring-"))
    train_model(home)
    data = write_listings_chunked(rows, home / "listings.parquet", seed=11)
    workers = default_workers()
    runs = [
        (
            f"pandas, streamed, --workers {workers}",
            [*_chunk(chunk_rows), "--workers", str(workers)],
        )
    ]
    runs += [(f"spark {m}", ["--engine", "spark", "--spark-master", m]) for m in SPARK_MASTERS]
    results = []
    for name, args in runs:
        log.info("scoring %s rows: %s", f"{rows:,}", name)
        results.append({"path": name, **run_predict(home, data, rows, args)})
    return results


def csv_scoring(rows: int, chunk_rows: int | None, cache: Path, runs: int) -> list[dict]:
    """Return `runs` CLI valuations of one wide CSV export (the MLS format), default workers."""
    home = Path(tempfile.mkdtemp(prefix="hv-scale-csv-"))
    train_model(home)
    data = export_file(rows, "csv", cache, wide=True)
    size = data.stat().st_size
    results = []
    for run in range(1, runs + 1):
        log.info("CSV, %s rows (%.1f GB), run %d of %d", f"{rows:,}", size / 1e9, run, runs)
        figures = run_predict(home, data, rows, _chunk(chunk_rows))
        results.append({"path": f"{data.name}, run {run}", **figures})
    return results


def _chunk(chunk_rows: int | None) -> list[str]:
    """Return the --chunk-rows option when one was asked for (else each command's default)."""
    return [] if chunk_rows is None else ["--chunk-rows", str(chunk_rows)]


def memory(sizes: list[int], chunk_rows: int | None) -> list[dict]:
    """Return, per size, `sample-data` writing it (Parquet, chunked) and the streamed `predict`
    valuing it: the memory of both should not grow with the file."""
    home = Path(tempfile.mkdtemp(prefix="hv-scale-memory-"))
    train_model(home)
    results = []
    for rows in sizes:
        data = home / f"listings-{rows}.parquet"
        args = ["sample-data", "--rows", str(rows), "--output", str(data), "--seed", "11"]
        written = measured_cli(home, [*args, *_chunk(chunk_rows)])
        results.append({"path": "sample-data", "rows": rows, **written})
        results[-1]["rows_per_s"] = rows / written["wall_s"]
        valued = run_predict(home, data, rows, _chunk(chunk_rows))
        results.append({"path": "predict, pandas streamed", **valued})
    return results


def scoring_table(results: list[dict], against: str | None = "spark local[1]") -> str:
    """Return scoring or memory rows as a markdown table, with the speed-up against the row
    whose path is `against` when given."""
    base = next((r["rows_per_s"] for r in results if r["path"] == against), None)
    ratio = [f"vs {against}"] if base else []
    head = ["path", "rows", "wall (s)", "rows/s", *ratio, "busy cores", "peak RSS, tree (MiB)"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in results:
        cells = [r["path"], f"{r['rows']:,}", f"{r['wall_s']:.1f}", f"{r['rows_per_s']:,.0f}"]
        cells += [f"{r['rows_per_s'] / base:.2f}x"] if base else []
        cells += [f"{r['busy_cores']:.2f}", f"{r['peak_rss_mib']:,.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--scoring-rows", type=int, default=2_000_000)
    parser.add_argument("--csv-rows", type=int, default=1_000_000)
    parser.add_argument("--csv-runs", type=int, default=3)
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "hv-throughput-cache"
    )
    parser.add_argument("--memory-rows", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--train-rows", type=int, nargs="+", default=[20_000, 50_000, 200_000])
    parser.add_argument("--budget", type=float, default=None, help="train budget (params.yaml)")
    parser.add_argument("--chunk-rows", type=int, default=None, help="default: each command's own")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tables = []
    if "scoring" in args.only:
        results = scoring(args.scoring_rows, args.chunk_rows)
        one, two = (next(r for r in results if r["path"] == f"spark {m}") for m in SPARK_MASTERS)
        speedup = two["rows_per_s"] / one["rows_per_s"]
        verdict = "met" if speedup >= TARGET_SPEEDUP else "missed"
        against = two["rows_per_s"] / results[0]["rows_per_s"]
        tables.append(
            f"## Scoring\n\n{scoring_table(results)}\n\nlocal[2] vs local[1]: {speedup:.2f}x "
            f"(target {TARGET_SPEEDUP}x: {verdict}); local[2] vs pandas: {against:.2f}x "
            f"(target 1.00x: {'met' if against >= 1 else 'missed'})"
        )
        print(tables[-1], flush=True)
    if "csv" in args.only:
        results = csv_scoring(args.csv_rows, args.chunk_rows, args.cache, args.csv_runs)
        slowest = min(r["rows_per_s"] for r in results)
        tables.append(
            f"## CSV, 250 columns, through the CLI\n\n{scoring_table(results, against=None)}\n\n"
            f"slowest run {slowest:,.0f} rows/s (target {CSV_TARGET:,}: "
            f"{'met' if slowest >= CSV_TARGET else 'missed'})"
        )
        print(tables[-1], flush=True)
    if "memory" in args.only:
        results = memory(args.memory_rows, args.chunk_rows)
        valued = [r for r in results if r["path"].startswith("predict")]
        growth = valued[-1]["peak_rss_mib"] / valued[0]["peak_rss_mib"] - 1
        tables.append(
            f"## Memory as the file grows\n\n{scoring_table(results, against=None)}\n\n"
            f"predict's peak RSS {valued[0]['rows']:,} -> {valued[-1]['rows']:,} rows: "
            f"{growth:+.1%}"
        )
        print(tables[-1], flush=True)
    if "training" in args.only:
        results = [train_once(rows, args.budget) for rows in args.train_rows]
        tables.append(f"## Training\n\n{training_table(results)}")
        print(tables[-1], flush=True)
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
