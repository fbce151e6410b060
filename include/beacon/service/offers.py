"""Real-time offers from an in-memory copy of a published snapshot, behind a credential.

Server-side: GET /v1/profiles/{id}/offers with an offers key. Browser: GET /v1/offers with a short-lived
visitor token (HMAC over the subject and expiry) that the site's server gets from POST /v1/offers/tokens.
Never by a raw email, and an unknown subject gets the same answer as one who may not be personalized.

The pipeline publishes a Parquet snapshot after the marts (beacon.activation.offers.publish_offers): one row
per lookup key (customer id, email SHA-256, anonymous id linked by identity resolution) with the customer
id, the offers as JSON and whether the person may be personalized (consent and suppression applied when
it is published). The store loads a new file into a fresh dict and swaps the reference in one assignment,
so a request sees the old snapshot or the new one, never a mix; the file is published by rename.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from beacon.service.auth import TOKEN_MAX_SECONDS, bearer, issue_token, key_matches, rule, verify_token
from beacon.service.collect import PayloadError, read_limited

SNAPSHOT_COLUMNS = ("key", "customer_id", "offers", "allowed")


@dataclass(frozen=True)
class Snapshot:
    index: dict[str, tuple[str, bytes, bool, bytes]]  # key -> (customer id, offers JSON, allowed, products JSON)
    profiles: int
    version: str


def load_snapshot(path: Path) -> Snapshot:
    """Read a published snapshot into a dict (columns SNAPSHOT_COLUMNS; a missing column is an error)."""
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    missing = [c for c in SNAPSHOT_COLUMNS if c not in t.column_names]
    if missing:
        raise ValueError(f"{path}: offers snapshot lacks column(s) {missing}")
    keys, cids = t.column("key").to_pylist(), t.column("customer_id").to_pylist()
    offers, allowed = t.column("offers").to_pylist(), t.column("allowed").to_pylist()
    # Recommended products are optional (older snapshots have none).
    recs = t.column("recommendations").to_pylist() if "recommendations" in t.column_names else ["[]"] * len(keys)
    index = {k: (c, o.encode(), bool(a), (r or "[]").encode())
             for k, c, o, a, r in zip(keys, cids, offers, allowed, recs, strict=True)}
    st = os.stat(path)
    return Snapshot(index, len(set(cids)), f"{st.st_mtime_ns}-{st.st_size}")


class OfferStore:
    """The current snapshot, reloaded by a background thread when the published file changes."""

    def __init__(self, path: Path | None, poll_seconds: float = 1.0, blocked=None):
        self.path, self.poll_seconds = path, poll_seconds
        # People with a privacy request (beacon.service.privacy.BlockedSet): answered exactly as a stranger.
        self.blocked = blocked
        self.current: Snapshot | None = None
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Load the file when it changed since the current snapshot; True when swapped."""
        if self.blocked is not None:
            self.blocked.refresh()
        if self.path is None or not self.path.exists():
            return False
        st = os.stat(self.path)
        if self.current is not None and self.current.version == f"{st.st_mtime_ns}-{st.st_size}":
            return False
        try:
            snap = load_snapshot(self.path)
        except Exception as exc:  # a bad snapshot keeps the previous one serving
            self.error = str(exc)
            return False
        self.current, self.error = snap, None  # one reference assignment: atomic for readers
        return True

    def is_blocked(self, subject: str) -> bool:
        return self.blocked is not None and self.blocked.has(subject)

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="beacon-offers", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)


_EMPTY = b'[]'
_UNAUTHORIZED = {"error": "unauthorized", "detail": "send an offers key or a visitor token as Authorization: Bearer"}


def answer(snap: Snapshot, subject: str, blocked: bool = False) -> Response:
    """The offers for one lookup key (customer id, email SHA-256 or anonymous id).

    Unknown, not allowed (erased, complained, opted out) and known without offers all get the same 200 with
    empty lists: the status, headers and body never say whether the subject is a customer. The customer id
    is not echoed (the caller already holds the key it asked for). `blocked` (a privacy request was accepted for
    the person): answered as a stranger."""
    hit = None if blocked else snap.index.get(subject)
    offers_json, products_json = (hit[1], hit[3]) if hit is not None and hit[2] else (_EMPTY, _EMPTY)
    return Response(b'{"snapshot":"' + snap.version.encode() + b'","offers":' + offers_json
                    + b',"recommendations":' + products_json + b"}", media_type="application/json",
                    headers={"Cache-Control": "no-store"})


def _unauthorized() -> JSONResponse:
    return JSONResponse(_UNAUTHORIZED, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="beacon"',
                                                                  "Cache-Control": "no-store"})


def _no_snapshot() -> JSONResponse:
    return JSONResponse({"error": "no_snapshot", "detail": "no offers snapshot has been published"},
                        status_code=503, headers={"Retry-After": "60"})  # the next activation run


def _raw_email() -> JSONResponse:
    return JSONResponse({"error": "raw_email_refused", "detail": [{"field": "subject", "message":
                         "look up by customer id, anonymous id or the SHA-256 of the normalized email"}]},
                        status_code=400)


def router(state, store: OfferStore) -> APIRouter:
    r = APIRouter(tags=["offers"])
    cfg = state.config

    @r.get("/v1/profiles/{profile_id}/offers", summary="Next best offers (server-side, offers key)",
           openapi_extra=rule("offers_key"),
           description="Authorization: Bearer <offers key>. By customer id, SHA-256 of the normalized email or "
                       "anonymous id (a raw email is refused with 400, whoever it is). 200 with offers; the same "
                       "200 with empty lists for an unknown subject or one who may not be personalized; 401 "
                       "without a valid key (the same answer for every subject); 503 before the first snapshot.")
    async def offers(profile_id: str, request: Request) -> Response:
        snap = store.current
        if snap is None:
            return _no_snapshot()
        if key_matches(bearer(request), cfg.offers_keys) is None:
            return _unauthorized()
        if "@" in profile_id:
            return _raw_email()
        return answer(snap, profile_id, store.is_blocked(profile_id))

    @r.post("/v1/offers/tokens", summary="Issue a visitor token (server-side, offers key)",
            openapi_extra=rule("offers_key"),
            description="Authorization: Bearer <offers key>; JSON body `{\"subject\": <customer id, email SHA-256 "
                        "or anonymous id>, \"ttl_seconds\": <= 3600}`. 200 `{token, expires_at}` for any subject "
                        "(known or not); 400 a raw email or a bad body; 401 without a key; 503 no token secret.")
    async def issue(request: Request) -> JSONResponse:
        if key_matches(bearer(request), cfg.offers_keys) is None:
            return _unauthorized()
        if not cfg.offers_token_secret:
            return JSONResponse({"error": "not_configured", "detail": "no offers_token_secret"}, status_code=503)
        try:
            doc = json.loads(await read_limited(request, 4096))
            subject, ttl = doc["subject"], int(doc.get("ttl_seconds", 900))
            if not isinstance(subject, str) or not 0 < len(subject) <= 256 or not 0 < ttl <= TOKEN_MAX_SECONDS:
                raise ValueError
        except PayloadError as exc:
            return JSONResponse({"error": exc.error}, status_code=exc.status)
        except (ValueError, TypeError, KeyError, AttributeError):
            return JSONResponse({"error": "invalid_body", "detail": [{"field": "subject", "message": "a string of "
                                 f"1-256 characters; ttl_seconds 1-{TOKEN_MAX_SECONDS}"}]}, status_code=400)
        if "@" in subject:
            return _raw_email()
        expires = int(time.time()) + ttl
        return JSONResponse({"token": issue_token(cfg.offers_token_secret, subject, expires), "expires_at": expires},
                            headers={"Cache-Control": "no-store"})

    @r.get("/v1/offers", summary="Next best offers for the visitor a token names (browser)",
           openapi_extra=rule("signed_token"),
           description="Authorization: Bearer <visitor token> from POST /v1/offers/tokens; the token binds the "
                       "subject and expires. The same answers as the server-side route; 401 for a missing, forged "
                       "or expired token.")
    async def visitor_offers(request: Request) -> Response:
        snap = store.current
        if snap is None:
            return _no_snapshot()
        subject = verify_token(cfg.offers_token_secret, bearer(request), time.time()) \
            if cfg.offers_token_secret else None
        if subject is None:
            return _unauthorized()
        return answer(snap, subject, store.is_blocked(subject))

    return r
