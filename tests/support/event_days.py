"""The per-day event marts the customer-features macro reads (`fct_web_event_days`, `fct_email_event_days`, which dbt
builds from the events counted per day in `int_*_event_days`), as views over a hand-built test world's
`marts.fct_web_events` / `marts.fct_email_events`: a test that inserts or deletes events there sees them per day too."""

from __future__ import annotations

import duckdb


def add_event_day_views(con: duckdb.DuckDBPyConnection) -> None:
    """Create marts.fct_web_event_days and marts.fct_email_event_days over the world's event tables."""
    con.execute("""CREATE OR REPLACE VIEW marts.fct_web_event_days AS
        SELECT customer_id, CAST(event_at AS DATE) AS event_date, count(*) AS events,
            count(*) FILTER (WHERE event_name = 'product_viewed') AS product_views,
            count(*) FILTER (WHERE event_name = 'product_added') AS cart_adds,
            count(*) FILTER (WHERE event_name = 'checkout_started') AS checkouts,
            count(*) FILTER (WHERE event_name = 'webinar_registered') AS webinar_regs,
            min(event_at) FILTER (WHERE event_name IN ('form_submitted', 'webinar_registered')) AS first_form_at,
            max(event_at) AS last_event_at
        FROM marts.fct_web_events GROUP BY customer_id, CAST(event_at AS DATE)""")
    con.execute("""CREATE OR REPLACE VIEW marts.fct_email_event_days AS
        SELECT customer_id, CAST(event_at AS DATE) AS event_date, count(*) AS events,
            count(*) FILTER (WHERE event_name = 'sent') AS sends,
            count(*) FILTER (WHERE event_name = 'delivered') AS delivered,
            count(*) FILTER (WHERE event_name = 'open') AS opens,
            count(*) FILTER (WHERE event_name = 'click') AS clicks,
            max(event_at) FILTER (WHERE event_name = 'open') AS last_open_at,
            max(event_at) FILTER (WHERE event_name IN ('open', 'click')) AS last_engaged_at,
            max(event_at) AS last_event_at
        FROM marts.fct_email_events GROUP BY customer_id, CAST(event_at AS DATE)""")
