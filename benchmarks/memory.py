"""Benchmark (issue 25): peak memory of a batch valuation as the export grows, which must stay
flat (within 5%) from 1M to 10M rows and under 1 GB.

Each size is valued in a fresh process, as `homevision predict --data --workers N` does (the
same model for every size: the ridge of benchmarks/throughput.py, with --variant ranges), while
a sampler reads the memory of that process and of every process under it (the forkserver and
the workers) from /proc every 0.1 s. The table gives, per size, the peak of the whole tree
(proportional set size: shared library pages count once) and the peak resident memory of the
calling process alone, each against the smallest size.

    .venv/bin/python benchmarks/memory.py [--rows 1000000,4000000,10000000] [--workers 2]
        [--variant cv_plus|cv_base]

Linux only (it reads /proc). Figures are printed, never asserted; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from homevision.config import DEFAULT_CHUNK_ROWS  # noqa: E402

log = logging.getLogger("memory")
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
GROWTH_TARGET = 0.05
PEAK_TARGET_MIB = 1024


def tree(pid: int) -> list[int]:
    """Return `pid` and every process under it, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def rss_mib(pid: int) -> float:
    """Resident memory of one process in MiB (0 when it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


def pss_mib(pid: int) -> float:
    """Proportional resident memory of one process in MiB: pages shared with other processes
    (the libraries a forkserver's workers inherit) count a share each, so the sum over a tree
    is the memory the tree holds (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0.0


class Sampler:
    """Peaks of the resident memory of a process (RSS) and of its whole tree (the sum of PSS),
    sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every = pid, every
        self.tree_peak = self.self_peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.self_peak = max(self.self_peak, rss_mib(self.pid))
            self.tree_peak = max(self.tree_peak, sum(pss_mib(p) for p in tree(self.pid)))
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def child(model_path: Path, export: Path, workers: int, chunk_rows: int) -> None:
    """Value `export` with the pickled model, as the CLI streams it; print seconds as JSON."""
    from homevision.valuation.parallel import return_freed_memory

    return_freed_memory()  # as `predict --data` does, before pyarrow is imported
    from homevision.data.listings import read_export_chunks
    from homevision.valuation.predict import export_columns
    from homevision.valuation.stream import stream_valuations

    model = pickle.loads(model_path.read_bytes())
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hv-memory-") as tmp:
        chunks = read_export_chunks(export, chunk_rows, export_columns(model), True, lazy=True)
        summary = stream_valuations(
            model, chunks, Path(tmp) / "valuations.parquet", workers=workers
        )
    print(json.dumps({"seconds": time.perf_counter() - start, "rows": summary.rows}))


def measure(model_path: Path, export: Path, workers: int, chunk_rows: int) -> dict:
    """Run one valuation in a fresh process under the sampler; return its figures."""
    command = [
        sys.executable,
        __file__,
        "--child",
        str(model_path),
        str(export),
        "--workers",
        str(workers),
        "--chunk-rows",
        str(chunk_rows),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    with Sampler(process.pid) as sampler:
        out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"the valuation failed (exit {process.returncode})")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "tree_mib": sampler.tree_peak, "self_mib": sampler.self_peak}


def table(results: list[dict]) -> str:
    """Return the figures per size as a markdown table, each peak against the first size's."""
    base = results[0]
    lines = [
        "| rows | seconds | rows/s | peak PSS, all processes (MiB) | vs first | "
        "peak RSS, calling process (MiB) | vs first |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['rows']:,} | {r['seconds']:.1f} | {r['rows'] / r['seconds']:,.0f} | "
            f"{r['tree_mib']:,.0f} | {r['tree_mib'] / base['tree_mib'] - 1:+.1%} | "
            f"{r['self_mib']:,.0f} | {r['self_mib'] / base['self_mib'] - 1:+.1%} |"
        )
    return "\n".join(lines)


def verdict(results: list[dict]) -> str:
    """Return the targets, met or missed, in one line each."""
    base = results[0]
    lines = []
    for key, what in (("tree_mib", "PSS of all processes"), ("self_mib", "RSS of the caller")):
        growth = max(r[key] / base[key] - 1 for r in results)
        peak = max(r[key] for r in results)
        flat = "met" if growth <= GROWTH_TARGET else "missed"
        under = "met" if peak <= PEAK_TARGET_MIB else "missed"
        lines.append(
            f"- {what}: flat within {GROWTH_TARGET:.0%} from {base['rows']:,} rows: {flat} "
            f"(largest growth {growth:+.1%}); peak <= {PEAK_TARGET_MIB:,} MiB: {under} "
            f"({peak:,.0f} MiB)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1000000,4000000,10000000")
    parser.add_argument("--features", default="task6", choices=["task6", "offmarket"])
    parser.add_argument("--variant", default="cv_plus", choices=["cv_plus", "cv_base"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS)
    parser.add_argument("--child", nargs=2, type=Path, metavar=("MODEL", "EXPORT"))
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "hv-throughput-cache"
    )
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.workers, args.chunk_rows)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    import throughput

    sizes = [int(n) for n in args.rows.split(",")]
    exports = {n: throughput.export_file(n, "parquet", args.cache) for n in sizes}
    log.info("fitting the model (%s, %s)", args.features, args.variant)
    model, _ = throughput.fit_model(args.features, args.variant)
    results = []
    with tempfile.TemporaryDirectory(prefix="hv-memory-") as tmp:
        model_path = Path(tmp) / "model.pkl"
        model_path.write_bytes(pickle.dumps(model))
        for n in sizes:
            log.info("valuing %s rows on %d worker(s)...", f"{n:,}", args.workers)
            results.append(measure(model_path, exports[n], args.workers, args.chunk_rows))
            log.info("  %s", results[-1])
    print(
        f"## Peak memory of a batch valuation: parquet, features {args.features}, ranges "
        f"{args.variant}, --workers {args.workers}, chunks of {args.chunk_rows:,}\n\n"
        f"{table(results)}\n\n{verdict(results)}"
    )


if __name__ == "__main__":
    main()
