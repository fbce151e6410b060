"""Uplift learners on generated worlds: they must find the persuadable better than random and a response model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from beacon.measure.simulate import COVARIATES, simulate_test
from beacon.measure.uplift import evaluate, qini_coefficient, scores

SEEDS = (100, 101, 102, 103, 104)


@pytest.fixture(scope="module")
def results():
    # 20,000 people each; the effect leans to engaged, low-intent people (heterogeneity 3), whom a response
    # model (which ranks by the chance to buy anyway) does not find.
    out = []
    for seed in SEEDS:
        st = simulate_test(seed, people=20_000, conversion=0.1, heterogeneity=3.0)
        out.append(evaluate(st.frame, "arm", "control", "converted", list(COVARIATES), seed=seed))
    return out


def test_uplift_learners_beat_random_and_a_response_model_on_held_out_people(results):
    q = pd.DataFrame([{k: v["qini"] for k, v in r["learners"].items()} for r in results])
    for learner in ("t_learner", "x_learner"):
        assert q[learner].mean() > q.random.mean() + 0.03, q.mean()
        assert q[learner].mean() > q.response_model.mean() + 0.03, q.mean()
    # World by world, the X-learner beats both baselines in at least 4 of 5.
    assert ((q.x_learner > q.random) & (q.x_learner > q.response_model)).sum() >= 4
    top = pd.DataFrame([r["learners"]["x_learner"] for r in results])
    overall = np.mean([r["overall_uplift"] for r in results])
    assert top.uplift_at_10.mean() > overall  # the top decile is more persuadable than average


def test_qini_of_a_perfect_ordering_is_positive_and_of_its_reverse_negative():
    rng = np.random.default_rng(0)
    n = 4000
    w = rng.integers(0, 2, n)
    persuadable = rng.random(n) < 0.3
    y = (rng.random(n) < 0.1 + 0.3 * (persuadable & (w == 1))).astype(int)
    assert qini_coefficient(y, w, persuadable.astype(float)) > 0.2
    assert qini_coefficient(y, w, -persuadable.astype(float)) < -0.2


def test_scores_give_deciles_per_customer():
    st = simulate_test(7, people=4000, conversion=0.1, heterogeneity=3.0)
    s = scores(st.frame, "arm", "control", "converted", list(COVARIATES))
    assert len(s) == len(st.frame) and s.customer_id.is_unique
    assert set(s.decile) == set(range(1, 11)) and s.model.eq("x_learner").all()
