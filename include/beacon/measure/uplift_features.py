"""Which columns an uplift model may learn from: pre-treatment columns only, categoricals kept, nothing dropped silently.

An uplift model that is to be deployed scores people *before* they are treated, so it may only use what was known
at assignment. By default every column is a candidate except the arm, the outcome(s) and `exclude`; a candidate is
left out, with its reason, when it cannot be used (empty, one value, an identifier-like text column, numbers mixed
with text) or when its distribution differs between the arms (a randomized test balances everything recorded
before assignment, so a column the arms changed was recorded after it: another outcome, an open, a spend). Tests
pooled from several randomizations (campaigns with different holdout shares of different audiences) pass their
`strata`, and balance is checked within each (`beacon.measure.balance`): the campaign mix alone is no imbalance. Named
features (`features=`) are used as given, and refused with their name and reason when they cannot be used.

Text (and boolean) columns become LightGBM categoricals: their levels are those seen in the training rows, and a
level first seen when scoring is treated as missing (LightGBM's default direction), never as an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from beacon.measure.balance import imbalance_p

MAX_LEVELS = 200  # more distinct text values than this: an identifier or free text, not a category
BALANCE_P = 1e-3  # a column whose arms differ this clearly was not recorded before a random assignment


@dataclass
class FeatureChoice:
    """The features an uplift model uses, which of them are categorical, and why every other column is not used."""

    features: list[str]
    categorical: list[str]
    excluded: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"features": self.features, "categorical": self.categorical, "excluded": self.excluded}


def _kind(s: pd.Series) -> tuple[str, str | None]:
    """('numeric' | 'categorical', None) for a usable column, or ('', why not)."""
    present = s.dropna()
    if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object or pd.api.types.is_string_dtype(s):
        present = present.astype(str).str.strip()
        present = present[present != ""]
    if present.empty:
        return "", "every value is empty"
    if present.nunique() < 2:
        return "", f"one value only ({present.iloc[0]!r}): nothing to learn from"
    if pd.api.types.is_bool_dtype(s):
        return "categorical", None
    if pd.api.types.is_numeric_dtype(s):
        return "numeric", None
    nums = pd.to_numeric(present, errors="coerce")
    if nums.notna().all():
        return "numeric", None
    if nums.notna().mean() >= 0.9:  # numbers with a few stray words: coercing would silently make them missing
        bad = present[nums.isna()]
        row = int(s.index.get_loc(bad.index[0])) + 2
        return "", f"mostly numbers, but row {row} has {bad.iloc[0]!r} (rows count the header as row 1)"
    if present.nunique() > MAX_LEVELS:
        return "", (f"{present.nunique():,} distinct text values (more than {MAX_LEVELS}): an identifier or "
                    "free text, not a category")
    return "categorical", None


def choose_features(df: pd.DataFrame, arm_col: str, outcomes: Sequence[str], features: Sequence[str] | None = None,
                    exclude: Sequence[str] = (), arms: pd.Series | None = None, source: str = "data",
                    strata: pd.Series | None = None) -> FeatureChoice:
    """The pre-treatment features of a randomized test (see the module docstring); ValueError on a bad named one.

    `strata` (one value per row, e.g. the campaign): randomized separately, so balance is checked within each."""
    arms = df[arm_col].astype(str) if arms is None else arms
    missing = [c for c in [*(features or []), *exclude] if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: no column(s) {missing}; columns are {list(df.columns)}")
    reserved = {arm_col: "the arm column", **{o: "an outcome" for o in outcomes}}
    if features:
        clash = [c for c in features if c in reserved]
        if clash:
            raise ValueError(f"{source}: {clash[0]!r} cannot be a feature: it is {reserved[clash[0]]}")
        out = FeatureChoice([], [])
        for c in dict.fromkeys(features):
            kind, why = _kind(df[c])
            if why:
                raise ValueError(f"{source}: feature {c!r} cannot be used: {why}")
            out.features.append(c)
            if kind == "categorical":
                out.categorical.append(c)
            p = imbalance_p(df[c], arms, kind, strata)
            if p < BALANCE_P:
                out.notes.append(f"feature {c!r} differs between the arms (p = {p:.2g}): if it was recorded after "
                                 "assignment, the model cannot be deployed as measured")
        return out
    out = FeatureChoice([], [], {c: why for c, why in reserved.items()})
    out.excluded |= {c: "excluded (--exclude)" for c in exclude}
    for c in df.columns:
        if c in out.excluded:
            continue
        kind, why = _kind(df[c])
        if why:
            out.excluded[c] = f"cannot be used: {why}"
            continue
        p = imbalance_p(df[c], arms, kind, strata)
        if p < BALANCE_P:
            out.excluded[c] = (f"differs between the arms (p = {p:.2g}), so it was recorded after assignment "
                               "(an outcome?); name it in --features to use it anyway")
            continue
        out.features.append(c)
        if kind == "categorical":
            out.categorical.append(c)
    if not out.features:
        raise ValueError(f"{source}: no pre-treatment feature columns; left out: "
                         + "; ".join(f"{c}: {why}" for c, why in out.excluded.items()))
    return out


def levels(df: pd.DataFrame, choice: FeatureChoice) -> dict[str, list[str]]:
    """The levels of every categorical feature as seen in `df` (the training rows)."""
    return {c: sorted(set(_text(df[c]).dropna())) for c in choice.categorical}


def _text(s: pd.Series) -> pd.Series:
    t = s.astype("string").str.strip()
    return t.mask(t == "")


def design(df: pd.DataFrame, choice: FeatureChoice, cats: dict[str, list[str]]) -> pd.DataFrame:
    """The model matrix: numbers as floats (empty = missing), categoricals with the training levels (unseen = missing)."""
    cols = {}
    for c in choice.features:
        if c in cats:
            cols[c] = pd.Categorical(_text(df[c]).astype(object), categories=cats[c])
        else:
            cols[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return pd.DataFrame(cols, index=df.index)
