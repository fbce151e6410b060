"""Outcomes per exposure within a window after it, defined once: the dbt macros in
`dbt_project/macros/measurement_outcomes.sql`.

The mart `measurement.campaign_exposure_outcomes` calls the macro `exposure_outcomes`; this module renders the
same macro and runs it in DuckDB, on the warehouse's measurement marts (`warehouse_outcomes`: the campaign
report, `beacon measure lift`, any `--window`) or on DataFrames (`exposure_outcomes`: `--csv` files and the
simulated worlds). The window defaults to the one setting, BEACON_MEASUREMENT_WINDOW_DAYS, which beacon also
hands to dbt (beacon.dbt.dbt_env), so the mart and the report count the same window.
"""

from __future__ import annotations

import math

import duckdb
import pandas as pd

from beacon.dbt import macros
from beacon.warehouse import sql_literal


def _window(window_days: float) -> str:
    w = float(window_days)
    if not math.isfinite(w) or w <= 0:
        raise ValueError(f"the outcome window must be a positive number of days, not {window_days!r}")
    return sql_literal(w)


def outcomes_sql(exposures: str, events: str, window_days: float, keys: tuple[str, ...] = ("campaign", "customer_id"),
                 events_name_campaign: bool = False) -> str:
    """The SQL of the macro `exposure_outcomes` for two relations (or parenthesized queries)."""
    return str(macros("measurement_outcomes").exposure_outcomes(
        exposures, events, _window(window_days), keys=list(keys), events_name_campaign=events_name_campaign))


def in_window_sql(occurred_at: str, exposed_at: str, window_days: float) -> str:
    """The macro `in_measurement_window`: the condition that an event at `occurred_at` counts for an exposure."""
    return str(macros("measurement_outcomes").in_measurement_window(occurred_at, exposed_at, _window(window_days)))


def _naive_utc(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, utc=True).dt.tz_convert("UTC").dt.tz_localize(None)


def _aware_utc(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s).dt.tz_localize("UTC")


def exposure_outcomes(exposures: pd.DataFrame, events: pd.DataFrame, window_days: float = 7.0) -> pd.DataFrame:
    """One row per exposure (in its order, every column kept) with its outcomes in (exposed_at, exposed_at + window].

    `events`: customer_id, event_type ('order', 'click', ...), occurred_at, revenue, and optionally campaign (a
    click counts for its own campaign only; orders count for every campaign whose window holds them). Times
    without a zone are UTC; exposed_at and first_order_at come back in UTC."""
    exp = exposures.reset_index(drop=True).assign(_row=lambda d: range(len(d)),
                                                  exposed_at=lambda d: _naive_utc(d.exposed_at))
    ev = events.assign(occurred_at=_naive_utc(events.occurred_at), revenue=pd.to_numeric(events.revenue).astype(float))
    con = duckdb.connect()
    try:
        con.register("_exposures", exp)
        con.register("_events", ev)
        sql = outcomes_sql("_exposures", "_events", window_days, keys=("_row",),
                           events_name_campaign="campaign" in ev.columns)
        out = con.execute(f"SELECT * FROM ({sql}) ORDER BY _row").df()
    finally:
        con.close()
    out = out.drop(columns=["_row", "window_days"])
    out["exposed_at"] = _aware_utc(out.exposed_at)
    out["first_order_at"] = _aware_utc(out.first_order_at)
    return out


def warehouse_outcomes(con: duckdb.DuckDBPyConnection, window_days: float, campaign: str | None = None) -> pd.DataFrame:
    """The same outcomes on the warehouse's `measurement.campaign_exposures` and `campaign_outcome_events`
    (every campaign, or one), in campaign and customer order."""
    exposures = "measurement.campaign_exposures"
    if campaign is not None:
        exposures = f"(SELECT * FROM measurement.campaign_exposures WHERE campaign = {sql_literal(campaign)})"
    sql = outcomes_sql(exposures, "measurement.campaign_outcome_events", window_days)
    return con.execute(f"SELECT * FROM ({sql}) ORDER BY campaign, customer_id").df()
