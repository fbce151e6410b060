"""Accepting a privacy request without the warehouse: validate it, block the person, queue it for processing.

`beacon serve` (POST /v1/privacy/requests) and the `beacon privacy` command accept requests the same way
(`accept`): the keyed hashes of the given identifiers go to a blocked file (`beacon.tombstones`; from that moment
the offers routes, the ingest and governance refuse the person), then the request itself is written durably to
`<landing>/_privacy/requests/<id>.json`, which the `beacon_privacy` DAG (or the command, at once) loads into the
warehouse and processes. The queue file is the only place that holds the identifiers in the clear; it is deleted
once the request is completed. Imports no warehouse code (the service's request path never opens the warehouse).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from beacon.fsio import write_durably
from beacon.tombstones import PRIVACY_DIR, check_key, hashes_of, normalize, write_blocked

__all__ = ["IDENTIFIERS", "KINDS", "PRIVACY_DIR", "STATUSES", "Request", "accept", "new_request", "public_status",
           "publish_status", "queue_path", "queued", "read_status", "validate"]

KINDS = ("erase", "access", "suppress")
STATUSES = ("accepted", "suppressed", "processing", "completed", "failed")
# Identifier fields a request may give -> the tombstone kind they are hashed as.
IDENTIFIERS = {"email": "email", "phone": "phone", "customer_id": "id", "anonymous_id": "id"}
MAX_VALUES = 20  # identifiers per field in one request
MAX_CHARS = 320  # one identifier (the longest valid e-mail address)


@dataclass(frozen=True)
class Request:
    """One accepted request. `identifiers` (field -> values) is personal data: kept in memory and in the queue
    file only, never in the warehouse or the audit trail (they hold keyed hashes)."""

    request_id: str
    kind: str
    identifiers: dict[str, list[str]]
    requested_by: str
    channel: str  # "api" (beacon serve) or "cli"
    accepted_at: datetime  # UTC, naive (the warehouse's TIMESTAMP)
    due_at: datetime

    def hashes(self, key: str) -> list[str]:
        """The keyed hashes of the given identifiers (what the request blocks from acceptance)."""
        by_kind: dict[str, list[str]] = {}
        for field, values in self.identifiers.items():
            by_kind.setdefault(IDENTIFIERS[field], []).extend(values)
        return hashes_of(key, by_kind)

    def to_json(self) -> dict:
        return {"request_id": self.request_id, "kind": self.kind, "identifiers": self.identifiers,
                "requested_by": self.requested_by, "channel": self.channel,
                "accepted_at": self.accepted_at.isoformat(), "due_at": self.due_at.isoformat()}

    @classmethod
    def from_json(cls, doc: dict) -> Request:
        return cls(doc["request_id"], doc["kind"], {k: list(v) for k, v in doc["identifiers"].items()},
                   doc["requested_by"], doc["channel"], datetime.fromisoformat(doc["accepted_at"]),
                   datetime.fromisoformat(doc["due_at"]))


def validate(kind: object, identifiers: object) -> dict[str, list[str]]:
    """The identifiers, cleaned; a ValueError naming the field otherwise (kind, unknown field, empty, too long)."""
    if kind not in KINDS:
        raise ValueError(f"kind: must be one of {', '.join(KINDS)}")
    if not isinstance(identifiers, dict) or not identifiers:
        raise ValueError(f"identifiers: give at least one of {', '.join(IDENTIFIERS)}")
    out: dict[str, list[str]] = {}
    for field, values in identifiers.items():
        if field not in IDENTIFIERS:
            raise ValueError(f"identifiers.{field}: unknown (known: {', '.join(IDENTIFIERS)})")
        values = [values] if isinstance(values, str) else values
        if not isinstance(values, list) or not 0 < len(values) <= MAX_VALUES:
            raise ValueError(f"identifiers.{field}: a string or a list of 1-{MAX_VALUES} strings")
        for v in values:
            if not isinstance(v, str) or not 0 < len(v) <= MAX_CHARS or normalize(IDENTIFIERS[field], v) is None:
                raise ValueError(f"identifiers.{field}: each value must be a non-empty string of at most "
                                 f"{MAX_CHARS} characters" + (" with at least 7 digits" if field == "phone" else ""))
            if field == "email" and "@" not in v:
                raise ValueError("identifiers.email: not an e-mail address")
        out[field] = sorted({v.strip() for v in values})
    return out


def new_request(kind: str, identifiers: dict, requested_by: str, channel: str, due_days: int,
                now: datetime | None = None) -> Request:
    """A validated request with a fresh id, accepted now (UTC), due `due_days` later."""
    ids = validate(kind, identifiers)
    at = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None, microsecond=0)
    rid = f"pr-{at:%Y%m%d}-{secrets.token_hex(6)}"
    return Request(rid, kind, ids, requested_by, channel, at, at + timedelta(days=due_days))


def queue_dir(landing_dir: Path | str) -> Path:
    return Path(landing_dir) / PRIVACY_DIR / "requests"


def queue_path(landing_dir: Path | str, request_id: str) -> Path:
    return queue_dir(landing_dir) / f"{request_id}.json"


def accept(landing_dir: Path | str, key: str | None, req: Request) -> Path:
    """Make the request durable: the blocked file first (suppression is in force from here; access requests block
    nothing), then the queue file. Returns the queue file."""
    key = check_key(key)
    if req.kind != "access":
        write_blocked(landing_dir, req.request_id, req.hashes(key))
    return write_durably(queue_path(landing_dir, req.request_id), json.dumps(req.to_json()).encode())


def queued(landing_dir: Path | str) -> list[Request]:
    """Every request waiting in the queue, oldest first; a file that does not parse is an error naming it."""
    folder = queue_dir(landing_dir)
    out = []
    for f in sorted(folder.glob("pr-*.json")) if folder.is_dir() else []:
        try:
            out.append(Request.from_json(json.loads(f.read_text())))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{f}: not a privacy request ({exc})") from None
    return sorted(out, key=lambda r: (r.accepted_at, r.request_id))


def read_queued(landing_dir: Path | str, request_id: str) -> Request | None:
    p = queue_path(landing_dir, request_id)
    return Request.from_json(json.loads(p.read_text())) if p.exists() else None


def status_path(landing_dir: Path | str, request_id: str) -> Path:
    """Where the processing publishes a request's status for `beacon serve` (GET /v1/privacy/requests/{id})."""
    return Path(landing_dir) / PRIVACY_DIR / "status" / f"{request_id}.json"


def publish_status(landing_dir: Path | str, doc: dict) -> Path:
    """Write a request's status document (no personal data: id, kind, status, dates, counts)."""
    return write_durably(status_path(landing_dir, doc["request_id"]), json.dumps(doc, default=str).encode())


def read_status(landing_dir: Path | str, request_id: str) -> dict | None:
    """The published status of a request, else the queued request's own (accepted), else None."""
    p = status_path(landing_dir, request_id)
    if p.exists():
        return json.loads(p.read_text())
    req = read_queued(landing_dir, request_id)
    return None if req is None else public_status(req, "accepted")


def public_status(req: Request, status: str) -> dict:
    """What may be said about a request (no identifiers)."""
    return {"request_id": req.request_id, "kind": req.kind, "status": status,
            "accepted_at": req.accepted_at.isoformat(), "due_at": req.due_at.isoformat()}
