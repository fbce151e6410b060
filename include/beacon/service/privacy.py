"""Privacy requests on `beacon serve`: accept (POST /v1/privacy/requests) and read a status (GET), admin key only.

The request path never opens the warehouse: an accepted request is written durably as a blocked file (keyed hashes
of the identifiers: from that moment the offers routes answer as for a stranger, the ingest quarantines the
person's rows and governance refuses to send) and a queue file that the `beacon_privacy` DAG loads and processes
(`beacon.privacy.queue`). A status is read from the file the processing publishes. `BlockedSet` is the offers
routes' in-memory copy of the blocked hashes, reloaded when the blocked files change.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from beacon.privacy.queue import accept as accept_request
from beacon.privacy.queue import new_request, read_status
from beacon.service.auth import bearer, key_matches, rule
from beacon.service.collect import PayloadError, read_limited
from beacon.tombstones import blocked_version, check_key, keyed_hash, read_blocked

log = logging.getLogger("beacon.service")
_ID = re.compile(r"^pr-[0-9]{8}-[0-9a-f]{12}$")
_UNAUTHORIZED = {"error": "unauthorized", "detail": "send an admin key as Authorization: Bearer"}


class BlockedSet:
    """The keyed hashes of blocked people (the blocked files), for the offers routes; `has` is a set lookup."""

    def __init__(self, landing_dir, key: str | None):
        self.landing_dir, self.key = landing_dir, key
        self._hashes: frozenset[str] = frozenset()
        self._version: tuple = ()
        self._lock = threading.Lock()
        self.error: str | None = None

    def refresh(self) -> None:
        version = blocked_version(self.landing_dir)
        if version == self._version:
            return
        try:
            hashes = frozenset(read_blocked(self.landing_dir))
        except ValueError as exc:  # a broken file keeps the previous set (never unblocks anyone)
            self.error = str(exc)
            return
        with self._lock:
            self._hashes, self._version, self.error = self._hashes | hashes, version, None

    def add(self, hashes) -> None:
        with self._lock:
            self._hashes = self._hashes | frozenset(hashes)

    def has(self, subject: str) -> bool:
        """True when the offers subject (customer id, anonymous id or e-mail SHA-256) belongs to a blocked person.
        With blocked hashes but no key nothing can be told apart: everyone is answered as a stranger."""
        if not self._hashes:
            return False
        if not self.key:
            return True
        return any(keyed_hash(self.key, kind, subject) in self._hashes for kind in ("id", "email_sha"))


def _unauthorized() -> JSONResponse:
    return JSONResponse(_UNAUTHORIZED, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="beacon"',
                                                                  "Cache-Control": "no-store"})


def router(state, blocked: BlockedSet) -> APIRouter:
    r = APIRouter(tags=["privacy"])
    cfg = state.config

    @r.post("/v1/privacy/requests", summary="Accept a privacy request (erase, access, suppress; admin key)",
            openapi_extra=rule("admin_key"), status_code=202,
            description="Authorization: Bearer <admin key> (never a write or offers key). JSON body `{\"kind\": "
                        "\"erase\" | \"access\" | \"suppress\", \"identifiers\": {\"email\" | \"phone\" | "
                        "\"customer_id\" | \"anonymous_id\": <string or list>}}`. 202 `{request_id, kind, status, "
                        "accepted_at, due_at}` once the request is durably queued and the person suppressed (erase, "
                        "suppress); 400 a bad body (the field named); 401 without an admin key; 503 when the "
                        "service has no privacy key or the disk refuses the write.")
    async def create(request: Request) -> JSONResponse:
        who = key_matches(bearer(request), cfg.admin_keys)
        if who is None:
            return _unauthorized()
        try:
            check_key(cfg.privacy_key)
        except ValueError:
            return JSONResponse({"error": "not_configured", "detail": "BEACON_PRIVACY_KEY is not set"},
                                status_code=503)
        try:
            doc = json.loads(await read_limited(request, 16_384))
            if not isinstance(doc, dict):
                raise ValueError("the body must be a JSON object")
            req = new_request(doc.get("kind"), doc.get("identifiers"), f"api:{who}", "api", cfg.privacy_due_days)
        except PayloadError as exc:
            return JSONResponse({"error": exc.error}, status_code=exc.status)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError; messages name the field, never a value
            msg = "not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
            return JSONResponse({"error": "invalid_body", "detail": msg}, status_code=400)
        try:
            await asyncio.to_thread(accept_request, cfg.landing_dir, cfg.privacy_key, req)
        except OSError as exc:
            log.error("privacy request not written: %s", type(exc).__name__)
            return JSONResponse({"error": "unavailable"}, status_code=503, headers={"Retry-After": "5"})
        if req.kind != "access":
            blocked.add(req.hashes(cfg.privacy_key))  # in force now, before the file poll
        state.counters["privacy_requests"] += 1
        return JSONResponse({"request_id": req.request_id, "kind": req.kind, "status": "accepted",
                             "accepted_at": req.accepted_at.isoformat(), "due_at": req.due_at.isoformat()},
                            status_code=202, headers={"Cache-Control": "no-store"})

    @r.get("/v1/privacy/requests/{request_id}", summary="A privacy request's status (admin key)",
           openapi_extra=rule("admin_key"),
           description="Authorization: Bearer <admin key>. 200 `{request_id, kind, status, accepted_at, due_at, "
                       "...}` (no identifiers); 404 unknown id; 401 without an admin key.")
    async def status(request_id: str, request: Request) -> JSONResponse:
        if key_matches(bearer(request), cfg.admin_keys) is None:
            return _unauthorized()
        doc = read_status(cfg.landing_dir, request_id) if _ID.match(request_id) else None
        if doc is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse(doc, headers={"Cache-Control": "no-store"})

    return r
