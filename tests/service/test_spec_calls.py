"""The whole Segment spec: six call types, context kept, clock-skew correction, errors libraries can read."""

from __future__ import annotations

import json
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from support.service import stored_events

from beacon.service.collect import PayloadError, correct_clock, dump_line, parse_payload

_stored = stored_events


CONTEXT = {"library": {"name": "analytics.js", "version": "5.2.0"}, "ip": "203.0.113.7",
           "userAgent": "Mozilla/5.0", "locale": "fr-FR", "timezone": "Europe/Paris",
           "campaign": {"source": "newsletter", "medium": "email", "name": "spring"},
           "page": {"url": "https://shop.example/p/1", "referrer": "https://mail.example/"}}

CALLS = {
    "track": {"event": "Order Completed", "userId": "u-s", "properties": {"order_id": "o-1", "revenue": 19.9,
              "currency": "USD", "coupon": "SPRING", "products": [{"product_id": "p1", "price": 19.9, "quantity": 1}]}},
    "identify": {"userId": "u-s", "traits": {"email": "s@example.org", "plan": "pro", "address": {"city": "Lyon"}}},
    "page": {"anonymousId": "a-s", "name": "Pricing", "category": "Docs", "properties": {"url": "https://x/pricing"}},
    "screen": {"anonymousId": "a-s", "name": "Home", "properties": {"variation": "blue"}},
    "group": {"userId": "u-s", "groupId": "acme", "traits": {"name": "Acme", "employees": 50}},
    "alias": {"previousId": "a-s", "userId": "u-s"},
}


@pytest.mark.parametrize("kind", list(CALLS))
def test_every_call_type_is_stored_whole_with_its_context(svc, kind):
    body = {**CALLS[kind], "messageId": f"spec-{kind}", "context": CONTEXT, "integrations": {"All": False}}
    r = httpx.post(f"{svc.url}/v1/{kind}", json=body, auth=(svc.write_key, ""))
    assert r.status_code == 200, r.text
    e = _stored(svc)[f"spec-{kind}"]
    assert e["type"] == kind and e["context"] == CONTEXT and e["source"] == "website"
    for k, v in CALLS[kind].items():  # every field as sent (nested properties and traits included)
        assert e[k] == v


def test_every_call_type_in_a_batch(svc):
    batch = [{**body, "type": kind, "messageId": f"specb-{kind}"} for kind, body in CALLS.items()]
    r = httpx.post(f"{svc.url}/v1/batch", json={"batch": batch, "context": CONTEXT}, auth=(svc.write_key, ""))
    assert r.status_code == 200, r.text
    stored = _stored(svc)
    for kind in CALLS:
        assert stored[f"specb-{kind}"]["type"] == kind
        assert stored[f"specb-{kind}"]["context"] == CONTEXT  # the batch's context reaches each message


@pytest.mark.parametrize("kind, body, field", [
    ("alias", {"userId": "u"}, "previousId"), ("alias", {"previousId": "a"}, "userId"),
    ("group", {"userId": "u"}, "groupId"), ("screen", {"name": "Home"}, "(body)")])
def test_required_fields_of_the_new_calls(kind, body, field):
    with pytest.raises(PayloadError) as exc:
        parse_payload(kind, json.dumps(body).encode(), 32_000, 100)
    assert exc.value.status == 400 and any(d["field"] == field for d in exc.value.detail)


def test_clock_skew_is_corrected_as_segment_documents():
    # The device clock is 2 hours fast: it stamped the event at 12:00:00 and sent the batch 30 s later (12:00:30);
    # the server received it at 10:00:31 UTC. The event happened 30 s before it was sent: 10:00:01.
    received = datetime(2026, 5, 1, 10, 0, 31, tzinfo=UTC)
    body = {"sentAt": "2026-05-01T12:00:30Z",
            "batch": [{"type": "track", "event": "E", "userId": "u", "timestamp": "2026-05-01T12:00:00Z"},
                      {"type": "track", "event": "F", "userId": "u", "timestamp": "2026-05-01T14:00:00+02:00",
                       "sentAt": "2026-05-01T14:00:20+02:00"},  # a message's own sentAt wins over the batch's
                      {"type": "track", "event": "G", "userId": "u"}]}  # no timestamp: when it was received
    a, b, c = (json.loads(dump_line(e)) for e in parse_payload("batch", json.dumps(body).encode(), 32_000, 100,
                                                                received))
    assert a["timestamp"] == "2026-05-01T10:00:01Z" and a["originalTimestamp"] == "2026-05-01T12:00:00Z"
    assert a["receivedAt"] == "2026-05-01T10:00:31Z" and a["sentAt"] == "2026-05-01T12:00:30Z"
    assert b["timestamp"] == "2026-05-01T10:00:11Z"
    assert c["timestamp"] == c["receivedAt"] == "2026-05-01T10:00:31Z" and "originalTimestamp" not in c


def test_without_sent_at_the_client_time_stands():
    e = {"timestamp": "2026-05-01T09:00:00Z"}
    correct_clock(e, datetime(2026, 5, 1, 9, tzinfo=UTC), None, datetime(2026, 5, 1, 10, tzinfo=UTC))
    assert e["timestamp"] == e["originalTimestamp"] == "2026-05-01T09:00:00Z"
    # A naive client time is read as UTC (what the loader does with it too).
    e = {"timestamp": "2026-05-01T09:00:00"}
    correct_clock(e, datetime(2026, 5, 1, 9), datetime(2026, 5, 1, 9, 0, 10), datetime(2026, 5, 1, 9, 5, tzinfo=UTC))
    assert json.loads(dump_line(e))["timestamp"] == "2026-05-01T09:04:50Z"


def test_skew_correction_on_the_server(svc):
    sent = datetime.now(UTC) + timedelta(hours=3)  # a device three hours ahead
    body = {"sentAt": sent.isoformat(), "batch": [{"type": "track", "event": "Skewed", "userId": "u",
            "messageId": "skew-1", "timestamp": (sent - timedelta(seconds=60)).isoformat()}]}
    before = datetime.now(UTC)
    assert httpx.post(f"{svc.url}/v1/batch", json=body, auth=(svc.write_key, "")).status_code == 200
    e = _stored(svc)["skew-1"]
    ts, rcv = datetime.fromisoformat(e["timestamp"]), datetime.fromisoformat(e["receivedAt"])
    assert rcv - ts == timedelta(seconds=60)  # a minute before it was received, on the server's clock
    assert before - timedelta(seconds=61) <= ts <= rcv


@pytest.mark.parametrize("body, code", [({"event": "X"}, "invalid_payload"), (b"{", "malformed_json")])
def test_error_bodies_carry_code_and_message(svc, body, code):
    kw = {"content": body} if isinstance(body, bytes) else {"json": body}
    r = httpx.post(f"{svc.url}/v1/track", auth=(svc.write_key, ""), **kw)
    doc = r.json()
    assert r.status_code == 400 and doc["code"] == doc["error"] == code and doc["success"] is False
    assert isinstance(doc["message"], str) and doc["message"]
    if code == "invalid_payload":
        assert "userId or anonymousId is required" in doc["message"] and doc["detail"][0]["field"] == "(body)"


def test_a_spool_that_cannot_be_written_is_503_with_retry_after(tmp_path):
    from fastapi.testclient import TestClient

    from beacon.service.app import create_app
    from beacon.service.config import ServiceConfig

    app = create_app(ServiceConfig(landing_dir=tmp_path, write_keys={"k": "web"}))
    with TestClient(app) as client:
        state = app.state.beacon

        def full_disk(data: bytes) -> Future:
            f: Future = Future()
            f.set_exception(OSError(28, "No space left on device"))
            return f

        state.log.submit = full_disk
        r = client.post("/v1/track", json={"event": "E", "userId": "u"}, auth=("k", ""))
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json()["code"] == "unavailable"
        assert client.get("/health").json()["events_acknowledged"] == 0  # not acknowledged, not counted


def test_offers_before_the_first_snapshot_is_503_with_retry_after(tmp_path):
    from fastapi.testclient import TestClient

    from beacon.service.app import create_app
    from beacon.service.config import ServiceConfig

    app = create_app(ServiceConfig(landing_dir=tmp_path, write_keys={}, offers_snapshot=tmp_path / "none.parquet"))
    with TestClient(app) as client:
        r = client.get("/v1/profiles/c1/offers")
    assert r.status_code == 503 and int(r.headers["retry-after"]) > 0


def test_the_stored_message_is_the_json_as_sent():
    # Changed on the way to disk: top-level nulls dropped, a numeric id as its text, times written in RFC 3339,
    # `writeKey` removed. Everything else (falsy values, nested nulls, unknown fields) is kept as sent.
    sent = {"type": "track", "event": "E", "userId": 42, "anonymousId": None, "writeKey": "secret", "messageId": "m",
            "timestamp": "2026-05-01T12:00:00+02:00", "properties": {"a": None, "n": [1, None, {"b": None}], "x": 1.5},
            "custom": {"x": None}, "flag": False, "zero": 0, "empty": ""}
    [e] = parse_payload("batch", json.dumps({"batch": [sent], "writeKey": "secret"}).encode(), 32_000, 100)
    stored = json.loads(dump_line(e))
    expected = {k: v for k, v in sent.items() if v is not None and k != "writeKey"}
    assert stored == {**expected, "userId": "42"}


def test_beacon_serve_freezes_its_start_up_heap_and_a_test_app_does_not(tmp_path):
    import gc

    from fastapi.testclient import TestClient

    from beacon.service.app import create_app
    from beacon.service.config import ServiceConfig

    cfg = ServiceConfig(landing_dir=tmp_path, write_keys={"k": "web"})
    gc.unfreeze()
    with TestClient(create_app(cfg)):
        assert gc.get_freeze_count() == 0
    try:
        with TestClient(create_app(cfg, freeze_heap=True)) as client:
            assert gc.get_freeze_count() > 0  # the objects alive after start-up: out of the full collections' scan
            assert client.post("/v1/track", json={"event": "E", "userId": "u"}, auth=("k", "")).status_code == 200
    finally:
        gc.unfreeze()
