"""Money as money, and the SHAP waterfall drawn in dollars (shap's own waterfall prints raw
floats such as -27769.86; this one prints -$27,770)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

RAISES, LOWERS = "#d8315b", "#1e88e5"  # shap's red (pushes the price up) and blue (down)


def money(value: float | None, sign: bool = False) -> str:
    """Whole dollars with thousands separators: 463745.2 -> "$463,745", -27769.86 ->
    "-$27,770" ("+$1,200" with sign=True); missing or non-finite -> "n/a"."""
    if value is None or not math.isfinite(value):
        return "n/a"
    dollars = round(value)
    text = f"${abs(dollars):,.0f}"
    if dollars < 0:
        return f"-{text}"
    return f"+{text}" if sign and dollars > 0 else text


def shown_value(value: object) -> str:
    """A feature's value as a reader writes it: 3200.0 -> "3,200", 2.5 -> "2.5", text as is."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        return f"{number:,.0f}" if number.is_integer() else f"{number:,.2f}".rstrip("0")
    return str(value)


def waterfall_figure(
    base_value: float,
    contributions: Mapping[str, float],
    values: Mapping[str, object] | None = None,
    top: int = 9,
) -> Figure:
    """Return a waterfall of SHAP contributions in dollars: from the reference homes' average
    (bottom) to this home's valuation (top), one bar per feature, the largest at the top, the
    smallest `len - top` summed into one bar. Bars and the axis are labelled in dollars."""
    values = values or {}
    ranked = sorted(contributions.items(), key=lambda kv: -abs(kv[1]))
    bars = [(f"{name} = {shown_value(values.get(name))}", v) for name, v in ranked[:top]]
    if rest := ranked[top:]:
        bars.append((f"{len(rest)} other features", sum(v for _, v in rest)))
    bars.reverse()  # drawn bottom-up: the smallest first, from the base value
    final = base_value + sum(v for _, v in bars)
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(bars) + 1.8))
    start, ends = base_value, [base_value]
    for y, (_, v) in enumerate(bars):
        ax.barh(y, v, left=start, height=0.6, color=RAISES if v >= 0 else LOWERS)
        end = start + v
        ends.append(end)
        ax.text(
            end,
            y,
            f" {money(v, sign=True)} " if v >= 0 else f" {money(v)} ",
            va="center",
            ha="left" if v >= 0 else "right",
            fontsize=9,
            parse_math=False,  # "$" is a dollar here, not TeX
        )
        start = end
    lo, hi = min(ends), max(ends)
    pad = 0.25 * (hi - lo) or 0.05 * abs(base_value) or 1.0
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_yticks(range(len(bars)), [label for label, _ in bars], fontsize=9)
    for label in ax.get_yticklabels():
        label.set_parse_math(False)
    ax.axvline(base_value, color="grey", linestyle=":", linewidth=1)
    ax.axvline(final, color="black", linestyle="--", linewidth=1)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: money(x)))
    ax.set_title(
        f"From the reference homes' average {money(base_value)} to this home's {money(final)}",
        fontsize=10,
        parse_math=False,
    )
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig
