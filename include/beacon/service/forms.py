"""Lead-capture forms with double opt-in: POST /v1/forms/{form} sends a signed confirmation link; only
GET /v1/forms/confirm (the person clicking it) records the consent, with its proof.

The link carries the form, the email, the topics, the request time and an HMAC-SHA256 over them
(`form_secret`); it expires after 48 hours. Nothing is recorded before the confirmation: an address typed
by someone else gets one email and no consent. The proof (form, topics, request and confirmation times, a
hash of the token) is stored with the consent record.

Abuse: posts are limited per client IP and per address (a keyed hash of the normalized email, the address
itself never kept) in a window (`limits.form_*`); 429 with Retry-After. A filled honeypot field gets the
same 202 and nothing is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import smtplib
import time
from email.message import EmailMessage
from html import escape
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from beacon.activation.preferences import now_text, preference_file, record_id
from beacon.service.auth import KeyedHash, WindowLimiter, rule
from beacon.service.collect import PayloadError, read_limited
from beacon.service.durable import utc_day, write_durably
from beacon.service.preferences import _page

CONFIRM_SECONDS = 48 * 3600
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")
_FORM = re.compile(r"^[a-z0-9_-]{1,64}$")
HONEYPOT = "website"  # a hidden field people leave empty and form-filling bots fill


def confirm_token(secret: str, form: str, email: str, topics: str, issued: int) -> str:
    msg = f"confirm:{form}:{email}:{topics}:{issued}"
    return hmac.new(secret.encode(), msg.encode(), hashlib.sha256).hexdigest()[:40]


def send_confirmation(smtp: dict, to: str, link: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = smtp["from"], to, "Please confirm your subscription"
    msg.set_content(f"Confirm your subscription by opening this link within 48 hours:\n{link}\n\n"
                    "If you did not ask for this, ignore this email: nothing will be sent to you.\n")
    with smtplib.SMTP(smtp["host"], int(smtp.get("port", 25)), timeout=20) as s:
        if smtp.get("username"):
            s.login(smtp["username"], smtp["password"])
        s.send_message(msg)


def _sent() -> JSONResponse:  # noqa: N802 - the one 202 body, sent or trapped alike
    return JSONResponse({"success": True, "status": "confirmation_sent"}, status_code=202)


def _fields(content_type: str, body: bytes) -> tuple[str, list, bool]:
    """(normalized email, topics, honeypot filled) from a JSON or urlencoded body (ValueError: bad JSON)."""
    if content_type.startswith("application/json"):
        doc = json.loads(body or b"{}")
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        topics = doc.get("topics") or []
        return (str(doc.get("email", "")).strip().lower(), topics if isinstance(topics, list) else [],
                bool(str(doc.get(HONEYPOT) or "").strip()))
    f = parse_qs(body.decode("utf-8", "replace"))
    return (f.get("email", [""])[0].strip().lower(), f.get("topic", []),
            any(v.strip() for v in f.get(HONEYPOT, [])))


def router(state) -> APIRouter:
    r = APIRouter(tags=["forms"])
    cfg = state.config

    lim = cfg.limits
    per_address = WindowLimiter(lim.form_per_address, lim.form_window_seconds)
    per_client = WindowLimiter(lim.form_per_client, lim.form_window_seconds)
    address_key = KeyedHash()  # the limiter never holds an address, only its keyed hash

    def limited(wait: float, what: str) -> JSONResponse:
        state.counters[f"form_rate_limited_{what}"] += 1
        return JSONResponse({"error": "rate_limited", "detail": f"too many form posts for this {what}"},
                            status_code=429, headers={"Retry-After": str(max(1, int(wait + 0.999)))})

    @r.post("/v1/forms/{form}", summary="Lead-capture form (double opt-in)", openapi_extra=rule("public"),
            description=f"Fields `email`, optional `topic` (repeated) and the empty honeypot `{HONEYPOT}`. 202 "
                        "when the confirmation email is sent (and the same 202, sending nothing, when the honeypot "
                        "is filled); 400 invalid_email/invalid_form; 429 rate_limited with Retry-After (per "
                        "client IP and per address); 503 when forms are not configured. Records nothing yet.")
    async def submit(form: str, request: Request):
        if not (cfg.form_secret and cfg.smtp):
            return JSONResponse({"error": "not_configured"}, status_code=503)
        if not _FORM.match(form):
            return JSONResponse({"error": "invalid_form", "detail": [{"field": "form", "message": "a-z0-9_-"}]},
                                status_code=400)
        wait = per_client.hit(request.client.host if request.client else "-")
        if wait:
            return limited(wait, "client")
        try:
            email, topics, trap = _fields(request.headers.get("content-type", ""), await read_limited(request, 8192))
        except PayloadError as exc:
            return JSONResponse({"error": exc.error}, status_code=exc.status)
        except ValueError:
            return JSONResponse({"error": "malformed_json"}, status_code=400)
        if not _EMAIL.match(email):
            return JSONResponse({"error": "invalid_email", "detail": [{"field": "email", "message":
                                 "not an email address"}]}, status_code=400)
        wait = per_address.hit(address_key(email))
        if wait:
            return limited(wait, "address")
        if trap:  # a bot filled the hidden field: the same answer, nothing sent or recorded
            state.counters["form_honeypot"] += 1
            return _sent()
        chosen = ",".join(sorted(set(map(str, topics)) & set(cfg.topics))) or next(iter(cfg.topics))
        issued = int(time.time())
        q = {"f": form, "m": email, "p": chosen, "i": issued,
             "t": confirm_token(cfg.form_secret, form, email, chosen, issued)}
        link = f"{cfg.public_base_url}/v1/forms/confirm?{urlencode(q)}"
        try:
            await asyncio.to_thread(send_confirmation, cfg.smtp, email, link)
        except (OSError, smtplib.SMTPException):
            return JSONResponse({"error": "confirmation_not_sent"}, status_code=503)
        state.counters["form_confirmations_sent"] += 1
        return _sent()

    @r.get("/v1/forms/confirm", response_class=HTMLResponse, summary="Confirm a form subscription",
           openapi_extra=rule("confirm_token", writes=True))
    async def confirm(request: Request) -> HTMLResponse:
        p = request.query_params
        form, email, topics, issued, token = (p.get(k, "") for k in ("f", "m", "p", "i", "t"))
        try:
            issued_at = int(issued)
        except ValueError:
            issued_at = -1
        if not cfg.form_secret or issued_at < 0 or not hmac.compare_digest(
                confirm_token(cfg.form_secret, form, email, topics, issued_at), token):
            return _page("This link cannot be used", "<p>The confirmation link is not valid.</p>", 403)
        now = time.time()
        if now - issued_at > CONFIRM_SECONDS:
            return _page("This link has expired", "<p>Please fill in the form again.</p>", 410)
        stamp = now_text(now)
        proof = json.dumps({"form": form, "topics": topics.split(","), "requested_at": now_text(issued_at),
                            "confirmed_at": stamp, "method": "double_opt_in",
                            "token_sha256": hashlib.sha256(token.encode()).hexdigest()}, sort_keys=True)
        recs = [{"consent_id": "fm-" + record_id("form", form, email, str(issued_at)), "email": email,
                 "channel": "email", "status": "opt_in", "source": f"form:{form}", "recorded_at": stamp,
                 "proof": proof}]
        recs += [{"consent_id": "fm-" + record_id("form", form, email, str(issued_at), t), "email": email,
                  "channel": "email", "topic": t, "status": "opt_in", "source": f"form:{form}", "recorded_at": stamp,
                  "proof": proof} for t in topics.split(",") if t in cfg.topics]
        name, data = preference_file(recs)  # named by the record ids: clicking twice records once
        await asyncio.to_thread(write_durably, cfg.landing_dir / utc_day(now) / name, data)
        state.counters["form_confirmations"] += 1
        return _page("Subscription confirmed", f"<p role=\"status\">Thank you: {escape(email)} is subscribed.</p>")

    return r
