"""SQL text the journeys engine and its node types share: literals, local-time arithmetic, and the shape of
a set of moves (`move_sql`). Values come from validated journey files; they are quoted all the same."""

from __future__ import annotations

from beacon.journeys.fields import WEEKDAYS, LocalWindow
from beacon.warehouse import quote_ident, sql_literal

# Columns an in-flight entry carries from row to row.
CARRY = "customer_id, entry_no, version, entered_at, entry_key, arm, step"
WAITING = ("entered", "arrived", "deferred")
# The person's time zone in queries that join the people table `_people p` (marts.customer_profile).
TZ = "coalesce(p.time_zone, 'UTC')"

lit = sql_literal
q = quote_ident


def to_local(ts: str, tz: str) -> str:
    return f"timezone({tz}, timezone('UTC', {ts}))"


def to_utc(local: str, tz: str) -> str:
    return f"timezone('UTC', timezone({tz}, {local}))"


def next_slot_sql(ts: str, tz: str, window: LocalWindow) -> str:
    """SQL for the first instant >= `ts` (UTC) inside the local window on an allowed weekday, in UTC."""
    local = to_local(ts, tz)
    a, b = lit(window.start), lit(window.end)
    days = ", ".join(str(WEEKDAYS.index(d) + 1) for d in window.weekdays)
    inside = (f"({local}::TIME >= {a} AND {local}::TIME < {b})" if window.start < window.end
              else f"({local}::TIME >= {a} OR {local}::TIME < {b})")
    now_ok = f"{inside} AND isodow({local}) IN ({days})"
    later = (f"list_min([({local}::DATE + d::INTEGER) + {a} for d in range(0, 8) "
             f"if ({local}::DATE + d::INTEGER) + {a} > {local} AND isodow({local}::DATE + d::INTEGER) IN ({days})])")
    return f"CASE WHEN {now_ok} THEN {ts} ELSE {to_utc(later, tz)} END"


def move_sql(next_node: str, outcome: str = "NULL", detail: str = "NULL", due_override: str = "NULL",
             where: str = "true", arm: str = "a.arm", src: str = "_at a") -> str:
    """A set of moves for `Run.emit`: the carried columns of `src` (alias a), the node they are at, an outcome row
    (NULL: none), its detail, the next node (NULL: stays) and the outcome row's due time (NULL: now)."""
    carry = "a.customer_id, a.entry_no, a.version, a.entered_at, a.entry_key"
    return f"""SELECT {carry}, {arm} AS arm, a.step, a.node_id, {outcome}::VARCHAR AS outcome,
        {detail}::VARCHAR AS detail, {next_node}::VARCHAR AS next_node, {due_override}::TIMESTAMP AS due_override
        FROM {src} WHERE {where}"""
