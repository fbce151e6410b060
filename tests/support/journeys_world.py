"""Journeys test doubles: an outbox destination per channel (records every delivery, can be told to fail or to
kill the process) and helpers to build journeys and events on the small activation warehouse."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from beacon.activation.destinations import Batch, RowResult
from beacon.journeys.engine import Env, ensure_tables
from beacon.journeys.model import Journey


class Outbox:
    """A destination on `channel` that records (audience, customer_id, journey_entry_no) for every delivery,
    optionally appending them to a file (survives a killed process)."""

    default_mode, fields, required_any = "upsert", None, ()

    def __init__(self, channel: str = "email", log: Path | None = None):
        self.name = self.channel = channel
        self.sent: list[tuple[str, str, int]] = []
        self.log = log
        self.fail: set[str] = set()
        self.keys: list[tuple[str, str, int, str]] = []

    def plan(self, rows, name, meta):
        return [Batch(name=name, rows=rows.iloc[i:i + 50], meta=meta) for i in range(0, len(rows), 50)]

    def send(self, batch):
        out, recs = [], []
        for r in batch.rows.itertuples():
            if r.customer_id in self.fail:
                out.append(RowResult(r.customer_id, "failed", "refused"))
                continue
            rec = (batch.meta["audience"], r.customer_id, int(r.journey_entry_no))
            recs.append(rec)
            self.keys.append((*rec, r.idempotency_key))
            out.append(RowResult(r.customer_id, "delivered"))
        self.sent += recs
        if self.log and recs:
            with open(self.log, "a") as f:
                f.write("".join(json.dumps(x) + "\n" for x in self.keys[-len(recs):]))
                f.flush()
        return out


class Outboxes:
    """One Outbox per channel, created on demand (the Env's destination factory)."""

    def __init__(self, log: Path | None = None):
        self.boxes: dict[str, Outbox] = {}
        self.log = log

    def __call__(self, channel: str) -> Outbox:
        if channel not in self.boxes:
            self.boxes[channel] = Outbox(channel, self.log)
        return self.boxes[channel]

    def sent(self, channel: str = "email") -> list[tuple[str, str, int]]:
        return self.boxes[channel].sent if channel in self.boxes else []


def env(boxes: Outboxes | None = None) -> Env:
    return Env(destination=boxes or Outboxes())


def journey(**kw) -> Journey:
    return Journey.model_validate(kw)


def events(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    """Append (customer_id, event_name, event_at, event_key) rows to journeys.events."""
    ensure_tables(con)
    if rows:
        con.executemany("INSERT INTO journeys.events VALUES (?, ?, ?::TIMESTAMP, ?)", [list(r) for r in rows])
