"""A fresh deployment: the journeys DAG runs before the warehouse DAG has built the marts it reads.

`journeys.events` is where event entries, goals and wait-fors look for events. Before the marts exist it can
only be an empty placeholder; once `marts.fct_web_events` and `marts.fct_email_events` are built it must read
them, or event-entry journeys would wait for events that never arrive (issue 23)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

import duckdb
from support.activation_world import warehouse
from support.journeys_world import Outboxes, env, journey

from beacon.journeys.engine import advance

T = datetime(2026, 6, 30, 15, 0)
CART = {"name": "cart", "version": 1, "entry": {"event": {"name": "product_added"}}, "start": "hi",
        "nodes": [{"id": "hi", "type": "send", "channel": "email", "template": "t", "next": "done"},
                  {"id": "done", "type": "exit"}]}


def web_events(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    """marts.fct_web_events as the warehouse DAG builds it, and the email events' campaign (the columns
    journeys.events reads)."""
    con.execute("ALTER TABLE marts.fct_email_events ADD COLUMN IF NOT EXISTS campaign_id VARCHAR")
    con.execute("""CREATE OR REPLACE TABLE marts.fct_web_events (customer_id VARCHAR, event_name VARCHAR,
        event_at TIMESTAMP, product_id VARCHAR, webinar_id VARCHAR, message_id VARCHAR)""")
    con.executemany("INSERT INTO marts.fct_web_events VALUES (?, ?, ?::TIMESTAMP, ?, NULL, NULL)",
                    [list(r) for r in rows])


def test_event_entry_reads_the_marts_once_they_are_built(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    lock = str(tmp_path / f"j-{os.getpid()}.lock")
    j = journey(**CART)
    boxes = Outboxes()
    # Run 1: nothing is built yet; the run decides nothing and says what it waits for.
    first = advance(con, j, T, env(boxes), lock_path=lock)
    assert first.entered == 0 and first.waiting_for
    # The warehouse DAG builds the marts: the people, the email events and one cart add by c1.
    warehouse(20, con)
    web_events(con, [("c1", "product_added", T + timedelta(minutes=30), "p1")])
    # Run 2: c1 added a product to the cart since: c1 enters and gets the message.
    second = advance(con, j, T + timedelta(hours=1), env(boxes), lock_path=lock)
    assert second.waiting_for == []
    assert second.entered == 1 and second.sent == 1
    assert [cid for _, cid, _ in boxes.sent()] == ["c1"]
    # And later events keep coming through the marts.
    con.execute("INSERT INTO marts.fct_web_events VALUES ('c2', 'product_added', ?::TIMESTAMP, 'p2', NULL, NULL)",
                [T + timedelta(hours=1, minutes=30)])
    third = advance(con, j, T + timedelta(hours=2), env(boxes), lock_path=lock)
    assert third.entered == 1 and sorted(cid for _, cid, _ in boxes.sent()) == ["c1", "c2"]
