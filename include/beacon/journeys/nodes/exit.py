"""`exit`: the entry ends here."""

from __future__ import annotations

from typing import Literal

from beacon.journeys.fields import NodeId, Strict
from beacon.journeys.nodes.base import NodeType, register
from beacon.journeys.sql import move_sql


class ExitNode(Strict):
    id: NodeId
    type: Literal["exit"]


class Exit(NodeType):
    type, model, exits = "exit", ExitNode, True

    def successors(self, node: ExitNode) -> list[str]:
        return []

    def step(self, run, node: ExitNode) -> int:
        return run.emit(move_sql("NULL", outcome="'exited'", detail="'exit_node'"))


register(Exit())
