"""The typed model of one journey YAML file (pydantic v2, unknown fields refused everywhere).

A journey is an entry rule, a list of nodes wired by `next` ids, an optional goal and exit criteria. The node
models come from the node-type registry (`beacon.journeys.nodes`): a node type registered later (one module)
is accepted by `Journey` and listed in `journey_schema()`, the JSON Schema editors and CI validate against.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from beacon.journeys import nodes as _nodes
from beacon.journeys.fields import (  # noqa: F401 - re-exported: the model's vocabulary
    ENGAGEMENT,
    OPS,
    WEEKDAYS,
    DateEntry,
    Duration,
    LocalWindow,
    Name,
    NodeId,
    Strict,
    parse_duration,
)
from beacon.journeys.nodes import (  # noqa: F401 - re-exported: the built-in node models
    Action,
    ActionsNode,
    Arm,
    BranchNode,
    Condition,
    ExitNode,
    QuietHours,
    Rule,
    SendNode,
    SplitNode,
    WaitFor,
    WaitNode,
)

# ------------------------------------------------------------------------------------------------ entry


class EventEntry(Strict):
    name: str
    dedupe_key: Literal["event_key", "none"] = "event_key"  # the event's key column (product, webinar, message)
    lookback: Duration = "1d"  # first run: how far back events count


class ScheduleEntry(Strict):
    audience: str
    start: str  # first occurrence, ISO timestamp (UTC)
    every: Duration


class Entry(Strict):
    audience: str | None = None
    event: EventEntry | None = None
    date: DateEntry | None = None
    schedule: ScheduleEntry | None = None
    re_entry: Literal["never", "after_exit", "cooldown", "once_per_event_key"] = "never"
    cooldown: Duration | None = None
    cap_per_run: int | None = Field(default=None, ge=1)  # at most this many new entries per run
    max_active: int | None = Field(default=None, ge=1)  # no new entries while this many are in flight

    @model_validator(mode="after")
    def _one_kind(self) -> Entry:
        kinds = [k for k in ("audience", "event", "date", "schedule") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"entry needs exactly one of audience, event, date, schedule (got {kinds or 'none'})")
        if self.re_entry == "cooldown" and not self.cooldown:
            raise ValueError("re_entry: cooldown needs a cooldown duration")
        if self.re_entry == "once_per_event_key" and self.kind not in ("event", "date", "schedule"):
            raise ValueError("re_entry: once_per_event_key needs an event, date or schedule entry")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("audience", "event", "date", "schedule") if getattr(self, k) is not None)


class Goal(Strict):
    event: str
    within: Duration = "30d"


# ------------------------------------------------------------------------------------------------ journey


def _node_union():
    """Any registered node model, told apart by its `type`."""
    return Annotated[Union[tuple(_nodes.models())], Field(discriminator="type")]  # noqa: UP007 - built at runtime


Node = _node_union()
EXIT_CRITERIA = ("left_audience", "unsubscribed", "erased")


class Journey(Strict):
    name: Name
    version: int = Field(ge=1)
    description: str = ""
    owner: str = ""
    priority: int = 50  # against audiences on the same channel (governance priority arbitration)
    entry: Entry
    start: NodeId
    nodes: list[Node] = Field(min_length=1)
    goal: Goal | None = None
    exit_when: list[Literal["left_audience", "unsubscribed", "erased"]] = ["unsubscribed", "erased"]
    # Versioning: old node id -> node id in this version for people in flight (None: finish on the old version).
    migrate: dict[str, NodeId | None] = {}
    enabled: bool = True

    def node(self, node_id: str):
        return next(n for n in self.nodes if n.id == node_id)

    @property
    def node_ids(self) -> list[str]:
        return [n.id for n in self.nodes]


def _rebuild() -> None:
    """A node type was registered or removed: `Journey` accepts exactly the registered ones."""
    global Node
    Node = _node_union()
    Journey.model_fields["nodes"].annotation = list[Node]
    Journey.model_rebuild(force=True)


_nodes.on_change(_rebuild)


def successors(node) -> list[str]:
    """The node ids a node can lead to."""
    return _nodes.handler(node).successors(node)


def journey_schema() -> dict:
    """The JSON Schema of a journey file."""
    return Journey.model_json_schema()

