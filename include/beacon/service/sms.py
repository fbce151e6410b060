"""Inbound SMS keywords: POST /v1/sms/inbound, as Twilio (and Twilio-compatible providers) post a reply.

The request is verified with Twilio's scheme (X-Twilio-Signature = base64 HMAC-SHA1 of the public URL followed
by every POST parameter name and value, sorted by name, with the account's auth token). STOP-type keywords
(the CTIA list Twilio honours: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, OPTOUT, REVOKE) record an SMS
opt-out for the sender's number, START/UNSTOP/YES an opt-in, HELP/INFO answer with the help text; the answer
is TwiML. Records go to the landing zone like every consent record, fsynced, before the answer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from html import escape
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from beacon.activation.preferences import now_text, preference_file, record_id
from beacon.service.auth import rule
from beacon.service.collect import PayloadError, read_limited
from beacon.service.durable import utc_day, write_durably

STOP = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
START = {"START", "UNSTOP", "YES"}
HELP = {"HELP", "INFO"}


def twilio_signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    data = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def keyword(body: str) -> str | None:
    """STOP / START / HELP when the message is one of those keywords (case and spaces ignored), else None."""
    word = body.strip().upper()
    return "STOP" if word in STOP else "START" if word in START else "HELP" if word in HELP else None


def _twiml(text: str | None) -> Response:
    inner = f"<Message>{escape(text)}</Message>" if text else ""
    return Response(f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>', media_type="application/xml")


def router(state) -> APIRouter:
    r = APIRouter(tags=["sms"])
    cfg = state.config

    @r.post("/v1/sms/inbound", summary="Inbound SMS (STOP/START/HELP keywords)", openapi_extra=rule("provider_signature"),
            description="Twilio-style form post, verified with X-Twilio-Signature. TwiML answer; 403 when the "
                        "signature does not verify; 503 when no sms_auth_token is configured.")
    async def inbound(request: Request) -> Response:
        token = cfg.sms.get("auth_token") if cfg.sms else None
        if not token:
            return JSONResponse({"error": "not_configured"}, status_code=503)
        try:
            body = await read_limited(request, 16_384)
        except PayloadError as exc:
            return JSONResponse({"error": exc.error}, status_code=exc.status)
        params = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        url = cfg.public_base_url + "/v1/sms/inbound"
        if not hmac.compare_digest(twilio_signature(token, url, params), request.headers.get("x-twilio-signature", "")):
            return JSONResponse({"error": "invalid_signature"}, status_code=403)
        p = dict(params)
        kind = keyword(p.get("Body", ""))
        phone = p.get("From", "")
        if kind in ("STOP", "START") and phone:
            now = time.time()
            status = "opt_out" if kind == "STOP" else "opt_in"
            rec = {"consent_id": "sms-" + record_id("sms", phone, p.get("MessageSid", ""), status), "phone": phone,
                   "channel": "sms", "status": status, "source": f"sms-keyword:{p.get('Body', '').strip().upper()}",
                   "recorded_at": now_text(now)}
            name, data = preference_file([rec])
            await asyncio.to_thread(write_durably, cfg.landing_dir / utc_day(now) / name, data)
            state.counters[f"sms_{status}"] += 1
            return _twiml(None)  # the carrier/provider sends its own STOP confirmation
        if kind == "HELP":
            return _twiml(cfg.sms.get("help_text") or "Reply STOP to unsubscribe. Msg&data rates may apply.")
        return _twiml(None)

    return r
