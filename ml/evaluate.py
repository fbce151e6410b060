"""`beacon ml evaluate`: train and evaluate the generic lead-scoring learner on any tabular CSV.

Two numbers per file: the 5-fold stratified cross-validated ROC AUC, and the ROC AUC on the last 20% of
rows in file order after training on the first 80% (a time-ordered holdout, where drift shows).

The learner is the same for every file (no per-data-set settings): two strongly regularized LightGBM models
whose log-odds are averaged. One boosts from zero; the other boosts from the log-odds of a logistic
regression (one-hot categoricals, standardized numerics), so the trees only correct the linear model and
the score keeps the linear model's trend where the trees run out of data (values past the training range).
Each LightGBM is a cross-fitted bag: the training rows are split into 5 stratified folds, one model per fold
trains on the other four and early-stops on it, and the 5 models' log-odds are averaged (learning rate 0.03).

Measured on UCI bank-marketing (sep ';', target y, `duration` dropped), CV AUC / time-ordered holdout AUC:
seed 7: 0.8054 / 0.7529, seed 1: 0.8053 / 0.7517, seed 42: 0.8052 / 0.7546 (76-82 s per run on one core).
Before the bags (one model per member, early-stopped on 15% of the rows, then refitted on all at learning
rate 0.05): 0.8055 / 0.7467, 0.8049 / 0.7505, 0.8046 / 0.7476. Plain LightGBM alone: about 0.804 / 0.66-0.72;
logistic regression alone 0.791 / 0.749. Variants tried are listed in docs/benchmarks.md.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

SEED = 7
MIN_LEVEL_ROWS = 20  # a category seen in fewer training rows is pooled into OTHER
MAX_LEVELS = 64  # at most this many categories per column are kept (the most frequent)
OTHER = "__other__"
MISSING = "__missing__"
POSITIVE_WORDS = {"1", "1.0", "yes", "y", "true", "t", "positive", "pos"}
INNER_FOLDS = 5  # each LightGBM member is a bag of this many models, each early-stopped on its own fold
GBM_PARAMS = {
    "objective": "binary", "learning_rate": 0.03, "num_leaves": 15, "max_depth": -1, "lambda_l2": 1.0,
    "bagging_fraction": 0.8, "bagging_freq": 1, "max_cat_to_onehot": 8, "cat_smooth": 50.0, "cat_l2": 10.0,
    "verbose": -1, "num_threads": 1, "deterministic": True, "force_row_wise": True,
}


def sniff_separator(path: str | Path) -> str:
    """The field separator of a delimited text file, guessed from its first 64 KB (',' when unsure)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        sample = f.read(65536)
    if "\n" in sample[:-1]:
        sample = sample[: sample.rfind("\n")]  # do not let a cut-off last line confuse the sniffer
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _split_names(cols: str | Iterable[str] | None) -> list[str]:
    """Column names from a comma-separated string or an iterable of names."""
    if cols is None:
        return []
    items = cols.split(",") if isinstance(cols, str) else list(cols)
    return [c.strip() for c in items if c and c.strip()]


def _same_value(value: object, given: object) -> bool:
    """Whether a target value equals a user-given label, as given, as text or as a number ("1" == 1.0)."""
    if value == given or str(value) == str(given):
        return True
    try:
        return float(value) == float(given)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _positive_label(values: Sequence, positive: object | None) -> object:
    """The target value that counts as positive: `positive` if given; else the larger of two numbers,
    a yes-like word, or the rarer class."""
    if positive is not None:
        for v in values:
            if _same_value(v, positive):
                return v
        raise ValueError(f"positive value {positive!r} does not occur in the target (values: {list(values)})")
    if all(isinstance(v, (bool, int, float, np.bool_, np.number)) for v in values):
        return max(values)
    for v in values:
        if str(v).strip().lower() in POSITIVE_WORDS:
            return v
    counts = pd.Series(values).value_counts(sort=False)
    return min(values, key=lambda v: (counts.get(v, 0), str(v)))


def load_table(path: str | Path, target: str, positive: object | None = None,
               drop: str | Iterable[str] = (), sep: str | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a CSV into features X and a 0/1 target y (rows without a target are left out); X.attrs holds
    the positive label and the separator used."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    sep = {"\\t": "\t", "tab": "\t"}.get(sep, sep) if sep else sniff_separator(path)
    df = pd.read_csv(path, sep=sep, low_memory=False)
    columns = ", ".join(map(str, df.columns))
    if target not in df.columns:
        raise ValueError(f"{path}: no target column {target!r} (separator {sep!r}; columns: {columns})")
    drop = _split_names(drop)
    unknown = [c for c in drop if c not in df.columns]
    if unknown:
        raise ValueError(f"{path}: cannot drop unknown column(s) {unknown} (columns: {columns})")
    if target in drop:
        raise ValueError(f"{path}: the target column {target!r} is also listed in --drop")
    df = df[df[target].notna()].reset_index(drop=True)
    values = list(pd.unique(df[target]))
    if len(values) != 2:
        shown = values[:10] + (["..."] if len(values) > 10 else [])
        raise ValueError(f"{path}: target column {target!r} is not binary: it has {len(values)} distinct "
                         f"value(s) {shown}; a binary target has exactly two")
    label = _positive_label(values, positive)
    y = (df[target] == label).to_numpy(dtype=np.int8)
    X = df.drop(columns=[target, *drop])
    if X.shape[1] == 0:
        raise ValueError(f"{path}: no feature columns left after dropping the target and {drop}")
    X.attrs.update(positive=label.item() if hasattr(label, "item") else label, sep=sep, dropped=drop)
    return X, y


def _is_numeric(s: pd.Series) -> bool:
    """Whether a column is numeric: a number or bool dtype, or text that is at least 95% numbers
    (so a stray "?" or "n/a" marker becomes a missing value instead of making the column categorical)."""
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return True
    present = s.dropna()
    if present.empty or not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
        return False
    return bool(pd.to_numeric(present, errors="coerce").notna().mean() >= 0.95)


class LeadScorer:
    """The generic lead-scoring learner: a logit average of a LightGBM and a logistic-regression-initialized
    LightGBM, with dtype-driven preprocessing (sklearn-style fit / predict_proba)."""

    def __init__(self, seed: int = SEED, lr_weight: float = 0.5) -> None:
        """Keep the seed and the weight of the logistic-initialized member in the log-odds average."""
        self.seed = seed
        self.lr_weight = lr_weight

    def describe(self) -> str:
        """One line naming the learner and its fitted shape."""
        shape = ""
        if hasattr(self, "numeric_"):
            shape = (f"; {len(self.numeric_)} numeric + {len(self.levels_)} categorical columns, "
                     f"rounds {self.rounds_}")
        return ("logit average of LightGBM and LightGBM boosted from a logistic regression "
                f"(lr weight {self.lr_weight}; leaves {GBM_PARAMS['num_leaves']}, learning rate "
                f"{GBM_PARAMS['learning_rate']}; each a {INNER_FOLDS}-model cross-fitted bag, early-stopped per fold){shape}")

    def _learn_schema(self, X: pd.DataFrame) -> None:
        """Split columns by dtype into numeric and categorical; keep frequent categories; drop constants."""
        self.numeric_, self.levels_, self.dropped_ = [], {}, []
        for c in X.columns:
            s = X[c]
            if _is_numeric(s):
                v = pd.to_numeric(s, errors="coerce").astype(float)
                (self.numeric_ if v.nunique(dropna=True) > 1 else self.dropped_).append(c)
                continue
            counts = s.astype("string").fillna(MISSING).value_counts()
            kept = [str(k) for k, n in counts.items() if n >= MIN_LEVEL_ROWS][:MAX_LEVELS]
            levels = sorted(kept) + ([OTHER] if len(kept) < len(counts) else [])
            if len(levels) > 1:
                self.levels_[c] = levels
            else:
                self.dropped_.append(c)  # constant, or every value rare (an id, free text)

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """The columns the models read: floats for numerics, pandas categoricals with fixed levels."""
        out = {c: pd.to_numeric(X[c], errors="coerce").astype(float) for c in self.numeric_}
        for c, levels in self.levels_.items():
            s = X[c].astype("string").fillna(MISSING).astype(object)
            s = s.where(s.isin(levels), OTHER if OTHER in levels else None)
            out[c] = pd.Categorical(s, categories=levels)
        return pd.DataFrame(out, index=X.index)

    def _logistic(self) -> object:
        """Logistic regression on one-hot categoricals and standardized, median-imputed, clipped numerics."""
        parts = []
        if self.levels_:
            parts.append(("cat", OneHotEncoder(handle_unknown="ignore"), list(self.levels_)))
        if self.numeric_:
            parts.append(("num", make_pipeline(
                SimpleImputer(strategy="median", add_indicator=True), StandardScaler(),
                FunctionTransformer(np.clip, kw_args={"a_min": -8.0, "a_max": 8.0})), self.numeric_))
        return make_pipeline(ColumnTransformer(parts), LogisticRegression(C=1.0, max_iter=2000))

    def _gbm_params(self, n_rows: int, n_cols: int) -> dict:
        """LightGBM settings scaled only by the table's size (leaf size with rows, column share with columns)."""
        return {**GBM_PARAMS, "seed": self.seed, "min_data_in_leaf": int(min(50, max(5, n_rows // 40))),
                "feature_fraction": float(min(1.0, max(0.2, 4.0 / n_cols)))}

    def _boost(self, params: dict, F: pd.DataFrame, y: np.ndarray, base: np.ndarray) -> list[lgb.Booster]:
        """A cross-fitted bag: the training rows are split into INNER_FOLDS stratified folds; per fold, one model
        trains on the other folds and early-stops on that fold. All of them are kept, each at its best round,
        and their log-odds averaged. So every row helps choose a number of rounds, and no refit is needed.
        With too few rows of a class to split, one model of 100 rounds."""
        if min(np.bincount(y)) < 2 * INNER_FOLDS:
            return [lgb.train(params, lgb.Dataset(F, y, init_score=base), 100)]
        models = []
        for fit_idx, stop_idx in StratifiedKFold(INNER_FOLDS, shuffle=True, random_state=self.seed).split(F, y):
            dfit = lgb.Dataset(F.iloc[fit_idx], y[fit_idx], init_score=base[fit_idx])
            dstop = lgb.Dataset(F.iloc[stop_idx], y[stop_idx], init_score=base[stop_idx], reference=dfit)
            models.append(lgb.train(params, dfit, 3000, valid_sets=[dstop],
                                    callbacks=[lgb.early_stopping(50, verbose=False)]))
        return models

    @staticmethod
    def _raw(models: list[lgb.Booster], F: pd.DataFrame) -> np.ndarray:
        """The mean raw log-odds of a bag of boosters (each at its best round)."""
        return np.mean([b.predict(F, raw_score=True, num_iteration=b.best_iteration or None) for b in models], axis=0)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> LeadScorer:
        """Learn the schema, the logistic regression and both boosted models from X and 0/1 labels y."""
        y = np.asarray(y).astype(int)
        if len(np.unique(y)) != 2:
            raise ValueError("the training rows need both classes")
        self._learn_schema(X)
        if not self.numeric_ and not self.levels_:
            raise ValueError("no usable feature columns (all constant or all-unique text)")
        F = self._frame(X)
        self.logistic_ = self._logistic().fit(F, y)
        base = self.logistic_.decision_function(F)
        params = self._gbm_params(len(F), F.shape[1])
        self.plain_ = self._boost(params, F, y, np.zeros(len(y)))
        self.boosted_ = self._boost(params, F, y, base)
        self.rounds_ = [[b.best_iteration or b.current_iteration() for b in m] for m in (self.plain_, self.boosted_)]
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """The blended log-odds of being positive."""
        F = self._frame(X)
        plain = self._raw(self.plain_, F)
        boosted = self._raw(self.boosted_, F) + self.logistic_.decision_function(F)
        return (1 - self.lr_weight) * plain + self.lr_weight * boosted

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, columns (negative, positive)."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1 - p, p])


def make_learner(X: pd.DataFrame, seed: int = SEED) -> LeadScorer:
    """The lead-scoring learner for a table like X (the same learner for every table)."""
    return LeadScorer(seed=seed)


def _auc(learner: LeadScorer, X: pd.DataFrame, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """ROC AUC on the test rows of a learner fitted on the train rows."""
    learner.fit(X.iloc[train], y[train])
    return float(roc_auc_score(y[test], learner.predict_proba(X.iloc[test])[:, 1]))


def _fit_and_score(X: pd.DataFrame, y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int) -> tuple[float, str]:
    """One fit of a fresh learner (one thread): its test ROC AUC and its description."""
    with threadpool_limits(limits=1):
        learner = make_learner(X, seed)
        return _auc(learner, X, y, train, test), learner.describe()


def _fit_all(X: pd.DataFrame, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]], seed: int,
             jobs: int | None) -> list[tuple[float, str]]:
    """`_fit_and_score` for every (train, test) split, in order. The fits are independent and each runs on one
    thread with fixed seeds, so spreading them over `jobs` processes (default: one per core, at most one per
    split) gives the same numbers as fitting them one after another."""
    jobs = min(len(splits), jobs or os.cpu_count() or 1)
    if jobs <= 1:
        return [_fit_and_score(X, y, tr, te, seed) for tr, te in splits]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=jobs, backend="loky")(delayed(_fit_and_score)(X, y, tr, te, seed) for tr, te in splits)


def evaluate(X: pd.DataFrame, y: np.ndarray, folds: int = 5, holdout: float = 0.2, seed: int = SEED,
             jobs: int | None = None) -> dict:
    """Stratified k-fold CV ROC AUC and the ROC AUC on the last `holdout` share of rows (file order). The fits
    run in `jobs` processes (default: one per core); the numbers do not depend on it."""
    start = time.perf_counter()
    X = X.reset_index(drop=True)
    y = np.asarray(y).astype(int)
    n_pos = int(y.sum())
    if min(n_pos, len(y) - n_pos) < folds:
        raise ValueError(f"each class needs at least {folds} rows for {folds}-fold CV "
                         f"(positives {n_pos}, negatives {len(y) - n_pos})")
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y))
    cut = int(round(len(y) * (1 - holdout)))
    train, test = np.arange(cut), np.arange(cut, len(y))
    both = len(np.unique(y[train])) == 2 and len(np.unique(y[test])) == 2
    fitted = _fit_all(X, y, splits + ([(train, test)] if both else []), seed, jobs)
    aucs = [auc for auc, _ in fitted[:folds]]
    holdout_auc, described = fitted[folds] if both else (None, make_learner(X, seed).describe())
    return {
        "rows": len(y), "columns": int(X.shape[1]), "positive_rate": round(float(y.mean()), 4),
        "folds": folds, "seed": seed,
        "cv_auc_mean": round(float(np.mean(aucs)), 4), "cv_auc_std": round(float(np.std(aucs)), 4),
        "cv_aucs": [round(a, 4) for a in aucs],
        "holdout": holdout, "holdout_auc": None if holdout_auc is None else round(holdout_auc, 4),
        "holdout_train_rows": int(cut), "holdout_rows": int(len(y) - cut),
        "holdout_positive_rate_train": round(float(y[train].mean()), 4) if cut else None,
        "holdout_positive_rate_test": round(float(y[test].mean()), 4) if len(test) else None,
        "holdout_note": None if both else "holdout AUC undefined: a class is missing on one side of the cut",
        "learner": described,
        "seconds": round(time.perf_counter() - start, 2),
    }


def main_evaluate(path: str | Path, target: str, positive: object | None = None,
                  drop: str | Iterable[str] = (), sep: str | None = None, folds: int = 5,
                  holdout: float = 0.2, seed: int = SEED) -> dict:
    """Load a CSV and evaluate the lead-scoring learner on it; the dict is the CLI's --json output."""
    X, y = load_table(path, target, positive=positive, drop=drop, sep=sep)
    return {"file": str(path), "target": target, "positive": X.attrs["positive"], "sep": X.attrs["sep"],
            "dropped": X.attrs["dropped"], **evaluate(X, y, folds=folds, holdout=holdout, seed=seed)}
