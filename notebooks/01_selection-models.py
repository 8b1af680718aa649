# %% [markdown]
# # 01 · The model: selection, honest error, ranges, reasons
#
# Reads one training run from MLflow (the champion by default) and shows what `homevision
# train` decided and how far to trust it: the leaderboard, the honest estimate against the
# selection CV, predicted against actual prices, errors by price band and by school, how often
# the price ranges hold at every level, what drives the valuations (SHAP, in dollars), and one
# valuation explained end to end.
#
# The tracking store is the project's (`MLFLOW_TRACKING_URI`, else `mlflow.db` in the project
# folder, `HOMEVISION_HOME`); train a model first (`make train` or `homevision train`).
# Change `MODEL` to read another one: `models:/homevision-price/3`, `runs:/RUN_ID/model`, a
# run id, or another feature set's champion such as `models:/homevision-price-offmarket@champion`.

# %%
MODEL = None  # None: the task6 champion, models:/homevision-price@champion
SHAP_HOMES = 100  # sales explained for the SHAP summary

# %%
import json
import os
import re
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from mlflow.tracking import MlflowClient

from homevision.config import load_params
from homevision.data.listings import load_listings
from homevision.data.sources import resolve_data_path
from homevision.features import get_feature_set
from homevision.tracking import SPEC_TAG, describe_model, file_hash, load_model, tracking_uri
from homevision.training import plots
from homevision.training.candidates import build_from_spec
from homevision.training.card import fmt_metric, leaderboard_markdown
from homevision.training.evaluation import CVPlan, cross_validate_model
from homevision.training.metrics import valuation_metrics
from homevision.ui.charts import money, waterfall_figure
from homevision.valuation.explain import global_importance, summary_plot
from homevision.valuation.predict import unsold_rows, value_listings

# %matplotlib inline
os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
pd.set_option("display.width", 120)
plt.rcParams["figure.dpi"] = 90
dollars = plt.FuncFormatter(lambda x, _: money(x))

info = describe_model(MODEL)
model = load_model(MODEL)
client = MlflowClient(tracking_uri())
run = client.get_run(info["run_id"])
tags = run.data.tags
print(f"{info['uri']}: {info['name'] or 'run'} v{info['version'] or '-'}, run {info['run_id']}")
print(f"feature set {info['feature_set']}, trained {info['trained_at']}")
print(f"reads: {', '.join(model.raw_columns_)}")
print(f"champion decision: {tags.get('champion_decision', 'n/a')}")
print(f"budget trims: {tags.get('budget_notes', 'n/a')}")
print(f"serving path: {tags.get('engine', 'n/a')}")


def artifact(name: str) -> Path:
    """Download one artifact of the run into a temporary folder and return its path."""
    return Path(
        mlflow.artifacts.download_artifacts(
            run_id=info["run_id"], artifact_path=name, dst_path=tempfile.mkdtemp()
        )
    )


# %% [markdown]
# ## The leaderboard
#
# Every candidate cross-validated on the same folds (repeated K-fold stratified on price bins),
# mean ± std across repeats, in dollars. Tuned candidates and the blend appear under their own
# names. The winner is the best that never values a home lower for more living area.

# %%
leaderboard = pd.read_csv(artifact("leaderboard.csv"), index_col="candidate")
print(run.data.params.get("cv", ""))
display(Markdown(leaderboard_markdown(leaderboard)))
chart = plots.leaderboard_chart(leaderboard)

# %% [markdown]
# ## How wrong is it? The honest estimate against the selection CV
#
# The selection CV scores the winner on the rows that chose it, so it is optimistic by
# construction. The honest estimate re-runs the whole procedure (selection, tuning, blend)
# inside an outer CV loop: the rows it is scored on never influenced the choice. That is the
# number to quote.

# %%
honest, cv = info["honest_metrics"], info["cv_metrics"]
order = ["rmse", "mae", "r2", "mape", "mdape", "within_5", "within_10", "within_20"]
pd.DataFrame(
    {
        "honest (nested CV)": {m: fmt_metric(m, honest[m]) for m in order if m in honest},
        "selection CV": {m: fmt_metric(m, cv[m]) for m in order if m in cv},
    }
)

# %% [markdown]
# ## Predicted against actual
#
# Out-of-fold valuations of the sales the model learned from: the champion's logged spec
# (`homevision.spec` tag) rebuilt and cross-validated afresh, so every sale is valued by a model
# that did not see it. The spec itself was chosen on these rows, so these errors sit with the
# selection CV, a little below the honest figures.

# %%
data_path = Path(run.data.params.get("data_path", ""))
if data_path.is_file() and file_hash(data_path) == info["data_hash"]:
    print(f"data: {data_path}, the file this run learned from")
else:
    data_path = resolve_data_path()
    print(f"the run's data file is not here or has changed: using the default data {data_path}")
listings = load_listings(data_path)
X = listings.labelled.reset_index(drop=True)
y = X["ClosePrice"].astype(float)
spec = json.loads(tags[SPEC_TAG])["spec"]
settings = load_params()["train"]
plan = CVPlan(folds=int(settings["folds"]), repeats=1, seed=int(settings["seed"]))
estimator = build_from_spec(spec, get_feature_set(info["feature_set"]))
oof = cross_validate_model(estimator, X, y, plan.splits(y)).oof_mean
print(f"{plan.describe()}: {len(y)} sales")
chart = plots.predicted_vs_actual(y.to_numpy(), oof, f"{spec.get('name', 'blend')}: out-of-fold")

# %% [markdown]
# ## Errors by price band and by school
#
# Error = valuation − sale price, as a share of the sale price (positive: valued too high).
# A model that fits log price should not drift with price; one band or school that is
# consistently valued too high or too low is a bias worth a look.

# %%
school = "ElementarySchoolName"
errors = pd.DataFrame({"price": y, "valuation": oof, "school": X[school].fillna("(missing)")})
errors["error_pct"] = 100 * (errors["valuation"] - errors["price"]) / errors["price"]
quartiles = pd.qcut(errors["price"], 4)
errors["price band"] = quartiles.cat.rename_categories(
    [f"{b.left / 1e3:,.0f}k-{b.right / 1e3:,.0f}k" for b in quartiles.cat.categories]
)


def by_group(column: str, min_sales: int = 1) -> pd.DataFrame:
    """The valuation metrics per group of sales (groups with at least `min_sales`)."""
    rows = {}
    for name, group in errors.groupby(column, observed=True):
        if len(group) >= min_sales:
            metrics = valuation_metrics(group["price"], group["valuation"])
            rows[name] = {
                "sales": len(group),
                "median error %": round(group["error_pct"].median(), 1),
                "MdAPE %": round(100 * metrics["mdape"], 1),
                "within 10 %": round(100 * metrics["within_10"], 1),
                "MAE": money(metrics["mae"]),
            }
    return pd.DataFrame(rows).T


bands = by_group("price band")
display(bands)
schools = by_group("school", min_sales=5).sort_values("median error %")
display(schools)

fig, axes = plt.subplots(1, 2, figsize=(15, 4.5), gridspec_kw={"width_ratios": [1, 2]})
for ax, column, names in [
    (axes[0], "price band", list(bands.index)),
    (axes[1], "school", list(schools.index)),
]:
    ax.boxplot([errors.loc[errors[column] == n, "error_pct"] for n in names], tick_labels=names)
    ax.axhline(0, color="black", lw=1)
    ax.set_ylabel("error (% of sale price)")
    ax.set_title(f"Out-of-fold errors by {column}")
    ax.tick_params(axis="x", rotation=45, labelsize=8)
fig.tight_layout()

# %% [markdown]
# ## Price ranges: do they hold?
#
# Each valuation comes with a conformal range (MAPIE; multiplicative, so it widens with the
# price). Training measured, at every level, how often the sale price fell inside the range on
# held-out folds (random folds) and on the later 30% of sales when calibrated on the earlier
# 70% (time-ordered), and how wide the range is. A level whose coverage falls short is not
# carried by the model.

# %%
ranges = pd.DataFrame(info["ranges"]).set_index("level")
print(f"variant {run.data.params.get('interval_variant')}; levels carried: {model.levels}")
display((100 * ranges).round(1).rename_axis("level").set_axis(100 * ranges.index))

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
levels = 100 * ranges.index
axes[0].plot(levels, levels, color="black", lw=1, label="promised")
axes[0].plot(levels, 100 * ranges["coverage"], "o-", label="random folds")
if ranges["time_ordered_coverage"].notna().any():
    axes[0].plot(levels, 100 * ranges["time_ordered_coverage"], "s--", label="later sales")
axes[0].set(xlabel="range level (%)", ylabel="coverage (%)", title="Coverage per level")
axes[0].legend()
axes[1].bar([f"{v:.0f}%" for v in levels], 100 * ranges["median_width"], color="#4C72B0")
axes[1].set(ylabel="median width (% of valuation)", title="How wide the ranges are")
fig.tight_layout()

# %% [markdown]
# Every MAPIE variant compared at every level (the run's `interval_*` metrics); the narrowest
# that keeps the promised coverage at the default level was chosen.

# %%
found = [
    (match[1], int(match[2]), match[3], 100 * value)
    for key, value in run.data.metrics.items()
    if (match := re.fullmatch(r"interval_(.+)_(\d+)_(coverage|width)", key))
]
variants = pd.DataFrame(found, columns=["variant", "level %", "what", "value"])
variants.pivot_table(index="variant", columns=["what", "level %"], values="value").round(1)

# %% [markdown]
# ## What drives the valuations (SHAP, in dollars)
#
# Exact Shapley values over the raw export columns, against the model's reference homes: for
# each home, base value + contributions = its valuation, to the dollar.

# %%
sample = X.sample(min(SHAP_HOMES, len(X)), random_state=0)[model.raw_columns_]
contributions = model.explain(sample)
total = contributions.base_values + contributions.values.sum(axis=1).to_numpy()
print(
    f"{len(sample)} sales; largest gap between base + contributions and the valuation: "
    f"{money(np.abs(total - model.predict(sample)).max())}"
)
display(global_importance(contributions).map(money).rename("mean |contribution|").to_frame())
chart = summary_plot(contributions, model.encoder_)

# %% [markdown]
# ## One valuation, end to end
#
# A home that has not sold, valued as `homevision predict --explain` and the API value it: the
# price, its range at every carried level, the dollar reasons, and the comparable sales.

# %%
homes = unsold_rows(listings.raw).reset_index(drop=True)
valued = value_listings(model, homes)
ok = valued.frame.index[valued.frame["error"].eq("") & valued.frame["warning"].eq("")]
middle = valued.frame.loc[ok, "predicted_close_price"].median()
pick = (valued.frame.loc[ok, "predicted_close_price"] - middle).abs().idxmin()
home = homes.loc[[pick]]
shown = ["MLSNumber", "Status", "ListPrice", *model.raw_columns_]
display(home.reindex(columns=shown).T.rename(columns={pick: "this home"}))

explained = value_listings(model, home, explain=True)
row = explained.frame.iloc[0]
print(f"valuation {money(row['predicted_close_price'])}")
for level in model.levels:
    at = value_listings(model, home, confidence=level).frame.iloc[0]
    low, high = money(at["close_price_low"]), money(at["close_price_high"])
    print(f"  {100 * level:.0f}% range {low} to {high}")

# %%
why = explained.explanations[0]
reasons = pd.DataFrame(
    {
        "value": [home.iloc[0][c] for c in why.contributions],
        "contribution": [money(v, sign=True) for v in why.contributions.values()],
    },
    index=list(why.contributions),
)
print(f"base value (the reference homes' average) {money(why.base_value)}")
print(f"base + contributions = {money(why.base_value + sum(why.contributions.values()))}")
display(reasons)
chart = waterfall_figure(why.base_value, why.contributions, home.iloc[0].to_dict())

# %% [markdown]
# The comparable sales behind it (the most similar sales in the model's scaled space, same
# school first; differences are this home's minus the sale's):

# %%
why.comparables.assign(ClosePrice=why.comparables["ClosePrice"].map(money))
