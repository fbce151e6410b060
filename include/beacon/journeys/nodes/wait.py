"""`wait`: stay for a duration, until a local time window, or until a date of the person."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from beacon.journeys.fields import DateEntry, Duration, LocalWindow, NodeId, Strict, parse_duration
from beacon.journeys.nodes.base import NodeType, register
from beacon.journeys.sql import TZ, lit, move_sql, next_slot_sql, q, to_utc


class WaitNode(Strict):
    id: NodeId
    type: Literal["wait"]
    duration: Duration | None = None
    until_window: LocalWindow | None = None
    until_date: DateEntry | None = None
    next: NodeId

    @model_validator(mode="after")
    def _one(self) -> WaitNode:
        n = sum(x is not None for x in (self.duration, self.until_window, self.until_date))
        if n != 1:
            raise ValueError("a wait needs exactly one of duration, until_window, until_date")
        return self


class Wait(NodeType):
    type, model, waits = "wait", WaitNode, True

    def arrival_due(self, run, node: WaitNode) -> str:
        if node.duration:
            return f"{run.Tl} + {lit(parse_duration(node.duration))}"
        if node.until_window:
            return next_slot_sql(run.Tl, TZ, node.until_window)
        u = node.until_date
        local = f"(p.{q(u.attribute)}::DATE + {int(u.offset_days)}) + {lit(u.at)}"
        return f"coalesce(greatest({run.Tl}, {to_utc(local, TZ)}), {run.Tl})"

    def step(self, run, node: WaitNode) -> int:
        return run.emit(move_sql(lit(node.next)))


register(Wait())
