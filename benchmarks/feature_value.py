"""Benchmark: what each off-market column buys, by repeated cross-validation on the real sample.

Starting from the shipped `offmarket` set, each row drops one of its columns ("-X") or adds one
that was considered and left out ("+X"), and prints RMSE, MAPE and MdAPE of a few candidates
over 3 repeats of 5-fold CV (the same folds for every row). A column stays in the set when
dropping it costs accuracy on most candidates; a left-out one would have to gain.

Usage: python benchmarks/feature_value.py [--data PATH] [--models ridge svr gaussian_process]
       [--only shipped -fee ...]
"""

from __future__ import annotations

import argparse
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 3
# Considered for the off-market set and left out (the real export's names).
CONSIDERED_NUMERIC = ["UnexemptTaxes"]
CONSIDERED_CATEGORICAL = ["HighSchoolName", "StructuralStyle", "MLSAreaMinor"]
CONSIDERED_LISTS = ["LotFeatures", "PoolFeatures", "Flooring", "ParkingFeatures", "SpecialNotes"]


def variants(fs) -> dict[str, object]:
    """Return {row name: feature set}: the shipped set, each column dropped, each considered
    column added."""
    out = {"shipped": fs}
    if fs.fee:
        out[f"-{fs.fee[0]} (annual fee)"] = replace(fs, fee=None)
    for c in fs.categorical:
        out[f"-{c}"] = replace(fs, categorical=tuple(x for x in fs.categorical if x != c))
    for c in fs.high_cardinality:
        kept = tuple(x for x in fs.high_cardinality if x != c)
        out[f"-{c}"] = replace(fs, high_cardinality=kept)
    for c in fs.token_lists:
        out[f"-{c}"] = replace(fs, token_lists=tuple(x for x in fs.token_lists if x != c))
    for c in CONSIDERED_NUMERIC:
        out[f"+{c}"] = replace(fs, numeric=(*fs.numeric, c))
    for c in CONSIDERED_CATEGORICAL:
        out[f"+{c}"] = replace(fs, categorical=(*fs.categorical, c))
    for c in CONSIDERED_LISTS:
        out[f"+{c}"] = replace(fs, token_lists=(*fs.token_lists, c))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT / "data/raw/home-listings-example.csv")
    parser.add_argument("--models", nargs="+", default=["ridge", "svr", "gaussian_process"])
    parser.add_argument("--only", nargs="+", default=None, help="Rows to run, by name.")
    args = parser.parse_args()
    os.environ.setdefault("HOMEVISION_PARAMS", str(ROOT / "params.yaml"))
    warnings.filterwarnings("ignore")
    from sklearn.model_selection import KFold, cross_val_predict

    from homevision.data.listings import load_listings
    from homevision.features import get_feature_set
    from homevision.training.candidates import build_model

    X = load_listings(args.data).labelled.reset_index(drop=True)
    y = X["ClosePrice"].to_numpy(float)
    rows = variants(get_feature_set("offmarket"))
    names = args.only or list(rows)
    print(f"{len(X)} sales; {REPEATS} x 5-fold CV; RMSE / MAPE / MdAPE per candidate\n")
    head = "| columns | " + " | ".join(f"{m} RMSE | MAPE | MdAPE" for m in args.models) + " |"
    print(head)
    print("|---" * (1 + 3 * len(args.models)) + "|")
    for name in names:
        cells = [name]
        for model in args.models:
            errors = [
                cross_val_predict(
                    build_model(model, rows[name]),
                    X,
                    y,
                    cv=KFold(5, shuffle=True, random_state=r),
                )
                - y
                for r in range(REPEATS)
            ]
            e = np.concatenate(errors)
            ape = np.abs(e) / np.tile(y, REPEATS)
            cells += [
                f"${np.sqrt(np.mean(e**2)):,.0f}",
                f"{100 * ape.mean():.2f}%",
                f"{100 * np.median(ape):.2f}%",
            ]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
