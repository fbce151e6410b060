"""ML: features are point-in-time (no leakage) and deciles rank correctly."""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
from support.event_days import add_event_day_views

from ml import features
from ml.train import deciles


def _warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts")
    con.execute("""CREATE TABLE marts.dim_customers AS SELECT * FROM (VALUES
        ('a', TIMESTAMP '2026-01-01', NULL, '+12125550100'), ('b', TIMESTAMP '2026-02-01', 'A1', NULL))
        t(customer_id, first_seen_at, company_id, phone_e164)""")
    con.execute("""CREATE TABLE marts.fct_orders AS SELECT * FROM (VALUES
        ('o1', 'a', TIMESTAMP '2026-03-01', 'completed', 50.0), ('o2', 'a', TIMESTAMP '2026-04-10', 'completed', 20.0))
        t(order_id, customer_id, ordered_at, status, total_amount)""")
    con.execute("""CREATE TABLE marts.fct_web_events AS SELECT * FROM (VALUES
        ('m1', 'a', TIMESTAMP '2026-03-28', 'product_added'), ('m2', 'b', TIMESTAMP '2026-03-30', 'product_viewed'))
        t(message_id, customer_id, event_at, event_name)""")
    con.execute("""CREATE TABLE marts.fct_email_events AS SELECT * FROM (VALUES
        ('e1', 'b', TIMESTAMP '2026-03-15', 'open')) t(event_id, customer_id, event_at, event_name)""")
    con.execute("CREATE TABLE marts.fct_web_sessions (customer_id VARCHAR, session_started_at TIMESTAMP)")
    add_event_day_views(con)  # the events per day, which the feature macro reads
    return con


def test_events_after_the_cutoff_cannot_change_features():
    con = _warehouse()
    cutoff = datetime(2026, 4, 1)
    before = features.build(con, cutoff)
    # Facts dated after the cutoff: an order, a web event, an email open, for both customers.
    con.execute("INSERT INTO marts.fct_orders VALUES ('o3', 'b', TIMESTAMP '2026-04-02', 'completed', 99.0)")
    con.execute("INSERT INTO marts.fct_web_events VALUES ('m3', 'a', TIMESTAMP '2026-04-01 00:00:01', 'checkout_started')")
    con.execute("INSERT INTO marts.fct_email_events VALUES ('e2', 'a', TIMESTAMP '2026-05-01', 'click')")
    after = features.build(con, cutoff)
    assert before.equals(after)
    # The order of 2026-04-10 is the label of a 30-day window, never a feature.
    labelled = features.build(con, cutoff, horizon_days=30)
    assert labelled.set_index("customer_id").converted.to_dict() == {"a": True, "b": True}
    assert labelled.set_index("customer_id").orders_total.to_dict() == {"a": 1, "b": 0}
    # The LTV label is the revenue inside the window only.
    assert labelled.set_index("customer_id").revenue_next.to_dict() == {"a": 20.0, "b": 99.0}
    # Features do not depend on whether labels are asked for.
    assert labelled[before.columns].equals(before)


def test_features_see_facts_up_to_the_cutoff():
    con = _warehouse()
    f = features.build(con, datetime(2026, 4, 1)).set_index("customer_id")
    assert f.loc["a", "cart_adds_30d"] == 1 and f.loc["b", "views_30d"] == 1
    assert f.loc["b", "email_opens_90d"] == 1 and f.loc["a", "days_since_order"] == 31


def test_deciles_rank_highest_first():
    d = deciles(np.array([0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0]))
    assert d.tolist() == [9, 1, 5, 7, 3, 8, 2, 6, 4, 10]
