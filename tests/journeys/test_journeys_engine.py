"""Engine features one case at a time, on the small activation warehouse (people c0..c19, all opted in)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import pytest
from support.activation_world import segment, warehouse
from support.journeys_world import Outboxes, env, events, journey

from beacon.journeys.engine import JourneysBusy, advance, compact, ensure_tables, run_lock
from beacon.journeys.validate import JourneyError

T = datetime(2026, 6, 30, 15, 0)  # 10:00 in Chicago (the test people live in IL)
EXIT = {"id": "done", "type": "exit"}


def send(i: str, nxt: str = "done", **kw) -> dict:
    return {"id": i, "type": "send", "channel": "email", "template": "t", "next": nxt, **kw}


@pytest.fixture
def con(tmp_path):
    c = warehouse(20)
    ensure_tables(c)
    c.execute("ALTER TABLE marts.dim_customers ADD COLUMN birth_date DATE")
    c.execute("UPDATE marts.dim_customers SET birth_date = DATE '1990-07-01' WHERE customer_id IN ('c1', 'c2')")
    return c


def run(con, j, t, boxes=None, **kw):
    return advance(con, j, t, env(boxes or Outboxes()), lock_path=f"/tmp/beacon-journeys-engine-{os.getpid()}.lock", **kw)


def rows(con, cid):
    return con.execute("SELECT node_id, transition, detail FROM journeys.transitions WHERE customer_id = ? "
                       "ORDER BY entry_no, step", [cid]).fetchall()


def test_date_entry_on_the_anniversary_at_local_time(con):
    # Birthday 1 July, 09:00 in Chicago = 14:00 UTC; the runs before it enter nobody.
    j = journey(name="bday", version=1, entry={"date": {"attribute": "birth_date", "annual": True, "at": "09:00"},
                                               "re_entry": "once_per_event_key"}, start="g", nodes=[send("g"), EXIT])
    boxes = Outboxes()
    assert run(con, j, datetime(2026, 7, 1, 13, 45), boxes).entered == 0
    r = run(con, j, datetime(2026, 7, 1, 14, 0), boxes)
    assert r.entered == 2 and r.sent == 2
    assert run(con, j, datetime(2026, 7, 2, 14, 0), boxes).entered == 0  # once per year (the event key)
    assert con.execute("SELECT DISTINCT entry_key FROM journeys.transitions").fetchall() == [("2026",)]


def test_goal_stops_a_person_in_the_middle_of_a_long_wait(con):
    segment(con, "members", ["c1", "c2"])
    j = journey(name="g", version=1, entry={"audience": "members"}, start="a", goal={"event": "order_completed",
                                                                                     "within": "30d"},
                nodes=[send("a", "w"), {"id": "w", "type": "wait", "duration": "30d", "next": "b"}, send("b"), EXIT])
    boxes = Outboxes()
    run(con, j, T, boxes)
    events(con, [("c1", "order_completed", T + timedelta(days=1), "o1")])
    run(con, j, T + timedelta(days=1, minutes=15), boxes)
    assert rows(con, "c1")[-1] == ("w", "exited", "goal")  # the next run, not day 30
    run(con, j, T + timedelta(days=31), boxes)
    assert sorted(c for _, c, _ in boxes.sent()) == ["c1", "c2", "c2"]


def test_wait_for_event_moves_on_at_the_next_run_else_the_timeout(con):
    segment(con, "members", ["c1", "c2"])
    j = journey(name="wf", version=1, entry={"audience": "members"}, start="w",
                nodes=[{"id": "w", "type": "wait_for", "event": "webinar_registered", "timeout": "2d", "next": "yes",
                        "on_timeout": "no"}, send("yes"), send("no"), EXIT])
    boxes = Outboxes()
    run(con, j, T, boxes)
    events(con, [("c1", "webinar_registered", T + timedelta(hours=2), "w1")])
    run(con, j, T + timedelta(hours=3), boxes)
    assert [a.split("__")[-1] for a, c, _ in boxes.sent() if c == "c1"] == ["yes"]
    assert not [a for a, c, _ in boxes.sent() if c == "c2"]
    run(con, j, T + timedelta(days=2), boxes)
    assert [a.split("__")[-1] for a, c, _ in boxes.sent() if c == "c2"] == ["no"]


def test_branch_on_engagement_with_an_earlier_send(con):
    segment(con, "members", ["c1", "c2"])
    j = journey(name="eng", version=1, entry={"audience": "members"}, start="a",
                nodes=[send("a", "w"), {"id": "w", "type": "wait", "duration": "1d", "next": "b"},
                       {"id": "b", "type": "branch", "rules": [{"when": {"engagement": "opened", "node": "a"},
                                                                "next": "opened"}], "default": "not_opened"},
                       send("opened"), send("not_opened"), EXIT])
    boxes = Outboxes()
    run(con, j, T, boxes)
    events(con, [("c1", "email_open", T + timedelta(hours=1), None)])
    run(con, j, T + timedelta(days=1), boxes)
    got = {c: a.split("__")[-1] for a, c, _ in boxes.sent() if not a.endswith("__a")}
    assert got == {"c1": "opened", "c2": "not_opened"}


def test_actions_are_recorded_once_and_sales_tasks_go_to_a_destination(con):
    segment(con, "members", ["c1"])
    j = journey(name="act", version=1, entry={"audience": "members"}, start="x",
                nodes=[{"id": "x", "type": "actions", "actions": [{"lead_points": 10}, {"lifecycle_stage": "mql"},
                                                                  {"list_add": "vip"}, {"sales_task": "webhook"}],
                        "next": "done"}, EXIT])
    boxes = Outboxes()
    run(con, j, T, boxes)
    run(con, j, T, boxes)  # a re-run of the same clock changes nothing
    acts = con.execute("SELECT action, value FROM journeys.actions ORDER BY action").fetchall()
    assert acts == [("lead_points", "10"), ("lifecycle_stage", "mql"), ("list_add", "vip")]
    assert [c for _, c, _ in boxes.sent("webhook")] == ["c1"]
    assert con.execute("SELECT list, customer_id FROM journeys.static_lists").fetchall() == [("vip", "c1")]


def test_a_failed_delivery_stays_and_is_retried_next_run(con):
    segment(con, "members", ["c1", "c2"])
    j = journey(name="retry", version=1, entry={"audience": "members"}, start="a", nodes=[send("a"), EXIT])
    boxes = Outboxes()
    boxes("email").fail.add("c1")
    r = run(con, j, T, boxes)
    assert (r.sent, r.failed) == (1, 1) and rows(con, "c1") == [("a", "entered", None)]
    boxes("email").fail.clear()
    assert run(con, j, T + timedelta(minutes=15), boxes).sent == 1
    assert sorted(c for _, c, _ in boxes.sent()) == ["c1", "c2"]


def test_left_audience_exits_and_compaction_folds_finished_entries(con):
    segment(con, "members", ["c1", "c2"])
    j = journey(name="la", version=1, entry={"audience": "members"}, start="w", exit_when=["left_audience"],
                nodes=[{"id": "w", "type": "wait", "duration": "7d", "next": "done"}, EXIT])
    run(con, j, T)
    segment(con, "members", ["c2"])
    run(con, j, T + timedelta(hours=1))
    assert rows(con, "c1")[-1] == ("w", "exited", "left_audience")
    assert compact(con, "la", T + timedelta(hours=1), "r") == 1
    assert rows(con, "c1") == []
    assert con.execute("SELECT customer_id, exit_reason FROM journeys.finished").fetchall() == [("c1", "left_audience")]
    run(con, j, T + timedelta(hours=2))  # never: a compacted entry still counts for re-entry
    assert rows(con, "c1") == []


def test_versioning_maps_people_to_the_new_version_or_refuses(con):
    segment(con, "members", ["c1"])
    v1 = dict(name="ver", version=1, entry={"audience": "members"}, start="w",
              nodes=[{"id": "w", "type": "wait", "duration": "1d", "next": "done"}, EXIT])
    run(con, journey(**v1), T)
    v2 = {**v1, "version": 2, "start": "w2", "nodes": [{"id": "w2", "type": "wait", "duration": "2h", "next": "s"},
                                                       send("s"), EXIT]}
    with pytest.raises(JourneyError, match="node w: removed in version 2 but 1 people of version 1"):
        run(con, journey(**v2), T + timedelta(hours=1))
    boxes = Outboxes()
    run(con, journey(**v2, migrate={"w": "w2"}), T + timedelta(hours=1), boxes)
    run(con, journey(**v2, migrate={"w": "w2"}), T + timedelta(hours=3), boxes)
    assert [c for _, c, _ in boxes.sent()] == ["c1"]
    assert rows(con, "c1")[1:3] == [("w", "migrated", "from version 1"), ("w2", "arrived", None)]


def test_runs_never_overlap(tmp_path):
    with run_lock(tmp_path / "l"), pytest.raises(JourneysBusy), run_lock(tmp_path / "l"):
        pass


def test_frequency_cap_counts_audience_and_journey_messages_together(con):
    from beacon.activation.governance import ensure_tables as activation_tables

    activation_tables(con)
    # c1 got three audience emails in the last 7 days (the cap is 3): the journey's email is not sent.
    for k in range(3):
        con.execute("""INSERT INTO activation.sync_log (run_id, audience, destination, channel, customer_id,
            operation, status, as_of) VALUES ('r', 'some_audience', 'email', 'email', 'c1', 'add', 'delivered', ?)""",
                    [T - timedelta(days=k + 1)])
    segment(con, "members", ["c1", "c2"])
    j = journey(name="cap", version=1, entry={"audience": "members"}, start="a", nodes=[send("a"), EXIT])
    boxes = Outboxes()
    r = run(con, j, T, boxes)
    assert r.skipped == {"frequency_cap": 1} and [c for _, c, _ in boxes.sent()] == ["c2"]
    assert rows(con, "c1")[1] == ("a", "skipped", "frequency_cap")


def test_erased_people_leave_at_the_next_run_and_are_never_sent(con):
    from beacon.activation.governance import add_suppression

    segment(con, "members", ["c1", "c2"])
    j = journey(name="er", version=1, entry={"audience": "members"}, start="w", exit_when=["erased"],
                nodes=[{"id": "w", "type": "wait", "duration": "1d", "next": "a"}, send("a"), EXIT])
    boxes = Outboxes()
    run(con, j, T, boxes)
    add_suppression(con, "erased", T, customer_id="c1")
    run(con, j, T + timedelta(days=1), boxes)
    assert rows(con, "c1")[-1] == ("w", "exited", "erased")
    assert [c for _, c, _ in boxes.sent()] == ["c2"]


def test_wait_until_a_local_window_on_allowed_weekdays_and_branch_on_an_attribute(con):
    # Tuesday 30 June 15:00 UTC = 10:00 in Chicago; the window is Mon/Fri 09:00-10:00 local -> Friday 3 July
    # 09:00 Chicago = 14:00 UTC. Then an attribute branch on the city.
    con.execute("UPDATE marts.dim_customers SET city = 'Peoria' WHERE customer_id = 'c1'")
    segment(con, "members", ["c1", "c2"])
    j = journey(name="win", version=1, entry={"audience": "members"}, start="w",
                nodes=[{"id": "w", "type": "wait", "until_window": {"start": "09:00", "end": "10:00",
                                                                    "weekdays": ["mon", "fri"]}, "next": "b"},
                       {"id": "b", "type": "branch", "rules": [{"when": {"attribute": "city", "op": "in",
                                                                         "value": ["Peoria"]}, "next": "p"}],
                        "default": "o"}, send("p"), send("o"), EXIT])
    boxes = Outboxes()
    run(con, j, T, boxes)
    assert con.execute("SELECT DISTINCT due_at FROM journeys.transitions").fetchall() == [(datetime(2026, 7, 3, 14),)]
    run(con, j, datetime(2026, 7, 3, 13, 45), boxes)
    assert boxes.sent() == []
    run(con, j, datetime(2026, 7, 3, 14, 0), boxes)
    assert sorted((c, a.split("__")[-1]) for a, c, _ in boxes.sent()) == [("c1", "p"), ("c2", "o")]


def test_a_journey_waits_for_segments_not_built_yet_and_decides_nothing(con, caplog):
    # A new deployment: the 15-minute timetable runs journeys before the ML DAG has built a score-based segment.
    j = journey(name="early", version=1, entry={"audience": "members"}, start="a", exit_when=["left_audience"],
                nodes=[send("a"), EXIT])
    boxes = Outboxes()
    r = run(con, j, T, boxes)
    assert r.waiting_for == ["segments.members"] and r.entered == 0 and boxes.sent() == []
    assert "journey early waits: segments.members not built yet" in caplog.text
    assert con.execute("SELECT status FROM journeys.runs WHERE journey = 'early'").fetchall() == [("waiting",)]
    assert con.execute("SELECT count(*) FROM journeys.transitions").fetchall() == [(0,)]
    segment(con, "members", ["c1"])
    r = run(con, j, T + timedelta(minutes=15), boxes)
    assert r.waiting_for == [] and r.entered == 1 and r.sent == 1
