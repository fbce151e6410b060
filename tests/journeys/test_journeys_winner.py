"""Experiments that decide inside a journey: a split with a `winner:` block, on planted outcome rows."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from support.activation_world import segment, warehouse
from support.journeys_world import events, journey

from beacon.journeys import api, experiment
from beacon.journeys.engine import Env, advance, ensure_tables
from beacon.journeys.validate import parse

T = datetime(2026, 6, 30, 15, 0)
PEOPLE = 2400


def spec(winner: dict | None = None, arms=("a", "b"), **kw) -> dict:
    split = {"id": "test", "type": "split", "arms": [{"name": a, "weight": 45, "next": "hold"} for a in arms],
             "control": {"name": "control", "weight": 10, "next": "hold"}}
    if winner is not None:
        split["winner"] = winner
    return {"name": "ab", "version": 1, "entry": {"audience": "members", "re_entry": "after_exit"},
            "start": "test", "nodes": [split, {"id": "hold", "type": "wait", "duration": "1d", "next": "done"},
                                       {"id": "done", "type": "exit"}], **kw}


RULE = {"metric": "converted", "min_people": 100, "after": "1d", "confidence": 0.95}


@pytest.fixture
def con():
    c = warehouse(PEOPLE)
    ensure_tables(c)
    c.execute("CREATE SCHEMA IF NOT EXISTS measurement")
    c.execute("""CREATE TABLE measurement.campaign_outcome_events (customer_id VARCHAR, event_type VARCHAR,
        occurred_at TIMESTAMP, revenue DOUBLE)""")
    segment(c, "members", [f"c{i}" for i in range(PEOPLE // 2)])
    return c


def run(con, j, t):
    return advance(con, j, t, Env(destination=lambda ch: None, outcome_window_days=7),
                   lock_path=f"/tmp/beacon-journeys-winner-{os.getpid()}.lock")


def arms_of(con, entry_no: int = 1) -> dict[str, str]:
    return dict(con.execute("""SELECT customer_id, arm FROM journeys.transitions WHERE node_id = 'test'
        AND transition = 'assigned' AND entry_no = ?""", [entry_no]).fetchall())


def plant_orders(con, arms: dict[str, str], rates: dict[str, float], at: datetime, seed: int = 7) -> None:
    """Each person orders once at `at` with their arm's probability (exact shares when `seed` is None)."""
    rng = np.random.default_rng(seed)
    rows, seen = [], {}
    for cid in sorted(arms):
        arm = arms[cid]
        seen[arm] = seen.get(arm, 0) + 1
        hit = (seen[arm] % round(1 / rates[arm]) == 0) if seed is None else rng.random() < rates[arm]
        if hit:
            rows.append((cid, "order", at, 50.0))
    con.executemany("INSERT INTO measurement.campaign_outcome_events VALUES (?, ?, ?, ?)", rows)


def decisions(con):
    return con.execute("SELECT node_id, winner, breached, reason FROM journeys.experiment_decisions").fetchall()


def test_planted_best_arm_wins_then_new_entrants_go_to_it_and_control_keeps_its_share(con):
    j = journey(**spec(RULE))
    run(con, j, T)
    first = arms_of(con)
    assert set(first.values()) == {"a", "b", "control"}
    plant_orders(con, first, {"a": 0.10, "b": 0.40, "control": 0.10}, T + timedelta(hours=1))
    # Orders after the run's clock do not count (the warehouse clock, never now()).
    con.execute("INSERT INTO measurement.campaign_outcome_events SELECT customer_id, 'order', ?, 1 FROM "
                "journeys.transitions WHERE arm = 'a'", [T + timedelta(days=3)])
    segment(con, "members", [f"c{i}" for i in range(PEOPLE)])  # the second half enters at the next run
    r = run(con, j, T + timedelta(days=1))
    assert r.experiments["test"].startswith("decided: b beats every other arm")
    (node, winner, breached, reason), = decisions(con)
    assert (node, winner) == ("test", "b")
    rec = api.status(con, "ab", j)["experiments"][0]
    assert rec["state"] == "decided" and rec["winner"] == "b"
    d = rec["decisions"][0]
    assert d["decided_at"] == str(T + timedelta(days=1)) and d["arms"]["b"]["people"] == sum(
        v == "b" for v in first.values())
    assert d["method"].startswith("always-valid") and d["rule"]["min_people"] == 100
    assert [c["other"] for c in d["comparisons"] if c.get("arm") == "b" and "other" in c and c["low"] > 0] == ["a"]

    # New entrants: the winner, except the ones the hash puts in control (the same people as before the decision).
    new = {c: a for c, a in arms_of(con).items() if c not in first}
    assert len(new) == PEOPLE // 2 and set(new.values()) == {"b", "control"}
    plain_arm, _ = experiment.hash_cases("ab", j.node("test"), experiment.weighted_arms(j.node("test")))
    plain = dict(con.execute(f"SELECT customer_id, {plain_arm} FROM (SELECT customer_id FROM journeys.transitions "
                             "WHERE entry_no = 1 AND node_id = 'test') a").fetchall())
    assert {c for c, a in new.items() if a == "control"} == {c for c in new if plain[c] == "control"}
    assert 0.06 < sum(a == "control" for a in new.values()) / len(new) < 0.14

    # The first people finished; they re-enter and keep their arm (a stays a).
    run(con, j, T + timedelta(days=1, minutes=15))
    again = arms_of(con, entry_no=2)
    assert len(again) == len(first) and all(again[c] == first[c] for c in again)
    run(con, j, T + timedelta(days=2))
    run(con, j, T + timedelta(days=2))  # re-running the same advance records nothing twice
    assert len(decisions(con)) == 1


def test_no_true_difference_no_winner(con):
    j = journey(**spec({**RULE, "min_people": 150, "after": "2d"}))
    run(con, j, T)
    first = arms_of(con)
    plant_orders(con, first, {"a": 0.2, "b": 0.2, "control": 0.2}, T + timedelta(hours=1), seed=None)
    r = run(con, j, T + timedelta(days=1))
    assert r.experiments["test"].startswith("too early")
    r = run(con, j, T + timedelta(days=3))
    assert r.experiments["test"].startswith("too few people: control has")  # 1,200 people: about 130 in control
    segment(con, "members", [f"c{i}" for i in range(PEOPLE)])
    run(con, j, T + timedelta(days=3, minutes=15))
    r = run(con, j, T + timedelta(days=3, minutes=30))
    assert r.experiments["test"] == "no arm is ahead of every other yet"
    rec = api.status(con, "ab", j)["experiments"][0]
    assert rec["state"] == "undecided" and rec["decisions"] == []
    assert rec["now"]["arms"]["a"]["people"] > 0 and not decisions(con)
    # Undecided: new entrants are still split by the hash over every arm.
    assert set(arms_of(con).values()) == {"a", "b", "control"}


def test_a_guardrail_breach_takes_the_arm_out(con):
    j = journey(**spec({**RULE, "guardrails": ["unsubscribed"]}))
    run(con, j, T)
    first = arms_of(con)
    plant_orders(con, first, {"a": 0.2, "b": 0.2, "control": 0.2}, T + timedelta(hours=1), seed=None)
    events(con, [(c, "email_unsubscribe", T + timedelta(hours=2), None) for i, (c, a) in enumerate(sorted(first.items()))
                 if a == "a" and i % 4 == 0])
    run(con, j, T + timedelta(days=1))
    (node, winner, breached, reason), = decisions(con)
    assert winner == "b" and json.loads(breached) == {"a": "unsubscribed"}  # conversions were equal: a is out
    assert reason == "guardrail breached by a (unsubscribed): b is the only arm left"
    assert experiment.state(con, "ab", "test") == experiment.State("b", {"a": "unsubscribed"})


def _problems(winner, arms=("a", "b")) -> list[str]:
    return parse("journeys/ab.yml", yaml.safe_dump(spec(winner, arms)))[1]


@pytest.mark.parametrize(("winner", "needle"), [
    ({"metric": "opens"}, "winner.metric must be one of converted, clicked, revenue"),
    ({"after": "soon"}, "winner.after: a duration like 7d"),
    ({"confidence": 1.5}, "winner.confidence must be in [0.5, 1)"),
    ({"min_people": "many"}, "min_people must be a whole number"),
    ({"colour": "red"}, "winner: unknown field(s) ['colour']"),
    ({"guardrails": ["spam"]}, "winner.guardrails: unknown ['spam']"),
    ("yes", "winner"),
])
def test_winner_block_errors_name_file_journey_node_and_field(winner, needle):
    problems = _problems(winner)
    assert problems and all(p.startswith("journeys/ab.yml: journey ab: node test") for p in problems)
    assert any(needle in p for p in problems), problems


def test_a_winner_needs_two_arms_besides_control():
    assert any("at least two arms" in p for p in _problems(RULE, arms=("a",)))
    assert _problems(RULE) == []


_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=8), st.lists(st.text(max_size=12), max_size=3))


@settings(max_examples=200, deadline=None)
@given(st.one_of(_values, st.dictionaries(
    st.sampled_from(["metric", "min_people", "after", "confidence", "guardrails", "other"]),
    st.one_of(_values, st.sampled_from(["converted", "revenue", "7d", "36h", "unsubscribed"])), max_size=5)))
def test_any_winner_block_parses_or_is_refused_with_its_place(winner):
    j, problems = parse("journeys/ab.yml", yaml.safe_dump(spec(winner)))
    if j is None:
        assert problems and all(p.startswith("journeys/ab.yml: journey ab: node test") for p in problems)
    elif winner is None:
        assert j.node("test").winner is None and not experiment.experiment_nodes(j)
    else:
        rule = experiment.rule_of(j.node("test"))
        assert rule.metric in ("converted", "clicked", "revenue") and rule.min_people >= 2
