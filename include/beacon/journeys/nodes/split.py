"""`split`: a sticky weighted random arm per person (A/B tests; an optional control arm)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from beacon.journeys.fields import Name, NodeId, Strict
from beacon.journeys.nodes.base import NodeType, register
from beacon.journeys.sql import lit, move_sql


class Arm(Strict):
    name: Name
    weight: float = Field(gt=0)
    next: NodeId


class SplitNode(Strict):
    id: NodeId
    type: Literal["split"]
    arms: list[Arm] = Field(min_length=1)
    control: Arm | None = None  # its name is recorded as 'control'

    @model_validator(mode="after")
    def _names(self) -> SplitNode:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names) or "control" in names:
            raise ValueError("arm names must be unique and not 'control'")
        return self


def arm_cases(journey: str, node: SplitNode) -> tuple[str, str]:
    """(SQL of the arm's name, SQL of its next node) for the person `a`."""
    arms = [(a.name, a.weight, a.next) for a in node.arms]
    if node.control:
        arms.append(("control", node.control.weight, node.control.next))
    total = sum(w for _, w, _ in arms)
    # Sticky: a stable hash of (journey, split node, person) picks the same arm on every entry and run.
    u = f"(('0x' || substr(md5({lit(journey)} || ':' || {lit(node.id)} || ':' || a.customer_id), 1, 8))" \
        f"::UBIGINT / 4294967296.0)"
    cases_arm, cases_next, acc = [], [], 0.0
    for i, (name, w, nxt) in enumerate(arms):
        acc += w / total
        bound = "2" if i == len(arms) - 1 else repr(acc)
        cases_arm.append(f"WHEN {u} < {bound} THEN {lit(name)}")
        cases_next.append(f"WHEN {u} < {bound} THEN {lit(nxt)}")
    return f"CASE {' '.join(cases_arm)} END", f"CASE {' '.join(cases_next)} END"


class Split(NodeType):
    type, model = "split", SplitNode

    def successors(self, node: SplitNode) -> list[str]:
        return [a.next for a in node.arms] + ([node.control.next] if node.control else [])

    def step(self, run, node: SplitNode) -> int:
        arm, nxt = arm_cases(run.j.name, node)
        return run.emit(move_sql(nxt, outcome="'assigned'", detail=f"'split ' || {lit(node.id)}", arm=arm))

    def outcome_label(self, run, node: SplitNode) -> tuple[str, str]:
        return arm_cases(run.j.name, node)[0], "_at a"


register(Split())
