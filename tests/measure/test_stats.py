"""The statistics module: interval coverage on worlds with planted effects, CUPED, known answers, SRM, sizing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from beacon.measure import stats
from beacon.measure.simulate import COVARIATES, simulate_test

WORLDS = 60  # at least 40 (issue 17); ~0.1 s each


@pytest.fixture(scope="module")
def coverage():
    """60 small randomized campaigns (3,000 people, different seeds and effects) analysed like the CLI does."""
    rows = []
    for seed in range(WORLDS):
        st = simulate_test(seed, people=3000, conversion=0.02 + 0.01 * (seed % 3))
        truth = st.truth.set_index("arm").loc["treatment"]
        conv, rev = stats.lift_table(st.frame, "arm", "control", ["converted", "revenue"], COVARIATES, sequential=True)
        shuffled = st.frame.assign(**{c: np.random.default_rng(seed).permutation(st.frame[c].to_numpy())
                                      for c in COVARIATES})
        noise, = stats.lift_table(shuffled, "arm", "control", ["converted"], COVARIATES)
        rows.append({
            "covered": conv.abs_low <= truth.abs_lift <= conv.abs_high,
            "covered_cuped": conv.cuped_low <= truth.abs_lift <= conv.cuped_high,
            "covered_seq": conv.seq_low <= truth.abs_lift <= conv.seq_high,
            "covered_revenue": rev.abs_low <= truth.revenue_lift_per_person <= rev.abs_high,
            "width": conv.abs_high - conv.abs_low, "width_cuped": conv.cuped_high - conv.cuped_low,
            "width_seq": conv.seq_high - conv.seq_low, "vr": conv.variance_reduction,
            "rev_width": rev.abs_high - rev.abs_low, "rev_width_cuped": rev.cuped_high - rev.cuped_low,
            "vr_revenue": rev.variance_reduction,
            "noise_vr": noise.variance_reduction, "noise_width_cuped": noise.cuped_high - noise.cuped_low,
        })
    return pd.DataFrame(rows)


def test_95_percent_intervals_cover_the_planted_effect_in_90_to_99_percent_of_worlds(coverage):
    for col in ("covered", "covered_cuped", "covered_revenue"):
        assert 0.90 <= coverage[col].mean() <= 0.99, (col, coverage[col].mean())
    # The always-valid interval is wider and covers at least as often.
    assert coverage.covered_seq.mean() >= coverage.covered.mean()
    assert (coverage.width_seq > coverage.width).all()


def test_cuped_narrows_intervals_when_the_covariate_predicts_and_not_otherwise(coverage):
    # Prior orders/revenue/visits predict the outcome: every world's interval narrows, revenue's most.
    assert (coverage.width_cuped < coverage.width).mean() > 0.9
    assert coverage.vr.mean() > 0.05 and coverage.vr_revenue.mean() > 0.1
    assert (coverage.rev_width_cuped < coverage.rev_width).all()
    # Shuffled covariates carry no information: no real reduction, no narrower interval.
    assert coverage.noise_vr.abs().max() < 0.01
    assert coverage.noise_width_cuped.mean() > 0.99 * coverage.width.mean()


def _arms(n_t, x_t, n_c, x_c):
    return pd.DataFrame({"arm": ["B"] * n_t + ["A"] * n_c, "y": [1] * x_t + [0] * (n_t - x_t) + [1] * x_c + [0] * (n_c - x_c)})


def test_newcombe_interval_matches_the_published_example():
    # Newcombe (1998), Stat Med 17:873, Table II example (a), method 10: 56/70 vs 48/80 -> 0.2000, 0.0524 to 0.3339.
    r, = stats.lift_table(_arms(70, 56, 80, 48), "arm", "A", ["y"])
    assert r.method == "newcombe"
    assert (round(r.abs_lift, 4), round(r.abs_low, 4), round(r.abs_high, 4)) == (0.2, 0.0524, 0.3339)


def test_welch_interval_matches_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(3, 1, 400), rng.lognormal(3.1, 1.2, 300)
    r = stats.compare(b, a)
    ci = sps.ttest_ind(b, a, equal_var=False).confidence_interval()
    assert (round(r.abs_low, 6), round(r.abs_high, 6)) == (round(ci.low, 6), round(ci.high, 6))
    assert r.method == "welch" and not r.binary


def test_relative_lift_delta_method_covers_a_simulated_truth():
    # 95% delta-method intervals for m_t/m_c - 1 cover the true +10% in about 95% of 400 draws.
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(400):
        r = stats.compare(rng.binomial(1, 0.22, 2000), rng.binomial(1, 0.20, 2000))
        hits += r.rel_low <= 0.10 <= r.rel_high
    assert 0.92 <= hits / 400 <= 0.98


def test_srm_flags_a_broken_split_and_passes_a_good_one():
    assert stats.srm({"treatment": 5000, "control": 4600}, {"treatment": 0.5, "control": 0.5})["mismatch"]
    assert not stats.srm({"treatment": 9010, "control": 990}, {"treatment": 0.9, "control": 0.1})["mismatch"]
    # A 90/10 design that delivered 50/50 (the holdout was not applied) is caught.
    assert stats.srm({"treatment": 500, "control": 500}, {"treatment": 0.9, "control": 0.1})["mismatch"]


def test_plan_and_mde_agree_and_match_the_textbook_formula():
    p = stats.plan(0.05, 0.01, power=0.8)
    # Arcsine approximation: var(2·asin√p̂) = 1/n, so n = 2·((z_a/2 + z_b) / h)^2 per arm ...
    za, zb = sps.norm.ppf(0.975), sps.norm.ppf(0.8)
    h = 2 * np.arcsin(np.sqrt(0.06)) - 2 * np.arcsin(np.sqrt(0.05))
    assert p["control"] == int(np.ceil(2 * ((za + zb) / h) ** 2))
    # ... within 1% of the classical pooled-variance formula for two proportions.
    classic = (za * np.sqrt(2 * 0.055 * 0.945) + zb * np.sqrt(0.05 * 0.95 + 0.06 * 0.94)) ** 2 / 0.01**2
    assert abs(p["control"] / classic - 1) < 0.01
    assert abs(stats.mde(0.05, p["treatment"], p["control"]) - 0.01) < 1e-4
    assert stats.plan(0.05, 0.2, relative=True)["target_rate"] == pytest.approx(0.06)
    with pytest.raises(ValueError, match="baseline"):
        stats.plan(1.5, 0.01)


def test_roi_scales_intervals_to_the_treated_group():
    rev = stats.compare(np.r_[np.full(100, 10.0), np.zeros(900)], np.r_[np.full(50, 10.0), np.zeros(950)],
                        outcome="revenue")
    d = stats.roi(None, rev, messages=1000, cost_per_message=0.5)
    assert d["cost"] == 500 and d["incremental_revenue"] == pytest.approx(500.0)
    assert d["roi"] == pytest.approx(0.0) and d["roi_low"] < 0 < d["roi_high"]


def test_verdict_never_claims_what_the_interval_does_not_show():
    flat = stats.compare(np.r_[np.ones(50), np.zeros(950)], np.r_[np.ones(48), np.zeros(952)])
    clear = stats.compare(np.r_[np.ones(150), np.zeros(850)], np.r_[np.ones(50), np.zeros(950)])
    assert "No clear effect" in stats.verdict(flat) and "statistically clear" not in stats.verdict(flat)
    assert "statistically clear" in stats.verdict(clear) and clear.significant and not flat.significant


def test_bad_input_names_row_and_column():
    df = pd.DataFrame({"arm": ["A", "B", "A", "B"], "y": ["1", "0", "x", "1"]})
    with pytest.raises(ValueError, match=r"file.csv: row 4 column 'y': 'x' is not a number"):
        stats.lift_table(df, "arm", "A", ["y"], source="file.csv")
    with pytest.raises(ValueError, match="no control value 'C'"):
        stats.lift_table(df.assign(y=1), "arm", "C", ["y"])
    with pytest.raises(ValueError, match=r"row 4 column 'arm' is empty"):
        stats.lift_table(df.assign(y=1, arm=["A", "B", None, "B"]), "arm", "A", ["y"])
