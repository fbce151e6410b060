"""Email-service webhooks against a real server, fed the providers' published example payloads (fixtures/README.md).

Each provider's real scheme: SendGrid ECDSA P-256 over timestamp + body, Mailgun HMAC-SHA256 of
timestamp + token, Postmark Basic credentials. Forged posts get 401 and replays 409, and neither writes a file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time

import httpx
import pytest
from conftest import FIXTURES

from beacon.ingest.landing import load_landing
from beacon.service.webhooks import SG_SIGNATURE, SG_TIMESTAMP
from beacon.testing.service import sendgrid_keypair, sendgrid_sign
from beacon.warehouse import connect


def _webhook_files(svc) -> set:
    return {p for p in svc.files() if p.parent.name == "webhooks"}


def _sendgrid_post(svc, body: bytes, ts: str | None = None, key=None, sig: str | None = None):
    ts = ts or str(int(time.time()))
    sig = sig or sendgrid_sign(key or svc.sendgrid_private, body, ts)
    return httpx.post(f"{svc.url}/v1/webhooks/sendgrid", content=body,
                      headers={SG_SIGNATURE: sig, SG_TIMESTAMP: ts, "content-type": "application/json"})


def _mailgun_body(svc, token: str | None = None, ts: int | None = None, key: str | None = None) -> bytes:
    doc = json.loads((FIXTURES / "mailgun_delivered.json").read_text())
    ts = str(ts or int(time.time()))
    token = token or secrets.token_hex(25)
    doc["signature"] = {"timestamp": ts, "token": token,
                        "signature": hmac.new((key or svc.mailgun_key).encode(), (ts + token).encode(),
                                              hashlib.sha256).hexdigest()}
    return json.dumps(doc).encode()


def test_signed_sendgrid_batch_lands_and_loads_every_documented_event(svc, tmp_path):
    body = (FIXTURES / "sendgrid_events.json").read_bytes()
    r = _sendgrid_post(svc, body)
    assert r.status_code == 200, r.text
    landed = [p for p in _webhook_files(svc) if p.name.startswith("sendgrid-")]
    assert len(landed) == 1 and landed[0].read_bytes() == body  # verbatim, where the webhook loader reads
    wh = tmp_path / "wh.duckdb"
    summary = load_landing(svc.landing, warehouse=wh)
    assert not [f for f in summary.files if f.status == "failed"], summary.files
    with connect(wh) as con:
        rows = con.execute("SELECT event, event_id, topic FROM raw.email_events WHERE email = 'example@test.com'"
                           ).fetchall()
        quarantined = con.execute("SELECT count(*) FROM raw._quarantine WHERE source = 'email_events'").fetchone()[0]
    events = sorted(r[0] for r in rows)
    # All 11 documented events load: open, click and dropped (no sg_event_id) get a derived key, deferred is
    # its own event, and group_unsubscribe stays a group (topic 10) opt-out, not a global unsubscribe.
    assert quarantined == 0 and len(rows) == 11
    assert events == sorted(["sent", "deferred", "delivered", "open", "click", "bounce", "bounce", "complaint",
                             "unsubscribe", "group_unsubscribe", "group_resubscribe"])
    by_event = {r[0]: r for r in rows}
    assert by_event["open"][1].startswith("sgd-") and by_event["click"][1].startswith("sgd-")
    assert by_event["group_unsubscribe"][2] == "10"
    assert len({r[1] for r in rows}) == 11  # every key distinct


def test_derived_sendgrid_key_is_stable():
    from beacon.ingest.webhooks import sendgrid_event_key

    e = json.loads((FIXTURES / "sendgrid_events.json").read_text())[3]
    assert sendgrid_event_key(e) == sendgrid_event_key(dict(reversed(list(e.items()))))  # a re-post: same key
    assert sendgrid_event_key(e) != sendgrid_event_key({**e, "timestamp": e["timestamp"] + 1})


def test_forged_sendgrid_posts_are_refused_and_write_nothing(svc):
    body = json.dumps([{"email": "forged@example.com", "event": "unsubscribe", "timestamp": int(time.time())}]).encode()
    before = _webhook_files(svc)
    other, _ = sendgrid_keypair()
    assert _sendgrid_post(svc, body, key=other).status_code == 401  # signed by someone else
    good_ts = str(int(time.time()))
    sig = sendgrid_sign(svc.sendgrid_private, body, good_ts)
    tampered = body.replace(b"unsubscribe", b"spamreport ")
    assert _sendgrid_post(svc, tampered, ts=good_ts, sig=sig).status_code == 401  # body changed after signing
    assert _sendgrid_post(svc, body, ts=str(int(good_ts) + 1), sig=sig).status_code == 401  # timestamp changed
    r = httpx.post(f"{svc.url}/v1/webhooks/sendgrid", content=body)  # unsigned
    assert r.status_code == 401 and r.json()["error"] == "missing_signature"
    assert _webhook_files(svc) == before


def test_replayed_sendgrid_posts_are_refused(svc):
    body = json.dumps([{"email": "replay@example.com", "event": "delivered", "timestamp": 1,
                        "sg_event_id": "replay-1"}]).encode()
    ts = str(int(time.time()))
    sig = sendgrid_sign(svc.sendgrid_private, body, ts)
    assert _sendgrid_post(svc, body, ts=ts, sig=sig).status_code == 200
    files = _webhook_files(svc)
    r = _sendgrid_post(svc, body, ts=ts, sig=sig)
    assert r.status_code == 409 and r.json()["error"] == "replayed"
    old = str(int(time.time()) - 3600)  # a genuine signature, but captured an hour ago
    r = _sendgrid_post(svc, body + b" ", ts=old)
    assert r.status_code == 409
    assert _webhook_files(svc) == files


def test_mailgun_documented_delivered_event(svc, tmp_path):
    body = _mailgun_body(svc)
    assert httpx.post(f"{svc.url}/v1/webhooks/mailgun", content=body).status_code == 200
    wh = tmp_path / "wh.duckdb"
    load_landing(svc.landing, warehouse=wh)
    with connect(wh) as con:
        row = con.execute("SELECT event, event_id, message_id FROM raw.email_events WHERE email = 'alice@example.com'"
                          ).fetchone()
    assert row == ("delivered", "CPgfbmQMTCKtHW6uIWtuVe", "20130503182626.18666.16540@sandbox.mailgun.org")


def test_mailgun_forged_and_replayed_are_refused(svc):
    before = _webhook_files(svc)
    assert httpx.post(f"{svc.url}/v1/webhooks/mailgun", content=_mailgun_body(svc, key="wrong")).status_code == 401
    stale = _mailgun_body(svc, ts=int(time.time()) - 3600)
    assert httpx.post(f"{svc.url}/v1/webhooks/mailgun", content=stale).status_code == 409
    doc = json.loads(_mailgun_body(svc))
    del doc["signature"]
    assert httpx.post(f"{svc.url}/v1/webhooks/mailgun", json=doc).status_code == 401
    assert _webhook_files(svc) == before
    token = secrets.token_hex(25)
    assert httpx.post(f"{svc.url}/v1/webhooks/mailgun", content=_mailgun_body(svc, token=token)).status_code == 200
    after_first = _webhook_files(svc)
    # The same token again (Mailgun: cache tokens, refuse reuse), even with a fresh body around it.
    replay = _mailgun_body(svc, token=token)
    assert httpx.post(f"{svc.url}/v1/webhooks/mailgun", content=replay).status_code == 409
    assert _webhook_files(svc) == after_first


@pytest.mark.parametrize("creds, status", [(None, 401), (("pm_user", "wrong"), 401), ("good", 200)])
def test_postmark_basic_credentials(svc, tmp_path, creds, status):
    body = (FIXTURES / "postmark_bounce.json").read_bytes()
    before = _webhook_files(svc)
    auth = svc.postmark if creds == "good" else creds
    r = httpx.post(f"{svc.url}/v1/webhooks/postmark", content=body, auth=auth,
                   headers={"content-type": "application/json"})
    assert r.status_code == status
    if status != 200:
        assert _webhook_files(svc) == before
        return
    wh = tmp_path / "wh.duckdb"
    load_landing(svc.landing, warehouse=wh)
    with connect(wh) as con:
        row = con.execute("SELECT event, bounce_type, event_id FROM raw.email_events WHERE email = 'john@example.com'"
                          ).fetchone()
    assert row == ("bounce", "hard", "42")


def test_unknown_provider_is_404(svc):
    assert httpx.post(f"{svc.url}/v1/webhooks/mandrill", content=b"[]").status_code == 404

