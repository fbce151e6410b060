"""Destinations know nothing of audiences: they plan batches from changed rows and send them.

A change row carries `customer_id`, `operation` (add | update | remove), `idempotency_key` (one per
member and version, stable across retries and re-runs) and the mapped fields. A destination returns
one RowResult per row; the sync engine commits state only for rows the destination acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

OPERATIONS = ("add", "update", "remove")


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
    channel: str  # file | email | webhook | ads: which governance policy applies
    fields: tuple[str, ...] | None  # mapped fields (None: every column of the segment plus contact fields)
    required_any: tuple[str, ...]  # a row needs at least one of these fields, or it is invalid
    default_mode: str  # upsert | mirror | insert_only

    def plan(self, rows: pd.DataFrame, name: str, meta: dict) -> list[Batch]: ...

    def send(self, batch: Batch) -> list[RowResult]: ...


def send_all(dest: Destination, batches: list[Batch]) -> Iterator[tuple[Batch, list[RowResult]]]:
    """Send batches one by one, or concurrently where the destination offers `send_many`, yielding as each is acknowledged."""
    many = getattr(dest, "send_many", None)
    if many is not None:
        yield from many(batches)
        return
    for b in batches:
        yield b, dest.send(b)
