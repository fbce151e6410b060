"""Point-in-time customer features and labels, computed in DuckDB from the marts.

Every feature only reads facts dated at or before the cutoff; labels only read the window after it,
so a model trained at cutoff C never sees the future of C.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pandas as pd

from beacon.warehouse import clock

FEATURES = [
    "tenure_days", "is_b2b", "has_phone", "orders_total", "orders_90d", "revenue_total", "days_since_order",
    "web_7d", "web_30d", "web_90d", "views_30d", "cart_adds_30d", "checkouts_30d", "days_since_web",
    "email_opens_90d", "email_clicks_90d", "email_sends_90d", "days_since_open", "webinar_regs_90d",
    "orders_365d", "revenue_365d", "avg_order_value", "days_since_first_order",
]
LABELS = ["converted", "revenue_next"]
AGE_BANDS = [(0, "under 18"), (18, "18-24"), (25, "25-34"), (35, "35-44"), (45, "45-54"), (55, "55-64"), (65, "65+")]


def as_of(con: duckdb.DuckDBPyConnection) -> datetime:
    """The warehouse clock (see beacon.warehouse.clock): features, labels and scores count from it."""
    return clock(con)


def build(con: duckdb.DuckDBPyConnection, cutoff: datetime, horizon_days: int | None = None) -> pd.DataFrame:
    """Features of every customer known at `cutoff`; with `horizon_days`, also the labels `converted`
    (a completed order in (cutoff, cutoff + horizon]) and `revenue_next` (completed revenue in that window)."""
    c = f"TIMESTAMP '{cutoff:%Y-%m-%d %H:%M:%S}'"
    label, label_join = "", ""
    if horizon_days is not None:
        end = f"TIMESTAMP '{cutoff + timedelta(days=horizon_days):%Y-%m-%d %H:%M:%S}'"
        label = ", coalesce(nx.orders_next, 0) > 0 AS converted, coalesce(nx.revenue_next, 0.0) AS revenue_next"
        label_join = f"""LEFT JOIN (SELECT customer_id, count(*) AS orders_next, sum(total_amount) AS revenue_next
                     FROM marts.fct_orders WHERE status = 'completed' AND ordered_at > {c} AND ordered_at <= {end}
                     AND customer_id IS NOT NULL GROUP BY 1) nx USING (customer_id)"""
    sql = f"""
    WITH cu AS (
        SELECT customer_id, first_seen_at, company_id IS NOT NULL AS is_b2b, phone_e164 IS NOT NULL AS has_phone
        FROM marts.dim_customers WHERE first_seen_at <= {c}
    ), o AS (
        SELECT customer_id, count(*) AS orders_total,
               count(*) FILTER (WHERE ordered_at > {c} - INTERVAL 90 DAY) AS orders_90d,
               count(*) FILTER (WHERE ordered_at > {c} - INTERVAL 365 DAY) AS orders_365d,
               sum(total_amount) AS revenue_total,
               sum(total_amount) FILTER (WHERE ordered_at > {c} - INTERVAL 365 DAY) AS revenue_365d,
               max(ordered_at) AS last_order_at, min(ordered_at) AS first_order_at
        FROM marts.fct_orders WHERE ordered_at <= {c} AND status = 'completed' AND customer_id IS NOT NULL
        GROUP BY 1
    ), w AS (
        SELECT customer_id,
               count(*) FILTER (WHERE event_at > {c} - INTERVAL 7 DAY) AS web_7d,
               count(*) FILTER (WHERE event_at > {c} - INTERVAL 30 DAY) AS web_30d,
               count(*) FILTER (WHERE event_at > {c} - INTERVAL 90 DAY) AS web_90d,
               count(*) FILTER (WHERE event_at > {c} - INTERVAL 30 DAY AND event_name = 'product_viewed') AS views_30d,
               count(*) FILTER (WHERE event_at > {c} - INTERVAL 30 DAY AND event_name = 'product_added') AS cart_adds_30d,
               count(*) FILTER (WHERE event_at > {c} - INTERVAL 30 DAY AND event_name = 'checkout_started') AS checkouts_30d,
               count(*) FILTER (WHERE event_at > {c} - INTERVAL 90 DAY AND event_name = 'webinar_registered') AS webinar_regs_90d,
               max(event_at) AS last_web_at
        FROM marts.fct_web_events WHERE event_at <= {c} AND customer_id IS NOT NULL
        GROUP BY 1
    ), e AS (
        SELECT customer_id,
               count(*) FILTER (WHERE event_name = 'open' AND event_at > {c} - INTERVAL 90 DAY) AS email_opens_90d,
               count(*) FILTER (WHERE event_name = 'click' AND event_at > {c} - INTERVAL 90 DAY) AS email_clicks_90d,
               count(*) FILTER (WHERE event_name = 'sent' AND event_at > {c} - INTERVAL 90 DAY) AS email_sends_90d,
               max(event_at) FILTER (WHERE event_name = 'open') AS last_open_at
        FROM marts.fct_email_events WHERE event_at <= {c} AND customer_id IS NOT NULL
        GROUP BY 1
    )
    SELECT cu.customer_id,
        date_diff('day', cu.first_seen_at, {c}) AS tenure_days,
        cu.is_b2b::INTEGER AS is_b2b, cu.has_phone::INTEGER AS has_phone,
        coalesce(o.orders_total, 0) AS orders_total, coalesce(o.orders_90d, 0) AS orders_90d,
        coalesce(o.revenue_total, 0) AS revenue_total,
        date_diff('day', o.last_order_at, {c}) AS days_since_order,
        coalesce(w.web_7d, 0) AS web_7d, coalesce(w.web_30d, 0) AS web_30d, coalesce(w.web_90d, 0) AS web_90d,
        coalesce(w.views_30d, 0) AS views_30d, coalesce(w.cart_adds_30d, 0) AS cart_adds_30d,
        coalesce(w.checkouts_30d, 0) AS checkouts_30d, date_diff('day', w.last_web_at, {c}) AS days_since_web,
        coalesce(e.email_opens_90d, 0) AS email_opens_90d, coalesce(e.email_clicks_90d, 0) AS email_clicks_90d,
        coalesce(e.email_sends_90d, 0) AS email_sends_90d, date_diff('day', e.last_open_at, {c}) AS days_since_open,
        coalesce(w.webinar_regs_90d, 0) AS webinar_regs_90d,
        coalesce(o.orders_365d, 0) AS orders_365d, coalesce(o.revenue_365d, 0) AS revenue_365d,
        o.revenue_total / nullif(o.orders_total, 0) AS avg_order_value,
        date_diff('day', o.first_order_at, {c}) AS days_since_first_order
        {label}
    FROM cu LEFT JOIN o USING (customer_id) LEFT JOIN w USING (customer_id) LEFT JOIN e USING (customer_id)
    {label_join}
    ORDER BY cu.customer_id
    """
    df = con.execute(sql).df()
    for f in FEATURES:  # one dtype per feature whatever the SQL inferred (counts are ints, gaps are NaN)
        df[f] = df[f].astype("float64")
    return df


def demographics(con: duckdb.DuckDBPyConnection, as_of_at: datetime) -> pd.DataFrame:
    """Age band and gender per customer for the fairness audit ('unknown' where absent; never model inputs)."""
    cols = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'marts' "
        "AND table_name = 'dim_customers'").fetchall()}
    age = "NULL::INTEGER"
    if "birth_date" in cols:
        age = f"date_sub('year', try_cast(birth_date AS DATE), DATE '{as_of_at:%Y-%m-%d}')"
    gender = "NULLIF(trim(CAST(gender AS VARCHAR)), '')" if "gender" in cols else "NULL"
    df = con.execute(f"SELECT customer_id, {age} AS age, {gender} AS gender FROM marts.dim_customers").df()
    band = pd.Series("unknown", index=df.index, dtype=object)
    for low, name in AGE_BANDS:
        band[df.age.ge(low).fillna(False).to_numpy()] = name
    out = pd.DataFrame({"customer_id": df.customer_id, "age_band": band,
                        "gender": df.gender.fillna("unknown").astype(str)})
    return out.drop_duplicates("customer_id")
