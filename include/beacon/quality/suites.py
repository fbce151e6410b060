"""The expectation suites, as data: which rows each suite checks and which expectations, with their severity.

Critical expectations guard what activation relies on (keys, consent values, non-empty tables);
warnings flag what a person should look at (email validity rate, freshness, volume swings). Bounds that
depend on history (row volume against previous loads, freshness against the run's day) are computed
here from the warehouse, so the GX suites stay plain and every bound is visible in the results.
No GX import here: building the definitions is cheap; `checkpoint` turns them into GX objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import duckdb

from beacon.emails import raw_email_regex
from beacon.warehouse import quote_ident, sql_literal, table_exists

VOLUME_LOW, VOLUME_HIGH = 0.1, 10.0  # a daily load outside 0.1x..10x the median of earlier daily loads is flagged


@dataclass(frozen=True)
class Check:
    """One expectation: its GX class name, keyword arguments and severity ('critical' | 'warning')."""

    expectation: str
    kwargs: dict
    severity: str = "critical"


@dataclass
class SuiteDef:
    """A suite: a name, the SQL selecting the rows it validates, and its checks."""

    name: str
    sql: str
    checks: list[Check] = field(default_factory=list)


def checked_columns(checks: list[Check]) -> list[str]:
    """The columns the checks read, in order of first use: all a suite needs to load (a raw table's other columns,
    e.g. the events' payloads, stay in the warehouse; at 1M people `SELECT *` of a day-1 load took 24 GB)."""
    out: list[str] = []
    for c in checks:
        for col in [c.kwargs.get("column"), *(c.kwargs.get("column_list") or [])]:
            if col and col not in out:
                out.append(col)
    return out


def _not_null(col: str, severity: str = "critical", mostly: float | None = None) -> Check:
    kw = {"column": col, **({"mostly": mostly} if mostly is not None else {})}
    return Check("ExpectColumnValuesToNotBeNull", kw, severity)


def _in_set(col: str, values: list[str], severity: str = "critical") -> Check:
    return Check("ExpectColumnValuesToBeInSet", {"column": col, "value_set": values}, severity)


def _emails(col: str, mostly: float = 0.95) -> Check:
    """The email validity rate: at least `mostly` of the non-null emails are valid by the dbt macro's rule."""
    return Check("ExpectColumnValuesToMatchRegex", {"column": col, "regex": raw_email_regex(), "mostly": mostly},
                 "warning")


def _fresh(col: str, not_before: datetime, severity: str = "warning") -> Check:
    return Check("ExpectColumnMaxToBeBetween", {"column": col, "min_value": not_before}, severity)


# Per raw source: (key columns, extra checks builder). Raw rows never lack keys (the quarantine takes
# those), so a null key here means the loader itself is broken: critical.
_RAW: dict[str, dict] = {
    "crm_contacts": {"keys": ["contact_id"], "time": "updated_at", "checks": lambda: [
        _emails("email"), _in_set("lifecycle_stage", ["subscriber", "lead", "mql", "sql", "customer", "other"], "warning")]},
    # Companies keep their founding-era created_at: no freshness for them.
    "crm_companies": {"keys": ["company_id"], "time": None, "checks": lambda: []},
    "shop_customers": {"keys": ["customer_id"], "time": "created_at", "checks": lambda: [_emails("email")]},
    "shop_products": {"keys": ["product_id"], "time": None, "checks": lambda: [
        Check("ExpectColumnValuesToBeBetween", {"column": "price", "min_value": 0}, "warning")]},
    "shop_orders": {"keys": ["order_id", "customer_id"], "time": "ordered_at", "checks": lambda: [
        _in_set("status", ["completed", "refunded", "cancelled", "pending"], "warning"),
        Check("ExpectColumnValuesToBeBetween", {"column": "total_amount", "min_value": 0}, "warning")]},
    "shop_order_items": {"keys": ["order_id", "line_number"], "time": None, "checks": lambda: [
        Check("ExpectColumnValuesToBeBetween", {"column": "quantity", "min_value": 1}, "warning")]},
    "web_events": {"keys": ["message_id", "anonymous_id"], "time": "event_at", "checks": lambda: [
        _in_set("type", ["page", "track", "identify"])]},
    "email_events": {"keys": ["event_id", "email"], "time": "event_at", "checks": lambda: [
        _in_set("event", ["sent", "delivered", "open", "click", "bounce", "complaint", "unsubscribe", "resubscribe",
                            "deferred", "group_unsubscribe", "group_resubscribe"]),
        _emails("email", 0.99)]},
    # Consent drives who may be contacted: unknown channels or statuses must stop activation.
    "consent": {"keys": ["consent_id", "channel"], "time": "recorded_at", "checks": lambda: [
        _in_set("channel", ["email", "sms", "ads"]), _in_set("status", ["opt_in", "opt_out"])]},
}


def _volume_bounds(con: duckdb.DuckDBPyConnection, source: str, batch_ids: list[str]) -> tuple[int, int | None]:
    """Row-count bounds for this load from the median of the source's previous loads.

    The first load of a source is its history (a backfill), not a day: it is left out of the baseline,
    so until a second load exists the only bound is >= 1 row."""
    prev = con.execute("""
        WITH p AS (SELECT rows_loaded, loaded_at FROM raw._load_ledger
                   WHERE source = ? AND status = 'loaded' AND rows_loaded > 0 AND NOT list_contains(?, batch_id))
        SELECT median(rows_loaded) FROM p WHERE loaded_at > (SELECT min(loaded_at) FROM p)""",
                       [source, batch_ids]).fetchall()[0][0]
    if prev is None:
        return 1, None
    return max(1, int(prev * VOLUME_LOW)), int(prev * VOLUME_HIGH) + 1


def latest_batches(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """Per source, the batch ids of its most recent load (what a raw checkpoint validates by default)."""
    if not table_exists(con, "raw", "_load_ledger"):  # nothing was ever loaded: nothing to validate
        return {}
    rows = con.execute("""
        WITH l AS (SELECT source, batch_id, loaded_at FROM raw._load_ledger WHERE status = 'loaded' AND rows_loaded > 0)
        SELECT source, list(batch_id ORDER BY batch_id) FROM l
        WHERE loaded_at = (SELECT max(loaded_at) FROM l l2 WHERE l2.source = l.source) GROUP BY source""").fetchall()
    return {s: list(b) for s, b in rows}


def raw_suites(con: duckdb.DuckDBPyConnection, as_of: date, batches: dict[str, list[str]] | None = None) -> list[SuiteDef]:
    """One suite per raw source that loaded rows, over the rows of those loads."""
    batches = latest_batches(con) if batches is None else batches
    out = []
    for source, ids in sorted(batches.items()):
        spec = _RAW.get(source)
        if not spec or not ids:
            continue
        lo, hi = _volume_bounds(con, source, ids)
        checks = [_not_null(k) for k in spec["keys"]]
        checks.append(Check("ExpectTableRowCountToBeBetween", {"min_value": lo, "max_value": hi}, "warning"))
        if spec["time"]:
            # Freshness: the newest record of a day's load is at most 7 days older than that day.
            checks.append(_fresh(spec["time"], datetime.combine(as_of, datetime.min.time()) - timedelta(days=7)))
        checks += spec["checks"]()
        id_list = ", ".join(sql_literal(i) for i in ids)
        cols = ", ".join(quote_ident(c) for c in checked_columns(checks))  # the keys at least: never empty
        out.append(SuiteDef(f"raw_{source}", f"SELECT {cols} FROM raw.{source} WHERE _batch_id IN ({id_list})", checks))
    return out


def _previous_observed(con: duckdb.DuckDBPyConnection, suite: str, expectation: str) -> int | None:
    """The row count observed by this suite's previous run (for the volume check of the marts)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS quality")
    from beacon.quality.breaker import ensure_results_table

    ensure_results_table(con)
    rows = con.execute("""SELECT observed FROM quality.expectation_results WHERE suite = ? AND expectation = ?
                          ORDER BY run_at DESC LIMIT 1""", [suite, expectation]).fetchall()
    try:
        return int(rows[0][0]) if rows else None
    except (TypeError, ValueError):
        return None


def mart_suites(con: duckdb.DuckDBPyConnection) -> list[SuiteDef]:
    """Suites for the marts activation reads: customers, orders, consent."""
    as_of = con.execute("SELECT as_of_at FROM marts.warehouse_as_of").fetchall()[0][0]

    def volume(suite: str) -> Check:
        prev = _previous_observed(con, suite, "expect_table_row_count_to_be_between")
        # A mart may grow freely; shrinking by more than a fifth since the last run is flagged.
        return Check("ExpectTableRowCountToBeBetween", {"min_value": max(1, int(prev * 0.8)) if prev else 1}, "warning")

    return [
        SuiteDef("marts_dim_customers",
                 "SELECT customer_id, email, crm_records, shop_records, first_seen_at FROM marts.dim_customers", [
                     _not_null("customer_id"), Check("ExpectColumnValuesToBeUnique", {"column": "customer_id"}),
                     Check("ExpectTableRowCountToBeBetween", {"min_value": 1}),
                     _not_null("email", "warning", mostly=0.9),  # valid-email rate (invalid ones are nulled)
                     _emails("email", 0.999), volume("marts_dim_customers")]),
        SuiteDef("marts_fct_orders",
                 "SELECT order_id, customer_id, ordered_at, status, total_amount FROM marts.fct_orders", [
                     _not_null("order_id"), Check("ExpectColumnValuesToBeUnique", {"column": "order_id"}),
                     _not_null("customer_id", "warning", mostly=0.99),
                     _in_set("status", ["completed", "refunded", "cancelled", "pending"], "warning"),
                     _fresh("ordered_at", as_of - timedelta(days=7)), volume("marts_fct_orders")]),
        SuiteDef("marts_dim_consent",
                 "SELECT consent_key, customer_id, channel, status, recorded_at FROM marts.dim_consent", [
                     _not_null("consent_key"), Check("ExpectColumnValuesToBeUnique", {"column": "consent_key"}),
                     Check("ExpectCompoundColumnsToBeUnique", {"column_list": ["customer_id", "channel"]}),
                     _not_null("customer_id"), _in_set("channel", ["email", "sms", "ads"]),
                     _in_set("status", ["opt_in", "opt_out"]), volume("marts_dim_consent")]),
    ]
