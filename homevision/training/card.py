"""The Markdown model card: what the model is, what it learned from, and how wrong it is."""

from __future__ import annotations

from typing import Any

import pandas as pd

PERCENT = {"mape", "mdape", "within_5", "within_10", "within_20"}


def fmt_metric(name: str, value: float) -> str:
    """Return a metric formatted in its unit: dollars, percent, or a plain number."""
    if name in PERCENT:
        return f"{100 * value:.1f}%"
    if name == "r2":
        return f"{value:.3f}"
    return f"${value:,.0f}"


def leaderboard_markdown(table: pd.DataFrame) -> str:
    """Return the leaderboard as a Markdown table (mean ± std across repeats)."""
    metrics = ["rmse", "mae", "r2", "mape", "mdape", "within_10"]
    lines = [
        "| candidate | " + " | ".join(m.upper() for m in metrics) + " | fit s |",
        "|---" * (len(metrics) + 2) + "|",
    ]
    for name, row in table.iterrows():
        cells = [f"{fmt_metric(m, row[m])} ± {fmt_metric(m, row[m + '_std'])}" for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['fit_seconds']:.2f} |")
    return "\n".join(lines)


def intervals_markdown(intervals: dict[str, Any]) -> str:
    """Return the interval section: chosen MAPIE variant and every variant's measured figures."""
    lines = [
        f"Conformal ranges (MAPIE `{intervals['variant']}`, multiplicative gamma score) at "
        f"{100 * intervals['level']:.0f}% confidence; levels carried: "
        + ", ".join(f"{100 * v:.0f}%" for v in intervals["levels"])
        + ".",
        f"Measured by {intervals['folds']}-fold outer CV: ranges calibrated on the training folds"
        " and scored on the held-out fold. Caveat: the point model's spec was chosen on all rows,"
        " and the variant is picked on these same figures, so they lean slightly optimistic; the"
        " synthetic benchmark (fresh homes) is the clean check.",
        "",
        "| variant | coverage | median width (% of valuation) |",
        "|---|---|---|",
    ]
    lines += [
        f"| {s.variant} | {100 * s.coverage:.1f}% | {100 * s.median_relative_width:.1f}% |"
        for s in intervals["scores"]
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
        "importance_md": importance_markdown(ctx["importance"]),
    }
    honest = ctx["honest"]
    cv = ctx["cv"]
    rows = [
        f"| {m.upper()} | {fmt_metric(m, honest[m])} | {fmt_metric(m, cv[m])} |"
        for m in ("rmse", "mae", "r2", "mape", "mdape", "within_5", "within_10", "within_20")
    ]
    return f"""# Model card: {ctx["model_name"]} v{ctx["version"]}

- **Model**: `{ctx["winner"]}` ({ctx["spec_text"]})
- **Feature set**: `{ctx["feature_set"]}`: {ctx["feature_description"]}
  Raw columns: {", ".join(ctx["raw_columns"])}
- **Trained**: {ctx["trained_at"]} on commit `{ctx["git_commit"]}`, MLflow run `{ctx["run_id"]}`
- **Champion**: {ctx["champion_note"]}

## Data
- Source: `{ctx["data_path"]}` (sha256 `{ctx["data_hash"][:16]}…`)
- {ctx["rows"]} rows: {ctx["accepted"]} accepted, {ctx["rejected"]} rejected;
  {ctx["labelled"]} labelled (Sold with ClosePrice) used for training, {ctx["to_value"]} to value.
- Repaired quirks: {ctx["repaired"] or "none"}

## How wrong is it?
Honest estimate, from **{honest["method"]}**: the rows scored there never influenced which
model was chosen or how it was tuned. The selection CV column is the winner's score on the data
that chose it: optimistic by construction, shown for comparison only.

| metric | honest (nested) | selection CV ({ctx["plan"]}) |
|---|---|---|
{chr(10).join(rows)}

Not eligible (valued some homes lower for more living area): {ctx["excluded"]}.

Inner winners across outer folds: {", ".join(honest["winners"])}.

## Price range
{ctx["intervals_md"]}

## What drives the valuations (mean |SHAP|, USD, {len(ctx["contributions"].values)} homes)
{ctx["importance_md"]}

![SHAP summary](shap_summary.png)

## Leaderboard ({ctx["plan"]})
{ctx["leaderboard_md"]}

## Plots
![leaderboard](leaderboard.png)
![predicted vs actual](predicted_vs_actual.png)
![residuals](residuals.png)

## Limits
- Trained on {ctx["labelled"]} sales from one market and period; values outside its ranges are
  extrapolations.
- The target never sees leaking columns (ClosePrice, CurrentPrice, RATIO_*, Selling*, ...).
"""
