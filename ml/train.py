"""Train the lead-conversion score: P(a completed order within 30 days), on point-in-time features."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import lightgbm as lgb
import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from ml import features, registry

MODEL_NAME = "lead_score"
HORIZON_DAYS = 30
PARAMS = {
    "objective": "binary", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 50,
    "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1, "lambda_l2": 1.0,
    "verbose": -1, "num_threads": 2, "seed": 7, "deterministic": True,
}


@dataclass
class TrainResult:
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


def train_lead_score(con: duckdb.DuckDBPyConnection, registry_dir: Path) -> TrainResult:
    """Train at cutoff as_of-60d, validate out of time at as_of-30d (labels end at as_of), register."""
    end = features.as_of(con)
    valid_cutoff = end - timedelta(days=HORIZON_DAYS)
    train_cutoff = valid_cutoff - timedelta(days=HORIZON_DAYS)
    tr = features.build(con, train_cutoff, HORIZON_DAYS)
    va = features.build(con, valid_cutoff, HORIZON_DAYS)
    if tr.converted.nunique() < 2 or va.converted.nunique() < 2:
        raise ValueError("too little history to train: both classes are needed in the training and validation windows")
    # Early stopping on a random fifth of the training window; the out-of-time window is only scored,
    # so the reported AUC is not tuned on.
    stop = np.random.default_rng(7).random(len(tr)) < 0.2
    dtr = lgb.Dataset(tr.loc[~stop, features.FEATURES], tr.converted[~stop].astype(int))
    dstop = lgb.Dataset(tr.loc[stop, features.FEATURES], tr.converted[stop].astype(int), reference=dtr)
    booster = lgb.train(PARAMS, dtr, num_boost_round=400, valid_sets=[dstop],
                        callbacks=[lgb.early_stopping(30, verbose=False)])
    p = booster.predict(va[features.FEATURES], num_iteration=booster.best_iteration)
    y = va.converted.astype(int).to_numpy()
    fingerprint = hashlib.sha256(
        f"{len(tr)}|{int(tr.converted.sum())}|{len(va)}|{int(va.converted.sum())}|{end}".encode()).hexdigest()
    version = f"{end:%Y%m%d}-{fingerprint[:8]}"
    result = TrainResult(
        model=MODEL_NAME, version=version, as_of=str(end), train_cutoff=str(train_cutoff),
        valid_cutoff=str(valid_cutoff), train_rows=len(tr), valid_rows=len(va),
        valid_positive_rate=round(float(y.mean()), 4), auc=round(float(roc_auc_score(y, p)), 4),
        pr_auc=round(float(average_precision_score(y, p)), 4), best_iteration=int(booster.best_iteration),
    )
    registry.save(registry_dir, MODEL_NAME, version, booster, {
        **result.__dict__, "features": features.FEATURES, "params": PARAMS, "data_fingerprint": fingerprint,
        "lightgbm": lgb.__version__, "trained_on": datetime.fromisoformat(str(end)).date().isoformat(),
    })
    return result


def deciles(scores: np.ndarray) -> np.ndarray:
    """Decile 1 = the highest 10% of scores."""
    ranks = (-scores).argsort(kind="stable").argsort(kind="stable")
    return (ranks * 10 // max(len(scores), 1) + 1).astype(np.int32)
