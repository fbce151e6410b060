"""`branch`: the first rule whose condition holds picks the next node (else `default`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from beacon.journeys.errors import JourneyRuntimeError
from beacon.journeys.fields import OPS, NodeId, Strict
from beacon.journeys.nodes.base import NodeType, register
from beacon.journeys.sql import lit, move_sql, q
from beacon.warehouse import table_exists

PEOPLE = "_at a LEFT JOIN _people p ON p.customer_id = a.customer_id"


class Condition(Strict):
    attribute: str | None = None  # a column of the person (marts.customer_profile)
    score: str | None = None  # an ml.scores model name; compared on its score
    segment: str | None = None  # member of this segment now
    engagement: Literal["delivered", "opened", "clicked", "converted"] | None = None
    node: NodeId | None = None  # with engagement: the earlier send node of this journey
    op: Literal["==", "!=", ">", ">=", "<", "<=", "in", "not_in"] = "=="
    value: str | int | float | bool | list[str | int | float] | None = None

    @model_validator(mode="after")
    def _one(self) -> Condition:
        kinds = [k for k in ("attribute", "score", "segment", "engagement") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"a condition needs exactly one of attribute, score, segment, engagement (got {kinds})")
        if self.engagement and not self.node:
            raise ValueError("an engagement condition names the earlier send node")
        if (self.attribute or self.score) and self.value is None:
            raise ValueError("an attribute or score condition needs a value")
        return self


class Rule(Strict):
    when: Condition
    next: NodeId


class BranchNode(Strict):
    id: NodeId
    type: Literal["branch"]
    rules: list[Rule] = Field(min_length=1)
    default: NodeId


def compare(col: str, c: Condition) -> str:
    op = OPS[c.op]
    if c.op in ("in", "not_in"):
        vals = c.value if isinstance(c.value, list) else [c.value]
        return f"coalesce({col} {op} ({', '.join(lit(v) for v in vals)}), false)"
    return f"coalesce({col} {op} {lit(c.value)}, false)"


def condition_sql(run, node, c: Condition) -> str:
    """The condition for the person `a` (people joined as `p`) at the run's clock."""
    if c.attribute:
        cols = {r[0] for r in run.con.execute("DESCRIBE _people").fetchall()}
        if c.attribute not in cols:
            raise JourneyRuntimeError(f"journey {run.j.name}: node {node.id}: unknown attribute {c.attribute!r}; "
                                      f"known: {', '.join(sorted(cols))}")
        return compare(f"p.{q(c.attribute)}", c)
    if c.score:
        col = (f"(SELECT arg_max(s.score, s.scored_at) FROM ml.scores s WHERE s.customer_id = a.customer_id "
               f"AND s.model = {lit(c.score)})") if table_exists(run.con, "ml", "scores") else "NULL::DOUBLE"
        return compare(col, c)
    if c.segment:
        return f"a.customer_id IN (SELECT customer_id::VARCHAR FROM {run.env.relation(c.segment)})"
    sent = f"""(SELECT min(t.occurred_at) FROM journeys.transitions t WHERE t.journey = {lit(run.j.name)}
        AND t.customer_id = a.customer_id AND t.entry_no = a.entry_no AND t.node_id = {lit(c.node)}
        AND t.transition = 'sent')"""
    if c.engagement == "delivered":
        return f"{sent} IS NOT NULL"
    ev = {"opened": "'email_open'", "clicked": "'email_click'",
          "converted": lit(run.j.goal.event) if run.j.goal else "'order_completed'"}[c.engagement]
    return f"""EXISTS (SELECT 1 FROM journeys.events e WHERE e.customer_id = a.customer_id AND e.event_name = {ev}
        AND e.event_at >= {sent} AND e.event_at <= {run.Tl})"""


class Branch(NodeType):
    type, model = "branch", BranchNode

    def successors(self, node: BranchNode) -> list[str]:
        return [r.next for r in node.rules] + [node.default]

    def references(self, node: BranchNode) -> list[tuple[str, str | None]]:
        return [("audience", r.when.segment) for r in node.rules]

    def check(self, node: BranchNode, by_id: dict) -> list[str]:
        return [f"engagement condition names {r.when.node!r}, which is not a send node of this journey"
                for r in node.rules
                if r.when.engagement and getattr(by_id.get(r.when.node), "type", None) != "send"]

    def step(self, run, node: BranchNode) -> int:
        whens = " ".join(f"WHEN {condition_sql(run, node, r.when)} THEN {lit(r.next)}" for r in node.rules)
        return run.emit(move_sql(f"CASE {whens} ELSE {lit(node.default)} END", src=PEOPLE))

    def outcome_label(self, run, node: BranchNode) -> tuple[str, str]:
        whens = " ".join(f"WHEN {condition_sql(run, node, r.when)} THEN {lit(f'rule {i + 1} -> {r.next}')}"
                         for i, r in enumerate(node.rules))
        return f"CASE {whens} ELSE {lit(f'default -> {node.default}')} END", PEOPLE


register(Branch())
