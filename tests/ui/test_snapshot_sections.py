"""The Beacon page's journeys and results sections, computed from a real warehouse by the engine and the stats
module that fill it in production (no hand-written rows)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from support.activation_world import segment, warehouse
from support.journeys_world import Outboxes, env, events, journey

from beacon.journeys.engine import advance, ensure_tables
from beacon.measure import stats
from beacon.measure.warehouse import store_results
from beacon.ui.snapshot import journeys_section, results_section

T = datetime(2026, 6, 30, 15, 0)


def test_the_journey_flow_shows_people_per_node_sends_exits_and_goals():
    con = warehouse(20)
    assert journeys_section(con, []) is None  # no journeys run yet: no section
    ensure_tables(con)
    segment(con, "members", ["c1", "c2", "c3"])
    j = journey(name="flow", version=1, entry={"audience": "members"}, start="hello",
                goal={"event": "order_completed", "within": "30d"},
                nodes=[{"id": "hello", "type": "send", "channel": "email", "template": "t", "next": "w"},
                       {"id": "w", "type": "wait", "duration": "7d", "next": "done"}, {"id": "done", "type": "exit"}])
    lock = f"/tmp/beacon-ui-sections-{os.getpid()}.lock"
    boxes = Outboxes()
    advance(con, j, T, env(boxes), lock_path=lock)
    events(con, [("c1", "order_completed", T + timedelta(hours=1), "o1")])
    advance(con, j, T + timedelta(hours=2), env(boxes), lock_path=lock)
    [sec] = journeys_section(con, [j])
    assert sec["journey"] == "flow" and sec["in_flight"] == 2 and sec["goals"] == 1 and sec["exits"] == {"goal": 1}
    nodes = {n["id"]: n for n in sec["nodes"]}
    assert [n["id"] for n in sec["nodes"]] == ["hello", "w", "done"] and nodes["hello"]["next"] == ["w"]
    assert nodes["hello"]["sent"] == 3 and nodes["w"]["people"] == 2 and nodes["done"]["next"] == []
    assert sec["last_run"]["status"] == "succeeded"
    assert "c1" not in str(sec) and "c2" not in str(sec)  # counts only, no person


def test_results_are_the_latest_stored_lift_with_intervals_and_sentences():
    con = warehouse(2)
    assert results_section(con) is None
    rng = np.random.default_rng(3)
    n = 4000
    arm = np.where(rng.random(n) < 0.9, "treatment", "control")
    frame = pd.DataFrame({"arm": arm, "converted": (rng.random(n) < np.where(arm == "treatment", 0.15, 0.10))
                          .astype(int)})
    rs = stats.lift_table(frame, "arm", "control", ["converted"])
    d = {"window_days": 14.0, "results": [r.to_dict() | {"verdict": stats.verdict(r), "campaign": "audience:a"}
                                         for r in rs],
         "srm_by_campaign": {"audience:a": stats.srm(frame.arm.value_counts().to_dict(),
                                                     {"treatment": 0.9, "control": 0.1})}}
    old = {**d, "results": [r | {"campaign": "audience:old"} for r in d["results"]],
           "srm_by_campaign": {"audience:old": None}}
    store_results(con, old, T - timedelta(days=1))
    con.execute("UPDATE measurement.lift_results SET computed_at = computed_at - INTERVAL 1 DAY")  # an earlier run
    store_results(con, d, T)
    [c] = results_section(con)  # the latest run only
    assert c["campaign"] == "audience:a" and c["window_days"] == 14.0 and c["srm"]["mismatch"] is False
    [r] = c["results"]
    assert r["arm"] == "treatment" and r["binary"] and r["n_arm"] + r["n_control"] == n
    assert r["abs_low"] < r["abs_lift"] < r["abs_high"] and r["significant"] == (r["abs_low"] > 0 or r["abs_high"] < 0)
    assert r["verdict"] and "email" not in r


def test_a_split_with_a_winner_rule_shows_its_figures_then_its_decision():
    con = warehouse(600)
    ensure_tables(con)
    con.execute("CREATE SCHEMA measurement")
    con.execute("""CREATE TABLE measurement.campaign_outcome_events (customer_id VARCHAR, event_type VARCHAR,
        occurred_at TIMESTAMP, revenue DOUBLE)""")
    segment(con, "members", [f"c{i}" for i in range(600)])
    j = journey(name="ab", version=1, entry={"audience": "members"}, start="test",
                nodes=[{"id": "test", "type": "split", "arms": [{"name": "a", "weight": 1, "next": "w"},
                                                                 {"name": "b", "weight": 1, "next": "w"}],
                        "winner": {"metric": "converted", "min_people": 50, "after": "1d"}},
                       {"id": "w", "type": "wait", "duration": "7d", "next": "done"}, {"id": "done", "type": "exit"}])
    lock = f"/tmp/beacon-ui-sections-{os.getpid()}.lock"
    e = env(Outboxes())
    e.outcome_window_days = 7
    advance(con, j, T, e, lock_path=lock)
    [sec] = journeys_section(con, [j])
    [x] = sec["experiments"]
    assert x["state"] == "undecided" and x["reason"].startswith("too early") and x["winner"] is None
    assert sorted(a["arm"] for a in x["arms"]) == ["a", "b"] and sum(a["people"] for a in x["arms"]) == 600
    con.execute("""INSERT INTO measurement.campaign_outcome_events SELECT customer_id, 'order', ?, 20 FROM
        journeys.transitions WHERE transition = 'assigned' AND (arm = 'b' OR hash(customer_id) % 10 = 0)""",
                [T + timedelta(hours=3)])
    advance(con, j, T + timedelta(days=1), e, lock_path=lock)
    [x] = journeys_section(con, [j])[0]["experiments"]
    assert x["state"] == "decided" and x["winner"] == "b" and x["decided_at"] == str(T + timedelta(days=1))
    means = {a["arm"]: a["mean"] for a in x["arms"]}
    assert means["b"] == 1.0 and 0 < means["a"] < 0.3
