"""Feature sets: which raw export columns a model reads, by role, as params.yaml defines them.

Kept apart from the scikit-learn transformers (homevision.features) so the CLI and the data report
can name a set's columns without importing scikit-learn.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from homevision.config import load_params


@dataclass(frozen=True)
class FeatureSet:
    """Which raw export columns a model uses, by role (from params.yaml)."""

    name: str
    numeric: tuple[str, ...]
    baths: str
    school: str
    categorical: tuple[str, ...] = ()
    high_cardinality: tuple[str, ...] = ()
    description: str = ""
    fee: tuple[str, str] | None = None  # (amount column, frequency column) -> an annual fee
    token_lists: tuple[str, ...] = ()  # comma-separated feature lists -> token indicators
    tax: str | None = None  # the tax record (annual tax) -> cleaned, per square foot, a flag
    garage: tuple[str, str] | None = None  # (length, width) in feet -> the garage's area
    # Listing statuses whose homes join the training rows at their asking price x the sales'
    # sale-to-list ratio (homevision.valuation.evidence); empty: sales only.
    evidence_statuses: tuple[str, ...] = ()
    # The CV metric that ranks this set's candidates, overriding `train.select_by` (None: that).
    select_by: str | None = None
    # The AskingEvidence of the export being trained on (attached by `with_evidence`); data, not
    # configuration, so it takes no part in comparing feature sets.
    evidence: Any = field(default=None, compare=False, repr=False)

    @property
    def text_columns(self) -> list[str]:
        """The text columns read as names (one category per value), in reading order."""
        fee_frequency = [self.fee[1]] if self.fee else []
        return [self.school, *self.categorical, *self.high_cardinality, *fee_frequency]

    @property
    def numeric_inputs(self) -> list[str]:
        """The numeric export columns read, before any is combined: the listed numbers, the tax
        record and the garage's sides."""
        tax = [self.tax] if self.tax else []
        garage = list(self.garage) if self.garage else []
        return [*self.numeric, *tax, *garage]

    @property
    def raw_columns(self) -> list[str]:
        """The export columns a model built on this feature set reads."""
        fee_amount = [self.fee[0]] if self.fee else []
        return [
            *self.numeric_inputs,
            *fee_amount,
            self.baths,
            *self.text_columns,
            *self.token_lists,
        ]


# The roles every feature set must name (the fields without a default), and every role one may
# name: read off FeatureSet, so a new role needs no second list (`evidence` is derived).
REQUIRED_KEYS = tuple(
    f.name
    for f in fields(FeatureSet)
    if f.default is MISSING and f.default_factory is MISSING and f.name != "name"
)
KNOWN_KEYS = frozenset(f.name for f in fields(FeatureSet)) - {"name", "evidence"}


def feature_set_names() -> list[str]:
    """Return the feature set names defined in params.yaml."""
    return list(load_params()["feature_sets"])


def get_feature_set(name: str) -> FeatureSet:
    """Return the named feature set from params.yaml, or raise KeyError naming the choices
    (ValueError naming the missing role when the set lacks numeric, baths or school)."""
    sets = load_params()["feature_sets"]
    if name not in sets:
        raise KeyError(f"unknown feature set {name!r}; choose one of {', '.join(sets)}")
    spec = sets[name] or {}
    missing = [key for key in REQUIRED_KEYS if not spec.get(key)]
    if missing:
        unknown = sorted(set(spec) - KNOWN_KEYS)
        raise ValueError(
            f"params.yaml feature_sets.{name} has no {', '.join(missing)} (required: "
            f"{', '.join(REQUIRED_KEYS)})"
            + (f"; it has unknown key(s) {', '.join(map(str, unknown))}" if unknown else "")
        )
    fs = FeatureSet(
        name=name,
        numeric=tuple(spec["numeric"]),
        baths=spec["baths"],
        school=spec["school"],
        categorical=tuple(spec.get("categorical") or ()),
        high_cardinality=tuple(spec.get("high_cardinality") or ()),
        description=spec.get("description", ""),
        fee=(spec["fee"]["amount"], spec["fee"]["frequency"]) if spec.get("fee") else None,
        token_lists=tuple(spec.get("token_lists") or ()),
        tax=spec.get("tax"),
        garage=(spec["garage"]["length"], spec["garage"]["width"]) if spec.get("garage") else None,
        evidence_statuses=tuple(spec.get("evidence_statuses") or ()),
        select_by=spec.get("select_by"),
    )
    leaky = [c for c in fs.raw_columns if is_leaky(c)]
    if leaky:
        raise ValueError(
            f"feature set {name!r} uses column(s) on the leakage list: {', '.join(leaky)} "
            "(written when or after the sale closes)"
        )
    return fs


def with_evidence(fs: FeatureSet, unsold, sold) -> FeatureSet:
    """Return `fs` carrying the AskingEvidence among the export's `unsold` rows (none when the
    set names no evidence statuses): what every model built on it fits beside the `sold` rows."""
    if not fs.evidence_statuses:
        return fs
    from homevision.valuation.evidence import AskingEvidence

    columns = [*fs.raw_columns, "SqFtTotal"]
    found = AskingEvidence.from_listings(unsold, sold, fs.evidence_statuses, columns)
    return replace(fs, evidence=found)


def evidence_as_of(fs: FeatureSet, cut) -> FeatureSet:
    """Return `fs` with only the evidence that went under contract before `cut` (a
    time-ordered replay must not learn from later contracts)."""
    return fs if fs.evidence is None else replace(fs, evidence=fs.evidence.before(cut))


def leakage_columns() -> list[str]:
    """Return the leakage list: columns (or prefixes ending in '*') no feature set may use."""
    return list(load_params()["leakage"])


def is_leaky(column: str, leakage: list[str] | None = None) -> bool:
    """True when `column` is on the leakage list (exact name or prefix pattern)."""
    for pattern in leakage if leakage is not None else leakage_columns():
        if pattern.endswith("*") and column.startswith(pattern[:-1]):
            return True
        if column == pattern:
            return True
    return False
