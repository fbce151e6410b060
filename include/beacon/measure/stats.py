"""The statistics of a randomized test, on statsmodels and scipy: what a careful analyst computes by hand.

One table per test (`lift_table`): for every outcome and every arm against the control,

- counts and means per group (absolute numbers first, rates second);
- the absolute lift with a 95% interval: Newcombe's hybrid score interval for a difference of proportions
  (statsmodels `confint_proportions_2indep`) on 0/1 outcomes, Welch's t interval on anything else
  (revenue per person, clicks per person);
- the relative lift with a delta-method interval (as GrowthBook's engine);
- optionally CUPED (Deng et al. 2013): the outcome less θ·(pre-exposure covariates − their mean), θ from a
  pooled least-squares fit, then Welch on the adjusted values; the variance reduction achieved is reported;
- optionally an always-valid interval (a normal-mixture sequential test, GrowthBook's form), safe to look
  at every day: it is wider than the fixed-horizon one and never stops being valid as data arrive;
- a sample-ratio-mismatch chi-square test of the split (`srm`), and sizing (`plan`, `mde`).

Analysis is by assigned group (intent to treat): the caller passes every assigned person, sent or not.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    test_proportions_2indep,
)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from beacon.measure.sequential import ALPHA, SEQUENTIAL_TUNING_N, sequential_halfwidth  # noqa: F401 (re-exported)

SRM_P = 0.001  # the usual threshold: a split this unlikely under the design is broken, not unlucky


@dataclass
class Lift:
    """One arm against the control on one outcome."""

    outcome: str
    arm: str
    control: str
    n_arm: int
    n_control: int
    total_arm: float  # e.g. conversions or revenue in the arm
    total_control: float
    mean_arm: float
    mean_control: float
    binary: bool
    method: str
    abs_lift: float
    abs_low: float
    abs_high: float
    rel_lift: float
    rel_low: float
    rel_high: float
    p_value: float
    significant: bool
    cuped_abs_lift: float | None = None
    cuped_low: float | None = None
    cuped_high: float | None = None
    variance_reduction: float | None = None
    seq_low: float | None = None
    seq_high: float | None = None

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def is_binary(y: np.ndarray) -> bool:
    """True when every value is 0 or 1 (a conversion), so proportion intervals apply."""
    return bool(np.isin(np.unique(y), [0.0, 1.0]).all())


def relative_ci(m_t: float, v_t: float, n_t: int, m_c: float, v_c: float, n_c: int,
                alpha: float = ALPHA) -> tuple[float, float, float]:
    """Relative lift m_t/m_c − 1 with a delta-method interval (variances are per observation)."""
    if m_c == 0:
        return math.nan, math.nan, math.nan
    rel = m_t / m_c - 1.0
    var = v_t / (n_t * m_c**2) + (m_t**2) * v_c / (n_c * m_c**4)
    z = sps.norm.ppf(1 - alpha / 2)
    return rel, rel - z * math.sqrt(var), rel + z * math.sqrt(var)


def cuped_adjust(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """y − θ·(x − mean x) with θ from a pooled least-squares fit; returns the adjusted y and the variance reduction."""
    x = np.asarray(x, float).reshape(len(y), -1)
    xc = x - x.mean(axis=0)
    keep = xc.std(axis=0) > 0
    if not keep.any() or np.var(y) == 0:
        return y.astype(float), 0.0
    theta, *_ = np.linalg.lstsq(xc[:, keep], y - y.mean(), rcond=None)
    adj = y - xc[:, keep] @ theta
    return adj, float(1.0 - np.var(adj, ddof=1) / np.var(y, ddof=1))


def _welch(yt: np.ndarray, yc: np.ndarray, alpha: float) -> tuple[float, float, float, float, float]:
    """Difference of means, Welch interval, p-value and standard error."""
    cm = CompareMeans(DescrStatsW(yt), DescrStatsW(yc))
    low, high = cm.tconfint_diff(alpha=alpha, usevar="unequal")
    _, p, _ = cm.ttest_ind(usevar="unequal")
    return float(yt.mean() - yc.mean()), float(low), float(high), float(p), float(cm.std_meandiff_separatevar)


def compare(yt: np.ndarray, yc: np.ndarray, *, outcome: str = "outcome", arm: str = "treatment",
            control: str = "control", xt: np.ndarray | None = None, xc: np.ndarray | None = None,
            alpha: float = ALPHA, sequential: bool = False) -> Lift:
    """One arm (yt) against the control (yc); xt/xc are pre-exposure covariates for CUPED (optional)."""
    yt, yc = np.asarray(yt, float), np.asarray(yc, float)
    if len(yt) < 2 or len(yc) < 2:
        raise ValueError(f"{outcome}: arm {arm!r} has {len(yt)} and control {control!r} {len(yc)} rows; need 2 each")
    binary = is_binary(np.concatenate([yt, yc]))
    constant = np.var(np.concatenate([yt, yc])) == 0  # e.g. nobody converted yet: only Newcombe has an interval
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # statsmodels divides by zero rates on the way
        diff, low, high, p, se = _welch(yt, yc, alpha)
        method = "welch"
        if binary:
            ct, cc = int(yt.sum()), int(yc.sum())
            low, high = confint_proportions_2indep(ct, len(yt), cc, len(yc), method="newcomb", compare="diff",
                                                   alpha=alpha)
            p = test_proportions_2indep(ct, len(yt), cc, len(yc), method="agresti-caffo", compare="diff").pvalue
            low, high, p, method = float(low), float(high), float(p), "newcombe"
    rel, rlow, rhigh = relative_ci(yt.mean(), yt.var(ddof=1), len(yt), yc.mean(), yc.var(ddof=1), len(yc), alpha)
    out = Lift(outcome=outcome, arm=arm, control=control, n_arm=len(yt), n_control=len(yc),
               total_arm=float(yt.sum()), total_control=float(yc.sum()), mean_arm=float(yt.mean()),
               mean_control=float(yc.mean()), binary=binary, method=method, abs_lift=diff, abs_low=low, abs_high=high,
               rel_lift=rel, rel_low=rlow, rel_high=rhigh, p_value=p, significant=bool(low > 0 or high < 0))
    if xt is not None and xc is not None and not constant:
        x = np.vstack([np.asarray(xt, float).reshape(len(yt), -1), np.asarray(xc, float).reshape(len(yc), -1)])
        adj, vr = cuped_adjust(np.concatenate([yt, yc]), x)
        d, lo, hi, _, se = _welch(adj[: len(yt)], adj[len(yt):], alpha)
        out.cuped_abs_lift, out.cuped_low, out.cuped_high, out.variance_reduction = d, lo, hi, vr
    if sequential and not constant:
        centre = out.cuped_abs_lift if out.cuped_abs_lift is not None else diff
        hw = sequential_halfwidth(se, len(yt) + len(yc), alpha)
        out.seq_low, out.seq_high = centre - hw, centre + hw
    return out


def arm_labels(arm: pd.Series, control) -> tuple[pd.Series, str]:
    """Arm values as text, with whole numbers written plainly (1.0 -> '1'), so `--control 0` finds 0.0."""
    def plain(v) -> str:
        try:
            f = float(v)
        except (TypeError, ValueError):
            return str(v)
        return str(int(f)) if f.is_integer() else str(v)

    if pd.api.types.is_numeric_dtype(arm):
        return arm.map(plain), plain(control)
    return arm.astype(str), str(control)


def lift_table(df: pd.DataFrame, arm_col: str, control: str, outcomes: Sequence[str],
               covariates: Sequence[str] = (), alpha: float = ALPHA, sequential: bool = False,
               source: str = "data") -> list[Lift]:
    """Every non-control arm against `control`, for every outcome column of `df` (one row per assigned person)."""
    needed = [arm_col, *outcomes, *covariates]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{source}: no column(s) {missing}; columns are {list(df.columns)}")
    if df[arm_col].isna().any():
        i = int(np.flatnonzero(df[arm_col].isna().to_numpy())[0])
        raise ValueError(f"{source}: row {i + 2} column {arm_col!r} is empty (every row needs an arm)")
    arms, control = arm_labels(df[arm_col], control)
    if control not in set(arms):
        raise ValueError(f"{source}: column {arm_col!r} has no control value {control!r}; values: {sorted(set(arms))[:10]}")
    for c in [*outcomes, *covariates]:
        vals = pd.to_numeric(df[c], errors="coerce")
        bad = vals.isna()  # empty or not a number
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{source}: row {i + 2} column {c!r}: {df[c].iloc[i]!r} is not a number "
                             "(rows count the header as row 1)")
    ctrl = (arms == str(control)).to_numpy()
    results = []
    for arm in sorted(set(arms) - {str(control)}):
        t = (arms == arm).to_numpy()
        xt = df.loc[t, list(covariates)].to_numpy(float) if covariates else None
        xc = df.loc[ctrl, list(covariates)].to_numpy(float) if covariates else None
        for o in outcomes:
            y = df[o].to_numpy(float)
            results.append(compare(y[t], y[ctrl], outcome=o, arm=arm, control=str(control), xt=xt, xc=xc,
                                   alpha=alpha, sequential=sequential))
    return results


def srm(counts: Mapping[str, int], weights: Mapping[str, float]) -> dict:
    """Sample-ratio-mismatch chi-square test: do the arm sizes fit the designed split?"""
    arms = sorted(weights)
    obs = np.array([counts.get(a, 0) for a in arms], float)
    w = np.array([weights[a] for a in arms], float)
    exp = obs.sum() * w / w.sum()
    chi2, p = sps.chisquare(obs, exp)
    return {"arms": arms, "observed": obs.astype(int).tolist(), "expected": np.round(exp, 1).tolist(),
            "chi2": float(chi2), "p_value": float(p), "mismatch": bool(p < SRM_P)}


def plan(baseline_rate: float, mde: float, power: float = 0.8, alpha: float = ALPHA, ratio: float = 1.0,
         relative: bool = False) -> dict:
    """People needed per arm to detect an absolute (or relative) change `mde` in a conversion rate."""
    if not 0 < baseline_rate < 1:
        raise ValueError(f"baseline rate must be in (0, 1), not {baseline_rate}")
    target = baseline_rate * (1 + mde) if relative else baseline_rate + mde
    if not 0 < target < 1 or target == baseline_rate:
        raise ValueError(f"baseline {baseline_rate} with MDE {mde} gives {target}: not a different rate in (0, 1)")
    h = abs(proportion_effectsize(target, baseline_rate))
    n_control = NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=ratio)
    n_c = math.ceil(n_control)
    n_t = math.ceil(n_control * ratio)
    return {"baseline_rate": baseline_rate, "target_rate": target, "mde_abs": target - baseline_rate,
            "power": power, "alpha": alpha, "ratio_treatment_to_control": ratio, "control": n_c, "treatment": n_t,
            "total": n_c + n_t, "holdout_pct": round(100 * n_c / (n_c + n_t), 2)}


def mde(baseline_rate: float, n_treatment: int, n_control: int, power: float = 0.8, alpha: float = ALPHA) -> float:
    """The smallest absolute lift in a conversion rate these group sizes detect with `power`."""
    h = NormalIndPower().solve_power(nobs1=n_control, ratio=n_treatment / n_control, alpha=alpha, power=power)
    # Cohen's h back to a rate: h = 2·asin(√p1) − 2·asin(√p0).
    p1 = math.sin(min(math.pi / 2, math.asin(math.sqrt(baseline_rate)) + h / 2)) ** 2
    return p1 - baseline_rate


def roi(lift_conv: Lift | None, lift_rev: Lift | None, messages: int, cost_per_message: float) -> dict:
    """Cost, incremental conversions and revenue (intervals scaled to the treated group) and ROI."""
    cost = messages * cost_per_message
    out: dict = {"messages": messages, "cost_per_message": cost_per_message, "cost": cost}
    if lift_conv is not None:
        n = lift_conv.n_arm
        out |= {"incremental_conversions": lift_conv.abs_lift * n, "incremental_conversions_low": lift_conv.abs_low * n,
                "incremental_conversions_high": lift_conv.abs_high * n}
    if lift_rev is not None:
        n = lift_rev.n_arm
        rev = [lift_rev.abs_lift * n, lift_rev.abs_low * n, lift_rev.abs_high * n]
        out |= {"incremental_revenue": rev[0], "incremental_revenue_low": rev[1], "incremental_revenue_high": rev[2]}
        if cost > 0:
            out |= {"roi": (rev[0] - cost) / cost, "roi_low": (rev[1] - cost) / cost, "roi_high": (rev[2] - cost) / cost}
    return out


def verdict(r: Lift, unit: str = "") -> str:
    """One plain sentence on a result that claims significance only when the interval excludes zero."""
    what = "conversion rate" if r.binary else f"{r.outcome} per person"

    def fmt(v: float) -> str:
        return f"{100 * v:+.2f} points" if r.binary else f"{v:+,.2f}{unit}"

    lo, hi = (r.cuped_low, r.cuped_high) if r.cuped_low is not None else (r.abs_low, r.abs_high)
    est = r.cuped_abs_lift if r.cuped_abs_lift is not None else r.abs_lift
    span = f"(95% interval {fmt(lo)} to {fmt(hi)})"
    if lo > 0:
        return f"'{r.arm}' raised the {what} by {fmt(est)} {span}: the increase is statistically clear."
    if hi < 0:
        return f"'{r.arm}' lowered the {what} by {fmt(est)} {span}: the decrease is statistically clear."
    return (f"No clear effect of '{r.arm}' on the {what} yet: {fmt(est)} {span}; the interval includes zero, "
            f"so this could be chance.")
