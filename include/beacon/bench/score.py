"""`beacon bench score`: score N synthetic customers through the real scoring path (contributions, reason codes,
deciles, the ml.scores write) with models trained by the real training code on synthetic labels."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ml import features
from ml.score import score_frame, write_scores
from ml.train import SPECS, _fit

BASELINE_ROWS = 20_000


def synthetic_features(n: int, seed: int = 42) -> pd.DataFrame:
    """Feature rows shaped like the warehouse's: zero-inflated counts, money amounts, recency days or missing."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 1500, n).astype(float)
    buyer = rng.random(n) < 0.35
    orders = np.where(buyer, 1 + rng.poisson(1.5, n), 0).astype(float)
    orders_365 = rng.binomial(orders.astype(int), 0.6).astype(float)
    orders_90 = rng.binomial(orders_365.astype(int), 0.3).astype(float)
    aov = np.round(rng.lognormal(4.5, 0.6, n), 2)
    since_order = np.where(buyer, rng.integers(0, 1000, n), np.nan).astype(float)
    engaged = rng.random(n) < 0.55
    web_90 = np.where(engaged, rng.poisson(rng.gamma(1.5, 6.0, n)), 0)
    web_30 = rng.binomial(web_90, 0.35)
    sends = rng.poisson(2.0, n)
    opens = rng.binomial(sends, 0.25)
    X = pd.DataFrame({
        "customer_id": [f"cus_{i:012x}" for i in range(n)],
        "tenure_days": tenure, "is_b2b": (rng.random(n) < 0.3).astype(float),
        "has_phone": (rng.random(n) < 0.6).astype(float), "orders_total": orders, "orders_90d": orders_90,
        "revenue_total": np.round(orders * aov, 2), "days_since_order": since_order,
        "web_7d": rng.binomial(web_30, 0.25).astype(float), "web_30d": web_30.astype(float),
        "web_90d": web_90.astype(float), "views_30d": rng.binomial(web_30, 0.4).astype(float),
        "cart_adds_30d": rng.binomial(web_30, 0.08).astype(float),
        "checkouts_30d": rng.binomial(web_30, 0.04).astype(float),
        "days_since_web": np.where(engaged, rng.integers(0, 365, n), np.nan).astype(float),
        "email_opens_90d": opens.astype(float), "email_clicks_90d": rng.binomial(opens, 0.3).astype(float),
        "email_sends_90d": sends.astype(float),
        "days_since_open": np.where(opens > 0, rng.integers(0, 90, n), np.nan).astype(float),
        "webinar_regs_90d": rng.poisson(0.2, n).astype(float), "orders_365d": orders_365,
        "revenue_365d": np.round(orders_365 * aov, 2), "avg_order_value": np.where(buyer, aov, np.nan),
        "days_since_first_order": np.where(buyer, since_order + rng.integers(0, 400, n), np.nan).astype(float),
    })
    return X[["customer_id", *features.FEATURES]]


def synthetic_target(name: str, X: pd.DataFrame, seed: int = 42) -> np.ndarray:
    """A label with a plausible dependence on the features (engagement, recency, spend)."""
    rng = np.random.default_rng(seed + 1)
    recency = np.nan_to_num(X.days_since_order.to_numpy(), nan=2000.0)
    z = (-3.0 + 0.15 * X.web_30d + 0.8 * X.cart_adds_30d + 1.2 * X.checkouts_30d + 0.4 * X.email_clicks_90d
         - 0.002 * recency + 0.3 * X.orders_90d).to_numpy()
    if name == "lead_score":
        return (rng.random(len(X)) < 1 / (1 + np.exp(-z))).astype(int)
    if name == "churn":
        return (rng.random(len(X)) < 1 / (1 + np.exp(z + 2.5))).astype(int)
    return np.where(rng.random(len(X)) < 1 / (1 + np.exp(-z)), X.avg_order_value.fillna(80).to_numpy() *
                    (1 + rng.poisson(1.0, len(X))), 0.0)


def _model(name: str, X: pd.DataFrame, seed: int) -> tuple:
    """Train one model with the training code's own fit (early stopping, imbalance, calibration)."""
    spec = SPECS[name]
    cols = list(features.FEATURES)
    y = synthetic_target(name, X, seed)
    stop = np.random.default_rng(seed).random(len(X)) < 0.2
    booster, calibration, _ = _fit(spec, X[cols], y, stop)
    meta = {"model": name, "kind": spec.kind, "features": cols, "best_iteration": int(booster.best_iteration),
            "calibration": calibration, "feature_means": {f: float(np.nanmean(X[f])) for f in cols}}
    return booster, meta


def bench_score(customers: int = 1_000_000, models: tuple[str, ...] = ("lead_score", "churn", "ltv"),
                seed: int = 42, train_rows: int = 200_000) -> dict:
    """Seconds to score and write `customers` rows per model (features given; training not timed)."""
    t0 = time.perf_counter()
    X = synthetic_features(customers, seed)
    make_seconds = time.perf_counter() - t0
    train = X.sample(min(train_rows, customers), random_state=seed).reset_index(drop=True)
    out = []
    with tempfile.TemporaryDirectory(prefix="beacon-bench-score-") as tmp:
        con = duckdb.connect(str(Path(tmp) / "bench.duckdb"))
        for name in models:
            booster, meta = _model(name, train, seed)
            t1, c1 = time.perf_counter(), time.process_time()
            scores = score_frame(booster, meta, X)
            t2 = time.perf_counter()
            write_scores(con, name, "bench", pd.Timestamp("2026-01-01"), scores)
            t3, c3 = time.perf_counter(), time.process_time()
            written = con.execute("SELECT count(*), count(reason_1) FROM ml.scores WHERE model = ?", [name]).fetchall()[0]
            if written[0] != customers:
                raise RuntimeError(f"{name}: wrote {written[0]} rows for {customers} customers")
            # Baselines in the same process: plain prediction, and LightGBM's pred_contrib row by row (a sample).
            values = X[meta["features"]].to_numpy()
            t4, c4 = time.perf_counter(), time.process_time()
            booster.predict(values, raw_score=True, num_iteration=meta["best_iteration"] or None)
            t5, c5 = time.perf_counter(), time.process_time()
            sample = values[:BASELINE_ROWS]
            booster.predict(sample, pred_contrib=True)
            t6 = time.perf_counter()
            out.append({"model": name, "trees": booster.num_trees(),
                        "predict_only_seconds": round(t5 - t4, 2),
                        "pred_contrib_every_row_seconds_estimate": round((t6 - t5) * customers / len(sample), 1),
                        "rows_with_reasons": int(written[1]), "score_seconds": round(t2 - t1, 2),
                        "write_seconds": round(t3 - t2, 2), "seconds": round(t3 - t1, 2),
                        "rows_per_s": round(customers / (t3 - t1), 1),
                        # the target: scoring (score, deciles, reasons, written) <= 2x a plain predict
                        "ratio_to_predict": round((t3 - t1) / (t5 - t4), 2),
                        "cpu_seconds": round(c3 - c1, 2), "predict_only_cpu_seconds": round(c5 - c4, 2),
                        "cpu_ratio_to_predict": round((c3 - c1) / (c5 - c4), 2) if c5 > c4 else None})
        con.close()
    return {"benchmark": "score", "customers": customers, "seed": seed, "models": out,
            "total_seconds": round(sum(m["seconds"] for m in out), 2),
            "synthetic_features_seconds": round(make_seconds, 2),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
