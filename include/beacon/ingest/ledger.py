"""The load ledger: which content each source has loaded (by hash), and the record of every failed unit.

A unit is loaded once per content hash; a failed unit leaves a `failed` ledger row and one quarantine
row naming its reason. Recording a failure must not fail: every value is valid UTF-8 text first.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

import duckdb

from beacon.ingest.errors import error_reason, failure_message, safe_text
from beacon.ingest.results import FileLoad
from beacon.ingest.spec import SourceSpec

log = logging.getLogger(__name__)


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """First value of a query (results are fetched fully: DuckDB 2 refuses new work on a pending result)."""
    return con.execute(sql, params or []).fetchall()[0][0]


def already_loaded(con: duckdb.DuckDBPyConnection, source: str, sha: str) -> bool:
    """True when the same content was loaded into this source before (the ledger makes loads idempotent)."""
    return bool(scalar(con, "SELECT count(*) FROM raw._load_ledger WHERE source = ? AND file_sha256 = ? "
                            "AND status = 'loaded'", [source, sha]))


def record_loaded(con: duckdb.DuckDBPyConnection, fl: FileLoad, size: int, now: datetime) -> None:
    """The `loaded` ledger row of a unit (written in the unit's transaction, with its rows)."""
    con.execute("""INSERT INTO raw._load_ledger (batch_id, source, file, file_sha256, file_bytes, rows_read,
                   rows_loaded, rows_quarantined, status, error, loaded_at, reason)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'loaded', NULL, ?, NULL)""",
                [fl.batch_id, fl.source, fl.file, fl.sha256, size, fl.rows_read, fl.rows_loaded,
                 fl.rows_quarantined, now])


def record_failure(con: duckdb.DuckDBPyConnection, spec: SourceSpec, *, location: str, sha: str, size: int | None,
                   exc: BaseException, batch_id: str, t0: float | None = None) -> FileLoad:
    """Record a unit that failed: a `failed` ledger row and one quarantine row (line 0 unless known).

    This path must not fail: every value is made valid UTF-8 text first, and when the warehouse itself
    refuses the write, the failure is still returned (with `unrecorded` saying why, and logged) so the
    run goes on."""
    reason = error_reason(exc)
    msg = failure_message(location, exc)
    fl = FileLoad(source=spec.name, file=safe_text(location), status="failed", reason=reason, batch_id=batch_id,
                  sha256=sha, error=msg)
    payload = getattr(exc, "payload", None)
    now = datetime.now().replace(microsecond=0)
    try:
        con.execute("""INSERT INTO raw._load_ledger (batch_id, source, file, file_sha256, file_bytes, rows_read,
                       rows_loaded, rows_quarantined, status, error, loaded_at, reason)
                       VALUES (?, ?, ?, ?, ?, 0, 0, 0, 'failed', ?, ?, ?)""",
                    [batch_id, spec.name, fl.file, sha or None, size, msg, now, reason])
        con.execute("INSERT INTO raw._quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [spec.name, fl.file, getattr(exc, "line", None) or 0, reason, msg,
                     None if payload is None else safe_text(payload), batch_id, now])
    except Exception as write_exc:  # the warehouse is broken: say so, keep going
        fl.unrecorded = safe_text(f"{type(write_exc).__name__}: {safe_text(write_exc, 300)}")
        log.error("%s", fl.error_text())
    if t0 is not None:
        fl.seconds = round(time.perf_counter() - t0, 3)
    return fl
