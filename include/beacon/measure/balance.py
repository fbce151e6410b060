"""Covariate balance between the arms of a randomized test, within strata (campaigns): generalized CMH tests.

Campaigns hold out different shares of different audiences, so pooling their arms compares audiences as well as
arms: with enough people, the campaign mix alone makes every column "differ between the arms". Each campaign is
randomized on its own, so balance is checked *within* each campaign and the campaigns' evidence is summed: the
generalized Cochran–Mantel–Haenszel statistics (Landis, Heyman & Koch 1978; Agresti, *Categorical Data Analysis*,
3rd ed., §8.4; SAS PROC FREQ's CMH option), in their permutation form (Strasser & Weber 1999, the linear statistic
of R's `coin::independence_test(y ~ arm | campaign)`):

- a text (or true/false) column: the *general association* statistic on the levels × arms table of every stratum;
  for a yes/no column and two arms this is the classical Mantel–Haenszel test (statsmodels' `StratifiedTable`);
- a numeric column: the *row mean scores* statistic on modified ridit scores (ranks within the stratum divided by
  its size + 1), which is van Elteren's stratified rank test (van Elteren 1960) and, with one stratum, exactly
  Kruskal–Wallis (tie-corrected); its missing values are tested apart (missing × arm, general association).

Under "no difference within any stratum" each statistic is chi-square with the rank of its covariance as degrees
of freedom. Strata with fewer than two people carry no information and add nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps


def _codes(s: pd.Series) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(s.astype(str), sort=True)
    return codes, len(uniques)


def _chi2_p(d: np.ndarray, v: np.ndarray) -> float:
    """p-value of the quadratic form d' V⁺ d, chi-square with rank(V) degrees of freedom (1.0 when V is zero)."""
    lam, u = np.linalg.eigh((v + v.T) / 2)
    keep = lam > max(lam.max(initial=0.0), 0.0) * len(lam) * 1e-10
    if not keep.any():
        return 1.0
    z = u[:, keep].T @ d
    return float(sps.chi2.sf(float(np.sum(z * z / lam[keep])), int(keep.sum())))


def _test(sums: np.ndarray, counts: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> float:
    """The linear permutation test from per-stratum statistics (H strata, s arms, q score columns).

    sums[h, i, :]: the scores summed over stratum h's people in arm i; counts[h, i]: those people; mean[h, :] and
    cov[h, :, :]: the scores' mean and (population) covariance in stratum h. Within a stratum, under random
    assignment, E[sums] = counts ⊗ mean and Cov = n²/(n − 1) · (diag(p) − pp') ⊗ cov, p the arms' shares."""
    n = counts.sum(1).astype(float)
    ok = n >= 2
    sums, counts, mean, cov, n = sums[ok], counts[ok], mean[ok], cov[ok], n[ok]
    if not len(n):
        return 1.0
    p = counts / n[:, None]
    d = (sums - counts[:, :, None] * mean[:, None, :]).sum(0).ravel()
    arms = np.einsum("hi,ik->hik", p, np.eye(p.shape[1])) - np.einsum("hi,hk->hik", p, p)
    s, q = p.shape[1], mean.shape[1]
    v = np.einsum("h,hik,hjl->ijkl", n * n / (n - 1), arms, cov).reshape(s * q, s * q)
    return _chi2_p(d, v)


def levels_p(values: pd.Series, arms: pd.Series, strata: pd.Series) -> float:
    """General association within strata: do the levels of `values` (missing is a level) depend on the arm?"""
    lv, r = _codes(values.astype("string").fillna("(empty)"))
    arm, s = _codes(arms)
    h, nh = _codes(strata)
    counts = np.bincount((h * s + arm) * r + lv, minlength=nh * s * r).reshape(nh, s, r).astype(float)
    size = counts.sum((1, 2))
    share = counts.sum(1) / np.maximum(size, 1)[:, None]
    cov = np.einsum("hj,jl->hjl", share, np.eye(r)) - np.einsum("hj,hl->hjl", share, share)
    return _test(counts, counts.sum(2), share, cov)


def scores_p(values: pd.Series, arms: pd.Series, strata: pd.Series) -> float:
    """Van Elteren's test: do the arms' ranks of `values` (within each stratum, missing left out) differ?"""
    x = pd.to_numeric(values, errors="coerce").to_numpy(float)
    present = ~np.isnan(x)
    arm, s = _codes(arms)
    h, nh = _codes(strata)
    x, arm, h = x[present], arm[present], h[present]
    if not len(x):
        return 1.0
    size = np.bincount(h, minlength=nh).astype(float)
    ridit = pd.Series(x).groupby(h).rank(method="average").to_numpy() / (size[h] + 1)
    sums = np.bincount(h * s + arm, weights=ridit, minlength=nh * s).reshape(nh, s, 1)
    counts = np.bincount(h * s + arm, minlength=nh * s).reshape(nh, s).astype(float)
    mean = np.bincount(h, weights=ridit, minlength=nh) / np.maximum(size, 1)
    var = np.bincount(h, weights=(ridit - mean[h]) ** 2, minlength=nh) / np.maximum(size, 1)
    return _test(sums, counts, mean[:, None], var[:, None, None])


def imbalance_p(values: pd.Series, arms: pd.Series, kind: str, strata: pd.Series | None = None) -> float:
    """p-value of 'within every stratum, this column has the same distribution in every arm' (one stratum: None).

    Categorical: general association on the levels. Numeric: van Elteren on the values, and, apart, general
    association on whether the value is missing (a column filled in only after treatment is missing more in one
    arm); the smaller p-value."""
    strata = pd.Series(0, index=values.index) if strata is None else strata
    if kind == "categorical":
        return levels_p(values, arms, strata)
    missing = pd.to_numeric(values, errors="coerce").isna()
    p_missing = levels_p(missing, arms, strata) if missing.any() else 1.0
    return min(scores_p(values, arms, strata), p_missing)
