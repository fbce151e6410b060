"""A tiny warehouse for activation tests: the marts activation reads, and segments made from lists of ids."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from beacon.audiences import Audience
from beacon.testing.profile import build_customer_profile

AS_OF = datetime(2026, 6, 30, 12, 0)


def audience(name: str = "test_aud", priority: int = 50, holdout: float = 0.0,
             channels: tuple[str, ...] = ("file", "email", "webhook", "ads")) -> Audience:
    return Audience(name=name, description=f"{name} description", owner="tests", channels=channels, priority=priority,
                    holdout_pct=holdout, refresh="daily", relation=f"segments.{name}", model=name,
                    path=f"models/segments/{name}.sql")


def warehouse(people: int = 200, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """People c0..c{n-1}, all with an email, a phone and an email + ads opt-in, no email events."""
    con = con or duckdb.connect()
    con.execute("CREATE SCHEMA IF NOT EXISTS segments; CREATE SCHEMA IF NOT EXISTS marts")
    con.execute(f"""CREATE OR REPLACE TABLE marts.dim_customers AS SELECT 'c' || i AS customer_id,
        'p' || i || '@example.com' AS email, '+1415555' || lpad((i % 10000)::VARCHAR, 4, '0') AS phone_e164,
        'Ann' || i AS first_name, 'Lee' AS last_name, 'Springfield' AS city, 'IL' AS state, '62701' AS postal_code,
        true AS is_email_valid FROM range({people}) t(i)""")
    con.execute(f"""CREATE OR REPLACE TABLE marts.dim_consent AS
        SELECT 'c' || i AS customer_id, ch AS channel, 'opt_in' AS status, TIMESTAMP '2026-01-01' AS recorded_at
        FROM range({people}) t(i), (VALUES ('email'), ('ads')) c(ch)""")
    con.execute("""CREATE OR REPLACE TABLE marts.fct_email_events (customer_id VARCHAR, email VARCHAR, event_name VARCHAR,
        event_at TIMESTAMP, bounce_type VARCHAR)""")
    con.execute("CREATE OR REPLACE TABLE marts.warehouse_as_of AS SELECT ?::TIMESTAMP AS as_of_at", [AS_OF])
    build_customer_profile(con)  # the dbt mart's SQL, as a view over the people above
    return con


def segment(con: duckdb.DuckDBPyConnection, name: str, ids, **columns) -> None:
    """(Re)create segments.<name> with these customer ids and optional extra columns (lists of equal length)."""
    df = pd.DataFrame({"customer_id": list(ids), **{k: list(v) for k, v in columns.items()}})
    con.register("_seg", df)
    con.execute(f"CREATE OR REPLACE TABLE segments.{name} AS SELECT * FROM _seg")
    con.unregister("_seg")


def consent(con: duckdb.DuckDBPyConnection, customer_id: str, channel: str, status: str | None,
            at: str = "2026-02-01") -> None:
    """Set (or with None, remove) the current consent of one person on one channel."""
    con.execute("DELETE FROM marts.dim_consent WHERE customer_id = ? AND channel = ?", [customer_id, channel])
    if status:
        con.execute("INSERT INTO marts.dim_consent VALUES (?, ?, ?, ?::TIMESTAMP)", [customer_id, channel, status, at])


def email_event(con: duckdb.DuckDBPyConnection, customer_id: str, event: str, at: str = "2026-03-01",
                bounce_type: str | None = None) -> None:
    con.execute("INSERT INTO marts.fct_email_events VALUES (?, NULL, ?, ?::TIMESTAMP, ?)",
                [customer_id, event, at, bounce_type])


def journeys_warehouse(path) -> duckdb.DuckDBPyConnection:
    """A 40-person warehouse file the built-in journeys can run on: the marts, a few product_added web events and
    ten welcome-segment members (the journeys CLI and the encrypted-warehouse tests)."""
    con = warehouse(40, duckdb.connect(str(path)))
    con.execute("ALTER TABLE marts.fct_email_events ADD COLUMN campaign_id VARCHAR")
    con.execute("""CREATE TABLE marts.fct_web_events AS SELECT 'c' || (i % 20) AS customer_id,
        'product_added' AS event_name, ?::TIMESTAMP - to_minutes(i * 17) AS event_at, 'P' || i AS product_id,
        NULL::VARCHAR AS webinar_id, 'm' || i AS message_id FROM range(12) t(i)""", [AS_OF])
    segment(con, "welcome_new_subscribers", [f"c{i}" for i in range(10)])
    return con
