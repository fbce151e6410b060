"""Destinations know nothing of audiences: they plan batches from rows and send them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd


@dataclass
class RowResult:
    """Per-row outcome of a send."""

    key: str
    status: str  # delivered | failed
    error: str = ""


@dataclass
class Batch:
    """Rows sent together, with what the destination needs to name the delivery."""

    name: str
    rows: pd.DataFrame
    meta: dict = field(default_factory=dict)


class Destination(Protocol):
    """The one interface every destination implements."""

    name: str

    def plan(self, rows: pd.DataFrame, name: str, meta: dict) -> list[Batch]: ...

    def send(self, batch: Batch) -> list[RowResult]: ...
