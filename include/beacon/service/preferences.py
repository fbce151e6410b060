"""RFC 8058 one-click unsubscribe and the preference centre (plain HTML forms, no JavaScript).

Links are the SMTP destination's: ?a=<audience>&u=<customer id>&e=<expiry>&t=<token>, verified with the same
code that signs them (beacon.activation.preferences). A choice is written as consent records to the landing
zone (fsynced) before the answer; governance reads them before the next send (absorb_pending). Each record
names its source (one-click or preference centre) and time: the audit trail.
"""

from __future__ import annotations

import asyncio
import time
from html import escape
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from beacon.activation.preferences import now_text, preference_file, record_id, verify_token
from beacon.service.auth import rule
from beacon.service.collect import PayloadError, read_limited
from beacon.service.durable import utc_day, write_durably

CHANNELS = {"email": "Email", "sms": "Text messages (SMS)"}
_STATUS = {"forged_token": 403, "expired_token": 410, "missing_token": 400}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><link rel="icon" href="data:,">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#111}}
fieldset{{margin:1rem 0;padding:.5rem 1rem}} label{{display:block;padding:.25rem 0}}
button{{font-size:1rem;padding:.5rem 1rem}} :focus{{outline:3px solid #1a5fb4}}</style></head>
<body><main><h1>{escape(title)}</h1>
{body}
</main></body></html>"""
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _link_fields(params) -> tuple[str, str, str, str]:
    return (params.get("a") or "", params.get("u") or "", params.get("e") or "", params.get("t") or "")


def router(state) -> APIRouter:
    r = APIRouter(tags=["preferences"])
    cfg = state.config

    def check(a: str, u: str, e: str, t: str) -> str | None:
        if not (a and u and t):
            return "missing_token"
        if not cfg.unsubscribe_secret:
            return "forged_token"  # nothing can be verified without the key
        return verify_token(cfg.unsubscribe_secret, a, u, e, t, time.time())

    async def land(records: list[dict]) -> str:
        name, data = preference_file(records)
        await asyncio.to_thread(write_durably, cfg.landing_dir / utc_day(time.time()) / name, data)
        state.counters["preference_records"] += len(records)
        return name

    @r.post("/v1/unsubscribe", summary="RFC 8058 one-click unsubscribe", openapi_extra=rule("unsubscribe_token"),
            description="The List-Unsubscribe URL of Beacon's emails; body `List-Unsubscribe=One-Click`. 200 when "
                        "recorded (durably, before the answer); 400 missing_token, 403 forged_token, 410 "
                        "expired_token (nothing written).")
    async def one_click(request: Request) -> Response:
        a, u, e, t = _link_fields(request.query_params)
        try:
            await read_limited(request, 4096)
        except PayloadError as exc:
            return JSONResponse({"success": False, "error": exc.error}, status_code=exc.status)
        bad = check(a, u, e, t)
        if bad:
            state.counters[f"unsubscribe_refused_{bad}"] += 1
            return JSONResponse({"success": False, "error": bad}, status_code=_STATUS[bad])
        now = time.time()
        rec = {"consent_id": "oc-" + record_id("one-click", a, u, e), "customer_id": u, "audience": a,
               "channel": "email", "status": "opt_out", "source": f"one-click:{a}", "recorded_at": now_text(now)}
        await land([rec])
        return JSONResponse({"success": True, "unsubscribed": {"audience": a}})

    def form(a: str, u: str, e: str, t: str) -> str:
        hidden = "".join(f'<input type="hidden" name="{k}" value="{escape(v)}">' for k, v in
                         (("a", a), ("u", u), ("e", e), ("t", t)))
        topics = "".join(f'<label><input type="checkbox" name="topic" value="{escape(n)}" checked> {escape(label)}'
                         f'</label>' for n, label in cfg.topics.items())
        chans = "".join(f'<label><input type="checkbox" name="stop_channel" value="{c}"> Stop all {escape(label)}'
                        f'</label>' for c, label in CHANNELS.items())
        return f"""<form method="post" action="/v1/preferences">{hidden}
<fieldset><legend>Topics I want to hear about</legend>{topics}</fieldset>
<fieldset><legend>Channels</legend>{chans}</fieldset>
<button type="submit">Save my preferences</button></form>"""

    @r.get("/v1/preferences", response_class=HTMLResponse, summary="Preference centre",
           openapi_extra=rule("unsubscribe_token"),
           description="Per-topic subscription groups and per-channel opt-outs, as an HTML form (no JavaScript).")
    async def preference_page(request: Request) -> HTMLResponse:
        a, u, e, t = _link_fields(request.query_params)
        bad = check(a, u, e, t)
        if bad:
            return _page("This link cannot be used", "<p>The link is invalid or has expired. Use the link in a "
                         "more recent email.</p>", _STATUS[bad])
        return _page("Your email preferences", form(a, u, e, t))

    @r.post("/v1/preferences", response_class=HTMLResponse, summary="Save preference-centre choices",
            openapi_extra=rule("unsubscribe_token"))
    async def save_preferences(request: Request) -> HTMLResponse:
        try:
            body = await read_limited(request, 16_384)
        except PayloadError as exc:
            return _page("Too much data", "<p>The form was too large.</p>", exc.status)
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)  # a plain urlencoded form
        a, u, e, t = (fields.get(k, [""])[0] for k in ("a", "u", "e", "t"))
        bad = check(a, u, e, t)
        if bad:
            return _page("This link cannot be used", "<p>The link is invalid or has expired.</p>", _STATUS[bad])
        wanted = set(fields.get("topic", [])) & set(cfg.topics)
        stopped = set(fields.get("stop_channel", [])) & set(CHANNELS)
        now = time.time()
        stamp = now_text(now)
        recs = []
        for n in cfg.topics:
            status = "opt_in" if n in wanted else "opt_out"
            recs.append({"consent_id": "pc-" + record_id("topic", u, n, stamp), "customer_id": u, "channel": "email",
                         "topic": n, "status": status, "source": "preference-centre", "recorded_at": stamp})
        for c in CHANNELS:
            if c in stopped:
                recs.append({"consent_id": "pc-" + record_id("channel", u, c, stamp), "customer_id": u, "channel": c,
                             "status": "opt_out", "source": "preference-centre", "recorded_at": stamp})
        name = await land(recs)
        items = "".join(f"<li>{escape(cfg.topics[n])}: {'subscribed' if n in wanted else 'unsubscribed'}</li>"
                        for n in cfg.topics)
        items += "".join(f"<li>{escape(CHANNELS[c])}: stopped</li>" for c in sorted(stopped))
        return _page("Preferences saved", f'<p role="status">Your choices are saved (reference '
                     f'<code>{escape(name.rsplit("-", 1)[-1])}</code>).</p><ul>{items}</ul>')

    return r
