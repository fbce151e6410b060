"""Segment-spec collection: POST /v1/{track,identify,page,screen,group,alias} and /v1/batch.

A write key (HTTP Basic username, as Segment's libraries send it, or `writeKey` in the body) names the
source. The body is decoded (gzip, deflate; `bodies`) and size-checked on the decompressed stream before it
is parsed, validated with pydantic (a 400 names each bad field as a dotted path, e.g. `batch.3.event`),
rate-limited per key, and acknowledged only after its lines are fsynced (DurableLog). Each stored line is the
whole message as sent (every property, trait and context field) plus `receivedAt`, `source` and the
clock-skew-corrected `timestamp` (`originalTimestamp` keeps the client's). Nothing here opens the warehouse.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from beacon.service.auth import rule
from beacon.service.bodies import PayloadError, read_decoded


def _id_text(v: Any) -> Any:
    """Segment accepts numeric user ids; they are stored as text (a bool is not an id)."""
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


# The length limits before the BeforeValidator: pydantic-core checks them (after it, they run as Python per value).
Id = Annotated[str, Field(min_length=1, max_length=256), BeforeValidator(_id_text)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=False)

    messageId: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    userId: Id | None = None
    anonymousId: Id | None = None
    timestamp: datetime | None = None
    sentAt: datetime | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _someone(self):
        if self.userId is None and self.anonymousId is None:
            raise ValueError("userId or anonymousId is required")
        return self


class Track(_Message):
    type: Literal["track"] = "track"
    event: Annotated[str, Field(min_length=1, max_length=200)]
    properties: dict[str, Any] | None = None


class Identify(_Message):
    type: Literal["identify"] = "identify"
    traits: dict[str, Any] | None = None


class Page(_Message):
    type: Literal["page"] = "page"
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] | None = None


class Screen(_Message):
    type: Literal["screen"] = "screen"
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] | None = None


class Group(_Message):
    type: Literal["group"] = "group"
    groupId: Id
    traits: dict[str, Any] | None = None


class Alias(_Message):
    """`previousId` (an anonymous id, or an old user id) is the same person as `userId`."""

    type: Literal["alias"] = "alias"
    previousId: Id
    userId: Id


KINDS = ("track", "identify", "page", "screen", "group", "alias")
Message = Annotated[Track | Identify | Page | Screen | Group | Alias, Field(discriminator="type")]


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    batch: Annotated[list[Message], Field(min_length=1)]
    context: dict[str, Any] | None = None
    sentAt: datetime | None = None  # Segment's libraries stamp the batch, not each message


_ADAPTERS = {k: TypeAdapter(m) for k, m in zip(KINDS, (Track, Identify, Page, Screen, Group, Alias), strict=True)}
_ADAPTERS["batch"] = TypeAdapter(BatchBody)


def _field_errors(exc: ValidationError) -> list[dict]:
    """Pydantic errors as {field, message}: the dotted path names the field (discriminator tags dropped)."""
    out = []
    for e in exc.errors(include_url=False, include_input=False):
        loc = [str(p) for p in e["loc"] if p not in KINDS]
        out.append({"field": ".".join(loc) or "(body)", "message": e["msg"]})
    return out


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t  # a naive client time is read as UTC


def correct_clock(event: dict, timestamp: datetime | None, sent_at: datetime | None, received: datetime) -> None:
    """Segment's clock-skew correction: timestamp = receivedAt - (sentAt - originalTimestamp).

    The client stamps an event and the batch on its own (possibly wrong) clock; their difference is how long
    the event waited on the device, which is subtracted from the server's receive time. The client's stamp is
    kept as `originalTimestamp`; without `sentAt` there is nothing to correct by, without a `timestamp` the
    event happened when it was received. Times are left as datetimes: `dump_line` writes them (UTC, `Z`)."""
    event["receivedAt"] = received
    if timestamp is None:
        event["timestamp"] = received
        return
    event["originalTimestamp"] = event["timestamp"]
    if sent_at is not None:
        event["timestamp"] = received - (_utc(sent_at) - _utc(timestamp))


def dump_line(event: dict) -> bytes:
    """One stored JSON line (datetimes as RFC 3339 UTC with `Z`)."""
    return orjson.dumps(event, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE)


def parse_payload(kind: str, body: bytes, max_event_bytes: int, max_batch_events: int,
                  received: datetime | None = None) -> list[dict]:
    """Validate one posted body; the events as dicts ready to store, or PayloadError naming the fields.

    With `received` (the server's clock), `receivedAt` is set and `timestamp` corrected for clock skew."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(400, "malformed_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PayloadError(400, "invalid_payload", [{"field": "(body)", "message": "must be a JSON object"}])
    if kind == "batch":
        items = doc.get("batch")
        if isinstance(items, list) and len(items) > max_batch_events:
            raise PayloadError(413, "batch_too_large", [{"field": "batch", "message":
                               f"{len(items)} events, more than the limit of {max_batch_events}"}])
    try:
        model = _ADAPTERS[kind].validate_python(doc)
    except ValidationError as exc:
        raise PayloadError(400, "invalid_payload", _field_errors(exc)) from None
    messages, raws = (model.batch, doc["batch"]) if kind == "batch" else ([model], [doc])
    out = []
    for i, (m, raw) in enumerate(zip(messages, raws, strict=True)):
        d = stored_fields(raw, m)
        if kind == "batch":
            if model.context and "context" not in d:
                d["context"] = model.context
            if model.sentAt and "sentAt" not in d:
                d["sentAt"] = _utc(model.sentAt)
        size = len(orjson.dumps(d, option=orjson.OPT_UTC_Z))  # the event as the client sent it (no server fields)
        if size > max_event_bytes:
            where = f"batch.{i}" if kind == "batch" else "(body)"
            raise PayloadError(413, "event_too_large", [{"field": where, "message":
                               f"{size} bytes, more than the limit of {max_event_bytes} per event"}])
        if received is not None:
            correct_clock(d, m.timestamp, m.sentAt or (model.sentAt if kind == "batch" else None), received)
        out.append(d)
    return out


# Stored as validated: ids as text (Segment accepts numbers), times as datetimes (dump_line writes RFC 3339 UTC).
_TYPED = ("userId", "anonymousId", "groupId", "previousId", "timestamp", "sentAt")


def stored_fields(raw: dict, m: _Message) -> dict:
    """The message to store, from the JSON as sent and its validated model (no re-serialisation of the model).

    Every field the client sent is kept as sent (nested values untouched), except: top-level nulls are dropped,
    `type` is the validated call type, ids are the validated text, `timestamp`/`sentAt` the parsed datetimes
    (`dump_line` writes them in RFC 3339), and `writeKey` (a secret) is never stored."""
    d = {k: v for k, v in raw.items() if v is not None}
    fields = m.__dict__  # the declared fields (getattr of an absent one goes through pydantic's slow __getattr__)
    d["type"] = fields["type"]
    for f in _TYPED:
        v = fields.get(f)
        if v is not None:
            d[f] = v
    d.pop("writeKey", None)
    return d


class RateLimiter:
    """A token bucket per write key, counted in events (refilled continuously)."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, n: int, now: float) -> float:
        """0 when allowed (tokens taken), else the seconds to wait before `n` events fit."""
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if n > tokens:
            self._buckets[key] = (tokens, now)
            return max((n - tokens) / self.rate, 0.001)
        self._buckets[key] = (tokens - n, now)
        return 0.0


def write_key_from(request: Request, write_keys: dict[str, str]) -> tuple[str | None, str | None]:
    """(key, source) from HTTP Basic auth (key as the username), or (None, None) when absent."""
    auth = request.headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        try:
            user = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8").split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError):
            return "", None
        for k, src in write_keys.items():  # constant-time compare against each key
            if hmac.compare_digest(k.encode(), user.encode()):
                return k, src
        return user, None
    return None, None


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it passes `limit` bytes (Content-Length is checked first)."""
    cl = request.headers.get("content-length")
    if cl is not None and cl.isdigit() and int(cl) > limit:
        raise PayloadError(413, "body_too_large", f"{cl} bytes, more than the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadError(413, "body_too_large", f"more than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def error_response(status: int, error: str, detail, headers: dict | None = None) -> JSONResponse:
    """The error body: Beacon's `error` and `detail`, plus `code` and `message`, the two fields Segment's and
    RudderStack's libraries read from a refusal (`APIError(status, payload['code'], payload['message'])`)."""
    message = detail if isinstance(detail, str) else "; ".join(f"{d['field']}: {d['message']}" for d in detail)
    return JSONResponse({"success": False, "code": error, "message": message, "error": error, "detail": detail},
                        status_code=status, headers=headers)


UNAVAILABLE_RETRY_SECONDS = 5  # Retry-After of a 503 (the spool could not be written: disk full, shutting down)


def _source_of(request: Request, body: bytes, write_keys: dict[str, str]) -> tuple[str | None, str | None]:
    """(key, source) from HTTP Basic auth, else from `writeKey` in the body (Segment accepts both)."""
    key, source = write_key_from(request, write_keys)
    if key is None:
        try:
            wk = orjson.loads(body).get("writeKey") if body else None
        except (orjson.JSONDecodeError, AttributeError):
            wk = None
        if isinstance(wk, str):
            source = next((s for k, s in write_keys.items() if hmac.compare_digest(k.encode(), wk.encode())), None)
            key = wk
    return key, source


def router(state) -> APIRouter:
    """The collection routes over the app's state (config, durable log, rate limiter, counters)."""
    r = APIRouter(tags=["collection"])
    cfg = state.config
    lim = cfg.limits
    unknown_key = {"WWW-Authenticate": 'Basic realm="beacon"'}

    async def collect(kind: str, request: Request) -> JSONResponse:
        try:
            body = await read_decoded(request, lim.max_body_bytes)
            key, source = _source_of(request, body, cfg.write_keys)
            if key is None:
                return error_response(401, "missing_write_key", "send the source's write key as the HTTP Basic "
                                      "username", unknown_key)
            if source is None:
                return error_response(401, "invalid_write_key", "the write key is not known", unknown_key)
            events = parse_payload(kind, body, lim.max_event_bytes, lim.max_batch_events, datetime.now(UTC))
        except PayloadError as exc:
            return error_response(exc.status, exc.error, exc.detail, exc.headers)
        wait = state.limiter.take(key, len(events), time.monotonic())
        if wait:
            return error_response(429, "rate_limited", f"more than {lim.rate_events_per_second:g} events/s for "
                                  "this write key", {"Retry-After": str(max(1, round(wait + 0.5)))})
        lines = []
        for e in events:
            if "messageId" not in e:  # a retried message without one cannot dedupe (not setdefault: uuid4 is a syscall)
                e["messageId"] = f"beacon-{uuid.uuid4()}"
            e["source"] = source
            lines.append(dump_line(e))
        try:
            await asyncio.wrap_future(state.log.submit(b"".join(lines)))  # durable before the 200
        except Exception:  # noqa: BLE001 - disk full, I/O error, shutting down: not acknowledged, the client retries
            return error_response(503, "unavailable", "the events could not be stored; nothing was kept, retry",
                                  {"Retry-After": str(UNAVAILABLE_RETRY_SECONDS)})
        state.counters["events_acknowledged"] += len(events)
        return JSONResponse({"success": True})

    def make(kind: str):
        async def handler(request: Request) -> JSONResponse:
            return await collect(kind, request)
        handler.__name__ = f"collect_{kind}"
        return handler

    for kind in (*KINDS, "batch"):
        r.add_api_route(f"/v1/{kind}", make(kind), methods=["POST"], summary=f"Segment {kind} call",
                        openapi_extra=rule("write_key"),
                        description=f"Accepts a Segment-spec `{kind}` body, plain or with Content-Encoding gzip or "
                                    "deflate; 200 only once it is durable. Errors (body: code, message, detail): "
                                    "400 invalid_payload/malformed_json/malformed_body (fields named), 401 "
                                    "missing/invalid_write_key, 413 body (decompressed)/event/batch too large, "
                                    "415 unsupported_encoding, 429 rate_limited and 503 unavailable with "
                                    "Retry-After.")
    return r
