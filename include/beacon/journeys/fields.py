"""The building blocks of the journey model shared by the entry rules and the node types: strict models,
durations, ids, local time windows and person dates (pydantic v2, unknown fields refused everywhere)."""

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


Strict = _Strict  # the base of every journey model (node types defined elsewhere derive from it)


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


class DateEntry(_Strict):
    attribute: str  # a date column of the person (e.g. birth_date, renewal_date)
    offset_days: int = 0  # + after, - before the date
    annual: bool = False  # birthdays and renewals: every year on the anniversary
    at: time = time(9, 0)  # local time of day the entry happens
