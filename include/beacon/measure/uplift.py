"""Uplift targeting: who is persuadable? LightGBM meta-learners trained on randomized past campaigns.

- **T-learner** (two models): one outcome model on the treated, one on the control; uplift = the difference.
- **X-learner** (Künzel et al. 2019): imputes each person's effect with the other group's model, fits those,
  and blends them by the treated share.
- **Evaluation** on held-out people: the Qini curve (incremental conversions when targeting the top k by
  score, control scaled to the treated count) and its coefficient (area between the curve and random
  targeting, as a share of the incremental total), plus uplift@k. Compared with a random ordering and with
  a plain response model (probability of converting if treated), which targets the already-converting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from beacon.measure.stats import arm_labels

SEED = 7
_PARAMS = {"n_estimators": 100, "learning_rate": 0.05, "num_leaves": 7, "min_child_samples": 200,
           "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.9, "n_jobs": 1, "verbose": -1}


def _model(binary: bool, seed: int):
    from lightgbm import LGBMClassifier, LGBMRegressor

    return (LGBMClassifier if binary else LGBMRegressor)(random_state=seed, **_PARAMS)


def _predict(model, X: np.ndarray) -> np.ndarray:
    return model.predict_proba(X)[:, 1] if hasattr(model, "predict_proba") else model.predict(X)


def _fit(X: np.ndarray, y: np.ndarray, binary: bool, seed: int):
    if binary and len(np.unique(y)) < 2:
        raise ValueError("an uplift model needs both outcomes (0 and 1) in the treated and the control group")
    return _model(binary, seed).fit(X, y)


class TLearner:
    """Two outcome models; uplift(x) = μ1(x) − μ0(x)."""

    name = "t_learner"

    def __init__(self, seed: int = SEED):
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> TLearner:
        self.binary = bool(np.isin(np.unique(y), [0, 1]).all())
        self.m1 = _fit(X[w == 1], y[w == 1], self.binary, self.seed)
        self.m0 = _fit(X[w == 0], y[w == 0], self.binary, self.seed)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return _predict(self.m1, X) - _predict(self.m0, X)


class XLearner(TLearner):
    """T-learner first stage, then effect models on imputed effects, blended by the treated share."""

    name = "x_learner"

    def fit(self, X: np.ndarray, y: np.ndarray, w: np.ndarray) -> XLearner:
        super().fit(X, y, w)
        t, c = w == 1, w == 0
        d1 = y[t] - _predict(self.m0, X[t])  # what treatment added for the treated
        d0 = _predict(self.m1, X[c]) - y[c]  # what it would have added for the control
        self.tau1 = _fit(X[t], d1, False, self.seed)
        self.tau0 = _fit(X[c], d0, False, self.seed)
        self.g = float(t.mean())  # weight the effect model fitted on the larger group more
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.g * self.tau0.predict(X) + (1 - self.g) * self.tau1.predict(X)


class ResponseModel(TLearner):
    """The usual baseline: the probability (or amount) of the outcome if treated, ignoring the control."""

    name = "response_model"

    def predict(self, X: np.ndarray) -> np.ndarray:
        return _predict(self.m1, X)


LEARNERS = {c.name: c for c in (TLearner, XLearner, ResponseModel)}


def qini_curve(y: np.ndarray, w: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Targeted share and incremental outcome when treating the top share by score (ties broken at random)."""
    order = np.lexsort((np.random.default_rng(0).random(len(score)), -score))
    y, w = y[order].astype(float), w[order]
    nt, nc = np.cumsum(w == 1), np.cumsum(w == 0)
    yt, yc = np.cumsum(y * (w == 1)), np.cumsum(y * (w == 0))
    inc = yt - np.divide(yc * nt, nc, out=np.zeros(len(y)), where=nc > 0)
    share = np.arange(1, len(y) + 1) / len(y)
    return np.concatenate([[0.0], share]), np.concatenate([[0.0], inc])


def qini_coefficient(y: np.ndarray, w: np.ndarray, score: np.ndarray) -> float:
    """Area between the Qini curve and random targeting, as a share of the total incremental outcome's scale."""
    x, q = qini_curve(y, w, score)
    total = q[-1]
    area = np.trapezoid(q, x) - total / 2  # random targeting: the straight line to the total
    scale = max(abs(total), float(np.abs(q).max()), 1e-12)
    return float(area / scale)


def uplift_at(y: np.ndarray, w: np.ndarray, score: np.ndarray, k: float) -> float:
    """Observed uplift (treated mean − control mean) among the top share `k` by score."""
    top = np.argsort(-score, kind="stable")[: max(2, int(round(k * len(score))))]
    yt, yc = y[top][w[top] == 1], y[top][w[top] == 0]
    return float(yt.mean() - yc.mean()) if len(yt) and len(yc) else float("nan")


def _xyw(df: pd.DataFrame, arm_col: str, control: str, outcome: str, features: list[str],
         source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = [c for c in [arm_col, outcome, *features] if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: no column(s) {missing}; columns are {list(df.columns)}")
    arms, control = arm_labels(df[arm_col], control)
    if control not in set(arms) or arms.nunique() != 2:
        raise ValueError(f"{source}: column {arm_col!r} needs exactly two values, one of them the control "
                         f"{control!r}; it has {sorted(set(arms))[:10]}")
    y = pd.to_numeric(df[outcome], errors="coerce")
    if y.isna().any():
        i = int(np.flatnonzero(y.isna().to_numpy())[0])
        raise ValueError(f"{source}: row {i + 2} column {outcome!r}: {df[outcome].iloc[i]!r} is not a number")
    X = df[features].apply(pd.to_numeric, errors="coerce").to_numpy(float)  # NaN is fine for LightGBM
    return X, y.to_numpy(float), (arms != str(control)).to_numpy().astype(int)


def evaluate(df: pd.DataFrame, arm_col: str, control: str, outcome: str, features: list[str] | None = None,
             seed: int = SEED, test_share: float = 0.3, source: str = "data") -> dict:
    """Train every learner on a random (1 − test_share) of the rows; Qini and uplift@k on the rest."""
    features = features or [c for c in df.columns if c not in (arm_col, outcome)
                            and pd.api.types.is_numeric_dtype(df[c])]
    if not features:
        raise ValueError(f"{source}: no numeric feature columns besides {arm_col!r} and {outcome!r}")
    X, y, w = _xyw(df, arm_col, control, outcome, features, source)
    rng = np.random.default_rng(seed)
    test = rng.random(len(y)) < test_share
    out = {"rows": len(y), "train_rows": int((~test).sum()), "test_rows": int(test.sum()), "features": features,
           "outcome": outcome, "treated_share": float(w.mean()), "learners": {}}
    for name, cls in LEARNERS.items():
        s = cls(seed).fit(X[~test], y[~test], w[~test]).predict(X[test])
        out["learners"][name] = {"qini": qini_coefficient(y[test], w[test], s),
                                 "uplift_at_10": uplift_at(y[test], w[test], s, 0.1),
                                 "uplift_at_30": uplift_at(y[test], w[test], s, 0.3)}
    rand = [qini_coefficient(y[test], w[test], np.random.default_rng([seed, i]).random(int(test.sum())))
            for i in range(20)]
    out["learners"]["random"] = {"qini": float(np.mean(rand)), "uplift_at_10": float("nan"),
                                 "uplift_at_30": float("nan")}
    out["overall_uplift"] = float(y[test][w[test] == 1].mean() - y[test][w[test] == 0].mean())
    return out


def scores(df: pd.DataFrame, arm_col: str, control: str, outcome: str, features: list[str],
           learner: str = "x_learner", seed: int = SEED, score_rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Fit on all of `df` and score `score_rows` (default: df): customer_id, uplift and decile (10 = most persuadable)."""
    X, y, w = _xyw(df, arm_col, control, outcome, features, "uplift training data")
    model = LEARNERS[learner](seed).fit(X, y, w)
    target = df if score_rows is None else score_rows
    u = model.predict(target[features].apply(pd.to_numeric, errors="coerce").to_numpy(float))
    rank = pd.Series(u).rank(method="first", pct=True).to_numpy()
    return pd.DataFrame({"customer_id": target.customer_id.to_numpy(), "model": learner, "outcome": outcome,
                         "uplift": u, "decile": np.ceil(rank * 10).clip(1, 10).astype(int)})
