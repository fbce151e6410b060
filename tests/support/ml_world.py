"""A tiny synthetic warehouse (the marts the ML package reads) with a known signal, for ML tests."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from support.event_days import add_event_day_views

END = datetime(2026, 6, 30, 23, 59, 59)


def build_world(n: int = 1500, seed: int = 3, days: int = 365) -> duckdb.DuckDBPyConnection:
    """An in-memory warehouse: customers with a latent interest that drives web visits, email opens and orders
    (so every model has something to learn), demographics with gaps, and the warehouse clock."""
    rng = np.random.default_rng(seed)
    start = END - timedelta(days=days)
    ids = [f"c{i:05d}" for i in range(n)]
    seen = [start + timedelta(days=float(d)) for d in rng.uniform(0, days * 0.6, n)]
    interest = rng.gamma(1.0, 1.0, n)
    b2b = rng.random(n) < 0.3
    birth = [None if rng.random() < 0.3 else datetime(1950, 1, 1) + timedelta(days=float(d))
             for d in rng.uniform(0, 365 * 55, n)]
    gender = rng.choice(["F", "M", None], n, p=[0.4, 0.4, 0.2])
    customers = pd.DataFrame({"customer_id": ids, "first_seen_at": seen,
                              "company_id": np.where(b2b, "A1", None), "phone_e164": np.where(rng.random(n) < 0.6,
                                                                                            "+12125550100", None),
                              "birth_date": birth, "gender": gender, "extra_column": "ignored"})
    web, orders, email = [], [], []
    for i in range(n):
        t0 = seen[i]
        span = (END - t0).total_seconds()
        # Interest drifts slowly: the recent past predicts the near future.
        for _ in range(rng.poisson(interest[i] * 12)):
            t = t0 + timedelta(seconds=float(rng.uniform(0, span)))
            web.append((ids[i], t, rng.choice(["page_viewed", "product_viewed", "product_added", "checkout_started"],
                                              p=[0.5, 0.3, 0.15, 0.05])))
            if rng.random() < 0.08 * min(interest[i], 3):
                orders.append((f"o{len(orders)}", ids[i], t + timedelta(hours=float(rng.uniform(1, 48))),
                               "completed" if rng.random() < 0.95 else "refunded",
                               round(float(rng.lognormal(4.2, 0.5)), 2)))
        for _ in range(rng.poisson(3)):
            t = t0 + timedelta(seconds=float(rng.uniform(0, span)))
            email.append((ids[i], t, "sent"))
            if rng.random() < 0.2 + 0.1 * min(interest[i], 3):
                email.append((ids[i], t + timedelta(hours=2), "open"))
    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts")
    frames = {
        "dim_customers": customers,
        "fct_orders": pd.DataFrame(orders, columns=["order_id", "customer_id", "ordered_at", "status", "total_amount"]),
        "fct_web_events": pd.DataFrame(web, columns=["customer_id", "event_at", "event_name"]),
        "fct_email_events": pd.DataFrame(email, columns=["customer_id", "event_at", "event_name"]),
        "warehouse_as_of": pd.DataFrame({"as_of_at": [END]}),
    }
    for name, df in frames.items():
        con.register("_df", df)
        con.execute(f"CREATE TABLE marts.{name} AS SELECT * FROM _df")
        con.unregister("_df")
    # Sessions feed the mart's sessions_30d, not a model input: an empty table keeps the feature query whole.
    con.execute("CREATE TABLE marts.fct_web_sessions (customer_id VARCHAR, session_started_at TIMESTAMP)")
    add_event_day_views(con)  # the events per day, which the feature macro reads
    con.execute("UPDATE marts.fct_orders SET ordered_at = least(ordered_at, TIMESTAMP '2026-06-30 23:00:00')")
    return con
