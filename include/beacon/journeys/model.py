"""The typed model of one journey YAML file (pydantic v2, unknown fields refused everywhere).

A journey is an entry rule, a list of nodes wired by `next` ids, an optional goal and exit criteria.
`journey_schema()` is the JSON Schema editors and CI can validate the YAML against.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$")
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ENGAGEMENT = ("delivered", "opened", "clicked", "converted")
OPS = {"==": "=", "!=": "<>", ">": ">", ">=": ">=", "<": "<", "<=": "<=", "in": "IN", "not_in": "NOT IN"}


def parse_duration(value: str | int) -> timedelta:
    """'30m', '1h', '7d', '2w' (an integer is minutes)."""
    if isinstance(value, int):
        return timedelta(minutes=value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"duration {value!r}: write a number and a unit, e.g. 30m, 1h, 7d, 2w")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


Duration = Annotated[str, Field(pattern=r"^\s*\d+\s*(m|min|h|d|w)\s*$", examples=["1h", "7d"])]
NodeId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalWindow(_Strict):
    """Allowed local hours [start, end) (end before start wraps past midnight) on allowed weekdays."""

    start: time
    end: time
    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = list(WEEKDAYS)

    @field_validator("weekdays")
    @classmethod
    def _some_day(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("weekdays must name at least one day")
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> LocalWindow:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


# ------------------------------------------------------------------------------------------------ entry


class EventEntry(_Strict):
    name: str
    dedupe_key: Literal["event_key", "none"] = "event_key"  # the event's key column (product, webinar, message)
    lookback: Duration = "1d"  # first run: how far back events count


class DateEntry(_Strict):
    attribute: str  # a date column of the person (e.g. birth_date, renewal_date)
    offset_days: int = 0  # + after, - before the date
    annual: bool = False  # birthdays and renewals: every year on the anniversary
    at: time = time(9, 0)  # local time of day the entry happens


class ScheduleEntry(_Strict):
    audience: str
    start: str  # first occurrence, ISO timestamp (UTC)
    every: Duration


class Entry(_Strict):
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


class Goal(_Strict):
    event: str
    within: Duration = "30d"


# ------------------------------------------------------------------------------------------------ nodes


class QuietHours(_Strict):
    start: time  # local time quiet hours begin (e.g. 21:00)
    end: time  # local time they end (e.g. 08:00)
    fallback: Literal["next_slot", "skip"] = "next_slot"


class SendNode(_Strict):
    id: NodeId
    type: Literal["send"]
    channel: str
    template: str
    quiet_hours: QuietHours | None = None
    best_time: bool = False  # send at each person's learned local hour (beacon.personalize.best_time)
    next: NodeId


class WaitNode(_Strict):
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


class WaitFor(_Strict):
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


class Condition(_Strict):
    attribute: str | None = None  # a column of the person (marts.dim_customers and lead/lifecycle marts)
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


class Rule(_Strict):
    when: Condition
    next: NodeId


class BranchNode(_Strict):
    id: NodeId
    type: Literal["branch"]
    rules: list[Rule] = Field(min_length=1)
    default: NodeId


class Arm(_Strict):
    name: Name
    weight: float = Field(gt=0)
    next: NodeId


class SplitNode(_Strict):
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


class Action(_Strict):
    lead_points: int | None = None
    lifecycle_stage: str | None = None
    list_add: str | None = None
    list_remove: str | None = None
    sales_task: str | None = None  # a destination (webhook or CRM API channel) that receives the task
    webhook: str | None = None  # a destination that receives the call

    @model_validator(mode="after")
    def _one(self) -> Action:
        kinds = [k for k, v in self.__dict__.items() if v is not None]
        if len(kinds) != 1:
            raise ValueError(f"an action needs exactly one of {list(type(self).model_fields)} (got {kinds})")
        return self

    @property
    def kind(self) -> str:
        return next(k for k, v in self.__dict__.items() if v is not None)


class ActionsNode(_Strict):
    id: NodeId
    type: Literal["actions"]
    actions: list[Action] = Field(min_length=1)
    next: NodeId


class ExitNode(_Strict):
    id: NodeId
    type: Literal["exit"]


Node = Annotated[SendNode | WaitNode | WaitFor | BranchNode | SplitNode | ActionsNode | ExitNode,
                 Field(discriminator="type")]
NODE_TYPES = ("send", "wait", "wait_for", "branch", "split", "actions", "exit")
EXIT_CRITERIA = ("left_audience", "unsubscribed", "erased")


class Journey(_Strict):
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


def successors(node) -> list[str]:
    """The node ids a node can lead to."""
    if isinstance(node, BranchNode):
        return [r.next for r in node.rules] + [node.default]
    if isinstance(node, SplitNode):
        return [a.next for a in node.arms] + ([node.control.next] if node.control else [])
    if isinstance(node, WaitFor):
        return [node.next, node.on_timeout]
    if isinstance(node, ExitNode):
        return []
    return [node.next]


def journey_schema() -> dict:
    """The JSON Schema of a journey file."""
    return Journey.model_json_schema()
