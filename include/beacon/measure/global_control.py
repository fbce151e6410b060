"""The global control group: a share of everyone who gets no marketing at all, redrawn per numbered period.

Light on purpose (no pandas or statsmodels): governance imports it on every send."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from beacon.config import settings

EPOCH = date(1970, 1, 1)


def _day(as_of) -> date:
    if isinstance(as_of, datetime):
        return as_of.date()
    if isinstance(as_of, date):
        return as_of
    return datetime.fromisoformat(str(as_of).replace("Z", "+00:00")).date()


def global_period(as_of, period_days: int | None = None) -> int:
    """The number of the global-control period holding `as_of` (periods count from 1970-01-01)."""
    days = period_days or settings().global_control_period_days
    return (_day(as_of) - EPOCH).days // days


def global_period_bounds(period: int, period_days: int | None = None) -> tuple[date, date]:
    days = period_days or settings().global_control_period_days
    start = EPOCH + timedelta(days=period * days)
    return start, start + timedelta(days=days)


def global_control_sql(customer: str, pct: str, period: str) -> str:
    """SQL that is true for members of the global control group: a stable hash of (period, person) below pct %.

    Governance excludes them from every send; a new period redraws the group (history is kept)."""
    return (f"({pct} > 0 AND (('0x' || substr(md5('global:' || ({period})::VARCHAR || ':' || {customer}), 1, 8))"
            f"::UBIGINT % 10000) / 100.0 < {pct})")
