"""Model quality figures: ROC AUC, PR AUC, log loss, calibration error, lift and gains by decile."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score, roc_curve


def deciles(scores: np.ndarray) -> np.ndarray:
    """Decile 1 = the highest 10% of scores (ties broken by position, so every decile has its share)."""
    scores = np.asarray(scores)
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(len(scores))
    return (ranks * 10 // max(len(scores), 1) + 1).astype(np.int32)


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    """Mean predicted vs observed rate in equal-count bins of the prediction (a reliability table)."""
    order = np.argsort(p, kind="stable")
    rows = []
    for idx in np.array_split(order, min(bins, max(len(p), 1))):
        if len(idx):
            rows.append({"n": int(len(idx)), "predicted": float(p[idx].mean()), "observed": float(y[idx].mean())})
    return rows


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Row-weighted mean |observed - predicted| over equal-count bins (ECE)."""
    table = calibration_bins(y, p, bins)
    n = sum(r["n"] for r in table)
    return float(sum(r["n"] * abs(r["observed"] - r["predicted"]) for r in table) / max(n, 1))


def gains_table(actual: np.ndarray, score: np.ndarray) -> list[dict]:
    """Per score decile (1 = highest): rows, mean score, actual total and mean, lift over the average, and the
    cumulative share of the actual total captured (gains); `actual` is 0/1 or a value such as revenue."""
    actual = np.asarray(actual, dtype=float)
    score = np.asarray(score, dtype=float)
    d = deciles(score)
    total, mean_all = actual.sum(), actual.mean() if len(actual) else 0.0
    rows, cum = [], 0.0
    for k in range(1, 11):
        m = d == k
        if not m.any():
            continue
        s = float(actual[m].sum())
        cum += s
        rows.append({"decile": k, "n": int(m.sum()), "mean_score": float(score[m].mean()), "actual_sum": s,
                     "actual_mean": float(actual[m].mean()),
                     "lift": float(actual[m].mean() / mean_all) if mean_all > 0 else None,
                     "cumulative_gain": float(cum / total) if total > 0 else None})
    return rows


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    """ROC AUC, PR AUC, log loss, Brier, expected calibration error, base rate and decile gains for 0/1 labels."""
    y = np.asarray(y).astype(int)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    both = len(np.unique(y)) == 2
    fpr, tpr, _ = roc_curve(y, p) if both else (np.array([0.0, 1.0]), np.array([0.0, 1.0]), None)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).astype(int))  # a light curve for the report
    gains = gains_table(y, p)
    return {
        "rows": int(len(y)), "positive_rate": round(float(y.mean()), 4) if len(y) else None,
        "roc_auc": round(float(roc_auc_score(y, p)), 4) if both else None,
        "pr_auc": round(float(average_precision_score(y, p)), 4) if both else None,
        "log_loss": round(float(log_loss(y, p, labels=[0, 1])), 4),
        "brier": round(float(brier_score_loss(y, p)), 4),
        "calibration_error": round(expected_calibration_error(y, p), 4),
        "top_decile_lift": round(gains[0]["lift"], 3) if gains and gains[0]["lift"] else None,
        "gains": gains, "calibration": calibration_bins(y, p),
        "roc_curve": {"fpr": [round(float(v), 4) for v in fpr[keep]], "tpr": [round(float(v), 4) for v in tpr[keep]]},
    }


def normalized_gini(actual: np.ndarray, pred: np.ndarray) -> float:
    """How well `pred` orders `actual` (e.g. revenue): the Gini of the ordering over the best possible one."""
    actual = np.asarray(actual, dtype=float)

    def gini(order_by: np.ndarray) -> float:
        a = actual[np.argsort(-order_by, kind="stable")]
        if a.sum() <= 0:
            return 0.0
        return float((np.cumsum(a) / a.sum()).sum() / len(a) - (len(a) + 1) / (2 * len(a)))

    best = gini(actual)
    return gini(np.asarray(pred, dtype=float)) / best if best > 0 else 0.0


def regression_metrics(actual: np.ndarray, pred: np.ndarray) -> dict:
    """RMSE, MAE, normalized Gini, Spearman, predicted/actual total and decile gains for a value target."""
    actual = np.asarray(actual, dtype=float)
    pred = np.asarray(pred, dtype=float)
    gains = gains_table(actual, pred)
    rho = spearmanr(actual, pred).statistic if np.ptp(actual) > 0 and np.ptp(pred) > 0 else 0.0
    return {
        "rows": int(len(actual)), "actual_mean": round(float(actual.mean()), 4),
        "rmse": round(float(np.sqrt(np.mean((actual - pred) ** 2))), 4),
        "mae": round(float(np.mean(np.abs(actual - pred))), 4),
        "gini": round(normalized_gini(actual, pred), 4), "spearman": round(float(rho), 4),
        "predicted_over_actual": round(float(pred.sum() / actual.sum()), 4) if actual.sum() > 0 else None,
        "top_decile_lift": round(gains[0]["lift"], 3) if gains and gains[0]["lift"] else None,
        "gains": gains,
        "calibration": [{"n": g["n"], "predicted": g["mean_score"], "observed": g["actual_mean"]} for g in gains],
    }
