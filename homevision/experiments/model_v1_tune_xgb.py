"""Experiment v1, XGBoost tuning: `python -m homevision.experiments.model_v1_tune_xgb`.

Tunes XGBRegressor with Optuna on repeated CV of the labelled rows; every trial is an MLflow run
in the project's tracking store and the study is kept in optuna.db (resumable).
"""

from __future__ import annotations

import argparse
import logging

from homevision.data.listings import load_listings
from homevision.data.sources import resolve_data_path
from homevision.logging_setup import setup_logging
from homevision.training.tune_job import run_tuning

log = logging.getLogger("homevision.experiments.model_v1_tune_xgb")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=None, help="Listings export (default data if omitted).")
    parser.add_argument("--features", default="task6", help="Feature set from params.yaml.")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=None, help="Seconds.")
    args = parser.parse_args(argv)
    setup_logging()
    listings = load_listings(resolve_data_path(args.data))
    result = run_tuning(listings, "xgboost", args.features, args.trials, args.timeout, None, None)
    log.info("Best XGBoost CV RMSE %.0f with %s", result.rmse, result.params)


if __name__ == "__main__":
    main()
