"""The Markdown model card: what the model is, what it learned from, and how wrong it is."""

from __future__ import annotations

from typing import Any

import pandas as pd

from homevision.training.metrics import BOUND_LEVEL

PERCENT = {"mape", "mdape", "within_5", "within_10", "within_20"}


def fmt_metric(name: str, value: float) -> str:
    """Return a metric formatted in its unit: dollars, percent, or a plain number."""
    if name in PERCENT:
        return f"{100 * value:.1f}%"
    if name == "r2":
        return f"{value:.3f}"
    return f"${value:,.0f}"


LATER = ("rmse", "mape", "mdape")  # time-ordered columns the leaderboard shows


def bounds_text(figures: dict[str, Any], metric: str) -> str:
    """Return a metric's bootstrap interval ("low to high"), or "n/a" for a run made before
    the card had them."""
    low, high = figures.get(f"{metric}_low"), figures.get(f"{metric}_high")
    if low is None or high is None:
        return "n/a"
    return f"{fmt_metric(metric, low)} to {fmt_metric(metric, high)}"


def bounds_note(scored: Any) -> str:
    """Return the sentence that says what the card's intervals are."""
    rows = f"the {scored} sales scored" if scored else "the sales scored"
    return (
        f"The {100 * BOUND_LEVEL:.0f}% interval is a bootstrap over {rows}: how far the figure "
        "could move on other sales like them. It leaves out how the procedure itself varies "
        "from run to run."
    )


def spread_text(metric: str, row: pd.Series, repeats: int | None = None) -> str:
    """Return a leaderboard row's std across repeats in the metric's unit, or "n/a" for an
    entry that ran one repeat (successive halving dropped it): a spread over one repeat is
    undefined, and "$0" would read as no spread at all."""
    if repeats is not None and repeats < 2:
        return "n/a"
    return fmt_metric(metric, row[f"{metric}_std"])


def leaderboard_markdown(table: pd.DataFrame, repeats: dict[str, int] | None = None) -> str:
    """Return the leaderboard as a Markdown table: random-fold CV (mean ± std across repeats;
    "± n/a" for an entry `repeats` says ran one repeat), then the time-ordered figures
    (`later_*` columns, fitted on the earlier sales, scored on the later ones) when the table
    has them."""
    metrics = ["rmse", "mae", "r2", "mape", "mdape", "within_10"]
    later = [m for m in LATER if f"later_{m}" in table.columns]
    head = [m.upper() for m in metrics] + ["fit s"] + [f"later {m.upper()}" for m in later]
    lines = ["| candidate | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for name, row in table.iterrows():
        ran = None if repeats is None else repeats.get(str(name))
        cells = [f"{fmt_metric(m, row[m])} ± {spread_text(m, row, ran)}" for m in metrics]
        cells.append(f"{row['fit_seconds']:.2f}")
        cells += [
            fmt_metric(m, row[f"later_{m}"]) if pd.notna(row[f"later_{m}"]) else "n/a"
            for m in later
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def optimism_text(honest: dict[str, Any], cv: dict[str, Any]) -> str:
    """Return the selection optimism in words: the honest estimate less the winner's selection
    CV, per metric (positive: the CV flattered the winner that much)."""
    parts = []
    for m in ("rmse", "mape", "mdape"):
        if m in honest and m in cv and pd.notna(cv[m]):
            gap = float(honest[m]) - float(cv[m])
            sign = "+" if gap >= 0 else "-"
            parts.append(f"{m.upper()} {sign}{fmt_metric(m, abs(gap))}")
    return ", ".join(parts) or "n/a"


def time_ordered_markdown(timed: dict[str, Any] | None) -> str:
    """Return the card's time-ordered paragraph and table (how well the procedure values the
    sales that came later), or why there is none."""
    if not timed:
        return (
            "Time-ordered estimate: not measured (too few sales with a CloseDate on either side, "
            "or the budget ran out)."
        )
    rows = [
        f"| {m.upper()} | {fmt_metric(m, timed[m])} | {bounds_text(timed, m)} |"
        for m in ("rmse", "mae", "mape", "mdape", "within_10")
    ]
    return "\n".join(
        [
            f"Time-ordered estimate, from **{timed['method']}** (winner there: "
            f"`{timed['winner']}`): the figure for next month's sales, which random folds (past "
            "and future sales mixed) overstate when the market moves. "
            + bounds_note(timed.get("later")),
            "",
            f"| metric | time-ordered (honest) | {100 * BOUND_LEVEL:.0f}% interval |",
            "|---|---|---|",
            *rows,
        ]
    )


def intervals_markdown(intervals: dict[str, Any]) -> str:
    """Return the interval section: the chosen MAPIE variant, coverage and width at every level
    (random outer folds and time-ordered), and every variant's figures at the default level."""
    timed = {s.level: s for s in intervals["time_ordered"]}
    carried = set(intervals["carried"])
    lines = [
        f"Conformal ranges (MAPIE `{intervals['variant']}`, multiplicative gamma score); default "
        f"{100 * intervals['default']:.0f}%. Random folds: {intervals['folds']}-fold outer CV, "
        "ranges calibrated on the training folds and scored on the held-out fold. Time-ordered: "
        f"calibrated on the earlier {100 * (1 - intervals['later_share']):.0f}% of sales by "
        f"CloseDate, scored on the later {100 * intervals['later_share']:.0f}% (how the ranges "
        "hold for next month's sales). A level whose random-fold coverage falls short of it "
        "(beyond the tolerance) is not carried. Caveat: the point model's spec was chosen on all "
        "rows and the variant is picked on these figures, so they lean slightly optimistic.",
        "",
        "| level | coverage (random folds) | median width | coverage (time-ordered) | carried |",
        "|---|---|---|---|---|",
    ]
    for s in intervals["chosen_scores"]:
        later = f"{100 * timed[s.level].coverage:.1f}%" if s.level in timed else "n/a (no dates)"
        lines.append(
            f"| {100 * s.level:.0f}% | {100 * s.coverage:.1f}% | "
            f"{100 * s.median_relative_width:.1f}% | {later} | "
            f"{'yes' if s.level in carried else 'no'} |"
        )
    lines += [
        "",
        f"Variants compared at {100 * intervals['level']:.0f}%:",
        "",
        "| variant | coverage | median width (% of valuation) |",
        "|---|---|---|",
    ]
    lines += [
        f"| {s.variant} | {100 * s.coverage:.1f}% | {100 * s.median_relative_width:.1f}% |"
        for s in intervals["scores"]
        if s.level == intervals["level"]
    ]
    return "\n".join(lines)


def promotion_markdown(ctx: dict[str, Any]) -> str:
    """Return the champion section: the rule, the decision and the paired comparison."""
    lines = [f"Rule: {ctx['rule']}.", "", f"Decision: {ctx['champion_note']}."]
    comparison = ctx["decision"].comparison
    if comparison is not None:
        lines += [
            "",
            "| fold | champion RMSE | challenger RMSE |",
            "|---|---|---|",
        ]
        lines += [
            f"| {i + 1} | ${old:,.0f} | ${new:,.0f} |"
            for i, (old, new) in enumerate(
                zip(comparison.champion_rmse, comparison.challenger_rmse, strict=True)
            )
        ]
    return "\n".join(lines)


def importance_markdown(importance: pd.Series) -> str:
    """Return mean |SHAP| per raw feature as a Markdown table."""
    rows = [f"| {name} | ${value:,.0f} |" for name, value in importance.items()]
    return "\n".join(["| feature | mean abs contribution |", "|---|---|", *rows])


def render_model_card(ctx: dict[str, Any]) -> str:
    """Return the model card text from the training context (all figures computed upstream)."""
    ctx = {
        **ctx,
        "intervals_md": intervals_markdown(ctx["intervals"]),
        "promotion_md": promotion_markdown(ctx),
        "importance_md": importance_markdown(ctx["importance"]),
    }
    honest = ctx["honest"]
    cv = ctx["cv"]
    rows = [
        f"| {m.upper()} | {fmt_metric(m, honest[m])} | {bounds_text(honest, m)} "
        f"| {fmt_metric(m, cv[m])} |"
        for m in ("rmse", "mae", "r2", "mape", "mdape", "within_5", "within_10", "within_20")
    ]
    return f"""# Model card: {ctx["model_name"]} v{ctx["version"]}

- **Model**: `{ctx["winner"]}` ({ctx["spec_text"]})
- **Feature set**: `{ctx["feature_set"]}`: {ctx["feature_description"]}
  Raw columns: {", ".join(ctx["raw_columns"])}
- **Trained**: {ctx["trained_at"]} with code `{ctx["git_commit"]}`, MLflow run `{ctx["run_id"]}`
- **Champion**: {ctx["champion_note"]}
- **Budget**: {ctx["budget"]:.0f} s; trimmed to fit: {"; ".join(ctx["budget_notes"]) or "nothing"}
- **Serving**: {ctx.get("engine", "scikit-learn path")}; explanations are exact Shapley values
  against {ctx.get("background_rows", "the")} weighted reference homes (k-medoids of the sales)

## Data
- Source: `{ctx["data_path"]}` (sha256 `{ctx["data_hash"][:16]}…`)
- {ctx["rows"]} rows: {ctx["accepted"]} accepted, {ctx["rejected"]} rejected;
  {ctx["labelled"]} labelled (Sold with ClosePrice) used for training, {ctx["to_value"]} to value.
- Evidence: {ctx.get("evidence") or "none (sales only)"}
- Repaired quirks: {ctx["repaired"] or "none"}

## How wrong is it?
Honest estimate, from **{honest["method"]}**: the rows scored there never influenced which
model was chosen or how it was tuned. The procedure re-run there is the deployed one; only its
rows differ (each outer training fold instead of all rows). The selection CV column is
the winner's score on the data that chose it: optimistic by construction, shown for comparison
only. {bounds_note(honest.get("rows_scored"))}

| metric | honest (nested) | {100 * BOUND_LEVEL:.0f}% interval | selection CV ({ctx["plan"]}) |
|---|---|---|---|
{chr(10).join(rows)}

Selection optimism (how much the winner's selection CV flatters it, honest minus CV):
{optimism_text(honest, cv)}.

How the winner was chosen: {ctx.get("choice") or "best CV RMSE"}.
Successive halving: {ctx.get("halving") or "every candidate on every repeat"}.

Not eligible (valued some homes lower for more living area): {ctx["excluded"]}.

Inner winners across outer folds: {", ".join(honest["winners"])}.

{time_ordered_markdown(ctx.get("time_ordered"))}

## Price range
{ctx["intervals_md"]}

## Champion
{ctx["promotion_md"]}

## What drives the valuations (mean |SHAP|, USD, {len(ctx["contributions"].values)} homes)
{ctx["importance_md"]}

![SHAP summary](shap_summary.png)

## Leaderboard ({ctx["plan"]})
Later columns: each candidate with its chosen settings fitted on the earlier sales by CloseDate
and scored on the later ones (settings were chosen by random-fold CV on all sales, so these lean
optimistic; the honest time-ordered figure is above).

{ctx["leaderboard_md"]}

## Plots
![leaderboard](leaderboard.png)
![predicted vs actual](predicted_vs_actual.png)
![residuals](residuals.png)

## Limits
- Trained on {ctx["labelled"]} sales from one market and period; values outside its ranges are
  extrapolations.
- The target never sees leaking columns (ClosePrice, CurrentPrice, RATIO_*, Selling*, ...).
- On sold rows ListPrice is the final asking price (after any cuts), so an `onmarket` model learns
  from the last price a seller asked, not the first.
"""


def metrics_summary(ctx: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Return the run's figures for reports/metrics.json (`dvc metrics show/diff`): the winner's
    selection CV (mean and std across repeats), the honest nested-CV estimate, and the default
    price range's coverage and median width (random folds; time-ordered coverage when the data
    has dates), and the time-ordered estimate when one was measured. Numbers only, and no
    timings or dates: two runs differ only where their models do."""
    intervals = ctx["intervals"]
    level = float(intervals["default"])
    chosen = next(s for s in intervals["chosen_scores"] if s.level == level)
    price_range = {
        "level": level,
        "coverage": float(chosen.coverage),
        "median_width": float(chosen.median_relative_width),
    }
    timed = [s for s in intervals["time_ordered"] if s.level == level]
    if timed:
        price_range["coverage_time_ordered"] = float(timed[0].coverage)
    return {
        "cv": {k: float(v) for k, v in ctx["cv"].items() if k != "fit_seconds"},
        "honest": {
            k: float(v)
            for k, v in ctx["honest"].items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        },
        "range": price_range,
        **(
            {
                "time_ordered": {
                    k: float(v)
                    for k, v in ctx["time_ordered"].items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
            }
            if ctx.get("time_ordered")
            else {}
        ),
    }


def model_reference(ctx: dict[str, Any]) -> dict[str, Any]:
    """Return reports/model.json: the registered version this run made and the champion after
    its decision (what `homevision predict` values with by default)."""
    return {
        "name": ctx["model_name"],
        "version": str(ctx["version"]),
        "uri": f"models:/{ctx['model_name']}/{ctx['version']}",
        "run_id": ctx["run_id"],
        "feature_set": ctx["feature_set"],
        "promoted": bool(ctx["promoted"]),
        "champion_version": ctx["champion_version"],
    }
