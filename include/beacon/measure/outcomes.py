"""Outcomes per exposure within a window after it: the same definitions as the dbt mart `measurement_outcomes`."""

from __future__ import annotations

import pandas as pd

OUTCOMES = ("converted", "orders", "revenue", "clicks")


def exposure_outcomes(exposures: pd.DataFrame, events: pd.DataFrame, window_days: float = 7.0) -> pd.DataFrame:
    """One row per exposure with its outcomes in (exposed_at, exposed_at + window]: intent to treat.

    `events`: customer_id, event_type ('order', 'click', ...), occurred_at, revenue, and optionally campaign (a
    click counts for its own campaign only; orders count for every campaign whose window holds them)."""
    exp = exposures.reset_index(drop=True).assign(_row=lambda d: range(len(d)))
    exp["exposed_at"] = pd.to_datetime(exp.exposed_at, utc=True)
    ev = events.assign(occurred_at=pd.to_datetime(events.occurred_at, utc=True))
    m = exp[["_row", "customer_id", "campaign", "exposed_at"]].merge(ev, on="customer_id", suffixes=("", "_event"))
    m = m[(m.occurred_at > m.exposed_at) & (m.occurred_at <= m.exposed_at + pd.Timedelta(days=window_days))]
    if "campaign_event" in m:
        own = m.campaign_event.isna() | (m.campaign_event == m.campaign)
        m = m[own | (m.event_type == "order")]
    orders = m[m.event_type == "order"].groupby("_row").agg(orders=("revenue", "size"), revenue=("revenue", "sum"),
                                                            first_order_at=("occurred_at", "min"))
    clicks = m[m.event_type == "click"].groupby("_row").size().rename("clicks")
    out = exp.join(orders, on="_row").join(clicks, on="_row")
    out[["orders", "clicks"]] = out[["orders", "clicks"]].fillna(0).astype(int)
    out["revenue"] = out.revenue.fillna(0.0)
    out["converted"] = (out.orders > 0).astype(int)
    return out.drop(columns="_row")
