"""Benchmark: explanations sampled by permutations (past 10 raw columns), side by side (printed).

One run, on the same model, reference homes and homes explained:
1. SHAP's PermutationExplainer with the same budget (4 permutations, forward and backward) and
   reference homes, one home at a time: what a user would run, and homevision's path before the
   walk (it ignored the reference homes' weights);
2. homevision's permutation plan, each distinct hybrid valued by the engine;
3. the same plan walked one raw column at a time (homevision.valuation.engine.walks), on one
   thread and on explain_threads().

For each: homes explained per second, and how far its values fall from a 256-permutation
reference of the same definition (weighted or not), as mean |difference| per home and column.

Usage (after `make run --features offmarket` or any model past 10 raw columns):
    python benchmarks/explain_speed.py [--model REF] [--homes 1000] [--home .]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def timed(fn) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--homes", type=int, default=1_000)
    parser.add_argument("--accuracy-homes", type=int, default=30)
    parser.add_argument("--home", type=Path, default=Path.cwd())
    args = parser.parse_args()
    os.environ["HOMEVISION_HOME"] = str(args.home.resolve())

    import shap

    from homevision.data.listings import coerce_types, load_listings
    from homevision.data.sources import resolve_data_path
    from homevision.tracking import describe_model, load_model
    from homevision.valuation.engine.walks import WalkValues
    from homevision.valuation.explain import (
        DollarExplainer,
        explain_threads,
        permutation_weights,
        shapley_values,
    )

    model = load_model(args.model)
    info = describe_model(args.model)
    if not model.uses_engine:
        raise SystemExit("the model is on the scikit-learn path: nothing to compare")
    listings = load_listings(resolve_data_path(None))
    typed = coerce_types(listings.to_value).reset_index(drop=True)
    served = model.explainer()
    if not served.sampled:
        raise SystemExit(f"{len(served.columns)} raw columns: explained exactly, not sampled")
    homes = typed[model.raw_columns_].sample(args.homes, replace=True, random_state=0)
    matrix = served.encoder.encode(homes.reset_index(drop=True))
    d, f = matrix.shape[1], served._f
    print(
        f"model {info.get('name')} v{info.get('version')} ({d} raw columns, "
        f"{len(served.background)} reference homes); {os.cpu_count()} CPUs; "
        f"{args.homes:,} homes"
    )

    def explainer(coalitions, threads) -> DollarExplainer:
        return DollarExplainer(
            served.predict_matrix,
            served.encoder,
            model.background_,
            served.weights,
            threads=threads,
            coalitions=coalitions,
        )

    walker = WalkValues.for_program(model.engine_.program)
    masker = shap.maskers.Independent(served.background, max_samples=len(served.background))
    budget = 4 * (2 * d + 1)

    def shap_values(rows: np.ndarray) -> np.ndarray:
        explained = shap.explainers.Permutation(f, masker, seed=0)
        return explained(rows, max_evals=budget, silent=True).values

    shap_values(matrix[:1])  # SHAP compiles its masking code (numba) on first use: not timed
    few = min(200, args.homes)
    paths = [
        ("SHAP PermutationExplainer (the old path)", lambda m: shap_values(m), few),
        ("plan, each hybrid valued (1 thread)", lambda m: explainer(None, 1).explain(None, m), few),
        ("plan walked (1 thread)", lambda m: explainer(walker, 1).explain(None, m), args.homes),
        (
            f"plan walked ({explain_threads()} threads)",
            lambda m: explainer(walker, None).explain(None, m),
            args.homes,
        ),
    ]
    print(f"\n{'path':44s} {'homes':>6s} {'seconds':>8s} {'homes/s':>8s} {'ms/home':>8s}")
    for name, run, n in paths:
        run(matrix[:2])  # warm: reference homes' encodings, plans
        _, seconds = timed(lambda run=run, n=n: run(matrix[:n]))
        print(f"{name:44s} {n:>6,} {seconds:>8.2f} {n / seconds:>8.0f} {seconds / n * 1e3:>8.2f}")

    sample = matrix[: args.accuracy_homes]
    reference = {
        weighted: shapley_values(
            f,
            sample,
            served.background,
            served.weights if weighted else None,
            permutation_weights(d, 256, seed=7),
            coalitions=walker,
        )[0]
        for weighted in (True, False)
    }
    scale = np.abs(reference[True]).mean()
    ours, _ = shapley_values(
        f, sample, served.background, served.weights, served.plan, coalitions=walker
    )
    print(
        f"\nagainst a 256-permutation reference on {len(sample)} homes "
        f"(mean |contribution| ${scale:,.0f}):"
    )
    for name, got, weighted in (
        ("homevision's plan (weighted reference homes)", ours, True),
        ("SHAP PermutationExplainer (unweighted)", shap_values(sample), False),
    ):
        gap = np.abs(got - reference[weighted])
        print(
            f"  {name:46s} mean ${gap.mean():,.0f} ({gap.mean() / scale:.1%}), "
            f"p95 ${np.quantile(gap, 0.95):,.0f}"
        )
    moved = np.abs(reference[True] - reference[False]).mean()
    print(
        f"  (weighting the reference homes moves the values by ${moved:,.0f}, "
        f"{moved / scale:.1%}: what the old path's values missed)"
    )


if __name__ == "__main__":
    main()
