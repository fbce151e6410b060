"""Uplift targeting: who is persuadable? LightGBM meta-learners trained on randomized past campaigns.

- **T-learner** (two models): one outcome model on the treated, one on the control; uplift = the difference.
- **X-learner** (Künzel et al. 2019): imputes each person's effect with the other group's model, fits those,
  and blends them by the treated share.
- **Evaluation** on held-out people: the Qini curve (incremental conversions when targeting the top k by
  score, control scaled to the treated count) and its coefficient (area between the curve and random
  targeting, as a share of the incremental total), plus uplift@k. Compared with a random ordering and with
  a plain response model (probability of converting if treated), which targets the already-converting.
- **Several arms**: one comparison per treatment arm against the shared control, and the treatments pooled.
- **Features**: pre-treatment columns only, text columns as LightGBM categoricals (`uplift_features`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from beacon.measure.stats import arm_labels
from beacon.measure.uplift_features import FeatureChoice, choose_features, design, levels

SEED = 7
_PARAMS = {"n_estimators": 100, "learning_rate": 0.05, "num_leaves": 7, "min_child_samples": 200,
           "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.9, "n_jobs": 1, "verbose": -1}


def _model(binary: bool, seed: int):
    from lightgbm import LGBMClassifier, LGBMRegressor

    return (LGBMClassifier if binary else LGBMRegressor)(random_state=seed, **_PARAMS)


def _predict(model, X: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(X)[:, 1] if hasattr(model, "predict_proba") else model.predict(X)


def _fit(X: pd.DataFrame, y: np.ndarray, binary: bool, seed: int):
    if binary and len(np.unique(y)) < 2:
        raise ValueError(f"the outcome is {y[0]:g} for everyone in the treated or the control training rows: "
                         "an uplift model needs both values (0 and 1) in each group")
    return _model(binary, seed).fit(X, y)  # pandas categoricals are LightGBM categoricals


class TLearner:
    """Two outcome models; uplift(x) = μ1(x) − μ0(x)."""

    name = "t_learner"

    def __init__(self, seed: int = SEED):
        self.seed = seed

    def fit(self, X: pd.DataFrame, y: np.ndarray, w: np.ndarray) -> TLearner:
        self.binary = bool(np.isin(np.unique(y), [0, 1]).all())
        self.m1 = _fit(X[w == 1], y[w == 1], self.binary, self.seed)
        self.m0 = _fit(X[w == 0], y[w == 0], self.binary, self.seed)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return _predict(self.m1, X) - _predict(self.m0, X)


class XLearner(TLearner):
    """T-learner first stage, then effect models on imputed effects, blended by the treated share."""

    name = "x_learner"

    def fit(self, X: pd.DataFrame, y: np.ndarray, w: np.ndarray) -> XLearner:
        super().fit(X, y, w)
        t, c = w == 1, w == 0
        d1 = y[t] - _predict(self.m0, X[t])  # what treatment added for the treated
        d0 = _predict(self.m1, X[c]) - y[c]  # what it would have added for the control
        self.tau1 = _fit(X[t], d1, False, self.seed)
        self.tau0 = _fit(X[c], d0, False, self.seed)
        self.g = float(t.mean())  # weight the effect model fitted on the larger group more
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.g * self.tau0.predict(X) + (1 - self.g) * self.tau1.predict(X)


class ResponseModel(TLearner):
    """The usual baseline: the probability (or amount) of the outcome if treated, ignoring the control."""

    name = "response_model"

    def predict(self, X: pd.DataFrame) -> np.ndarray:
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


def uplift_at(y: np.ndarray, w: np.ndarray, score: np.ndarray, k: float) -> float | None:
    """Observed uplift (treated mean − control mean) among the top share `k` by score; None without both groups."""
    top = np.argsort(-score, kind="stable")[: max(2, int(round(k * len(score))))]
    yt, yc = y[top][w[top] == 1], y[top][w[top] == 0]
    return float(yt.mean() - yc.mean()) if len(yt) and len(yc) else None


def _metrics(y: np.ndarray, w: np.ndarray, s: np.ndarray) -> dict:
    return {"qini": qini_coefficient(y, w, s), "uplift_at_10": uplift_at(y, w, s, 0.1),
            "uplift_at_30": uplift_at(y, w, s, 0.3)}


def _random_metrics(y: np.ndarray, w: np.ndarray, seed: int, draws: int = 20) -> dict:
    """The metrics of random targeting, averaged over `draws` random orderings."""
    per = [_metrics(y, w, np.random.default_rng([seed, i]).random(len(y))) for i in range(draws)]
    out = {}
    for k in per[0]:
        vals = [p[k] for p in per if p[k] is not None]
        out[k] = float(np.mean(vals)) if vals else None
    return out


def _outcome(df: pd.DataFrame, col: str, source: str) -> np.ndarray:
    y = pd.to_numeric(df[col], errors="coerce")
    if y.isna().any():
        i = int(np.flatnonzero(y.isna().to_numpy())[0])
        raise ValueError(f"{source}: row {i + 2} column {col!r}: {df[col].iloc[i]!r} is not a number")
    return y.to_numpy(float)


def comparisons(arms: pd.Series, control: str, treatments: Sequence[str] | None = None,
                source: str = "data") -> list[tuple[str, list[str]]]:
    """(name, arms) per comparison against the control: every treatment arm alone, then the treatments pooled.

    `treatments` names the arms to compare (default: every non-control arm); two or more are also pooled."""
    present = sorted(set(arms) - {control})
    if control not in set(arms):
        raise ValueError(f"{source}: the arm column has no control value {control!r}; values: {sorted(set(arms))[:10]}")
    if not present:
        raise ValueError(f"{source}: every row is in the control {control!r}; there is no treatment arm")
    chosen = list(dict.fromkeys(treatments)) if treatments else present
    unknown = [t for t in chosen if t not in present]
    if unknown:
        raise ValueError(f"{source}: no treatment arm {unknown[0]!r}; treatment arms are {present[:10]}")
    out = [(t, [t]) for t in chosen]
    return out + [("+".join(chosen), chosen)] if len(chosen) > 1 else out


def _arms(df: pd.DataFrame, arm_col: str, control: str, source: str) -> tuple[pd.Series, str]:
    if arm_col not in df.columns:
        raise ValueError(f"{source}: no column(s) {[arm_col]}; columns are {list(df.columns)}")
    if df[arm_col].isna().any():
        i = int(np.flatnonzero(df[arm_col].isna().to_numpy())[0])
        raise ValueError(f"{source}: row {i + 2} column {arm_col!r} is empty (every row needs an arm)")
    arms, control = arm_labels(df[arm_col], control)
    if control not in set(arms):
        raise ValueError(f"{source}: column {arm_col!r} has no control {control!r}; "
                         f"it has {sorted(set(arms))[:10]}")
    return arms, control


def evaluate(df: pd.DataFrame, arm_col: str, control: str, outcome: str | Sequence[str],
             features: Sequence[str] | None = None, seed: int = SEED, test_share: float = 0.3, source: str = "data",
             exclude: Sequence[str] = (), treatments: Sequence[str] | None = None) -> dict:
    """Train every learner on a random (1 − test_share) of the rows; Qini and uplift@k on the rest.

    One comparison per treatment arm against the control (and the treatments pooled, when several) and per
    outcome. Features: `features` as named, else the pre-treatment columns (`uplift_features.choose_features`).
    The top-level `learners`, `outcome` and `overall_uplift` are the first comparison's (a two-arm test's only)."""
    outcomes = [outcome] if isinstance(outcome, str) else list(outcome)
    missing = [c for c in outcomes if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: no column(s) {missing}; columns are {list(df.columns)}")
    arms, control = _arms(df, arm_col, control, source)
    pairs = comparisons(arms, control, treatments, source)
    choice = choose_features(df, arm_col, outcomes, features, exclude, arms=arms, source=source)
    ys = {o: _outcome(df, o, source) for o in outcomes}
    test = np.random.default_rng(seed).random(len(df)) < test_share
    cats = levels(df[~test], choice)
    X = design(df, choice, cats)
    out = {"rows": len(df), "train_rows": int((~test).sum()), "test_rows": int(test.sum()), "control": control,
           "arms": {str(k): int(v) for k, v in arms.value_counts().sort_index().items()}, "outcomes": outcomes,
           **choice.to_dict(), "comparisons": [], "notes": list(choice.notes)}
    failed: list[ValueError] = []
    for name, group in pairs:
        rows = arms.isin([control, *group]).to_numpy()
        w_all = arms.isin(group).to_numpy().astype(int)
        tr, te = rows & ~test, rows & test
        for o, y in ys.items():
            c = {"treatment": name, "arms": group, "outcome": o, "test_rows": int(te.sum()),
                 "treated_share": float(w_all[rows].mean()), "learners": {}}
            try:
                for lname, cls in LEARNERS.items():
                    s = cls(seed).fit(X[tr], y[tr], w_all[tr]).predict(X[te])
                    c["learners"][lname] = _metrics(y[te], w_all[te], s)
            except ValueError as exc:  # e.g. nobody in the control's training rows had the outcome
                failed.append(exc)
                c["learners"] = dict.fromkeys(LEARNERS, dict.fromkeys(("qini", "uplift_at_10", "uplift_at_30")))
                out["notes"].append(f"{name} / {o}: no model: {exc}")
            c["learners"]["random"] = _random_metrics(y[te], w_all[te], seed)
            yt, yc = y[te & (w_all == 1)], y[te & (w_all == 0)]
            c["overall_uplift"] = float(yt.mean() - yc.mean()) if len(yt) and len(yc) else None
            out["comparisons"].append(c)
    if len(failed) == len(out["comparisons"]):
        raise ValueError(f"{source}: {failed[0]}")
    first = out["comparisons"][0]
    out |= {"outcome": first["outcome"], "treated_share": first["treated_share"], "learners": first["learners"],
            "overall_uplift": first["overall_uplift"]}
    for c in out["comparisons"]:
        for lname, m in c["learners"].items():
            for k in ("uplift_at_10", "uplift_at_30"):
                if m[k] is None and m["qini"] is not None:
                    out["notes"].append(f"{c['treatment']} / {c['outcome']} / {lname}: {k} is null: the top share "
                                        "of the held-out rows has no treated or no control person")
    return out


def evaluate_repeated(df: pd.DataFrame, arm_col: str, control: str, outcome: str | Sequence[str],
                      repeats: int = 5, seed: int = SEED, **kw) -> dict:
    """`evaluate` on `repeats` random train/held-out splits (seeds seed, seed+1, ...), metrics averaged.

    One 30% held-out split of a real test is noisy (a Qini moves by several hundredths between splits); the
    mean over splits, with the standard deviation of each Qini, is what a comparison of learners should quote."""
    runs = [evaluate(df, arm_col, control, outcome, seed=seed + i, **kw) for i in range(repeats)]
    out = copy.deepcopy(runs[0]) | {"repeats": repeats, "seeds": [seed + i for i in range(repeats)]}
    if repeats == 1:
        return out
    for j, c in enumerate(out["comparisons"]):
        for lname, m in c["learners"].items():
            per = [r["comparisons"][j]["learners"][lname] for r in runs]
            for k in m:
                vals = [p[k] for p in per if p[k] is not None]
                m[k] = float(np.mean(vals)) if vals else None
            qs = [p["qini"] for p in per if p["qini"] is not None]
            m["qini_sd"] = float(np.std(qs, ddof=1)) if len(qs) > 1 else None
            if m["qini_sd"] is None:
                out["notes"].append(f"{c['treatment']} / {c['outcome']} / {lname}: qini_sd is null: fewer than "
                                    "two splits gave a Qini")
        lifts = [r["comparisons"][j]["overall_uplift"] for r in runs if r["comparisons"][j]["overall_uplift"] is not None]
        c["overall_uplift"] = float(np.mean(lifts)) if lifts else None
    first = out["comparisons"][0]
    out |= {"learners": first["learners"], "overall_uplift": first["overall_uplift"],
            "notes": list(dict.fromkeys([*out["notes"], *(n for r in runs[1:] for n in r["notes"])]))}
    return out


class UpliftScorer:
    """A fitted learner as it is stored between refits: its features, the categorical levels of its training rows and
    the LightGBM models its prediction uses, as LightGBM's own model text (`Booster.model_to_string`, which keeps the
    pandas categories). Scoring reads those texts back, so a model fitted today and one stored on an earlier day
    score through the same code (`beacon.measure.uplift_store`)."""

    # the models each learner's prediction reads (an X-learner predicts from its effect models only)
    PARTS = {"x_learner": ("tau0", "tau1"), "t_learner": ("m1", "m0"), "response_model": ("m1",)}

    def __init__(self, learner: str, outcome: str, features: list[str], levels: dict[str, list[str]],
                 models: dict[str, str], g: float | None = None, trained_rows: int = 0):
        if learner not in self.PARTS or set(models) != set(self.PARTS[learner]):
            raise ValueError(f"uplift scorer: learner {learner!r} needs models {self.PARTS.get(learner)}, "
                             f"got {sorted(models)}")
        self.learner, self.outcome, self.features, self.levels = learner, outcome, list(features), dict(levels)
        self.models, self.g, self.trained_rows = dict(models), g, int(trained_rows)
        self._boosters: dict = {}

    @classmethod
    def from_fitted(cls, model: TLearner, outcome: str, choice, levels: dict[str, list[str]],
                    trained_rows: int) -> UpliftScorer:
        texts = {p: getattr(model, p).booster_.model_to_string() for p in cls.PARTS[model.name]}
        return cls(model.name, outcome, choice.features, levels, texts, getattr(model, "g", None), trained_rows)

    def to_json(self) -> str:
        return json.dumps({"learner": self.learner, "outcome": self.outcome, "features": self.features,
                           "levels": self.levels, "models": self.models, "g": self.g,
                           "trained_rows": self.trained_rows})

    @classmethod
    def from_json(cls, text: str) -> UpliftScorer:
        d = json.loads(text)
        return cls(d["learner"], d["outcome"], d["features"], d["levels"], d["models"], d["g"], d["trained_rows"])

    def _part(self, name: str, X: pd.DataFrame) -> np.ndarray:
        from lightgbm import Booster

        if name not in self._boosters:
            self._boosters[name] = Booster(model_str=self.models[name])
        return self._boosters[name].predict(X, num_threads=_PARAMS["n_jobs"])  # a classifier's: P(y = 1)

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """Each row's uplift, as the fitted learner's `predict` gives it."""
        choice = FeatureChoice(self.features, list(self.levels))
        X = design(rows, choice, self.levels)
        if self.learner == "x_learner":
            return self.g * self._part("tau0", X) + (1 - self.g) * self._part("tau1", X)
        if self.learner == "t_learner":
            return self._part("m1", X) - self._part("m0", X)
        return self._part("m1", X)

    def score(self, rows: pd.DataFrame) -> pd.DataFrame:
        """customer_id, model, outcome, uplift and decile (10 = most persuadable) of every row."""
        u = self.predict(rows)
        rank = pd.Series(u).rank(method="first", pct=True).to_numpy()
        return pd.DataFrame({"customer_id": rows.customer_id.to_numpy(), "model": self.learner,
                             "outcome": self.outcome, "uplift": u,
                             "decile": np.ceil(rank * 10).clip(1, 10).astype(int)})


def fit_scorer(df: pd.DataFrame, arm_col: str, control: str, outcome: str, features: list[str],
               learner: str = "x_learner", seed: int = SEED, strata: pd.Series | None = None) -> UpliftScorer:
    """Fit `learner` on all of `df` (every non-control arm counts as treated) and return it as an `UpliftScorer`.

    The named features are checked as `evaluate` checks them; text columns are categoricals with the training
    levels (a level first seen when scoring counts as missing); `strata`: the training rows' randomization units
    (campaigns), within which balance is checked."""
    arms, control = _arms(df, arm_col, control, "uplift training data")
    choice = choose_features(df, arm_col, [outcome], features, arms=arms, source="uplift training data",
                             strata=strata)
    cats = levels(df, choice)
    w = (arms != control).to_numpy().astype(int)
    model = LEARNERS[learner](seed).fit(design(df, choice, cats), _outcome(df, outcome, "uplift training data"), w)
    return UpliftScorer.from_fitted(model, outcome, choice, cats, len(df))


def scores(df: pd.DataFrame, arm_col: str, control: str, outcome: str, features: list[str],
           learner: str = "x_learner", seed: int = SEED, score_rows: pd.DataFrame | None = None,
           strata: pd.Series | None = None) -> pd.DataFrame:
    """Fit on all of `df` and score `score_rows` (default: df): customer_id, uplift and decile (10 = most persuadable).

    `fit_scorer` then `UpliftScorer.score` (see both)."""
    scorer = fit_scorer(df, arm_col, control, outcome, features, learner, seed, strata)
    return scorer.score(df if score_rows is None else score_rows)
