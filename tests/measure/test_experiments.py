"""Winner selection (`beacon.measure.experiments.decide`): clear winners win, ties and early looks do not, guardrails stop arms."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from beacon.bench.experiments import bench_experiments
from beacon.measure.experiments import ArmCounts, WinnerRule, decide, interval

START = datetime(2026, 7, 1, tzinfo=UTC)
LATER = START + timedelta(days=10)
RULE = WinnerRule(metric="converted", min_people=500, after=timedelta(days=7), confidence=0.95)


def _arms(**rates) -> dict[str, ArmCounts]:
    # 5,000 people per arm, conversions at the given rate
    return {a: ArmCounts(5000, round(5000 * r)) for a, r in rates.items()}


def test_a_clearly_better_arm_wins_with_the_figures_recorded():
    d = decide(_arms(a=0.05, b=0.08, control=0.05), RULE, now=LATER, started_at=START, control="control")
    assert d.decided and d.winner == "b" and not d.breached
    row = next(c for c in d.comparisons if c.get("arm") == "b" and c.get("other") == "a")
    assert row["low"] > 0 and math.isclose(row["diff"], 0.03)
    assert d.arms["b"]["people"] == 5000 and d.arms["b"]["total"] == 400
    assert "always-valid" in d.method and d.at == LATER.isoformat()
    json.dumps(d.to_dict(), allow_nan=False)  # the record is strict JSON


def test_the_control_never_competes_and_a_tie_stays_undecided():
    # the control is far better than both arms, and the two arms are equal: no winner among the arms
    d = decide(_arms(a=0.05, b=0.05, control=0.20), RULE, now=LATER, started_at=START, control="control")
    assert not d.decided and d.winner is None and "no arm is ahead" in d.reason
    assert all(c.get("other") != "control" for c in d.comparisons if "other" in c)


def test_a_winner_must_beat_every_other_arm_not_just_one():
    # c beats a clearly but not b (b is nearly as good): undecided
    d = decide(_arms(a=0.04, b=0.079, c=0.08), RULE, now=LATER, started_at=START)
    assert not d.decided
    d = decide(_arms(a=0.04, b=0.05, c=0.08), RULE, now=LATER, started_at=START)
    assert d.decided and d.winner == "c"


def test_no_decision_before_after_or_below_min_people():
    arms = _arms(a=0.05, b=0.10, control=0.05)
    early = decide(arms, RULE, now=START + timedelta(days=6), started_at=START, control="control")
    assert not early.decided and "too early" in early.reason
    few = dict(arms, a=ArmCounts(499, 25))
    d = decide(few, RULE, now=LATER, started_at=START, control="control")
    assert not d.decided and "a has 499" in d.reason


def test_the_interval_is_always_valid_so_wider_than_a_fixed_horizon_one():
    a, b = ArmCounts(5000, 300), ArmCounts(5000, 250)
    diff, low, high = interval(a, b, 0.05)
    p1, p2 = 0.06, 0.05
    fixed = 1.96 * math.sqrt(p1 * (1 - p1) / 5000 * 5000 / 4999 + p2 * (1 - p2) / 5000 * 5000 / 4999)
    assert math.isclose(diff, 0.01) and (high - low) / 2 > 1.5 * fixed


def test_nobody_converted_yet_is_undecided_not_an_error():
    d = decide(_arms(a=0.0, b=0.0), RULE, now=LATER, started_at=START)
    assert not d.decided
    assert all(c["low"] is None and c["high"] is None for c in d.comparisons if "other" in c)
    json.dumps(d.to_dict(), allow_nan=False)


def test_revenue_uses_sums_of_squares_and_refuses_without_them():
    rule = WinnerRule(metric="revenue", min_people=500, after=timedelta(0))
    rng = np.random.default_rng(1)
    ya, yb = rng.exponential(10, 4000), rng.exponential(12, 4000)
    arms = {"a": ArmCounts(4000, ya.sum(), (ya**2).sum()), "b": ArmCounts(4000, yb.sum(), (yb**2).sum())}
    d = decide(arms, rule, now=LATER, started_at=START)
    assert d.decided and d.winner == "b"
    with pytest.raises(ValueError, match="sum of squares"):
        decide({"a": ArmCounts(4000, ya.sum()), "b": arms["b"]}, rule, now=LATER, started_at=START)


def test_a_guardrail_breach_stops_an_arm_and_the_last_one_left_wins():
    arms = {"a": ArmCounts(5000, 500, guardrails={"unsubscribed": 150}),  # converts best, but 3% unsubscribe
            "b": ArmCounts(5000, 250, guardrails={"unsubscribed": 20}),
            "control": ArmCounts(5000, 250, guardrails={"unsubscribed": 20})}
    d = decide(arms, RULE, now=LATER, started_at=START, control="control")
    assert d.decided and d.breached == {"a": "unsubscribed"} and d.winner == "b"
    arms["c"] = ArmCounts(5000, 250, guardrails={"unsubscribed": 20})
    d = decide(arms, RULE, now=LATER, started_at=START, control="control")
    assert d.decided and d.winner is None and d.breached == {"a": "unsubscribed"}


def test_bad_rules_and_counts_are_refused_with_the_field_named():
    with pytest.raises(ValueError, match="winner.metric"):
        WinnerRule(metric="opens")
    with pytest.raises(ValueError, match="winner.confidence"):
        WinnerRule(confidence=1.5)
    with pytest.raises(ValueError, match="two competing arms"):
        decide(_arms(a=0.1, control=0.1), RULE, now=LATER, started_at=START, control="control")
    with pytest.raises(ValueError, match="control arm 'ctl'"):
        decide(_arms(a=0.1, b=0.1), RULE, now=LATER, started_at=START, control="ctl")


def test_bench_right_winner_at_least_90_and_false_winner_at_most_5_percent_with_daily_looks():
    # 200 worlds of each kind, looked at every day for four weeks
    d = bench_experiments(worlds=200)
    assert d["best"]["right_winner"] >= 0.90, d["best"]
    assert d["null"]["false_decision"] <= 0.05, d["null"]
    # peeking at fixed-horizon intervals would have declared far more false winners
    assert d["null"]["fixed_horizon_peeking_false_winner"] > 2 * max(d["null"]["false_winner"], 0.02)
    assert d["guardrail"]["breaching_arm_stopped"] >= 0.9 and d["guardrail"]["breaching_arm_won"] <= 0.05


def test_the_rule_from_a_split_yaml_block():
    r = WinnerRule.from_config({"metric": "clicked", "min_people": 200, "after": "36h", "confidence": 0.9})
    assert (r.metric, r.min_people, r.after, r.confidence) == ("clicked", 200, timedelta(hours=36), 0.9)
    assert WinnerRule.from_config({"after": 3}).after == timedelta(days=3)
    with pytest.raises(ValueError, match=r"journey x / split: unknown field\(s\) \['metrc'\]"):
        WinnerRule.from_config({"metrc": "converted"}, "journey x / split")
    with pytest.raises(ValueError, match="winner.after: a duration like 7d"):
        WinnerRule.from_config({"after": "a week"})
    with pytest.raises(ValueError, match="min_people must be a whole number"):
        WinnerRule.from_config({"min_people": "many"})


@pytest.mark.parametrize("after", [1e9, "1e999d", float("inf"), "nand", "99999999999999h"])
def test_an_after_out_of_range_is_refused_by_name(after):
    with pytest.raises(ValueError, match=r"node x\.after: a duration like 7d"):
        WinnerRule.from_config({"after": after}, "node x")
