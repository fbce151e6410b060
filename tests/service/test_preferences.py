"""One-click unsubscribe (RFC 8058) and the preference centre against a real server, and governance reading the
records before the next send (no ingest in between)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from support.activation_world import audience, segment, warehouse

from beacon.activation.destinations.smtp import SmtpEmail
from beacon.activation.governance import governed
from beacon.config import override_env

NOW = datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def _smtp(secret: str) -> SmtpEmail:
    return SmtpEmail("127.0.0.1", 25, "news@shop.example", "1 Main St, Springfield", "https://shop.example/v1/unsubscribe",
                     secret)


def _link(secret: str, customer: str, aud: str = "winback", as_of: datetime = NOW) -> dict:
    """The one-click URL's query, taken from the List-Unsubscribe header the SMTP destination writes."""
    msg = _smtp(secret).message(aud, {"customer_id": customer, "email": f"{customer}@example.com",
                                      "idempotency_key": f"k-{customer}"}, {"as_of": as_of})
    url = re.search(r"<(https://[^>]+)>", msg["List-Unsubscribe"]).group(1)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def _prefs(svc) -> set:
    return {p for p in svc.files() if p.name.startswith("consent.csv.pref-")}


def _one_click(svc, q: dict) -> httpx.Response:
    return httpx.post(f"{svc.url}/v1/unsubscribe", params=q, content=b"List-Unsubscribe=One-Click",
                      headers={"content-type": "application/x-www-form-urlencoded"})


def test_one_click_unsubscribe_stops_the_next_send(svc):
    con = warehouse(20)
    aud = audience("winback", channels=("email",))
    segment(con, "winback", ["c1", "c2", "c3"])
    with override_env(BEACON_LANDING_DIR=str(svc.landing)):
        assert governed(con, aud, [aud], "email", NOW).set_index("customer_id").loc["c2", "reason"] is None
        r = _one_click(svc, _link(svc.unsubscribe_secret, "c2"))
        assert r.status_code == 200, r.text
        g = governed(con, aud, [aud], "email", NOW).set_index("customer_id")["reason"]
    assert g["c2"] == "unsubscribed"  # the very next governance run, before any ingest
    assert g["c1"] is None and g["c3"] is None
    # Audit: the record names its source and time, durable in the landing zone the consent ingest reads.
    rows = con.execute("SELECT customer_id, audience, status, source FROM activation.preferences "
                       "WHERE customer_id = 'c2'").fetchall()
    assert rows == [("c2", "winback", "opt_out", "one-click:winback")]


def test_forged_expired_and_missing_tokens_change_nothing(svc):
    before = _prefs(svc)
    q = _link(svc.unsubscribe_secret, "c5")
    forged = {**q, "u": "c6"}  # someone else's id under c5's token
    r = _one_click(svc, forged)
    assert r.status_code == 403 and r.json()["error"] == "forged_token"
    r = _one_click(svc, {**q, "t": "0" * 32})
    assert r.status_code == 403
    r = _one_click(svc, {**q, "e": str(int(q["e"]) + 86400)})  # expiry pushed out without the key
    assert r.status_code == 403
    old = _link(svc.unsubscribe_secret, "c5", as_of=NOW - timedelta(days=400))
    r = _one_click(svc, old)
    assert r.status_code == 410 and r.json()["error"] == "expired_token"
    r = _one_click(svc, {"a": "winback", "u": "c5"})
    assert r.status_code == 400
    other_key = _link("another-secret", "c5")
    assert _one_click(svc, other_key).status_code == 403
    assert _prefs(svc) == before


def test_preference_centre_topic_opt_out_is_per_topic(svc):
    q = _link(svc.unsubscribe_secret, "c7")
    page = httpx.get(f"{svc.url}/v1/preferences", params=q)
    assert page.status_code == 200 and "<form" in page.text and "<script" not in page.text
    assert 'name="topic" value="product_updates"' in page.text
    # Keep product updates, leave marketing (a plain form post, as a browser without JavaScript sends it).
    form = {**q, "topic": "product_updates"}
    r = httpx.post(f"{svc.url}/v1/preferences", data=form)
    assert r.status_code == 200 and "Preferences saved" in r.text
    con = warehouse(20)
    marketing = audience("winback", channels=("email",))
    updates = dataclasses.replace(audience("release_notes", channels=("email",)), topic="product_updates")
    segment(con, "winback", ["c7", "c8"])
    segment(con, "release_notes", ["c7", "c8"])
    with override_env(BEACON_LANDING_DIR=str(svc.landing)):
        a = governed(con, marketing, [marketing], "email", NOW).set_index("customer_id")["reason"]
        b = governed(con, updates, [updates], "email", NOW).set_index("customer_id")["reason"]
    assert a["c7"] == "unsubscribed" and a["c8"] is None
    assert b["c7"] is None  # still subscribed to product updates


def test_preference_page_refuses_a_forged_link(svc):
    q = _link(svc.unsubscribe_secret, "c9")
    r = httpx.get(f"{svc.url}/v1/preferences", params={**q, "u": "c10"})
    assert r.status_code == 403 and "<form" not in r.text
    before = _prefs(svc)
    r = httpx.post(f"{svc.url}/v1/preferences", data={**q, "u": "c10", "stop_channel": "email"})
    assert r.status_code == 403 and _prefs(svc) == before


@pytest.mark.parametrize("stop", ["email"])
def test_channel_opt_out_blocks_every_topic(svc, stop):
    q = _link(svc.unsubscribe_secret, "c11")
    r = httpx.post(f"{svc.url}/v1/preferences", data={**q, "topic": ["marketing", "product_updates"],
                                                       "stop_channel": stop})
    assert r.status_code == 200
    con = warehouse(20)
    updates = dataclasses.replace(audience("release_notes", channels=("email",)), topic="product_updates")
    segment(con, "release_notes", ["c11", "c12"])
    with override_env(BEACON_LANDING_DIR=str(svc.landing)):
        g = governed(con, updates, [updates], "email", NOW).set_index("customer_id")["reason"]
    assert g["c11"] == "unsubscribed" and g["c12"] is None
