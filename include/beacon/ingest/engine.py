"""The load engine every connector shares: one transaction per unit, classified rows, nothing lost.

A unit is one file or one API page. Its rows arrive as Arrow batches in one of three shapes (text
columns, JSON lines, typed Arrow); each batch is classified in one DuckDB query (malformed, missing
key, wrong type, future timestamp); the good rows, the quarantined rows and the ledger row commit
together, so a unit is loaded once (by content hash) and rows read = rows loaded + rows quarantined.

Nothing that goes wrong with one unit stops the run: any exception while loading it rolls the unit back
and is recorded (ledger and quarantine, as valid UTF-8 text) with a named reason; the next unit loads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

import duckdb

from beacon.config import settings
from beacon.ingest.batches import Batches, prefetch
from beacon.ingest.ddl import add_drift_columns
from beacon.ingest.errors import IngestError
from beacon.ingest.ledger import already_loaded, record_failure, record_loaded
from beacon.ingest.results import FileLoad
from beacon.ingest.spec import META_COLUMNS, SourceSpec, column_name
from beacon.ingest.sqlgen import classify_sql, message_sql, stage_select, typed_ref
from beacon.tombstones import prepare_match
from beacon.warehouse import quote_ident, sql_literal, table_exists, transaction

log = logging.getLogger(__name__)


def _load_batches(con: duckdb.DuckDBPyConnection, spec: SourceSpec, fl: FileLoad, b: Batches,
                  max_event_time: datetime, origin: str, now: datetime, check_erased: bool) -> dict[str, int]:
    """Insert the good rows of every batch into the raw table and the bad ones into the quarantine;
    count them on `fl`. Returns the quarantined rows per reason."""
    names = [c.name for c in spec.columns]
    typed_cols = ", ".join(typed_ref(n) for n in names)
    message = message_sql(spec, max_event_time)
    known = set(names) | set(META_COLUMNS)
    extras = [e for e in b.extra_columns if column_name(e) not in known]
    fl.added_columns = add_drift_columns(con, spec, extras)
    ins_cols = ", ".join(quote_ident(n) for n in [*names, *META_COLUMNS, *(column_name(e) for e in extras)])
    ex_sel = "".join(f", {quote_ident(column_name(e))}" for e in extras)
    table = f"raw.{quote_ident(spec.name)}"
    reasons: dict[str, int] = {}
    # The SQL names `_batch` and `_classified` are these locals, read by DuckDB's replacement scan: never a registered
    # view or a temp table. Inside the unit's transaction DuckDB keeps a dropped view (and the Arrow batch it holds)
    # and every replaced temp table until COMMIT, so a big file held all its batches twice (docs/scale.md, Memory).
    for _batch in prefetch(b.batches, settings().ingest_prefetch):
        stage = stage_select(spec, b.shape, set(_batch.column_names), extras)
        _classified = con.sql(classify_sql(spec, stage, max_event_time, check_erased)).to_arrow_table()
        rows_read = _batch.num_rows
        del _batch  # the batch's text is not needed any more: only the classified rows are
        # Insertion order is kept without a sort (DuckDB preserves it); _line records the position anyway.
        con.execute(f"""INSERT INTO {table} ({ins_cols})
            SELECT {typed_cols}, ?, _line, ?, ?, ?, ?{ex_sel} FROM _classified WHERE _reason IS NULL""",
                    [fl.file, fl.batch_id, now, fl.sha256, origin])
        con.execute(f"""INSERT INTO raw._quarantine
            SELECT ?, ?, _line, _reason, {message}, _bad_payload, ?, ? FROM _classified
            WHERE _reason IS NOT NULL ORDER BY _line""", [spec.name, fl.file, fl.batch_id, now])
        fl.rows_read += rows_read
        for r, n in con.execute("SELECT _reason, count(*) FROM _classified GROUP BY 1").fetchall():
            if r is None:
                fl.rows_loaded += n
            else:
                reasons[r] = reasons.get(r, 0) + n
        del _classified
    return reasons


def load_unit(con: duckdb.DuckDBPyConnection, spec: SourceSpec, *, location: str, sha: str, size: int,
              open_batches: Callable[[], Batches], max_event_time: datetime, origin: str = "landing",
              batch_label: str = "", header_mapping: dict[str, str] | None = None) -> FileLoad:
    """Load one unit idempotently: skip known content, else stream its batches in one transaction.

    Whatever goes wrong (IngestError from a reader, a decode error, I/O, DuckDB, MemoryError) fails this
    unit alone: the transaction is rolled back so nothing of it is kept, the ledger and the quarantine
    record why, and the caller goes on with the next unit. Only KeyboardInterrupt/SystemExit propagate."""
    t0 = time.perf_counter()
    fl = FileLoad(source=spec.name, file=location, status="loaded", sha256=sha,
                  batch_id=f"{spec.name}:{batch_label}:{sha[:12]}")
    try:
        if already_loaded(con, spec.name, sha):
            fl.status = "skipped"
            return fl
        now = datetime.now().replace(microsecond=0)  # audit metadata only, never used in logic
        # Naive timestamps are read in the source's zone; values with an offset keep theirs (see typed_sql).
        con.execute(f"SET TimeZone = {sql_literal(spec.time_zone)}")  # an IANA name (load_specs checks)
        # Rows of people who asked to be erased or suppressed are quarantined `erased`, without their payload.
        s = settings()
        check_erased = prepare_match(con, s.privacy_key, s.landing_dir, table_exists(con, "privacy", "tombstones")) > 0
        with transaction(con):
            b = open_batches()
            fl.extra_columns = list(b.extra_columns)
            fl.header_mapping = dict(b.header_mapping)
            fl.encoding = b.encoding
            reasons = _load_batches(con, spec, fl, b, max_event_time, origin, now, check_erased)
            fl.reasons = dict(sorted(reasons.items()))
            fl.rows_quarantined = sum(reasons.values())
            if fl.rows_read != fl.rows_loaded + fl.rows_quarantined:  # nothing may be lost silently
                raise IngestError(f"{location}: {fl.rows_read} read != {fl.rows_loaded} loaded + "
                                  f"{fl.rows_quarantined} quarantined", "count_mismatch")
            record_loaded(con, fl, size, now)
    except Exception as exc:
        # The whole unit fails alone: nothing of it is kept, the ledger says why, other units go on.
        fl = record_failure(con, spec, location=location, sha=sha, size=size, exc=exc, batch_id=fl.batch_id)
        log.warning("ingest: %s", fl.error_text())
    finally:
        try:
            con.execute("SET TimeZone = 'UTC'")
        except Exception:  # a broken connection: the failure is recorded above (or the next unit reports it)
            pass
    fl.seconds = round(time.perf_counter() - t0, 3)
    return fl
