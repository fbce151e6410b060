"""`send`: a message on a channel from a template, through the activation sync engine (governed, exactly once),
optionally held out of the person's quiet hours or sent at their learned best local hour."""

from __future__ import annotations

from datetime import time
from typing import Literal

from beacon.journeys.fields import LocalWindow, NodeId, Strict
from beacon.journeys.nodes.base import NodeType, register
from beacon.journeys.sql import TZ, lit, move_sql, next_slot_sql


class QuietHours(Strict):
    start: time  # local time quiet hours begin (e.g. 21:00)
    end: time  # local time they end (e.g. 08:00)
    fallback: Literal["next_slot", "skip"] = "next_slot"


class SendNode(Strict):
    id: NodeId
    type: Literal["send"]
    channel: str
    template: str
    quiet_hours: QuietHours | None = None
    best_time: bool = False  # send at each person's learned local hour (beacon.personalize.best_time)
    next: NodeId


def _quiet_hours(run, node: SendNode) -> int:
    """People in their quiet hours wait for the next allowed slot (or skip the send); leaves `_go`, the rest."""
    con, T, q = run.con, run.Tl, node.quiet_hours
    slot = next_slot_sql(T, TZ, LocalWindow(start=q.end, end=q.start))
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _q AS SELECT a.*, {slot} AS slot FROM _at a
        LEFT JOIN _people p ON p.customer_id = a.customer_id""")
    if q.fallback == "skip":
        moved = run.emit(move_sql(lit(node.next), outcome="'skipped'", detail="'quiet_hours'", src="_q a",
                                  where=f"a.slot > {T}"))
    else:
        moved = run.emit(move_sql("NULL", outcome="'deferred'", detail="'quiet_hours'", due_override="a.slot",
                                  src="_q a", where=f"a.slot > {T}"))
        run.res.deferred += con.execute(f"SELECT count(*) FROM _q WHERE slot > {T}").fetchall()[0][0]
    con.execute(f"CREATE OR REPLACE TEMP TABLE _go AS SELECT * EXCLUDE (slot) FROM _q WHERE slot <= {T}")
    return moved


class Send(NodeType):
    type, model = "send", SendNode

    def references(self, node: SendNode) -> list[tuple[str, str | None]]:
        return [("channel", node.channel), ("template", node.template)]

    def step(self, run, node: SendNode) -> int:
        from beacon.journeys.best_time import defer_to_best_time
        from beacon.journeys.delivery import deliver

        con = run.con
        moved = defer_to_best_time(run, node) if node.best_time else 0
        if node.quiet_hours:
            moved += _quiet_hours(run, node)
        else:
            con.execute("CREATE OR REPLACE TEMP TABLE _go AS SELECT * FROM _at")
        if not con.execute("SELECT count(*) FROM _go").fetchall()[0][0]:
            return moved
        con.execute(f"CREATE OR REPLACE TEMP TABLE _go_t AS SELECT *, {lit(node.template)} AS journey_template FROM _go")
        done = deliver(run, node.id, node.channel, "_go_t", ", journey_template")
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _go_out AS SELECT g.*, CASE WHEN s.customer_id IS NOT NULL
                THEN 'sent' ELSE 'skipped' END AS outcome, k.reason FROM _go g
            LEFT JOIN {done.sent} s ON s.customer_id = g.customer_id AND s.entry_no = g.entry_no
            LEFT JOIN {done.skipped} k ON k.customer_id = g.customer_id AND k.entry_no = g.entry_no
            WHERE s.customer_id IS NOT NULL OR k.customer_id IS NOT NULL""")
        n = run.emit(move_sql(lit(node.next), outcome="a.outcome", detail="a.reason", src="_go_out a"))
        for outcome, reason, k in con.execute("SELECT outcome, reason, count(*) FROM _go_out GROUP BY 1, 2").fetchall():
            if outcome == "sent":
                run.res.sent += k
            else:
                run.res.skipped[reason] = run.res.skipped.get(reason, 0) + k
        return moved + n


register(Send())
