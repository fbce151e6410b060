"""Email-service webhooks: /v1/webhooks/{sendgrid|mailgun|postmark}, each verified by its provider's scheme.

- SendGrid (Signed Event Webhook): ECDSA P-256 / SHA-256 signature over the timestamp header followed by the
  raw body, in `X-Twilio-Email-Event-Webhook-Signature` (base64 DER) and `-Timestamp`; the verification key
  is the base64 public key SendGrid shows in its settings.
- Mailgun: HMAC-SHA256 of timestamp + token with the webhook signing key, in the body's `signature` object;
  a token is accepted once (Mailgun's advice) and the timestamp must be recent.
- Postmark: no signature; Postmark documents HTTP Basic auth credentials in the webhook URL (compared in
  constant time here).
A forged post gets 401, a replayed one 409; neither writes anything. An accepted body is landed verbatim
and durably (named by its hash, so a provider's retry lands once) where the webhook loader reads it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import time
from collections import OrderedDict

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from beacon.ingest.webhooks import PROVIDERS, webhook_file_name
from beacon.service.auth import rule
from beacon.service.collect import PayloadError, error_response, read_limited
from beacon.service.durable import utc_day, write_durably

SG_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SG_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


class Refused(Exception):
    def __init__(self, status: int, error: str, detail: str):
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


class SeenCache:
    """Signatures/tokens seen within the replay window (bounded; older entries fall out)."""

    def __init__(self, window: float, max_items: int = 100_000):
        self.window, self.max_items = window, max_items
        self._seen: OrderedDict[str, float] = OrderedDict()

    def add(self, key: str, now: float) -> bool:
        """True when new (now remembered); False when seen inside the window."""
        while self._seen and (len(self._seen) > self.max_items or next(iter(self._seen.values())) < now - self.window):
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


def _fresh(ts: str, now: float, tolerance: int) -> None:
    try:
        t = int(ts)
    except (TypeError, ValueError):
        raise Refused(401, "invalid_signature", "the signed timestamp is not a number") from None
    if abs(now - t) > tolerance:
        raise Refused(409, "replayed", f"the signed timestamp is more than {tolerance} s from now")


def verify_sendgrid(public_key_b64: str, body: bytes, signature: str | None, timestamp: str | None,
                    now: float, tolerance: int) -> None:
    """SendGrid's Signed Event Webhook check (ECDSA P-256, SHA-256, over timestamp + body)."""
    if not signature or not timestamp:
        raise Refused(401, "missing_signature", f"{SG_SIGNATURE} and {SG_TIMESTAMP} are required")
    key = load_der_public_key(base64.b64decode(public_key_b64))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("sendgrid_public_key is not an elliptic-curve public key")
    try:
        key.verify(base64.b64decode(signature, validate=True), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refused(401, "invalid_signature", "the SendGrid signature does not verify") from None
    _fresh(timestamp, now, tolerance)


def verify_mailgun(signing_key: str, doc: dict, now: float, tolerance: int) -> str:
    """Mailgun's check: HMAC-SHA256(signing key, timestamp + token) == signature. Returns the token."""
    sig = doc.get("signature") if isinstance(doc, dict) else None
    if not isinstance(sig, dict) or not all(isinstance(sig.get(k), str) for k in ("timestamp", "token", "signature")):
        raise Refused(401, "missing_signature", "the body needs signature.timestamp, .token and .signature")
    expected = hmac.new(signing_key.encode(), (sig["timestamp"] + sig["token"]).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, sig["signature"]):
        raise Refused(401, "invalid_signature", "the Mailgun signature does not verify")
    _fresh(sig["timestamp"], now, tolerance)
    return sig["token"]


def verify_postmark(user: str, password: str, authorization: str | None) -> None:
    """Postmark's documented protection: HTTP Basic credentials in the webhook URL."""
    if not authorization or authorization[:6].lower() != "basic ":
        raise Refused(401, "missing_credentials", "Postmark webhooks must carry the configured Basic credentials")
    try:
        got = base64.b64decode(authorization[6:].strip(), validate=True)
    except binascii.Error:
        raise Refused(401, "invalid_credentials", "malformed Basic credentials") from None
    if not hmac.compare_digest(got, f"{user}:{password}".encode()):
        raise Refused(401, "invalid_credentials", "wrong Basic credentials")


def router(state) -> APIRouter:
    r = APIRouter(tags=["webhooks"])
    cfg = state.config
    seen = SeenCache(cfg.limits.webhook_tolerance_seconds * 2)

    @r.post("/v1/webhooks/{provider}", summary="Email-service event webhook", openapi_extra=rule("provider_signature"),
            description="SendGrid, Mailgun or Postmark event posts, verified by each provider's scheme. 200 once "
                        "landed; 401 forged/unsigned, 409 replayed, 404 unknown or unconfigured provider.")
    async def webhook(provider: str, request: Request) -> JSONResponse:
        if provider not in PROVIDERS:
            return error_response(404, "unknown_provider", f"known providers: {', '.join(PROVIDERS)}")
        now = time.time()
        tol = cfg.limits.webhook_tolerance_seconds
        try:
            body = await read_limited(request, max(cfg.limits.max_body_bytes, 4 << 20))
            if provider == "sendgrid":
                if not cfg.sendgrid_public_key:
                    return error_response(404, "not_configured", "no sendgrid_public_key configured")
                sig = request.headers.get(SG_SIGNATURE)
                verify_sendgrid(cfg.sendgrid_public_key, body, sig, request.headers.get(SG_TIMESTAMP), now, tol)
                if not seen.add(f"sg:{sig}", now):
                    raise Refused(409, "replayed", "this signature was already accepted")
            elif provider == "mailgun":
                if not cfg.mailgun_signing_key:
                    return error_response(404, "not_configured", "no mailgun_signing_key configured")
                try:
                    doc = orjson.loads(body)
                except orjson.JSONDecodeError:
                    return error_response(400, "malformed_json", "the body is not valid JSON")
                token = verify_mailgun(cfg.mailgun_signing_key, doc, now, tol)
                if not seen.add(f"mg:{token}", now):
                    raise Refused(409, "replayed", "this token was already used")
            else:
                if not (cfg.postmark_user and cfg.postmark_password):
                    return error_response(404, "not_configured", "no postmark_user/postmark_password configured")
                verify_postmark(cfg.postmark_user, cfg.postmark_password, request.headers.get("authorization"))
                try:
                    orjson.loads(body)
                except orjson.JSONDecodeError:
                    return error_response(400, "malformed_json", "the body is not valid JSON")
        except Refused as exc:
            state.counters[f"webhook_refused_{exc.error}"] += 1
            return error_response(exc.status, exc.error, exc.detail)
        except PayloadError as exc:
            return error_response(exc.status, exc.error, exc.detail)
        day = utc_day(now)
        await asyncio.to_thread(write_durably, cfg.landing_dir / day / "webhooks" / webhook_file_name(provider, body),
                                body)
        state.counters["webhooks_landed"] += 1
        return JSONResponse({"success": True})

    return r
