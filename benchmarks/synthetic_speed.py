"""Benchmark: generate and write 1,000,000 synthetic listings; prints seconds (target < 60 s)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from homevision.data.synthetic import generate_listings, write_listings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        frame = generate_listings(args.rows, args.seed)
        generated = time.perf_counter()
        path = write_listings(frame, Path(tmp) / "listings.csv")
        written = time.perf_counter()
        size_mb = path.stat().st_size / 1e6
    print(f"rows            {args.rows:>12,}")
    print(f"generate        {generated - start:>12.2f} s")
    print(f"write CSV       {written - generated:>12.2f} s  ({size_mb:,.0f} MB)")
    print(f"total           {written - start:>12.2f} s  (target < 60 s)")


if __name__ == "__main__":
    main()
