"""How fast the CLI answers: `homevision --help`, each command's `--help` and `validate` on the
real sample, for this checkout beside an earlier commit (default: the last one before the lazy
imports), in the same run, with the same virtual environment.

    .venv/bin/python benchmarks/cli_speed.py [--before REV] [--repeats 5] [--bytecode]

With --bytecode, the comparison is instead this checkout run as `make install` now leaves it
(site-packages and the package compiled to bytecode) against the same environment without
that bytecode, as an install without --compile-bytecode runs where PYTHONDONTWRITEBYTECODE is
set: every process then compiles each module it imports from source. That is emulated exactly
by pointing PYTHONPYCACHEPREFIX at an empty folder (Python then looks for bytecode only there).

The earlier commit is checked out into a temporary git worktree and run with PYTHONPATH pointing
at it (a path entry wins over the editable install). Each figure is the median wall time of
`--repeats` runs, each a fresh Python process. Targets (issue 24): help <= 0.5 s, validate on the
real sample <= 2 s, on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BEFORE = "37533be"  # main before issue 24's lazy imports
REAL = ROOT.parent / "shared" / "data" / "home-listings-example.csv"


def timed(command: list[str], cwd: Path, env: dict[str, str], repeats: int) -> float:
    """Return the median seconds of `repeats` runs of `command` (any exit code)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cases(data: Path) -> list[tuple[str, list[str]]]:
    """The commands measured: (label, arguments after `python -m homevision.cli`)."""
    return [
        ("homevision --help", ["--help"]),
        ("homevision train --help", ["train", "--help"]),
        ("homevision predict --help", ["predict", "--help"]),
        ("homevision flow run --help", ["flow", "run", "--help"]),
        (f"homevision validate --data {data.name}", ["validate", "--data", str(data)]),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="Earlier commit to compare.")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--bytecode", action="store_true", help="Compare with the install without bytecode."
    )
    parser.add_argument("--data", type=Path, default=REAL if REAL.exists() else None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        data = args.data
        if data is None:
            from homevision.data.synthetic import generate_listings, write_listings

            data = write_listings(generate_listings(608, seed=0), home / "listings.csv")
        old = home / "before"
        base = {**os.environ, "HOMEVISION_HOME": str(home)}
        base.pop("PYTHONPATH", None)
        if args.bytecode:
            empty = home / "no-bytecode"
            empty.mkdir()
            source = {**base, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(empty)}
            runs, before = {"before": source, "now": base}, "without bytecode"
        else:
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(old), args.before],
                cwd=ROOT,
                check=True,
                capture_output=True,
            )
            runs, before = {"before": {**base, "PYTHONPATH": str(old)}, "now": base}, args.before
        try:
            print(f"| command | {before} (s) | now (s) | speed-up |")
            print("|---|---|---|---|")
            for label, extra in cases(data):
                command = [sys.executable, "-m", "homevision.cli", *extra]
                seconds = {k: timed(command, home, env, args.repeats) for k, env in runs.items()}
                print(
                    f"| `{label}` | {seconds['before']:.2f} | {seconds['now']:.2f} | "
                    f"{seconds['before'] / seconds['now']:.1f}x |"
                )
        finally:
            if not args.bytecode:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False
                )


if __name__ == "__main__":
    main()
