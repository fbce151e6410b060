"""Score only the customers whose features changed as the model sees them; the scores table stays equal to
scoring everyone (issue 28; docs/scale.md).

A LightGBM model's score and its SHAP contributions (so the reasons) depend on a row only through the side of
every split each feature value falls on; the reason phrases add whether the value is above the feature's training
mean and whether it is missing. So a row's *fingerprint* is, per feature, the number of the model's thresholds
(and the mean) below the value, with flags for missing and zero (LightGBM's missing-as-zero splits); features
used by a categorical split keep their exact value. Two rows with the same fingerprint get the same score and
reasons, bit for bit. A customer whose days-since counters moved but crossed no threshold keeps its score.

The fingerprints are kept in `ml.score_fingerprints` (model, version, customer, 64-bit hash, and the score before
rounding); a customer is scored again when its fingerprint changed, it is new, or the champion changed. Deciles
rank the whole population by the unrounded score, so they are recomputed over all of them, as a full scoring
does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd

ZERO = 1e-35  # LightGBM's kZeroThreshold (as ml.score.ZERO)
REASONS = ("reason_1", "reason_2", "reason_3")


def _split_points(booster: lgb.Booster, meta: dict) -> tuple[dict[int, np.ndarray], set[int]]:
    """Per feature index: the sorted thresholds of every numeric split (and the training mean, which the reason
    phrases compare with); the features of categorical splits apart."""
    names = meta["features"]
    points: dict[int, set[float]] = defaultdict(set)
    categorical: set[int] = set()
    trees = booster.dump_model(num_iteration=meta.get("best_iteration") or -1)["tree_info"]

    def walk(node: dict) -> None:
        if "split_feature" not in node:
            return
        f = int(node["split_feature"])
        if node.get("decision_type", "<=") == "<=":
            points[f].add(float(node["threshold"]))
        else:
            categorical.add(f)
        walk(node["left_child"])
        walk(node["right_child"])

    for tree in trees:
        walk(tree["tree_structure"])
    means = meta.get("feature_means", {})
    for i, n in enumerate(names):
        points[i].add(float(means.get(n, 0.0)))
    return {f: np.array(sorted(v)) for f, v in points.items()}, categorical


def fingerprints(booster: lgb.Booster, meta: dict, X: pd.DataFrame) -> np.ndarray:
    """A 64-bit fingerprint per row of `X`: equal fingerprints give equal scores and reasons (module docstring)."""
    names = meta["features"]
    values = X[names].to_numpy(dtype=np.float64)
    points, categorical = _split_points(booster, meta)
    cols = {}
    for i in range(len(names)):
        col = values[:, i]
        nan = np.isnan(col)
        col0 = np.where(nan, 0.0, col)
        if i in categorical:  # category membership, not a threshold: the value itself
            code = col0.view(np.int64)
        else:
            code = np.searchsorted(points.get(i, np.array([])), col0, side="left").astype(np.int64)
        cols[f"v{i}"] = code
        cols[f"m{i}"] = nan.astype(np.int8) * 2 + (np.abs(col0) <= ZERO)
    return pd.util.hash_pandas_object(pd.DataFrame(cols), index=False).to_numpy()


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    """ml.score_fingerprints exists (and ml.scores, which kept_scores reads beside it)."""
    from beacon.warehouse import ensure_scores_table

    ensure_scores_table(con)
    con.execute("""CREATE TABLE IF NOT EXISTS ml.score_fingerprints (model VARCHAR, version VARCHAR,
                   customer_id VARCHAR, fingerprint UBIGINT, score_exact DOUBLE)""")


def kept_scores(con: duckdb.DuckDBPyConnection, model: str, version: str, customers: pd.Series,
                prints: np.ndarray) -> pd.DataFrame:
    """The stored score and reasons of every customer of `customers` whose stored fingerprint (same model and
    version) equals `prints`: customer_id, score, score_exact, reason_1..3 (those need no scoring)."""
    ensure_table(con)
    now = pd.DataFrame({"customer_id": customers.to_numpy(), "fingerprint": prints})
    con.register("_prints_now", now)
    try:
        return con.execute("""
            SELECT s.customer_id, s.score, f.score_exact, s.reason_1, s.reason_2, s.reason_3
            FROM _prints_now n
            JOIN ml.score_fingerprints f ON f.customer_id = n.customer_id AND f.fingerprint = n.fingerprint
                AND f.model = $model AND f.version = $version
            JOIN ml.scores s ON s.customer_id = n.customer_id AND s.model = $model AND s.version = $version
            """, {"model": model, "version": version}).df()
    finally:
        con.unregister("_prints_now")


def stored_by_print(con: duckdb.DuckDBPyConnection, model: str, version: str, prints: np.ndarray) -> pd.DataFrame:
    """One stored score per fingerprint of `prints` that this champion already scored for any customer (equal
    fingerprints give equal scores and reasons): fingerprint, score, score_exact, reason_1..3."""
    ensure_table(con)
    con.register("_prints_wanted", pd.DataFrame({"fingerprint": np.unique(prints)}))
    try:
        return con.execute("""
            SELECT DISTINCT ON (f.fingerprint) f.fingerprint, s.score, f.score_exact, s.reason_1, s.reason_2,
                s.reason_3
            FROM ml.score_fingerprints f
            SEMI JOIN _prints_wanted w ON w.fingerprint = f.fingerprint
            JOIN ml.scores s ON s.customer_id = f.customer_id AND s.model = $model AND s.version = $version
            WHERE f.model = $model AND f.version = $version
            """, {"model": model, "version": version}).df()
    finally:
        con.unregister("_prints_wanted")


def fresh_scores(con: duckdb.DuckDBPyConnection, model: str, version: str, X: pd.DataFrame, prints: np.ndarray,
                 score: Callable[[pd.DataFrame], pd.DataFrame]) -> tuple[pd.DataFrame, int]:
    """The scores of the rows of `X` (with their `prints`) that need one: a fingerprint this champion already
    scored for another customer takes that stored score; `score` (score_frame with score_exact) runs once per
    fingerprint never seen, on one row holding it, and every row with it gets the result. The frame (`X`'s
    customers and row order: customer_id, score, score_exact, reason_1..3) and how many rows were computed."""
    cols = ["score", "score_exact", *REASONS]
    unique, first, inverse = np.unique(prints, return_index=True, return_inverse=True)
    known = stored_by_print(con, model, version, unique)
    at = pd.Index(unique).get_indexer(known.fingerprint.to_numpy(dtype=np.uint64))
    need = np.ones(len(unique), dtype=bool)
    need[at] = False
    computed = score(X.iloc[first[need]].reset_index(drop=True))
    table = {c: np.empty(len(unique), dtype=object if c in REASONS else np.float64) for c in cols}
    for c in cols:
        table[c][at] = known[c].to_numpy(dtype=table[c].dtype, na_value=None if c in REASONS else np.nan)
        table[c][need] = computed[c].to_numpy(dtype=table[c].dtype, na_value=None if c in REASONS else np.nan)
    inverse = inverse.reshape(-1)
    out = pd.DataFrame({"customer_id": X.customer_id.to_numpy(), **{c: table[c][inverse] for c in cols}})
    return out, int(need.sum())


def write_fingerprints(con: duckdb.DuckDBPyConnection, model: str, version: str, scores: pd.DataFrame,
                       prints: np.ndarray) -> None:
    """Replace this model's stored fingerprints (one per row of `scores`, with its `score_exact`); call it in the
    transaction that writes the scores."""
    ensure_table(con)
    con.register("_prints", pd.DataFrame({"customer_id": scores.customer_id.to_numpy(), "fingerprint": prints,
                                          "score_exact": scores.score_exact.to_numpy()}))
    try:
        con.execute("DELETE FROM ml.score_fingerprints WHERE model = ?", [model])
        con.execute("INSERT INTO ml.score_fingerprints SELECT ?, ?, customer_id, fingerprint, score_exact "
                    "FROM _prints", [model, version])
    finally:
        con.unregister("_prints")


def combine(X: pd.DataFrame, kept: pd.DataFrame, fresh: pd.DataFrame, deciles) -> pd.DataFrame:
    """The whole population's scores in `X`'s row order: stored ones for `kept`, new ones for `fresh`
    (score_frame output with score_exact), deciles ranked over all of them as a full scoring ranks them."""
    cols = ["customer_id", "score", "score_exact", *REASONS]
    both = pd.concat([kept[cols].astype({r: object for r in REASONS}),
                      fresh[cols].astype({r: object for r in REASONS})], ignore_index=True)
    # Each customer of X once, in X's order (a positional take: a merge factorized the keys twice).
    index = pd.Index(both.customer_id)
    at = index.get_indexer(X.customer_id) if index.is_unique else np.array([-1])
    if len(both) != len(X) or (at < 0).any():
        raise ValueError("kept and fresh scores must cover every customer of the population once")
    out = both.take(at).reset_index(drop=True)
    out["decile"] = deciles(out.score_exact.to_numpy())
    for r in REASONS:  # the same dtype a full scoring writes
        out[r] = pd.Categorical(out[r])
    return out[["customer_id", "score", "decile", *REASONS, "score_exact"]]
