"""Email-service event webhooks: batches posted by SendGrid, Mailgun or Postmark, landed as files, loaded like the others.

A receiver calls `land_webhook` with the posted body; it is written verbatim (named by its hash, so a
retried post lands once) under <landing>/<day>/webhooks/. Loading maps each provider's event shape onto
`raw.email_events` (delivered, open, click, bounce with its type, spam report, unsubscribe); an event
that cannot be mapped is quarantined with the reason, never dropped.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import duckdb
import fsspec
import pyarrow as pa

from beacon.ingest.core import (
    Batches,
    FileLoad,
    IngestError,
    SourceSpec,
    json_depth_exceeds,
    load_unit,
    record_failure,
    safe_text,
)

PROVIDERS = ("sendgrid", "mailgun", "postmark")

# Each provider's event names onto Beacon's vocabulary (the one stg_esp__email_events reads).
# SendGrid: `deferred` is a temporary delay (the ESP retries), kept as its own event, not a bounce;
# `group_unsubscribe`/`group_resubscribe` concern one subscription group (topic = asm_group_id), not every email.
_SENDGRID = {"processed": "sent", "delivered": "delivered", "open": "open", "click": "click", "bounce": "bounce",
             "dropped": "bounce", "deferred": "deferred", "spamreport": "complaint", "unsubscribe": "unsubscribe",
             "group_unsubscribe": "group_unsubscribe", "group_resubscribe": "group_resubscribe"}
_MAILGUN = {"accepted": "sent", "delivered": "delivered", "opened": "open", "clicked": "click", "failed": "bounce",
            "complained": "complaint", "unsubscribed": "unsubscribe"}
_POSTMARK = {"Delivery": "delivered", "Open": "open", "Click": "click", "Bounce": "bounce",
             "SpamComplaint": "complaint", "SubscriptionChange": "unsubscribe"}
_COLUMNS = ("event_id", "event", "email", "event_at", "message_id", "campaign_id", "bounce_type", "url", "topic")


def webhook_file_name(provider: str, body: bytes) -> str:
    """The landed name of one posted body: the provider (the loader reads it back) and the body's hash."""
    if provider not in PROVIDERS:
        raise ValueError(f"unknown email-service provider {provider!r}; known: {', '.join(PROVIDERS)}")
    return f"{provider}-{hashlib.sha256(body).hexdigest()[:16]}.json"


def land_webhook(body: bytes, provider: str, landing_dir: str, day: str, storage_options: dict | None = None) -> str:
    """Write one posted webhook body to the landing zone (idempotent: the name is the body's hash)."""
    name = webhook_file_name(provider, body)
    fs, root = fsspec.core.url_to_fs(str(landing_dir), **(storage_options or {}))
    path = f"{root}/{day}/webhooks/{name}"
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    if not fs.exists(path):
        with fs.open(path, "wb") as fh:
            fh.write(body)
    return path


def _epoch(v) -> str | None:
    """Seconds since the epoch as text, from a number or an ISO-8601 string (an offset or Z is honoured;
    a naive string is UTC, never the machine's local time)."""
    if v is None or v == "":
        return None
    if isinstance(v, bool):
        raise ValueError(f"timestamp {v!r} is not a time")
    if isinstance(v, int | float):
        return str(int(v))
    t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    return str(int((t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()))


def sendgrid_event_key(e: dict) -> str:
    """A stable id for a SendGrid event without `sg_event_id` (SendGrid's own examples of open, click and
    dropped carry none): a hash of what identifies the occurrence, so a re-posted event gets the same key."""
    parts = [str(e.get(k, "")) for k in ("event", "email", "timestamp", "sg_message_id", "smtp-id", "url",
                                         "asm_group_id", "reason")]
    return "sgd-" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _sendgrid(e: dict) -> dict:
    bounce = None
    if e.get("event") == "bounce":
        bounce = "soft" if e.get("type") == "blocked" else "hard"
    elif e.get("event") == "dropped":
        bounce = "hard"
    topic = e.get("asm_group_id")
    return {"event_id": e.get("sg_event_id") or sendgrid_event_key(e), "event": _SENDGRID[e["event"]],
            "email": e.get("email"), "event_at": _epoch(e.get("timestamp")),
            "message_id": e.get("sg_message_id") or e.get("smtp-id"), "campaign_id": e.get("campaign_id"),
            "bounce_type": bounce, "url": e.get("url"), "topic": None if topic is None else str(topic)}


def _mailgun(e: dict) -> dict:
    d = e["event-data"]
    bounce = None
    if d.get("event") == "failed":
        bounce = "hard" if d.get("severity") == "permanent" else "soft"
    return {"event_id": d.get("id"), "event": _MAILGUN[d["event"]], "email": d.get("recipient"),
            "event_at": _epoch(d.get("timestamp")),
            "message_id": ((d.get("message") or {}).get("headers") or {}).get("message-id"),
            "campaign_id": (d.get("user-variables") or {}).get("campaign_id"), "bounce_type": bounce,
            "url": d.get("url")}


def _postmark(e: dict) -> dict:
    kind = e["RecordType"]
    when = e.get("DeliveredAt") or e.get("ReceivedAt") or e.get("BouncedAt") or e.get("ChangedAt")
    bounce = None
    if kind == "Bounce":
        bounce = "hard" if e.get("Type") == "HardBounce" else "soft"
    event = _POSTMARK[kind]
    if kind == "SubscriptionChange" and not e.get("SuppressSending", True):
        event = "resubscribe"
    eid = e.get("ID") or hashlib.sha256(json.dumps(e, sort_keys=True).encode()).hexdigest()[:24]
    return {"event_id": str(eid), "event": event, "email": e.get("Recipient") or e.get("Email"),
            "event_at": _epoch(when), "message_id": e.get("MessageID"),
            "campaign_id": (e.get("Metadata") or {}).get("campaign_id"), "bounce_type": bounce,
            "url": e.get("OriginalLink")}


_NORMALIZE = {"sendgrid": _sendgrid, "mailgun": _mailgun, "postmark": _postmark}


def _events(provider: str, doc) -> list:
    """The events of one posted body: SendGrid posts an array, Mailgun one object, Postmark one (or an array)."""
    return doc if isinstance(doc, list) else [doc]


def webhook_batches(provider: str, body: bytes, location: str, max_json_depth: int = 64) -> Batches:
    """One webhook file as a text batch in the email_events columns; unmappable events marked malformed."""
    if json_depth_exceeds(body, max_json_depth):  # before json.loads, whose recursion it would exhaust
        raise IngestError(f"{location}: body nests deeper than max_json_depth {max_json_depth}", "json_too_deep")
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise IngestError(f"{location}: body is not UTF-8 ({exc.reason} at byte {exc.start})", "encoding") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise IngestError(f"{location}: body is not valid JSON ({safe_text(exc, 300)})", "malformed_document") from None
    cols: dict[str, list] = {c: [] for c in _COLUMNS}
    lines, malformed, payloads = [], [], []
    for i, e in enumerate(_events(provider, doc), start=1):
        lines.append(i)
        try:
            if not isinstance(e, dict):
                raise ValueError(f"event is a {type(e).__name__}, not an object")
            row = _NORMALIZE[provider](e)
            bad = None
        except KeyError as exc:
            row, bad = {}, f"unknown or missing event field {exc} for {provider}"
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            row, bad = {}, f"cannot map {provider} event: {safe_text(exc, 300)}"
        malformed.append(bad)
        payloads.append(safe_text(json.dumps(e), 1 << 20) if bad else None)
        for c in _COLUMNS:
            v = row.get(c)
            cols[c].append(None if v is None else str(v))

    def batches() -> Iterator[pa.Table]:
        yield pa.table({"_line": pa.array(lines, pa.int64()), "_malformed": pa.array(malformed, pa.string()),
                        "_payload": pa.array(payloads, pa.string()),
                        **{c: pa.array(v, pa.string()) for c, v in cols.items()}})

    return Batches("text", [], batches())


def load_webhook_files(con: duckdb.DuckDBPyConnection, spec: SourceSpec, folder: str, max_event_time: datetime,
                       fs: fsspec.AbstractFileSystem) -> list[FileLoad]:
    """Load every not-yet-loaded webhook batch file of one landing day into raw.email_events.

    A body is parsed whole, so it is capped at max_line_bytes (checked on the size, before reading) and its
    nesting at max_json_depth (checked before json.loads). A bad body fails that file alone."""
    from beacon.ingest.core import regular_file_size

    if not fs.exists(folder):
        return []
    out = []
    lim = spec.limits
    for path in sorted(fs.glob(f"{folder}/*.json")):
        name = path.rsplit("/", 1)[-1]
        provider = name.split("-", 1)[0]
        t0, size = time.perf_counter(), None
        try:
            size = regular_file_size(fs, path)
            if size > lim.max_line_bytes:
                raise IngestError(f"{path}: {size} bytes, more than max_line_bytes {lim.max_line_bytes} for one "
                                  "webhook body", "file_too_large")
            body = fs.cat_file(path)
        except Exception as exc:
            out.append(record_failure(con, spec, location=path, sha="", size=size, exc=exc,
                                      batch_id=f"{spec.name}:webhooks:", t0=t0))
            continue
        sha = hashlib.sha256(body).hexdigest()

        def open_batches(provider=provider, body=body, path=path) -> Batches:
            if provider not in PROVIDERS:
                raise IngestError(f"{path}: unknown provider {provider!r} (file name must start with one of "
                                  f"{', '.join(PROVIDERS)})", "unknown_provider")
            return webhook_batches(provider, body, path, lim.max_json_depth)

        out.append(load_unit(con, spec, location=path, sha=sha, size=len(body), open_batches=open_batches,
                             max_event_time=max_event_time, origin=f"webhook:{provider}",
                             batch_label=path.split("/")[-3] if path.count("/") >= 2 else "webhooks"))
    return out
