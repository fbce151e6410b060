"""`wait_for`: wait until an event happens or the person is in a segment, at most `timeout`."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from beacon.journeys.fields import Duration, NodeId, Strict, parse_duration
from beacon.journeys.nodes.base import NodeType, register
from beacon.journeys.sql import lit, move_sql


class WaitFor(Strict):
    id: NodeId
    type: Literal["wait_for"]
    event: str | None = None
    segment: str | None = None
    timeout: Duration
    next: NodeId  # when it happens
    on_timeout: NodeId

    @model_validator(mode="after")
    def _one(self) -> WaitFor:
        if (self.event is None) == (self.segment is None):
            raise ValueError("wait_for needs exactly one of event, segment")
        return self


class WaitForType(NodeType):
    type, model, waits = "wait_for", WaitFor, True

    def successors(self, node: WaitFor) -> list[str]:
        return [node.next, node.on_timeout]

    def references(self, node: WaitFor) -> list[tuple[str, str | None]]:
        return [("event", node.event), ("audience", node.segment)]

    def arrival_due(self, run, node: WaitFor) -> str:
        return f"{run.Tl} + {lit(parse_duration(node.timeout))}"

    def woken(self, run, node: WaitFor, c: str) -> str:
        """It happened since the entry arrived here (the event, or membership of the segment now)."""
        if node.event:
            return f"""EXISTS (SELECT 1 FROM journeys.events e WHERE e.customer_id = {c}.customer_id
                AND e.event_name = {lit(node.event)} AND e.event_at > {c}.occurred_at AND e.event_at <= {run.Tl})"""
        return f"{c}.customer_id IN (SELECT customer_id::VARCHAR FROM {run.env.relation(node.segment)})"

    def step(self, run, node: WaitFor) -> int:
        happened = self.woken(run, node, "a")
        nxt = f"CASE WHEN {happened} THEN {lit(node.next)} ELSE {lit(node.on_timeout)} END"
        det = f"CASE WHEN {happened} THEN 'happened' ELSE 'timeout' END"
        return run.emit(move_sql(nxt, detail=det))


register(WaitForType())
