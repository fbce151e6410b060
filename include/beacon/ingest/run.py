"""An ingest run over the landing zone: every dated folder up to the run's day, every file one unit.

Files sit in dated folders (<root>/<YYYY-MM-DD>/); each file is one unit of the load engine, known by
its content hash, so a re-delivered file loads nothing and a changed file under the same name loads
as a new version. S3 and other object stores go through fsspec (s3fs) with the same code.
"""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import fsspec

from beacon.config import settings
from beacon.ingest.batches import Batches
from beacon.ingest.ddl import ensure_raw_schema
from beacon.ingest.engine import load_unit
from beacon.ingest.errors import IngestError
from beacon.ingest.files import file_sha256, is_local, regular_file_size, url_to_fs
from beacon.ingest.ledger import record_failure
from beacon.ingest.readers import READERS
from beacon.ingest.results import FileLoad, LoadSummary
from beacon.ingest.spec import SourceSpec, load_specs
from beacon.warehouse import connect, ensure_scores_table, set_memory_limit

log = logging.getLogger(__name__)


def load_file(con: duckdb.DuckDBPyConnection, spec: SourceSpec, path: str | Path, max_event_time: datetime,
              fs: fsspec.AbstractFileSystem | None = None) -> FileLoad:
    """Load one landing file idempotently (skip when the same content was loaded before).

    Never raises for a bad file: what is wrong is recorded (ledger, quarantine) and returned as a failed
    FileLoad. A path that is not a regular file, or larger than max_file_bytes, is rejected before it is
    opened (a FIFO would block, a device never ends)."""
    t0 = time.perf_counter()
    fs = fs or fsspec.filesystem("file")
    path = str(path)
    location = path if is_local(fs) else fs.unstrip_protocol(path)
    day = Path(path).parent.name
    size = None
    try:
        size = regular_file_size(fs, path)
        if size > spec.limits.max_file_bytes:
            raise IngestError(f"{location}: {size} bytes, more than max_file_bytes {spec.limits.max_file_bytes}",
                              "file_too_large")
        sha = file_sha256(path, fs)
    except Exception as exc:
        return record_failure(con, spec, location=location, sha="", size=size, exc=exc,
                              batch_id=f"{spec.name}:{day}:", t0=t0)

    def open_batches() -> Batches:
        if size == 0:
            raise IngestError(f"{location}: empty file (0 bytes)", "empty_file")
        return READERS[spec.format](spec, path, fs, location)

    return load_unit(con, spec, location=location, sha=sha, size=size, open_batches=open_batches,
                     max_event_time=max_event_time, origin="landing", batch_label=day)


def landing_days(landing_dir: str | Path, until: date | None = None,
                 fs: fsspec.AbstractFileSystem | None = None, since: date | None = None) -> list[str]:
    """Dated landing folders (YYYY-MM-DD), oldest first, from `since` up to and including `until`."""
    if fs is None:
        fs, root = url_to_fs(landing_dir)
    else:
        root = str(landing_dir)
    if not fs.exists(root):
        return []
    out = []
    for p in sorted(fs.ls(root, detail=False)):
        name = p.rstrip("/").rsplit("/", 1)[-1]
        try:
            d = date.fromisoformat(name)
        except ValueError:
            continue
        if fs.isdir(p) and (until is None or d <= until) and (since is None or d >= since):
            out.append(p)
    return out


def max_event_time_for(day: str) -> datetime:
    """A file's events may not be later than the end of its day plus one day of clock skew."""
    return datetime.combine(date.fromisoformat(day), datetime.min.time()) + timedelta(days=2)


class ReopeningWarehouse:
    """The run's warehouse connection, reopened when a fatal DuckDB error has invalidated it (DuckDB then
    refuses every statement until the database is opened again): one bad file must not stop the run."""

    def __init__(self, path: Path | None, lock_wait: float | None):
        self.path, self.lock_wait = path, lock_wait
        self._open()

    def _open(self) -> None:
        self._cm = connect(self.path, lock_wait=self.lock_wait)
        self.con = self._cm.__enter__()
        # The load's own cap: the checkpoint after a big file takes memory in proportion to its rows, up to the limit.
        set_memory_limit(self.con, settings().ingest_memory_limit)

    def close(self) -> None:
        self._cm.__exit__(None, None, None)

    def reopen_if_broken(self) -> bool:
        try:
            self.con.execute("SELECT 1").fetchall()
            return False
        except Exception:
            log.warning("ingest: the warehouse connection was invalidated by a fatal error; reopening it")
            try:
                self.close()
            except Exception:
                pass
            self._open()
            return True


def _load_day_files(wh: ReopeningWarehouse, fs: fsspec.AbstractFileSystem, day_dir: str,
                    specs: dict[str, SourceSpec]) -> list[FileLoad]:
    """Every source's files of one landing day, each in its own transaction."""
    day = day_dir.rstrip("/").rsplit("/", 1)[-1]
    max_ts = max_event_time_for(day)
    loads: list[FileLoad] = []
    for spec in specs.values():
        try:
            paths = sorted(fs.glob(f"{day_dir}/{spec.file}*"))  # also .gz
        except Exception as exc:  # an unreadable day folder: reported, the other days still load
            loads.append(record_failure(wh.con, spec, location=f"{day_dir}/{spec.file}", sha="", size=None,
                                        exc=exc, batch_id=f"{spec.name}:{day}:"))
            continue
        for path in paths:
            fl = load_file(wh.con, spec, path, max_ts, fs)
            if fl.status == "failed" and wh.reopen_if_broken():  # a fatal DuckDB error: go on anew
                fl = record_failure(wh.con, spec, location=fl.file, sha=fl.sha256, size=None,
                                    exc=IngestError(fl.error, fl.reason), batch_id=fl.batch_id)
            loads.append(fl)
    return loads


def load_landing(landing_dir: str | Path, until: date | None = None, warehouse: Path | None = None,
                 specs: dict[str, SourceSpec] | None = None, storage_options: dict | None = None,
                 lock_wait: float | None = None, since: date | None = None,
                 webhooks: bool = True) -> LoadSummary:
    """Load every not-yet-loaded file of every landing day up to `until` (the run's data interval).

    One bad file never stops the run: each is loaded (or rejected) on its own, in its own transaction.
    The warehouse lock is waited for with a bounded back-off (`lock_wait` seconds; 0 = refuse at once)."""
    from beacon.ingest.webhooks import load_webhook_files

    specs = specs or load_specs()
    fs, root = url_to_fs(landing_dir, storage_options)
    loads: list[FileLoad] = []
    wh = ReopeningWarehouse(warehouse, lock_wait)
    try:
        ensure_raw_schema(wh.con, specs)
        ensure_scores_table(wh.con)
        for day_dir in landing_days(root, until, fs, since):
            loads.extend(_load_day_files(wh, fs, day_dir, specs))
            if not webhooks or "email_events" not in specs:
                continue
            day = day_dir.rstrip("/").rsplit("/", 1)[-1]
            try:
                loads.extend(load_webhook_files(wh.con, specs["email_events"], f"{day_dir}/webhooks",
                                                max_event_time_for(day), fs))
            except Exception as exc:
                loads.append(record_failure(wh.con, specs["email_events"], location=f"{day_dir}/webhooks", sha="",
                                            size=None, exc=exc, batch_id=f"email_events:{day}:"))
    finally:
        wh.close()
    return LoadSummary(loads)
