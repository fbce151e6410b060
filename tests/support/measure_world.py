"""The measurement tables a test world needs (what the dbt measurement models and marts would hold), written
from a simulated exposure frame and the engagement model's events."""

from __future__ import annotations


def write_measurement_tables(con, exposures, events) -> None:
    """measurement.campaign_exposures / campaign_outcome_events and the marts the report reads (customers, orders,
    sessions), in a fresh DuckDB connection."""
    con.execute("CREATE SCHEMA measurement; CREATE SCHEMA marts")
    con.register("_e", exposures)
    con.register("_v", events.drop(columns="campaign").assign(occurred_at=events.occurred_at.dt.tz_localize(None)))
    con.execute("CREATE TABLE measurement.campaign_exposures AS SELECT * FROM _e")
    con.execute("CREATE TABLE measurement.campaign_outcome_events AS SELECT * FROM _v WHERE event_type <> 'open'")
    con.execute("CREATE TABLE marts.dim_customers AS SELECT customer_id FROM _e GROUP BY 1")
    con.execute("""CREATE TABLE marts.fct_orders AS SELECT customer_id, 'completed' AS status, revenue AS total_amount,
        occurred_at AS ordered_at FROM _v WHERE event_type = 'order'""")
    con.execute("CREATE TABLE marts.fct_web_sessions (customer_id VARCHAR, session_started_at TIMESTAMP)")
