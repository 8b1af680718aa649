"""Experiment v1, model selection: `python -m homevision.experiments.model_v1 [--features SET]`.

Cross-validates every candidate with default hyper-parameters on the default data and logs a
parent MLflow run with one child per candidate to the project's tracking store (`mlflow ui`).
"""

from __future__ import annotations

import argparse
import logging

from homevision.data.sources import resolve_data_path
from homevision.logging_setup import setup_logging
from homevision.training.train import run_selection

log = logging.getLogger("homevision.experiments.model_v1")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=None, help="Listings export (default data if omitted).")
    parser.add_argument("--features", default="task6", help="Feature set from params.yaml.")
    args = parser.parse_args(argv)
    setup_logging()
    selection = run_selection(resolve_data_path(args.data), args.features)
    log.info("Best candidate by CV RMSE: %s", selection.winner)


if __name__ == "__main__":
    main()
