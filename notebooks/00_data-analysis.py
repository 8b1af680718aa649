# %% [markdown]
# # 00 · The export, as a data scientist meets it
#
# What is in an MLS listings export, which columns the models read, what the data looks like,
# which quirks it has and how the package repairs them, why the models fit log price, and which
# columns leak the sale outcome.
#
# **Data**: the default export, found as every command finds it
# (`homevision.data.sources.resolve_data_path`): `HOMEVISION_DATA` if set, else the real Frisco
# sample linked into `data/raw/`, else the synthetic sample (generated on first use). Everything
# below is computed by the package's own functions; the notebook only looks.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from sklearn.dummy import DummyRegressor

from homevision.data.fields import FIELDS, RULES, parse_baths
from homevision.data.listings import data_report, load_listings
from homevision.data.schema import to_number
from homevision.data.sources import resolve_data_path
from homevision.features import (
    build_preprocessor,
    feature_set_names,
    get_feature_set,
    is_leaky,
    leakage_columns,
)
from homevision.ui.charts import money
from homevision.valuation.estimators import SqftElasticityTarget

# %matplotlib inline
pd.set_option("display.width", 120)
pd.set_option("display.max_columns", 20)
plt.rcParams["figure.dpi"] = 90
dollars = plt.FuncFormatter(lambda x, _: money(x))

path = resolve_data_path()
listings = load_listings(path)
raw, typed, labelled = listings.raw, listings.typed, listings.labelled
print(f"{path.name}: {len(raw):,} rows x {raw.shape[1]} columns")
print(f"{len(labelled):,} labelled (Sold with a ClosePrice), {len(listings.to_value):,} to value")
raw["Status"].value_counts().rename("listings").to_frame()

# %% [markdown]
# ## The columns the models use
#
# Each feature set (`params.yaml: feature_sets`) reads a few raw export columns. Every one of
# them has ONE rule in `homevision/data/fields.py` (`FIELDS`): type, bounds, unit. The data
# report (`homevision validate --json` prints the same) gives missing values and ranges.

# %%
sets = {name: get_feature_set(name).raw_columns for name in feature_set_names()}
used = list(dict.fromkeys(column for columns in sets.values() for column in columns))
report = data_report(listings, used)
columns = pd.DataFrame(
    {
        column: {
            "label": FIELDS[column].label if column in FIELDS else column,
            "unit": FIELDS[column].unit if column in FIELDS else "",
            "feature sets": ", ".join(name for name, cols in sets.items() if column in cols),
            **report["columns"][column],
        }
        for column in used
    }
).T
columns

# %% [markdown]
# ## Distributions
#
# Sale prices (sold rows only) and the take-home's numeric features over every listing. Sizes
# and prices have long right tails: a few large homes sit far from the rest.

# %%
numeric = ["ClosePrice", "SqFtTotal", "LotSizeAreaSQFT", "CDOM", "BedsTotal"]
fig, axes = plt.subplots(1, len(numeric), figsize=(16, 3.2))
for ax, column in zip(axes, numeric, strict=True):
    values = (labelled if column == "ClosePrice" else typed)[column].dropna()
    ax.hist(values, bins=30, color="#4C72B0")
    ax.set_title(f"{column} (n={len(values):,})", fontsize=10)
fig.tight_layout()

# %%
typed[numeric].describe().T.round(1)

# %% [markdown]
# Schools: how many sales each attendance zone has. Rare names are pooled by the linear
# models' encoder (`params.yaml: features.school_min_count`) and names that appear only among
# the homes to value are unseen at training time.

# %%
school = "ElementarySchoolName"
counts = pd.DataFrame(
    {
        "sold": labelled[school].value_counts(),
        "to value": listings.to_value[school].value_counts(),
    }
).fillna(0)
counts = counts.astype(int).sort_values("sold", ascending=False)
print("schools only among the homes to value:", list(counts.index[counts["sold"] == 0]))
counts.plot.barh(stacked=True, figsize=(8, 0.25 * len(counts) + 1), title="Listings per school")
plt.gca().invert_yaxis()

# %% [markdown]
# ## Missing values
#
# Share of missing values per used column, for the rows models learn from and for the rows
# they value. A column missing more often among the homes to value than among the sales would
# make valuations lean on imputed values.

# %%
missing = pd.DataFrame(
    {
        "labelled": labelled.reindex(columns=used).isna().mean(),
        "to value": listings.to_value.reindex(columns=used).isna().mean(),
    }
)
ax = (100 * missing).plot.barh(figsize=(8, 0.3 * len(used) + 1), title="Missing values (%)")
ax.invert_yaxis()
(100 * missing).round(1)

# %% [markdown]
# ## The quirks, and what the package does with them
#
# Validation (`homevision.data.listings.validate_listings`) counts the repairable quirks; the
# feature pipeline repairs them. Rows with a fatal violation are rejected (with the reason) and
# never reach a model.

# %%
validation = listings.validation
print(f"accepted {len(validation.accepted):,}, rejected {len(validation.rejected):,}")
pd.DataFrame(
    {
        "rows": pd.Series(validation.repaired, dtype=int),
        "what it means": pd.Series({rule: RULES[rule] for rule in validation.repaired}),
    }
)

# %% [markdown]
# **BathsTotal is "F.H" text**, full baths dot half baths: `2.1` is two full baths and one half
# bath, not 2.1 baths, so reading it as a number would be wrong. The contract's parser
# (`parse_baths`) reads it; where the export also has `BathsFull` / `BathsHalf`, they agree.

# %%
baths = typed["BathsTotal"].value_counts().rename("listings").to_frame()
baths["full, half"] = [parse_baths(value) for value in baths.index]
if {"BathsFull", "BathsHalf"} <= set(typed.columns):
    parsed = pd.DataFrame(
        [parse_baths(v) or (np.nan, np.nan) for v in typed["BathsTotal"]],
        columns=["full", "half"],
        index=typed.index,
    )
    agree = (parsed["full"] == to_number(typed["BathsFull"])) & (
        parsed["half"] == to_number(typed["BathsHalf"]).fillna(0)
    )
    print(f"BathsTotal agrees with BathsFull/BathsHalf on {agree.mean():.1%} of rows")
baths.head(12)

# %% [markdown]
# **Negative days on market, zero and missing lots, lease prices in ListPrice.** The rows with
# each quirk, before and after the first steps of the feature pipeline
# (`build_preprocessor(feature_set, family)`: baths split, CDOM sign repaired, lot imputed from
# living area and zero lots flagged in `lot_is_zero`, an asking price below $10,000 treated as
# missing, ratio features).

# %%
violations = validation.violations
quirky = violations[~violations["fatal"]].drop_duplicates("rule")["MLSNumber"]
rows = typed[typed["MLSNumber"].astype("string").isin(quirky.astype(str))]
cleaning = build_preprocessor("onmarket", "tree")[:-1]  # every step but the final encoding
cleaned = cleaning.fit(typed).transform(rows)
before = rows.set_index("MLSNumber")[["CDOM", "LotSizeAreaSQFT", "ListPrice", "BathsTotal"]]
after = cleaned.set_index(rows["MLSNumber"])[
    ["CDOM", "LotSizeAreaSQFT", "lot_is_zero", "ListPrice", "baths_full", "baths_half"]
]
pd.concat({"raw": before, "after the pipeline's cleaning": after}, axis=1)

# %%
lease = typed[to_number(typed["ListPrice"]) < 10_000]
print(f"{len(lease)} listing(s) with an asking price below $10,000 (a lease price?)")
display(lease.reindex(columns=["MLSNumber", "Status", "TransactionType", "ListPrice"]))
if "PropertySubType" in typed.columns:
    zero = typed["LotSizeAreaSQFT"].eq(0)
    display(pd.crosstab(typed["PropertySubType"], zero.map({True: "lot 0", False: "lot > 0"})))

# %% [markdown]
# ## Price against living area, by school
#
# On log-log axes price is close to a straight line in living area, and each school zone sits
# at its own level: the two things the take-home's six features must capture.

# %%
top = labelled[school].value_counts().index[:8]
fig, ax = plt.subplots(figsize=(9, 6))
for name in top:
    homes = labelled[labelled[school] == name]
    ax.scatter(homes["SqFtTotal"], homes["ClosePrice"], s=16, alpha=0.8, label=name)
rest = labelled[~labelled[school].isin(top)]
ax.scatter(rest["SqFtTotal"], rest["ClosePrice"], s=10, color="grey", alpha=0.4, label="other")
ax.set(xscale="log", yscale="log", xlabel="Living area (sqft)", ylabel="Sale price")
ax.yaxis.set_major_formatter(dollars)
ax.yaxis.set_minor_formatter(dollars)
ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda x, _: f"{x:,.0f}"))
ax.set_title("Sale price vs living area, by elementary school (log-log)")
ax.legend(fontsize=8, ncol=2)
fig.tight_layout()

# %%
per_sqft = (labelled["ClosePrice"] / labelled["SqFtTotal"]).rename("USD per sqft")
by_school = per_sqft.groupby(labelled[school]).describe()[["count", "25%", "50%", "75%"]]
print("USD per sqft of living area, schools with at least 3 sales")
by_school[by_school["count"] >= 3].sort_values("50%", ascending=False).round(0)

# %% [markdown]
# ## Why a log target
#
# Every learned model fits log price (beyond a log-log living-area trend:
# `SqftElasticityTarget`) and reports dollars. Three reasons, visible in the data:
#
# 1. Prices are right-skewed; log prices are close to symmetric.
# 2. Errors scale with price: a $40,000 miss is small on a $1.2M home and large on a $250k one.
#    In log space the spread around the trend is the same for small and large homes.
# 3. Size acts multiplicatively: price grows as living area to a power (the elasticity), a line
#    in log-log.

# %%
price = labelled["ClosePrice"].astype(float)
print(f"skewness of price {price.skew():.2f}, of log price {np.log(price).skew():.2f}")
trend = SqftElasticityTarget(DummyRegressor()).fit(labelled, price)
print(f"elasticity: +1% living area -> +{trend.elasticity_:.2f}% price")
fitted = trend.predict(labelled)
fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
axes[0].hist(price, bins=30, color="#4C72B0")
axes[0].set_title("Sale price")
axes[1].hist(np.log(price), bins=30, color="#55A868")
axes[1].set_title("log sale price")
axes[2].scatter(fitted, price - fitted, s=10, alpha=0.7)
axes[2].set_title("Residual around the trend (dollars)")
axes[3].scatter(fitted, np.log(price / fitted), s=10, alpha=0.7, color="#C44E52")
axes[3].set_title("Residual around the trend (log)")
axes[0].xaxis.set_major_formatter(dollars)
axes[2].yaxis.set_major_formatter(dollars)
for ax in axes[2:]:
    ax.axhline(0, color="black", lw=1)
    ax.set_xlabel("trend valuation")
    ax.xaxis.set_major_formatter(dollars)
fig.tight_layout()

# %% [markdown]
# ## Leakage: columns written when the sale closes
#
# The leakage list (`params.yaml: leakage`) names the columns that are only known once a home
# has sold. A model trained on them would look excellent and be useless for a home that has not
# sold. `CurrentPrice` is the plainest case: on every sold row it equals the sale price.

# %%
leaky = [column for column in raw.columns if is_leaky(column)]
print(f"leakage list: {', '.join(leakage_columns())}")
print(f"{len(leaky)} columns of this export are on it: {', '.join(leaky)}")
sold = typed["Status"].eq("Sold")
if "CurrentPrice" in typed.columns:
    same = to_number(typed.loc[sold, "CurrentPrice"]) == typed.loc[sold, "ClosePrice"]
    print(f"CurrentPrice equals ClosePrice on {same.mean():.1%} of {sold.sum()} sold rows")
    display(typed.loc[sold, ["MLSNumber", "ListPrice", "CurrentPrice", "ClosePrice"]].head())
else:
    print("this export has no CurrentPrice column")
pd.Series(
    {name: [c for c in cols if is_leaky(c)] for name, cols in sets.items()},
    name="leaky columns used",
)
