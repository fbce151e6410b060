"""Destinations know nothing of audiences: they plan batches from changed rows and send them.

A change row carries `customer_id`, `operation` (add | update | remove), `idempotency_key` (one per
member and version, stable across retries and re-runs) and the mapped fields. A destination returns
one RowResult per row; the sync engine commits state only for rows the destination acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import pandas as pd
from pydantic import Field

from beacon.config import StrictConfig, parse_config

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


class DestinationExtra(StrictConfig):
    """The extras every `beacon_<name>` connection may carry besides its destination's own: the destination
    kind and the governance overrides (read by the registry). Each destination's extras extend this model, so
    an unknown key (a typo) is an error naming the key and the connection, never silently ignored."""

    kind: str | None = None  # the destination type when conn_type does not tell it
    opt_in_required: bool | None = None
    frequency_cap: int | None = Field(None, ge=0)
    counts_as_message: bool | None = None
    priority_arbitration: bool | None = None


class StorageExtra(DestinationExtra):
    """Extras of a destination that writes files through fsspec (file export, customer-match uploads)."""

    url: str | None = None  # folder or fsspec URL (default: the connection's host, else the exports folder)
    storage_options: dict[str, Any] | None = None
    endpoint_url: str | None = None  # S3-compatible endpoint (MinIO, moto)


E = TypeVar("E", bound=DestinationExtra)


def parse_extra(model: type[E], name: str, conn) -> E:
    """Connection `beacon_<name>`'s extras as `model` (raises beacon.config.ConfigError naming the bad key)."""
    return parse_config(model, conn.extra_dejson if conn is not None else {}, f"connection beacon_{name}", "extra")


def send_all(dest: Destination, batches: list[Batch]) -> Iterator[tuple[Batch, list[RowResult]]]:
    """Send batches one by one, or concurrently where the destination offers `send_many`, yielding as each is acknowledged."""
    many = getattr(dest, "send_many", None)
    if many is not None:
        yield from many(batches)
        return
    for b in batches:
        yield b, dest.send(b)
