"""Shortcuts over the sync engine for the file channel (the pipeline benchmark and older callers use them)."""

from __future__ import annotations

import duckdb

from beacon.activation.destinations.file import FileExport
from beacon.activation.sync import SyncSummary, run_sync
from beacon.audiences import Audience


def export_audience(con: duckdb.DuckDBPyConnection, audience: Audience, exports_url: str, as_of, fmt: str = "csv",
                    audiences: list[Audience] | None = None) -> SyncSummary:
    """Sync `audience` to a file export under `exports_url` (only what changed since the last delivered state)."""
    return run_sync(con, audience, audiences or [audience], FileExport(exports_url, fmt=fmt, name="file"), as_of)
