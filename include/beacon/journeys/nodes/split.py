"""`split`: a sticky weighted random arm per person (A/B tests; an optional control arm). With a `winner:` block
the split is an experiment that decides (`beacon.journeys.experiment`): once a winner is recorded, new entrants go
to it and the control keeps its share."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from beacon.journeys import experiment
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
    # {metric, min_people, after, confidence, guardrails}: beacon.measure.experiments.WinnerRule.from_config
    winner: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _names(self) -> SplitNode:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names) or "control" in names:
            raise ValueError("arm names must be unique and not 'control'")
        if self.winner is not None:
            experiment.check_guardrails(experiment.rule_of(self))
            if len(self.arms) < 2:
                raise ValueError("winner: a split that picks a winner needs at least two arms besides the control")
        return self


def arm_cases(journey: str, node: SplitNode) -> tuple[str, str]:
    """(SQL of the arm's name, SQL of its next node) for the person `a`, before any decision."""
    return experiment.hash_cases(journey, node, experiment.weighted_arms(node))


class Split(NodeType):
    type, model = "split", SplitNode

    def successors(self, node: SplitNode) -> list[str]:
        return [a.next for a in node.arms] + ([node.control.next] if node.control else [])

    def step(self, run, node: SplitNode) -> int:
        arm, nxt = experiment.split_cases(run.con, run.j.name, node)
        return run.emit(move_sql(nxt, outcome="'assigned'", detail=f"'split ' || {lit(node.id)}", arm=arm))

    def outcome_label(self, run, node: SplitNode) -> tuple[str, str]:
        return experiment.split_cases(run.con, run.j.name, node)[0], "_at a"


register(Split())
