"""Privacy requests in the warehouse: the request store, the tombstones, the audit trail, and the processing loop.

Schema `privacy` (docs/privacy.md):
- `privacy.requests`: one row per request: id, kind (erase | access | suppress), status (accepted, suppressed,
  processing, completed, failed), which kinds of identifier were given and their keyed hashes, who asked, through
  which channel, accepted / due / suppressed / started / completed times, the result (counts per store, status
  per destination, stores left unclean with the reason) and the error of a failed attempt;
- `privacy.tombstones`: the keyed hashes (`beacon.tombstones`) of every identifier of an erased or suppressed
  person: the ingest quarantines a matching row as `erased`, governance refuses to send;
- `privacy.audit`: append-only (only ever inserted into): `accepted`, `suppressed`, then one `completed` (or
  `failed`) record per attempt holding who asked, when, what was done in which store with the counts, the status
  per destination and the completion time. No personal data: identifiers appear only as keyed hashes.

`process_request` runs one request: record it, suppress (tombstones, blocked file), resolve the person through
identity resolution (`subject.resolve_subject`), then by kind: erase (destinations first, while the sync state
still says what each destination holds: the caller's `remove_destinations`, i.e.
`beacon.activation.erasure.remove_subject`; then every store: `erase.erase_subject`), write the access document as
JSON and HTML (`access.build_access_document`, `render_access_html`), or nothing more (suppress). The queue file, the only plaintext copy of the
identifiers, is deleted when the request completes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from beacon.config import Settings
from beacon.fsio import write_durably
from beacon.privacy.queue import (
    IDENTIFIERS,
    Request,
    new_request,
    public_status,
    publish_status,
    queue_path,
    queued,
)
from beacon.tombstones import check_key, hashes_of, write_blocked
from beacon.warehouse import connect, transaction

log = logging.getLogger(__name__)
# Tells the destinations to forget a person: (settings, subject) -> destination -> status. Passed in by the caller
# (the DAG, the command: beacon.activation.erasure.remove_subject), since destinations sit above this package.
RemoveDestinations = Callable[[Settings, object], dict]


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The `privacy` schema's tables (idempotent)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS privacy")
    con.execute("""CREATE TABLE IF NOT EXISTS privacy.requests (
        request_id VARCHAR PRIMARY KEY, kind VARCHAR, status VARCHAR, identifier_kinds VARCHAR,
        identifier_hashes VARCHAR, requested_by VARCHAR, channel VARCHAR, accepted_at TIMESTAMP, due_at TIMESTAMP,
        suppressed_at TIMESTAMP, started_at TIMESTAMP, completed_at TIMESTAMP, updated_at TIMESTAMP,
        attempts INTEGER, result VARCHAR, error VARCHAR)""")
    con.execute("""CREATE TABLE IF NOT EXISTS privacy.tombstones (
        key_hash VARCHAR, request_id VARCHAR, recorded_at TIMESTAMP)""")
    # `seq` orders the trail: recorded_at is to the second, so two records of one request can share it.
    con.execute("CREATE SEQUENCE IF NOT EXISTS privacy.audit_seq")
    con.execute("""CREATE TABLE IF NOT EXISTS privacy.audit (
        seq BIGINT DEFAULT nextval('privacy.audit_seq'), request_id VARCHAR, event VARCHAR, recorded_at TIMESTAMP, kind VARCHAR, requested_by VARCHAR,
        channel VARCHAR, identifier_kinds VARCHAR, accepted_at TIMESTAMP, due_at TIMESTAMP,
        completed_at TIMESTAMP, status VARCHAR, stores VARCHAR, destinations VARCHAR, unclean VARCHAR,
        detail VARCHAR)""")


def _now() -> datetime:
    """Wall-clock UTC (naive): when an operator or a person acted; never used to pick data."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def _audit(con: duckdb.DuckDBPyConnection, req: Request, event: str, status: str, *, completed_at=None,
           stores=None, destinations=None, unclean=None, detail: str | None = None) -> None:
    con.execute("""INSERT INTO privacy.audit (request_id, event, recorded_at, kind, requested_by, channel,
                       identifier_kinds, accepted_at, due_at, completed_at, status, stores, destinations, unclean,
                       detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [req.request_id, event, _now(), req.kind, req.requested_by, req.channel,
                 ",".join(sorted(req.identifiers)), req.accepted_at, req.due_at, completed_at, status,
                 None if stores is None else json.dumps(stores, sort_keys=True),
                 None if destinations is None else json.dumps(destinations, sort_keys=True),
                 None if unclean is None else json.dumps(unclean), detail])


def record(con: duckdb.DuckDBPyConnection, key: str, req: Request) -> bool:
    """Store an accepted request (and its `accepted` audit record) once; False when it was already stored."""
    ensure_tables(con)
    if con.execute("SELECT 1 FROM privacy.requests WHERE request_id = ?", [req.request_id]).fetchone():
        return False
    with transaction(con):
        con.execute("INSERT INTO privacy.requests VALUES (?, ?, 'accepted', ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, 0, "
                    "NULL, NULL)", [req.request_id, req.kind, ",".join(sorted(req.identifiers)),
                                    json.dumps(req.hashes(key)), req.requested_by, req.channel, req.accepted_at,
                                    req.due_at, _now()])
        _audit(con, req, "accepted", "accepted")
    return True


def suppress(con: duckdb.DuckDBPyConnection, landing_dir: Path | str, key: str, req: Request,
             linked: dict[str, list[str]] | None = None) -> int:
    """Tombstone the request's identifiers (and `linked` ones: kind -> values, from identity resolution) in the
    warehouse and the blocked file; the number of new tombstones. Access requests suppress nothing."""
    if req.kind == "access":
        return 0
    hashes = sorted(set(req.hashes(key)) | set(hashes_of(key, linked or {})))
    write_blocked(landing_dir, req.request_id, hashes)
    with transaction(con):
        before = con.execute("SELECT count(*) FROM privacy.tombstones").fetchone()[0]
        con.execute("""INSERT INTO privacy.tombstones
            SELECT DISTINCT h, ?, ? FROM unnest(?::VARCHAR[]) t(h)
            WHERE h NOT IN (SELECT key_hash FROM privacy.tombstones)""", [req.request_id, _now(), hashes])
        added = con.execute("SELECT count(*) FROM privacy.tombstones").fetchone()[0] - before
        first = con.execute("UPDATE privacy.requests SET status = 'suppressed', suppressed_at = ?, updated_at = ? "
                            "WHERE request_id = ? AND suppressed_at IS NULL RETURNING 1",
                            [_now(), _now(), req.request_id]).fetchall()
        if first:
            _audit(con, req, "suppressed", "suppressed", detail=f"{len(hashes)} keyed hashes")
    return added


def linked_identifiers(subject) -> dict[str, list[str]]:
    """Every identifier identity resolution linked to the person, by tombstone kind (from a `Subject`)."""
    get = lambda name: [str(v) for v in (getattr(subject, name, None) or []) if v]  # noqa: E731
    return {"email": get("emails"), "phone": get("phones"),
            "id": get("customer_ids") + get("anonymous_ids") + get("record_ids") + get("source_record_ids")}


def _set_status(con, req: Request, status: str, **cols) -> None:
    sets = ", ".join(f"{k} = ?" for k in cols)
    con.execute(f"UPDATE privacy.requests SET status = ?, updated_at = ?{', ' + sets if sets else ''} "
                "WHERE request_id = ?", [status, _now(), *cols.values(), req.request_id])


def _status_doc(con, request_id: str) -> dict:
    row = con.execute("""SELECT request_id, kind, status, accepted_at, due_at, suppressed_at, completed_at, result,
                                error FROM privacy.requests WHERE request_id = ?""", [request_id]).fetchone()
    keys = ("request_id", "kind", "status", "accepted_at", "due_at", "suppressed_at", "completed_at", "result",
            "error")
    doc = dict(zip(keys, row, strict=True))
    doc["result"] = json.loads(doc["result"]) if doc["result"] else None
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in doc.items()}


def _erase_result(report: dict) -> dict:
    """What a request's record keeps of an erasure report: counts and places, never values."""
    return {"stores": report["stores"], "unclean": report["unclean"], "totals": report["totals"],
            "pseudonymized": report["pseudonymized"], "blanked": report["blanked"],
            "compaction": report.get("compaction", {})}


def _work(s: Settings, req: Request, subject, remove_destinations: RemoveDestinations) -> dict:
    """The kind-specific work on a resolved person; returns stores, destinations, unclean, and the access files."""
    from beacon.privacy import access, erase

    out: dict = {"stores": {}, "destinations": {}, "unclean": []}
    if req.kind == "erase":
        # Destinations first: their removes are built from the sync state that the erasure then deletes.
        out["destinations"] = dict(remove_destinations(s, subject))
        out |= _erase_result(erase.erase_subject(s, subject, req.request_id).to_dict())
    elif req.kind == "access":
        doc = access.build_access_document(s, subject)
        folder = s.data_dir / "privacy" / "access"
        json_path = write_durably(folder / f"{req.request_id}.json", json.dumps(doc, indent=2, default=str).encode())
        write_durably(folder / f"{req.request_id}.html", access.render_access_html(doc).encode())
        out["access_document"] = str(json_path)
    return out


def process_request(s: Settings, req: Request, remove_destinations: RemoveDestinations) -> dict:
    """Run one request to completion (or failure, recorded and retried on the next run); its status document."""
    from beacon.privacy.subject import resolve_subject

    key = check_key(s.privacy_key)
    with connect(s.warehouse_path) as con:
        record(con, key, req)
        suppress(con, s.landing_dir, key, req)
        _set_status(con, req, "processing", started_at=_now())
        con.execute("UPDATE privacy.requests SET attempts = attempts + 1 WHERE request_id = ?", [req.request_id])
        try:
            subject = resolve_subject(con, req.identifiers)
            suppress(con, s.landing_dir, key, req, linked_identifiers(subject))
        except Exception as exc:
            return _fail(con, s, req, exc)
    try:
        work = _work(s, req, subject, remove_destinations)
    except Exception as exc:
        with connect(s.warehouse_path) as con:
            return _fail(con, s, req, exc)
    return _complete(s, req, work)


def _complete(s: Settings, req: Request, work: dict, detail: str | None = None) -> dict:
    """Record a request's completion (status, result, audit record), publish its status and delete its queue file."""
    with connect(s.warehouse_path) as con:
        done = _now()
        status = "completed"
        with transaction(con):
            _set_status(con, req, status, completed_at=done, result=json.dumps(work, sort_keys=True), error=None)
            _audit(con, req, "completed", status, completed_at=done, stores=work["stores"],
                   destinations=work["destinations"], unclean=work["unclean"],
                   detail=detail or ("access document written" if req.kind == "access" else None))
        doc = _status_doc(con, req.request_id)
    publish_status(s.landing_dir, doc)
    queue_path(s.landing_dir, req.request_id).unlink(missing_ok=True)  # the only plaintext copy of the identifiers
    return doc


def _fail(con, s: Settings, req: Request, exc: Exception) -> dict:
    """Record a failed attempt (status, audit); the queue file stays, so the next run retries it."""
    log.warning("privacy request %s failed: %s", req.request_id, type(exc).__name__)
    err = f"{type(exc).__name__}: {exc}"[:500]
    with transaction(con):
        _set_status(con, req, "failed", error=err)
        _audit(con, req, "failed", "failed", detail=err)
    doc = _status_doc(con, req.request_id)
    publish_status(s.landing_dir, doc)
    return doc


def load_queued(s: Settings) -> list[Request]:
    """Store every queued request and suppress it (before any processing): the DAG's first step."""
    key = check_key(s.privacy_key)
    reqs = queued(s.landing_dir)
    if reqs:
        with connect(s.warehouse_path) as con:
            for r in reqs:
                record(con, key, r)
                suppress(con, s.landing_dir, key, r)
                publish_status(s.landing_dir, _status_doc(con, r.request_id))
    return reqs


def process_queued(s: Settings, remove_destinations: RemoveDestinations) -> list[dict]:
    """Process every queued request, oldest first; their status documents. Several erase requests are processed as
    one batch (`process_erase_batch`), the others one by one."""
    reqs = queued(s.landing_dir)
    erases = [r for r in reqs if r.kind == "erase"]
    done = process_erase_batch(s, erases, remove_destinations) if len(erases) > 1 else {}
    return [done.get(r.request_id) or process_request(s, r, remove_destinations) for r in reqs]


def _start_batch(s: Settings, con, key: str, reqs: list[Request]) -> tuple[list[tuple[Request, object]], dict]:
    """Record, suppress and resolve a batch of requests (`resolve_subjects`: one set-based join per identity table for
    all of them); ([(request, subject)], {request id: status document of a request that failed})."""
    from beacon.privacy.subject import SubjectError, resolve_subjects

    for req in reqs:
        record(con, key, req)
        suppress(con, s.landing_dir, key, req)
        _set_status(con, req, "processing", started_at=_now())
        con.execute("UPDATE privacy.requests SET attempts = attempts + 1 WHERE request_id = ?", [req.request_id])
    try:
        resolved = resolve_subjects(con, [r.identifiers for r in reqs])
    except Exception as exc:
        return [], {r.request_id: _fail(con, s, r, exc) for r in reqs}
    ok, failed = [], {}
    for req, subject in zip(reqs, resolved, strict=True):
        try:
            if isinstance(subject, SubjectError):
                raise subject
            suppress(con, s.landing_dir, key, req, linked_identifiers(subject))
            ok.append((req, subject))
        except Exception as exc:
            failed[req.request_id] = _fail(con, s, req, exc)
    return ok, failed


def process_erase_batch(s: Settings, reqs: list[Request], remove_destinations: RemoveDestinations) -> dict[str, dict]:
    """Erase several people at once, as `process_request` erases one: each request recorded, suppressed and resolved
    (together), removed from the destinations, then all erased in one pass (`erase.erase_subjects`: one statement
    per table, one transaction per store, one read of each file, one compaction). Each request's record and audit
    trail get the batch's counts and its own destinations' statuses. A request that cannot be resolved fails alone;
    a failure of the erasure fails every request of the batch (all retried on the next run). Request id -> status
    document."""
    from beacon.privacy import erase

    key = check_key(s.privacy_key)
    with connect(s.warehouse_path) as con:
        ok, out = _start_batch(s, con, key, reqs)
    if not ok:
        return out
    batch = f"batch-{ok[0][0].request_id}-{len(ok)}"
    try:
        destinations = {req.request_id: dict(remove_destinations(s, subject)) for req, subject in ok}
        result = _erase_result(erase.erase_subjects(s, [subject for _, subject in ok], batch).to_dict())
    except Exception as exc:
        with connect(s.warehouse_path) as con:
            return out | {req.request_id: _fail(con, s, req, exc) for req, _ in ok}
    for req, _ in ok:
        work = {**result, "destinations": destinations[req.request_id], "batch": {"id": batch, "requests": len(ok)}}
        out[req.request_id] = _complete(s, req, work, detail=f"erased in {batch} with {len(ok) - 1} other requests; "
                                        "counts are the batch's")
    return out


def submit(s: Settings, kind: str, identifiers: dict, requested_by: str) -> Request:
    """The urgent path (`beacon privacy erase|access|suppress`): accept a request as the service would."""
    from beacon.privacy.queue import accept

    req = new_request(kind, identifiers, requested_by, "cli", s.privacy_due_days)
    accept(s.landing_dir, s.privacy_key, req)
    return req


def statuses(s: Settings, request_id: str | None = None) -> list[dict]:
    """The status of one request or of all (newest first), from the warehouse, plus queued ones not loaded yet."""
    out: dict[str, dict] = {}
    if Path(s.warehouse_path).exists():
        with connect(s.warehouse_path) as con:
            ensure_tables(con)
            ids = [r[0] for r in con.execute(
                "SELECT request_id FROM privacy.requests WHERE ? IS NULL OR request_id = ? ORDER BY accepted_at DESC",
                [request_id, request_id]).fetchall()]
            out = {i: _status_doc(con, i) for i in ids}
    for r in queued(s.landing_dir):
        if r.request_id not in out and request_id in (None, r.request_id):
            out[r.request_id] = public_status(r, "accepted")
    return sorted(out.values(), key=lambda d: d["accepted_at"], reverse=True)


__all__ = ["IDENTIFIERS", "ensure_tables", "load_queued", "process_queued", "process_request", "record", "statuses",
           "submit", "suppress"]
