"""Does continuous training pay when the market moves? Twelve simulated monthly exports (prices
+1%/month, compounding; from month 6 the mix shifts to bigger, newer, attached homes), a model
trained on the base year and never retrained, against the champion of the continuous-training
flow (`homevision flow run` after each month's export).

    .venv/bin/python benchmarks/drift.py [--months 12] [--rows 500] [--base-rows 1500]
        [--budget 45] [--trend 0.01] [--mix 0.6] [--mix-from 6] [--plot PATH]

Each month's sales are valued BEFORE that month's export reaches the flow, by the frozen model
and by the flow's champion of the moment, so neither has seen them: the MdAPE columns are honest.
`homevision monitor` runs each month against the frozen model (its reference is the base year):
the month drift was first flagged is the first with exit 3. Runs in a temporary project (its
own MLflow store, history and Dagster instance). Figures are printed, never asserted; the plot
(MdAPE per month, both models, the first flag) goes to reports/benchmarks/drift_mdape.png.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def mdape(model, typed: pd.DataFrame) -> float:
    """Return the median absolute percentage error of `model` on the sales in `typed`."""
    from homevision.data.listings import is_labelled
    from homevision.valuation.predict import value_frame

    sales = typed[is_labelled(typed)]
    valued = value_frame(model, sales).frame["predicted_close_price"].to_numpy()
    price = sales["ClosePrice"].astype(float).to_numpy()
    ok = np.isfinite(valued)
    return float(np.median(np.abs(valued[ok] / price[ok] - 1)))


def plot(rows: list[dict], first_flag: int | None, path: Path) -> Path:
    """Draw MdAPE per month for both models (and the first drift flag); return the file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    months = [r["month"] for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.plot(months, [100 * r["mdape_frozen"] for r in rows], "o-", label="never retrained (v1)")
    ax.plot(months, [100 * r["mdape_flow"] for r in rows], "s-", label="flow's champion")
    if first_flag is not None:
        ax.axvline(first_flag, color="grey", ls="--", lw=1)
        ax.annotate(
            "drift first flagged", (first_flag, ax.get_ylim()[1]), ha="left", va="top", fontsize=9
        )
    ax.set_xlabel("month (sales valued before the flow sees them)")
    ax.set_ylabel("MdAPE, %")
    ax.set_title("Prices +1%/month, mix shift from month 6: stale model vs continuous training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--rows", type=int, default=500, help="listings per monthly export")
    parser.add_argument("--base-rows", type=int, default=1500)
    parser.add_argument("--budget", type=float, default=45.0, help="seconds per training")
    parser.add_argument("--trend", type=float, default=0.01)
    parser.add_argument("--mix", type=float, default=0.6)
    parser.add_argument("--mix-from", type=int, default=6)
    parser.add_argument(
        "--plot", type=Path, default=ROOT / "reports" / "benchmarks" / "drift_mdape.png"
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="hv-drift-"))
    os.environ["HOMEVISION_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.setdefault("HOMEVISION_PARAMS", str(ROOT / "params.yaml"))
    logging.basicConfig(level=logging.WARNING)

    from homevision import tracking
    from homevision.data.listings import load_listings
    from homevision.data.synthetic import MarketDrift, generate_listings, write_listings
    from homevision.flow.pipeline import run_flow
    from homevision.monitoring.drift import run_monitor

    started = time.perf_counter()
    incoming = home / "incoming"
    # The flow starts from the base year: with no champion yet it trains and promotes v1, the
    # model then kept frozen; its retrains learn from the whole history.
    write_listings(generate_listings(args.base_rows, seed=0), incoming / "month-00.csv")
    first = run_flow(log_level="WARNING", incoming=incoming, budget=args.budget)
    name = first["model_name"]
    frozen_ref = f"models:/{name}/{first['version']}"
    frozen = tracking.load_model(frozen_ref)

    rows, first_flag = [], None
    for month in range(1, args.months + 1):
        mix = args.mix if month >= args.mix_from else 0.0
        drift = MarketDrift(month=month, price_trend=args.trend, mix_shift=mix)
        path = write_listings(
            generate_listings(args.rows, seed=100 + month, market_seed=0, drift=drift),
            home / f"month-{month:02d}.csv",
        )
        typed = load_listings(path).typed
        champion = tracking.load_model(None)
        champion_version = tracking.champion(name).version
        report = run_monitor(path, frozen_ref, out_dir=home / "monitor" / f"{month:02d}")
        if report.detected and first_flag is None:
            first_flag = month
        row = {
            "month": month,
            "price_index": (1 + args.trend) ** month,
            "mix": mix,
            "sales": int((typed["ClosePrice"].notna()).sum()),
            "flagged": report.detected,
            "columns": ", ".join(report.drifted_columns) or "-",
            "mdape_frozen": mdape(frozen, typed),
            "mdape_flow": mdape(champion, typed),
            "champion": champion_version,
        }
        shutil.copy(path, incoming / path.name)
        decision = run_flow(log_level="WARNING", incoming=incoming, budget=args.budget)
        row["flow"] = (
            ("promoted v" if decision["promoted"] else "kept; made v") + str(decision["version"])
            if decision["retrained"]
            else "no retrain"
        )
        rows.append(row)
        print(
            f"month {month:2d}: MdAPE frozen {100 * row['mdape_frozen']:.1f}%, flow "
            f"{100 * row['mdape_flow']:.1f}% (v{champion_version}); drift "
            f"{'yes' if report.detected else 'no'}; {row['flow']}",
            flush=True,
        )

    print(
        f"\nSimulated market: +{100 * args.trend:.0f}%/month, mix shift {args.mix} from month "
        f"{args.mix_from}; {args.rows} listings a month, base year {args.base_rows}; "
        f"training budget {args.budget:.0f} s; {time.perf_counter() - started:.0f} s in all\n"
    )
    print(
        "| month | prices | mix | sales | drift vs v1 (columns) | MdAPE never retrained | "
        "MdAPE flow champion (version) | flow after the month |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        flag = f"yes ({r['columns']})" if r["flagged"] else "no"
        print(
            f"| {r['month']} | x{r['price_index']:.3f} | {r['mix']:.1f} | {r['sales']} | {flag} | "
            f"{100 * r['mdape_frozen']:.1f}% | {100 * r['mdape_flow']:.1f}% (v{r['champion']}) | "
            f"{r['flow']} |"
        )
    frozen_mean = np.mean([r["mdape_frozen"] for r in rows])
    flow_mean = np.mean([r["mdape_flow"] for r in rows])
    print(
        f"\nMean MdAPE over the months: never retrained {100 * frozen_mean:.1f}%, flow "
        f"{100 * flow_mean:.1f}%; drift first flagged in month {first_flag}"
    )
    print(f"Plot: {plot(rows, first_flag, args.plot)}")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
