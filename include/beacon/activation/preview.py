"""What a sync would change, for analysts: the sync engine's own dry run against the last delivered state.

Lives in activation (not in `beacon.audiences`) so imports point one way: activation reads audiences."""

from __future__ import annotations

import duckdb

from beacon.activation.destinations.registry import build
from beacon.activation.sync import last_delivered, run_sync
from beacon.audiences import Audience, discover
from beacon.config import settings
from beacon.warehouse import clock


def diff(con: duckdb.DuckDBPyConnection, audience: Audience, audiences: list[Audience] | None = None,
         destination: str = "file") -> dict:
    """Who would be added, updated and removed against the last delivered state: the sync engine's own dry run."""
    before = last_delivered(con, audience.name, destination)
    audiences = audiences or discover(settings().manifest_path)  # priority needs every audience
    s = run_sync(con, audience, audiences, build(destination, str(settings().exports_dir)), clock(con), dry_run=True)
    sample = {op: [r["customer_id"] for r in s.sample if r["operation"] == op] for op in ("add", "update", "remove")}
    return {"audience": audience.name, "destination": destination, "mode": s.mode,
            "last_delivered": before["last_delivered"], "delivered_then": before["members"],
            "sendable_now": s.unchanged + s.adds + s.updates, "would_enter": s.adds, "would_update": s.updates,
            "would_leave": s.removes, "unchanged": s.unchanged, "held_out": s.held_out, "suppressed": s.suppressed,
            "invalid": s.invalid, "enter_sample": sample["add"], "update_sample": sample["update"],
            "leave_sample": sample["remove"]}
