"""Score every customer with each champion model: a score, its decile and the top three reasons in words a
marketer understands, written to ml.scores; drift and fairness of the scores written beside them."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd

from beacon.warehouse import ensure_scores_table, release_memory, transaction
from ml import features, monitor, registry, score_delta
from ml.metrics import deciles

MODELS = ("lead_score", "churn", "ltv")
# Per feature: (when the value is above the training average, when it is at or below it, when it is missing).
PHRASES: dict[str, tuple[str, str, str]] = {
    "tenure_days": ("long-standing contact", "new contact", "unknown first contact"),
    "is_b2b": ("works at a business account", "not linked to a business account", "no company on file"),
    "has_phone": ("phone number on file", "no phone number on file", "no phone number on file"),
    "orders_total": ("many past orders", "few or no past orders", "no orders yet"),
    "orders_90d": ("ordered in the last 90 days", "no orders in the last 90 days", "no orders yet"),
    "revenue_total": ("high lifetime spend", "low lifetime spend", "no spend yet"),
    "days_since_order": ("long time since the last order", "ordered recently", "has never ordered"),
    "web_7d": ("active on the website this week", "no website visits this week", "no website visits"),
    "web_30d": ("frequent website visits this month", "few website visits this month", "no website visits"),
    "web_90d": ("frequent website visits in 90 days", "few website visits in 90 days", "no website visits"),
    "views_30d": ("viewed products this month", "viewed no products this month", "viewed no products"),
    "cart_adds_30d": ("added items to the cart this month", "no cart additions this month", "no cart additions"),
    "checkouts_30d": ("started a checkout this month", "no checkout started this month", "no checkout started"),
    "days_since_web": ("long time since the last website visit", "visited the website recently",
                       "never visited the website"),
    "email_opens_90d": ("opens our emails", "has not opened emails lately", "has not opened emails"),
    "email_clicks_90d": ("clicks links in our emails", "no email clicks lately", "no email clicks"),
    "email_sends_90d": ("received many emails lately", "received few emails lately", "received no emails"),
    "days_since_open": ("long time since the last email open", "opened an email recently", "never opened an email"),
    "webinar_regs_90d": ("registered for a webinar", "no webinar registrations lately", "no webinar registrations"),
    "orders_365d": ("frequent buyer this year", "few orders this year", "no orders this year"),
    "revenue_365d": ("high spend in the last 12 months", "low spend in the last 12 months", "no spend this year"),
    "avg_order_value": ("large average order", "small average order", "no orders yet"),
    "days_since_first_order": ("long-time customer", "recent first purchase", "has never ordered"),
}
SCORE_COLUMNS = ["customer_id", "model", "version", "score", "decile", "scored_at", "reason_1", "reason_2", "reason_3"]


def calibrate(meta: dict, raw: np.ndarray) -> np.ndarray:
    """Raw LightGBM output (log-odds or log-value) to the calibrated probability or value."""
    cal = meta.get("calibration") or {}
    if meta.get("kind", "binary") == "binary":
        z = cal.get("a", 1.0) * raw + cal.get("b", 0.0)
        return 1.0 / (1.0 + np.exp(-z))
    return np.exp(raw) * cal.get("factor", 1.0)


def predict(booster: lgb.Booster, meta: dict, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated scores and raw outputs of a registered model on a feature frame."""
    raw = booster.predict(X[meta["features"]], raw_score=True, num_iteration=meta.get("best_iteration") or None)
    return calibrate(meta, raw), raw


ZERO = 1e-35  # LightGBM's kZeroThreshold: |x| at or below it counts as zero for zero-as-missing splits
CHUNK = 262_144  # rows per block (fewer, larger blocks: less per-call overhead in LightGBM)
MAX_NODES = 24  # trees with more splits (or a categorical split) go through pred_contrib on every row
THREADS = 2  # blocks scored at once (numpy and LightGBM release the GIL); each thread has its own Booster


def _nodes(tree: dict) -> list[tuple[int, float, bool, str]]:
    """A tree's numeric splits (feature, threshold, default_left, missing_type), or [] for a one-leaf tree."""
    out: list[tuple[int, float, bool, str]] = []

    def walk(node: dict) -> None:
        if "split_feature" in node:
            if node.get("decision_type", "<=") != "<=":
                raise ValueError("categorical split: per-tree grouping does not apply")
            out.append((int(node["split_feature"]), float(node["threshold"]), bool(node["default_left"]),
                        str(node.get("missing_type", "None"))))
            walk(node["left_child"])
            walk(node["right_child"])

    walk(tree["tree_structure"])
    return out


class _Columns:
    """One block's feature columns (one row per feature) and, made on first use per feature, the masks LightGBM's
    decisions read: missing (NaN), the value with NaN as 0, and |value| <= kZeroThreshold."""

    def __init__(self, block: np.ndarray):
        self.cols = np.ascontiguousarray(block.T)
        self._nan: dict[int, np.ndarray] = {}
        self._col0: dict[int, np.ndarray] = {}
        self._zero: dict[int, np.ndarray] = {}

    def nan(self, f: int) -> np.ndarray:
        if f not in self._nan:
            self._nan[f] = np.isnan(self.cols[f])
        return self._nan[f]

    def col0(self, f: int) -> np.ndarray:
        if f not in self._col0:
            nan = self.nan(f)
            self._col0[f] = np.where(nan, 0.0, self.cols[f]) if nan.any() else self.cols[f]
        return self._col0[f]

    def zero(self, f: int) -> np.ndarray:
        if f not in self._zero:
            self._zero[f] = np.abs(self.col0(f)) <= ZERO
        return self._zero[f]


def _goes_left(cols: _Columns, feat: int, threshold: float, default_left: bool, missing_type: str) -> np.ndarray:
    """LightGBM's numerical decision: NaN counts as 0 unless NaN is the missing value; missing values (NaN, or
    zero for zero-as-missing) go to the default side; else left when x <= threshold."""
    if missing_type == "NaN":
        left = cols.cols[feat] <= threshold  # NaN compares false
        return left | cols.nan(feat) if default_left else left
    left = cols.col0(feat) <= threshold
    if missing_type == "Zero":
        return left | cols.zero(feat) if default_left else left & ~cols.zero(feat)
    return left


def _patterns(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows' decision patterns (one bool row per split): the first row of each pattern present, and each
    row's pattern number among them."""
    k, m = bits.shape
    if k == 0:
        return np.zeros(1, dtype=np.int64), np.zeros(m, dtype=np.intp)
    width = np.uint16 if k <= 16 else np.uint32  # the narrower code: fewer bytes through memory per split
    code = bits[0].astype(width)
    shifted = np.empty(m, dtype=width)
    for i in range(1, k):
        code |= np.left_shift(bits[i], i, dtype=width, out=shifted)
    if k > 16:  # a table of 2^k slots would be large: sort instead
        _, first, rank = np.unique(code, return_index=True, return_inverse=True)
        return first, rank.reshape(-1)
    size = 1 << k
    first = np.full(size, -1, dtype=np.int64)
    first[code[::-1]] = np.arange(m - 1, -1, -1)
    used = np.flatnonzero(first >= 0)
    rank = np.zeros(size, dtype=np.intp)
    rank[used] = np.arange(len(used))
    return first[used], rank[code]


def _block_contributions(booster: lgb.Booster, plans: list, block: np.ndarray) -> np.ndarray:
    """Contributions of one block of rows, transposed: (features + 1, rows)."""
    m, f = block.shape
    cols = _Columns(block)
    acc = np.zeros((f + 1, m))
    bits = np.empty((MAX_NODES, m), dtype=bool)
    for t, plan in enumerate(plans):
        if plan is None:  # categorical or very large tree: every row through pred_contrib
            acc += booster.predict(block, pred_contrib=True, start_iteration=t, num_iteration=1, num_threads=1).T
            continue
        nodes, used = plan
        for i, (feat, thr, left, missing) in enumerate(nodes):
            bits[i] = _goes_left(cols, feat, thr, left, missing)
        reps, pattern = _patterns(bits[:len(nodes)])
        values = booster.predict(block[reps], pred_contrib=True, start_iteration=t, num_iteration=1, num_threads=1)
        for u in used:  # a feature outside the tree's splits contributes exactly 0
            acc[u] += values[:, u].take(pattern)
        acc[f] += values[0, f]  # the tree's expected value: the same for every row
    return acc


def contributions(booster: lgb.Booster, X: np.ndarray, num_iteration: int | None = None,
                  threads: int | None = None) -> np.ndarray:
    """LightGBM's per-feature contributions (pred_contrib: SHAP values, last column the bias), fast and exact.

    SHAP values add up over trees, and one tree's values for a row depend only on the row's decision at each
    of that tree's splits (and are 0 for features the tree does not split on). So per tree and block of rows,
    rows are grouped by their decision pattern (at most 2^14 for 15 leaves, in practice a few hundred),
    `pred_contrib` runs on that tree for one row per pattern, and each row gathers its pattern's values for
    the tree's own features. Blocks run on `threads` threads, each with its own copy of the booster. Same
    values as `pred_contrib` on every row (up to float rounding: the per-tree values are summed in tree order)."""
    n, f = X.shape
    X = np.asarray(X, dtype=np.float64)
    trees = booster.dump_model(num_iteration=num_iteration or -1)["tree_info"]
    plans: list = []
    for tree in trees:
        try:
            nodes = _nodes(tree)
        except ValueError:
            nodes = None
        ok = nodes is not None and len(nodes) <= MAX_NODES
        plans.append((nodes, sorted({node[0] for node in nodes})) if ok else None)
    out = np.empty((n, f + 1))
    starts = list(range(0, n, CHUNK))
    threads = max(1, min(threads or THREADS, len(starts)))
    boosters = [booster] + [lgb.Booster(model_str=booster.model_to_string(num_iteration=-1)) for _ in range(threads - 1)]

    def work(k: int) -> None:
        for lo in starts[k::threads]:
            out[lo:lo + CHUNK] = _block_contributions(boosters[k], plans, X[lo:lo + CHUNK]).T

    if threads == 1:
        work(0)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(threads)))
    return out


def _top_codes(contrib: np.ndarray, X: np.ndarray, means: np.ndarray, remap: np.ndarray, k: int) -> np.ndarray:
    """Phrase codes (k, rows) of the k strongest upward contributions per row, strongest first (-1: none)."""
    f = X.shape[1]
    c = contrib[:, :f]
    part = np.argpartition(-c, k - 1, axis=1)[:, :k] if k < f else np.tile(np.arange(f), (len(c), 1))
    order = np.take_along_axis(part, np.argsort(-np.take_along_axis(c, part, axis=1), axis=1, kind="stable"), 1)
    strength = np.take_along_axis(c, order, axis=1)
    out = np.empty((k, len(c)), dtype=np.int32)
    rows = np.arange(len(c))
    for r in range(k):
        feat = order[:, r]
        value = X[rows, feat]
        code = feat * 3 + np.where(np.isnan(value), 2, np.where(value > means[feat], 0, 1))
        code[strength[:, r] <= 0] = -1  # a feature pulling the score down is not a reason for it
        out[r] = remap[code]
    return out


def reason_codes(contrib: np.ndarray, X: np.ndarray, names: list[str], means: np.ndarray,
                 top: int = 3) -> list[pd.Categorical]:
    """The `top` features pushing each row's score up most, in words (empty where fewer push it up).
    Large inputs are split in row blocks over THREADS threads (the numpy sorts release the GIL)."""
    f = len(names)
    k = min(top, f)
    vocabulary = [p for n in names for p in PHRASES.get(n, (f"high {n}", f"low {n}", f"{n} unknown"))]
    unique = list(dict.fromkeys(vocabulary))  # some phrases are shared by features (categories must be unique)
    remap = np.array([unique.index(v) for v in vocabulary] + [-1], dtype=np.int32)
    codes = np.full((top, len(contrib)), -1, dtype=np.int32)
    edges = np.linspace(0, len(contrib), THREADS + 1).astype(int) if len(contrib) >= CHUNK else np.array([0, len(contrib)])

    def work(i: int) -> None:
        lo, hi = edges[i], edges[i + 1]
        codes[:k, lo:hi] = _top_codes(contrib[lo:hi], X[lo:hi], means, remap, k)

    if len(edges) > 2:
        with ThreadPoolExecutor(len(edges) - 1) as pool:
            list(pool.map(work, range(len(edges) - 1)))
    else:
        work(0)
    return [pd.Categorical.from_codes(codes[r], categories=unique) for r in range(top)]


def score_frame(booster: lgb.Booster, meta: dict, X: pd.DataFrame, exact: bool = False) -> pd.DataFrame:
    """Score, decile and top-3 reasons for every row of a feature frame (the scoring path, benchmarked); with
    `exact`, also `score_exact`, the score before rounding (deciles rank it: ml.score_delta keeps it)."""
    names = meta["features"]
    values = X[names].to_numpy(dtype=np.float64)
    contrib = contributions(booster, values, meta.get("best_iteration") or None)
    raw = contrib.sum(axis=1)  # contributions add up to the raw prediction
    score = calibrate(meta, raw)
    means = np.array([meta.get("feature_means", {}).get(n, 0.0) for n in names])
    reasons = reason_codes(contrib, values, names, means)
    out = pd.DataFrame({"customer_id": X.customer_id.to_numpy(), "score": score.round(6),
                        "decile": deciles(score), "reason_1": reasons[0], "reason_2": reasons[1],
                        "reason_3": reasons[2]})
    if exact:
        out["score_exact"] = score
    return out


def population(meta: dict, X: pd.DataFrame) -> pd.DataFrame:
    """The rows a model scores: a model trained on buyers (ltv) scores only customers with an order."""
    if meta.get("population") == "buyers":
        return X[X.orders_total > 0].reset_index(drop=True)
    return X


def write_scores(con: duckdb.DuckDBPyConnection, model: str, version: str, scored_at, scores: pd.DataFrame,
                 prints: np.ndarray | None = None) -> None:
    """Replace this model's rows in ml.scores in one transaction (idempotent per run); with `prints` (one per
    row of `scores`, which then has `score_exact`), its stored fingerprints too (ml.score_delta)."""
    ensure_scores_table(con)
    out = scores.assign(model=model, version=version, scored_at=pd.Timestamp(scored_at))
    con.register("_scores", out)
    try:
        with transaction(con):
            con.execute("DELETE FROM ml.scores WHERE model = ?", [model])
            con.execute(f"INSERT INTO ml.scores ({', '.join(SCORE_COLUMNS)}) SELECT {', '.join(SCORE_COLUMNS)} "
                        "FROM _scores")
            if prints is not None:
                score_delta.write_fingerprints(con, model, version, scores, prints)
    finally:
        con.unregister("_scores")


def _write_monitoring(con: duckdb.DuckDBPyConnection, model: str, version: str, as_of, drift_rows: list[dict],
                      fair: dict | None) -> None:
    """Replace this model's rows of today in ml.drift and ml.fairness."""
    con.execute("CREATE SCHEMA IF NOT EXISTS ml")
    con.execute("""CREATE TABLE IF NOT EXISTS ml.drift (as_of TIMESTAMP, model VARCHAR, version VARCHAR,
                   kind VARCHAR, name VARCHAR, psi DOUBLE, state VARCHAR)""")
    con.execute("""CREATE TABLE IF NOT EXISTS ml.fairness (as_of TIMESTAMP, model VARCHAR, version VARCHAR,
                   attribute VARCHAR, "group" VARCHAR, "rows" BIGINT, selection_rate DOUBLE, ratio_to_highest DOUBLE,
                   flagged BOOLEAN, score_mean DOUBLE, score_median DOUBLE, score_p90 DOUBLE)""")
    ts = pd.Timestamp(as_of)
    con.execute("DELETE FROM ml.drift WHERE model = ? AND as_of = ?", [model, ts])
    con.execute("DELETE FROM ml.fairness WHERE model = ? AND as_of = ?", [model, ts])
    if drift_rows:
        d = pd.DataFrame(drift_rows).assign(as_of=ts, model=model, version=version)
        con.register("_drift", d)
        con.execute("INSERT INTO ml.drift SELECT as_of, model, version, kind, name, psi, state FROM _drift")
        con.unregister("_drift")
    rows = [{"attribute": a, **g} for a, v in (fair or {}).get("attributes", {}).items() for g in v["groups"]]
    if rows:
        f = pd.DataFrame(rows).assign(as_of=ts, model=model, version=version)
        con.register("_fair", f)
        con.execute("""INSERT INTO ml.fairness SELECT as_of, model, version, attribute, "group", "rows", selection_rate,
                       ratio_to_highest, flagged, score_mean, score_median, score_p90 FROM _fair""")
        con.unregister("_fair")


def drift_rows(con: duckdb.DuckDBPyConnection, model: str, version: str, as_of, X: pd.DataFrame,
               scores: pd.DataFrame, names: list[str]) -> list[dict]:
    """PSI of the score and of every model feature against the previous scoring run of this model (like with
    like); keep this run's distributions for the next. With no earlier run, or (for the score) an earlier run
    of another version, this run is the baseline: no PSI, no alert."""
    con.execute("CREATE SCHEMA IF NOT EXISTS ml")
    con.execute("""CREATE TABLE IF NOT EXISTS ml.scoring_reference (as_of TIMESTAMP, model VARCHAR, version VARCHAR,
                   reference VARCHAR)""")
    ts = pd.Timestamp(as_of).to_pydatetime()
    previous = con.execute("""SELECT version, reference FROM ml.scoring_reference WHERE model = ? AND as_of < ?
                              ORDER BY as_of DESC LIMIT 1""", [model, ts]).fetchall()
    current = {"features": monitor.references(X, names), "score": monitor.reference(scores.score.to_numpy())}
    if previous:
        before = json.loads(previous[0][1])
        rows = [{"kind": "feature", **r} for r in monitor.drift(before["features"], X)]
        if previous[0][0] == version:  # a new champion's scores are its own baseline
            value = monitor.psi(before["score"], scores.score.to_numpy())
            score = {"name": "score", "psi": round(value, 4), "state": monitor.state(value)}
        else:
            score = monitor.baseline(["score"])[0]
    else:
        rows = [{"kind": "feature", **r} for r in monitor.baseline(list(current["features"]))]
        score = monitor.baseline(["score"])[0]
    con.execute("DELETE FROM ml.scoring_reference WHERE model = ? AND as_of = ?", [model, ts])
    con.execute("INSERT INTO ml.scoring_reference VALUES (?, ?, ?, ?)", [ts, model, version, json.dumps(current)])
    return [{"kind": "score", **score}, *rows]


def score_model(con: duckdb.DuckDBPyConnection, registry_dir: Path, model: str, X: pd.DataFrame | None = None,
                groups: pd.DataFrame | None = None) -> dict:
    """Score one model's population with its champion; write scores, drift and fairness; a small summary."""
    t0 = time.perf_counter()
    version, booster, meta = registry.load_champion(registry_dir, model)
    end = features.as_of(con)
    X = features.current(con, end) if X is None else X
    X = population(meta, X)
    scores, prints, rescored, computed = score_changed(con, model, version, booster, meta, X)
    write_scores(con, model, version, end, scores, prints)
    scores = scores.drop(columns="score_exact")
    rows, fair = record_monitoring(con, model, version, end, X, scores, meta, groups)
    return {**monitoring_summary(model, version, end, scores, rows, fair),
            "rescored": rescored, "computed": computed, "seconds": round(time.perf_counter() - t0, 2)}


def record_monitoring(con: duckdb.DuckDBPyConnection, model: str, version: str, end, X: pd.DataFrame,
                      scores: pd.DataFrame, meta: dict, groups: pd.DataFrame | None) -> tuple[list[dict], dict | None]:
    """Drift of these scores and features against the previous scoring run, and their fairness audit, written to
    ml.drift and ml.fairness (also for scores computed elsewhere: the spark engine's, beacon.spark.chain)."""
    rows = drift_rows(con, model, version, end, X, scores, meta.get("features", []))
    fair = monitor.fairness(scores[["customer_id", "score", "decile"]], groups) if groups is not None else None
    _write_monitoring(con, model, version, end, rows, fair)
    return rows, fair


def monitoring_summary(model: str, version: str, end, scores: pd.DataFrame, rows: list[dict],
                       fair: dict | None) -> dict:
    """score_model's summary of one model's scores, drift and fairness."""
    return {"model": model, "version": version, "rows": len(scores), "scored_at": str(end),
            "mean_score": round(float(scores.score.mean()), 4) if len(scores) else None,
            "drift_state": monitor.overall_state(rows), "score_psi": rows[0]["psi"] if rows else None,
            "drifted": [r["name"] for r in rows if r["state"] in ("warn", "alert")],
            "fairness_flagged": [f"{a}={g}" for a, v in (fair or {}).get("attributes", {}).items()
                                 for g in v["flagged"]]}


def score_changed(con: duckdb.DuckDBPyConnection, model: str, version: str, booster: lgb.Booster, meta: dict,
                  X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, int, int]:
    """Every row's score as `score_frame` gives it, computing only the rows whose fingerprint changed since this
    champion last scored them (ml.score_delta); the scores, their fingerprints, how many rows were scored again
    and how many distinct new fingerprints that took through `score_frame`."""
    prints = score_delta.fingerprints(booster, meta, X)
    kept = score_delta.kept_scores(con, model, version, X.customer_id, prints)
    todo = ~X.customer_id.isin(kept.customer_id).to_numpy()
    # Of those, only the fingerprints never scored by this champion are computed (once each).
    fresh, computed = score_delta.fresh_scores(con, model, version, X[todo], prints[todo],
                                        lambda rows: score_frame(booster, meta, rows, exact=True))
    return score_delta.combine(X, kept, fresh, deciles), prints, int(todo.sum()), computed


def score_all(con: duckdb.DuckDBPyConnection, registry_dir: Path, models: tuple[str, ...] = MODELS) -> dict:
    """Score every model that has a champion (features and demographics are built once for all)."""
    release_memory(con)  # what an earlier build left in DuckDB goes before the frames come (issue 28)
    end = features.as_of(con)
    X = features.current(con, end)
    groups = features.demographics(con, end)
    out, missing = {}, []
    for m in models:
        if registry.champion_version(registry_dir, m) is None:
            missing.append(m)
            continue
        out[m] = score_model(con, registry_dir, m, X, groups)
    alert = "alert" if any(v["drift_state"] == "alert" for v in out.values()) else \
        "warn" if any(v["drift_state"] == "warn" for v in out.values()) else "ok"
    return {"scored_at": str(end), "models": out, "not_trained": missing, "drift_state": alert}


def score_customers(con: duckdb.DuckDBPyConnection, registry_dir: Path) -> dict:
    """Score the lead model alone (the pipeline benchmark's scoring stage)."""
    return score_model(con, registry_dir, "lead_score")
