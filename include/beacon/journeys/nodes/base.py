"""The node-type registry: one `NodeType` per `type:` of a journey node, holding together its model (the YAML
schema), the nodes it leads to, what it refers to (for validation) and its compiled step (set-based SQL over
everyone at the node). A new node type is one module that defines a model and a `NodeType` and calls
`register`; the journey model, the validator and the engine consult the registry, never a list of types."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel

if TYPE_CHECKING:  # DAG parsing imports the registry (validation): no duckdb at parse time
    import duckdb


class Run(Protocol):
    """What a step sees of the engine's run (`beacon.journeys.run.Run`)."""

    con: duckdb.DuckDBPyConnection
    j: Any  # the journey (current version)
    T: datetime  # the warehouse clock of the run
    Tl: str  # the clock as a SQL literal
    run_id: str
    env: Any  # beacon.journeys.run.Env: destinations, audiences, segment relations
    res: Any  # beacon.journeys.run.RunResult: the counters a step adds to

    def emit(self, moves_sql: str) -> int: ...


class NodeType:
    """How one node type behaves. Subclass it, set `type` and `model`, override what differs, `register` it.

    `step` moves everyone in temp table `_at` (the entries due at one node of this type: the log's columns)
    with `run.emit(move_sql(...))` and returns how many moved."""

    type: ClassVar[str]
    model: ClassVar[type[BaseModel]]
    waits: ClassVar[bool] = False  # people stay here for a while: a loop through it is not instantaneous
    exits: ClassVar[bool] = False  # arriving here ends the entry

    def successors(self, node) -> list[str]:
        """The node ids this node can lead to."""
        return [node.next]

    def references(self, node) -> list[tuple[str, str | None]]:
        """(kind, name) pairs the catalogue must know: kinds 'audience', 'event', 'channel', 'template'."""
        return []

    def check(self, node, by_id: dict) -> list[str]:
        """Graph checks beyond successors (each message without the file/journey/node prefix)."""
        return []

    def arrival_due(self, run: Run, node) -> str | None:
        """SQL for the due time of an arrival at this node (people joined as `p`); None: due now."""
        return None

    def woken(self, run: Run, node, c: str) -> str | None:
        """SQL condition under which an entry `c` waiting here moves before its due time (None: never)."""
        return None

    def step(self, run: Run, node) -> int:
        raise NotImplementedError(f"node type {self.type!r} has no step")

    def outcome_label(self, run: Run, node) -> tuple[str, str] | None:
        """For a dry run: (SQL label of where each person in `_at` would go, FROM clause), or None."""
        return None


_TYPES: dict[str, NodeType] = {}
_LISTENERS: list[Callable[[], None]] = []


def register(handler: NodeType) -> NodeType:
    """Add (or replace) a node type; the journey model is rebuilt to accept it."""
    _TYPES[handler.type] = handler
    for f in _LISTENERS:
        f()
    return handler


def unregister(type_: str) -> None:
    """Remove a node type (tests that add one clean up after themselves)."""
    _TYPES.pop(type_, None)
    for f in _LISTENERS:
        f()


def on_change(f: Callable[[], None]) -> None:
    _LISTENERS.append(f)


def handler(node) -> NodeType:
    """The node type of a node (a model instance) or of a type name."""
    name = node if isinstance(node, str) else node.type
    try:
        return _TYPES[name]
    except KeyError:
        raise LookupError(f"unknown node type {name!r}; known: {', '.join(_TYPES)}") from None


def types() -> list[str]:
    return list(_TYPES)


def models() -> list[type[BaseModel]]:
    return [h.model for h in _TYPES.values()]
