"""Point-in-time customer features and labels, computed in DuckDB from the marts.

The features are defined once, by the dbt macro `customer_features_at` behind the mart
`customer_features` (dbt_project/macros/customer_features.sql); this module evaluates it at any cutoff.
Every feature only reads facts dated at or before the cutoff; labels only read the window after it,
so a model trained at cutoff C never sees the future of C.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pandas as pd

from beacon.dbt import customer_features_sql
from beacon.warehouse import clock, table_exists

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


def features_sql(cutoff: datetime) -> str:
    """The SQL of every customer's features as of `cutoff`: the query of the mart customer_features."""
    return customer_features_sql(cutoff)


def build(con: duckdb.DuckDBPyConnection, cutoff: datetime, horizon_days: int | None = None) -> pd.DataFrame:
    """Features of every customer known at `cutoff`; with `horizon_days`, also the labels `converted`
    (a completed order in (cutoff, cutoff + horizon]) and `revenue_next` (completed revenue in that window).

    The features come from the dbt macro behind the mart customer_features (at this cutoff); the labels
    are the ML package's own: they read only the window after the cutoff."""
    c = f"TIMESTAMP '{cutoff:%Y-%m-%d %H:%M:%S}'"
    label, label_join = "", ""
    if horizon_days is not None:
        end = f"TIMESTAMP '{cutoff + timedelta(days=horizon_days):%Y-%m-%d %H:%M:%S}'"
        label = ", coalesce(nx.orders_next, 0) > 0 AS converted, coalesce(nx.revenue_next, 0.0) AS revenue_next"
        label_join = f"""LEFT JOIN (SELECT customer_id, count(*) AS orders_next, sum(total_amount) AS revenue_next
                     FROM marts.fct_orders WHERE status = 'completed' AND ordered_at > {c} AND ordered_at <= {end}
                     AND customer_id IS NOT NULL GROUP BY 1) nx USING (customer_id)"""
    sql = f"""
    SELECT f.customer_id, {", ".join(f"f.{x}" for x in FEATURES)} {label}
    FROM ({features_sql(cutoff)}) f
    {label_join}
    ORDER BY f.customer_id
    """
    return model_types(con.execute(sql).df())


def current(con: duckdb.DuckDBPyConnection, cutoff: datetime) -> pd.DataFrame:
    """Every customer's features at `cutoff`, as `build` gives them, for scoring: read from the mart
    customer_features when dbt built it at that very cutoff with every feature (the same macro, so the same
    rows: no second evaluation over the events), else computed by `build`."""
    if table_exists(con, "marts", "customer_features"):
        cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                          "'marts' AND table_name = 'customer_features'").fetchall()}
        if {"customer_id", "features_as_of", *FEATURES} <= cols:
            low, high = con.execute("SELECT min(features_as_of), max(features_as_of) "
                                    "FROM marts.customer_features").fetchone()
            if low is not None and low == high == cutoff:
                return model_types(con.execute(f"SELECT customer_id, {', '.join(FEATURES)} FROM marts.customer_features "
                                               "ORDER BY customer_id").df())
    return build(con, cutoff)


def model_types(df: pd.DataFrame) -> pd.DataFrame:
    """One dtype per feature whatever the engine inferred (counts are ints, gaps are NaN): float64, the type the
    models are trained and scored on (DuckDB's frames here, Spark's batches in beacon.spark.score)."""
    for f in FEATURES:
        if f in df:
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
