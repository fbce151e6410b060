"""Train the three scores on point-in-time features, validate them out of time, and register them.

- lead_score: P(a completed order within 30 days), every customer;
- churn: P(a past buyer makes no completed order within 90 days), customers with an order before the cutoff;
- ltv: expected completed revenue over the next 12 months, every customer.

Each model trains on features as of a cutoff with labels from the window after it, and is judged on a later,
out-of-time window ending at the warehouse clock (the holdout). Class imbalance is handled by weighting the
positives (scale_pos_weight); the probabilities are then calibrated (Platt scaling) on a fifth of the training
rows that also decides early stopping. A new version becomes champion only if it is not worse than the current
champion on the same holdout beyond a tolerance.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression

from beacon.warehouse import release_memory
from ml import features, metrics, monitor, registry, schedule
from ml.metrics import deciles  # noqa: F401  (re-exported: the decile rule is part of the scoring contract)
from ml.score import predict

log = logging.getLogger(__name__)

MODEL_NAME = "lead_score"
HORIZON_DAYS = 30
TOLERANCE = 0.01  # a challenger may be this much worse than the champion (AUC or Gini) and still win
LTV_YEAR_DAYS = 365
MIN_FEATURE_HISTORY_DAYS = 90  # the earliest training cutoff keeps this much history behind it
SEED = 7
PARAMS = {
    "learning_rate": 0.05, "num_leaves": 15, "max_depth": 5, "feature_fraction": 0.9, "bagging_fraction": 0.8,
    "bagging_freq": 1, "lambda_l2": 1.0, "verbose": -1, "num_threads": 2, "seed": SEED, "deterministic": True,
    "force_row_wise": True,
}
MAX_ROUNDS = 300  # with max_depth 5 this keeps per-customer contributions (reason codes) fast to compute
STOP_ROUNDS = 30


@dataclass(frozen=True)
class ModelSpec:
    """What a model predicts, for whom, over which window, and how it is judged."""

    name: str
    kind: str  # "binary" or "regression"
    horizon_days: int
    target: str
    population: str  # "all" or "buyers" (a completed order at or before the cutoff)
    primary_metric: str  # the champion/challenger metric: "roc_auc" or "gini" (higher is better)


SPECS: dict[str, ModelSpec] = {
    "lead_score": ModelSpec("lead_score", "binary", 30, "a completed order within 30 days", "all", "roc_auc"),
    "churn": ModelSpec("churn", "binary", 90, "no completed order within 90 days (past buyers)", "buyers",
                       "roc_auc"),
    "ltv": ModelSpec("ltv", "regression", LTV_YEAR_DAYS, "completed revenue over the next 12 months", "all", "gini"),
}


@dataclass
class TrainResult:
    """The lead score's summary (kept for the pipeline benchmark and the demo summary)."""

    model: str
    version: str
    as_of: str
    train_cutoff: str
    valid_cutoff: str
    train_rows: int
    valid_rows: int
    valid_positive_rate: float
    auc: float
    pr_auc: float
    best_iteration: int


def history_start(con: duckdb.DuckDBPyConnection) -> datetime:
    """The first customer's first-seen time: features cannot look further back."""
    value = con.execute("SELECT min(first_seen_at) FROM marts.dim_customers").fetchall()[0][0]
    if value is None:
        raise ValueError("marts.dim_customers is empty: nothing to train on")
    return value


def label_days(spec: ModelSpec, end: datetime, start: datetime) -> int:
    """The label window: the model's horizon, or for LTV with less than two years of history the longest whole
    30-day multiple that fits twice (the target is then annualized)."""
    if spec.kind == "binary" or (end - start).days >= 2 * spec.horizon_days + MIN_FEATURE_HISTORY_DAYS:
        return spec.horizon_days
    days = ((end - start).days - MIN_FEATURE_HISTORY_DAYS) // 2 // 30 * 30
    if days < 30:
        raise ValueError(f"too little history to train {spec.name}: {(end - start).days} days "
                         f"(needs at least {60 + MIN_FEATURE_HISTORY_DAYS})")
    return days


def frame(con: duckdb.DuckDBPyConnection, spec: ModelSpec, cutoff: datetime, days: int | None) -> pd.DataFrame:
    """The model's population at `cutoff` with its features and (with `days`) the target column `y`."""
    df = features.build(con, cutoff, days)
    if spec.population == "buyers":
        df = df[df.orders_total > 0].reset_index(drop=True)
    if days is not None:
        if spec.name == "churn":
            df["y"] = (~df.converted.astype(bool)).astype(int)
        elif spec.kind == "binary":
            df["y"] = df.converted.astype(int)
        else:
            df["y"] = df.revenue_next.astype(float) * (spec.horizon_days / days)  # annualized when days < 365
    return df


def fingerprint(*frames: pd.DataFrame, extra: str = "") -> str:
    """A content hash of the training data (every row, feature and label) plus the settings."""
    h = hashlib.sha256(extra.encode())
    for f in frames:
        h.update(pd.util.hash_pandas_object(f, index=False).to_numpy().tobytes())
    return h.hexdigest()


def library_versions() -> dict:
    """Versions of the libraries a model depends on."""
    return {"lightgbm": lgb.__version__, "scikit-learn": sklearn.__version__, "numpy": np.__version__,
            "pandas": pd.__version__, "duckdb": duckdb.__version__, "python": platform.python_version()}


def _fit(spec: ModelSpec, X: pd.DataFrame, y: np.ndarray, stop: np.ndarray) -> tuple[lgb.Booster, dict, dict]:
    """Boost with early stopping on the `stop` rows; return the booster, its calibration and its settings."""
    n_fit = int((~stop).sum())
    params = {**PARAMS, "min_data_in_leaf": int(min(50, max(5, n_fit // 40)))}
    if spec.kind == "binary":
        pos = max(int(y[~stop].sum()), 1)
        # Class imbalance: weight the positives up to balance the classes (capped); calibration undoes the shift.
        params.update(objective="binary", metric="auc", scale_pos_weight=float(min(max((n_fit - pos) / pos, 1), 50)))
    else:
        params.update(objective="tweedie", tweedie_variance_power=1.3, metric="tweedie")
    dfit = lgb.Dataset(X[~stop], y[~stop])
    dstop = lgb.Dataset(X[stop], y[stop], reference=dfit)
    booster = lgb.train(params, dfit, MAX_ROUNDS, valid_sets=[dstop],
                        callbacks=[lgb.early_stopping(STOP_ROUNDS, verbose=False)])
    raw = booster.predict(X[stop], raw_score=True, num_iteration=booster.best_iteration)
    if spec.kind == "binary":
        if len(np.unique(y[stop])) == 2:
            lr = LogisticRegression(C=1e4).fit(raw.reshape(-1, 1), y[stop])
            calibration = {"kind": "platt", "a": float(lr.coef_[0][0]), "b": float(lr.intercept_[0])}
        else:  # too few rows to calibrate: only undo the class weighting
            calibration = {"kind": "platt", "a": 1.0, "b": float(-np.log(params["scale_pos_weight"]))}
    else:
        pred = np.exp(raw)
        calibration = {"kind": "scale", "factor": float(y[stop].sum() / pred.sum()) if pred.sum() > 0 else 1.0}
    return booster, calibration, params


def _evaluate(spec: ModelSpec, y: np.ndarray, values: np.ndarray) -> dict:
    """The holdout metrics of one model."""
    return metrics.binary_metrics(y, values) if spec.kind == "binary" else metrics.regression_metrics(y, values)


def _decide(registry_dir: Path, spec: ModelSpec, version: str, value: float | None, va: pd.DataFrame,
            tolerance: float) -> dict:
    """Champion/challenger on the same holdout: promote unless the champion beats the new version by more than
    the tolerance on the primary metric."""
    champ = registry.champion_version(registry_dir, spec.name)
    out = {"champion_before": champ, "challenger": version, "metric": spec.primary_metric,
           "challenger_value": value, "champion_value": None, "tolerance": tolerance}
    if champ is None:
        return {**out, "promote": True, "reason": "first model"}
    if champ == version:
        return {**out, "promote": False, "champion_value": value,
                "reason": "same data and settings as the champion: it stays"}
    booster, meta = registry.load(registry_dir, spec.name, champ)
    missing = [f for f in meta["features"] if f not in va.columns]
    if missing:
        return {**out, "promote": True, "reason": f"the champion reads features no longer built: {missing}"}
    champ_values, _ = predict(booster, meta, va)
    champ_value = _evaluate(spec, va.y.to_numpy(), champ_values)[spec.primary_metric]
    out["champion_value"] = champ_value
    if value is None or champ_value is None:
        return {**out, "promote": value is not None, "reason": "the holdout cannot rank one of them"}
    if value >= champ_value - tolerance:
        return {**out, "promote": True,
                "reason": f"{spec.primary_metric} {value:.4f} vs champion {champ_value:.4f} (tolerance {tolerance})"}
    return {**out, "promote": False,
            "reason": f"worse than the champion beyond the tolerance: {spec.primary_metric} {value:.4f} vs "
                      f"{champ_value:.4f} - {tolerance}"}


def train_model(con: duckdb.DuckDBPyConnection, registry_dir: Path, name: str, tolerance: float = TOLERANCE,
                current: pd.DataFrame | None = None, groups: pd.DataFrame | None = None) -> dict:
    """Train, validate out of time, compare with the champion on the same holdout, and register one model.

    `current` (features as of the clock) and `groups` (demographics) feed the drift and fairness sections of
    the report; the return value is the version's metadata plus those report-only parts."""
    spec = SPECS[name]
    end = features.as_of(con)
    days = label_days(spec, end, history_start(con))
    valid_cutoff = end - timedelta(days=days)
    train_cutoff = valid_cutoff - timedelta(days=days)
    tr, va = frame(con, spec, train_cutoff, days), frame(con, spec, valid_cutoff, days)
    if spec.kind == "binary" and (tr.y.nunique() < 2 or va.y.nunique() < 2):
        raise ValueError(f"too little history to train {name}: both classes are needed in the training window "
                         f"(cutoff {train_cutoff}) and the holdout (cutoff {valid_cutoff})")
    if spec.kind == "regression" and (tr.y.sum() <= 0 or va.y.sum() <= 0):
        raise ValueError(f"too little history to train {name}: no revenue after {train_cutoff} or {valid_cutoff}")
    cols = list(features.FEATURES)
    y = tr.y.to_numpy()
    stop = np.random.default_rng(SEED).random(len(tr)) < 0.2  # frames are ordered by customer_id: reproducible
    booster, calibration, params = _fit(spec, tr[cols], y, stop)
    fp = fingerprint(tr[[*cols, "y"]], va[[*cols, "y"]],
                     extra=json.dumps([name, str(train_cutoff), str(valid_cutoff), params, cols, lgb.__version__]))
    version = f"{end:%Y%m%d}-{fp[:8]}"
    meta = {"model": name, "version": version, "kind": spec.kind, "target": spec.target, "population": spec.population,
            "features": cols, "best_iteration": int(booster.best_iteration), "calibration": calibration}
    values, _ = predict(booster, meta, va)
    holdout = _evaluate(spec, va.y.to_numpy(), values)
    train_values, _ = predict(booster, meta, tr)
    decision = _decide(registry_dir, spec, version, holdout[spec.primary_metric], va, tolerance)
    importance = dict(zip(cols, booster.feature_importance("gain").round(3).tolist(), strict=True))
    meta.update({
        "as_of": str(end), "train_cutoff": str(train_cutoff), "valid_cutoff": str(valid_cutoff),
        "label_days": days, "annualized": spec.kind == "regression" and days != spec.horizon_days,
        "training_window": {"features_until": str(train_cutoff), "labels": f"({train_cutoff}, {valid_cutoff}]"},
        "holdout_window": {"features_until": str(valid_cutoff), "labels": f"({valid_cutoff}, {end}]"},
        "train_rows": len(tr), "valid_rows": len(va), "train_target_mean": round(float(y.mean()), 4),
        "valid_positive_rate": round(float(va.y.mean()), 4), "primary_metric": spec.primary_metric,
        "metrics": {k: v for k, v in holdout.items() if not isinstance(v, (list, dict))},
        "holdout": {k: v for k, v in holdout.items() if isinstance(v, (list, dict))},
        "auc": holdout.get("roc_auc"), "pr_auc": holdout.get("pr_auc"),
        "params": params, "data_fingerprint": fp, "libraries": library_versions(),
        "importance_gain": importance, "decision": decision,
        "feature_means": {f: round(float(np.nanmean(tr[f])), 6) if tr[f].notna().any() else 0.0 for f in cols},
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        # Training distributions for the drift monitor (scoring compares against them).
        "reference": {"features": {f: monitor.reference(tr[f].to_numpy(dtype=float)) for f in cols},
                      "score": monitor.reference(train_values)},
    })
    registry.save(registry_dir, name, version, booster, meta)
    if decision["promote"]:
        registry.set_champion(registry_dir, name, version, "promote", decision["reason"])
    report_parts: dict = {}
    if current is not None:
        now = current[current.orders_total > 0] if spec.population == "buyers" else current
        now_values, _ = predict(booster, meta, now)
        report_parts["drift"] = monitor.drift({**meta["reference"]["features"]}, now)
        report_parts["score_psi"] = round(monitor.psi(meta["reference"]["score"], now_values), 4)
        if groups is not None:
            scored = pd.DataFrame({"customer_id": now.customer_id.to_numpy(), "score": now_values,
                                   "decile": deciles(now_values)})
            report_parts["fairness"] = monitor.fairness(scored, groups)
    return {**meta, **report_parts, "champion": registry.champion_version(registry_dir, name)}


def train_all(con: duckdb.DuckDBPyConnection, registry_dir: Path, tolerance: float = TOLERANCE,
              names: tuple[str, ...] = tuple(SPECS)) -> dict:
    """Train and register every model, then write the HTML model report; a small summary for XCom."""
    from ml.report import write_report

    end = features.as_of(con)
    current = features.build(con, end)
    groups = features.demographics(con, end)
    results, failed = [], {}
    for name in names:
        try:
            results.append(train_model(con, registry_dir, name, tolerance, current, groups))
        except ValueError as exc:  # one model lacking history must not stop the others
            failed[name] = str(exc)
    report = write_report(results, Path(registry_dir) / "reports", as_of=end, failed=failed)
    if not results:  # a young deployment: scoring keeps any earlier champions, the rest of the DAG goes on
        log.warning("no model could be trained yet: %s", failed)
    return {"as_of": str(end), "report": str(report), "failed": failed, "models": {
        r["model"]: {"version": r["version"], "champion": r["champion"], "promoted": r["decision"]["promote"],
                     r["primary_metric"]: r["metrics"][r["primary_metric"]], "train_rows": r["train_rows"],
                     "valid_rows": r["valid_rows"]} for r in results}}


def train_scheduled(con: duckdb.DuckDBPyConnection, registry_dir: Path,
                    every_days: float = schedule.DEFAULT_EVERY_DAYS, force: bool = False) -> dict:
    """The ML DAG's training step: train only the models that are due (`ml.schedule.decide`: no champion yet,
    a champion `every_days` old or more, a drift alert), record every decision in ml.training_runs, and return
    train_all's summary plus `schedule` (model -> due, reason). With nothing due, nothing is trained and the
    report is the latest one: scoring uses the published champions."""
    release_memory(con)  # what an earlier build left in DuckDB goes before the frames come (issue 28)
    end = features.as_of(con)
    decisions = schedule.decide(con, registry_dir, tuple(SPECS), end, every_days, force)
    due = tuple(d.model for d in decisions if d.due)
    if due:
        summary = train_all(con, registry_dir, names=due)
    else:
        latest = Path(registry_dir) / "reports" / "latest.html"
        summary = {"as_of": str(end), "report": str(latest) if latest.exists() else "", "failed": {}, "models": {}}
    schedule.record(con, end, decisions, {m: v["version"] for m, v in summary["models"].items()}, summary["failed"])
    log.info("training: %s", {d.model: ("train" if d.due else "reuse") + f" ({d.reason})" for d in decisions})
    return {**summary, "schedule": {d.model: {"due": d.due, "reason": d.reason} for d in decisions}}


def train_lead_score(con: duckdb.DuckDBPyConnection, registry_dir: Path) -> TrainResult:
    """Train and register the lead score alone (the pipeline benchmark's training stage)."""
    m = train_model(con, registry_dir, MODEL_NAME)
    return TrainResult(model=MODEL_NAME, version=m["version"], as_of=m["as_of"], train_cutoff=m["train_cutoff"],
                       valid_cutoff=m["valid_cutoff"], train_rows=m["train_rows"], valid_rows=m["valid_rows"],
                       valid_positive_rate=m["valid_positive_rate"], auc=m["auc"], pr_auc=m["pr_auc"],
                       best_iteration=m["best_iteration"])
