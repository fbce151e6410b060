"""The tracking libraries people already use, with their default settings, against a real `beacon serve`.

Segment's `segment-analytics-python` (plain JSON by default; gzip when asked) and RudderStack's
`rudder-sdk-python` (gzips every batch by default) post batches from a background thread. Every event a
library got acknowledged must load exactly once with its properties; a batch the server refused must
load nothing, and the library must surface the reason (its `APIError` reads `code` and `message`).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest

from beacon.ingest.landing import load_landing
from beacon.warehouse import connect


def _client(lib: str, write_key: str, url: str, on_error, **options):
    if lib == "segment":
        from segment.analytics.client import Client
    else:
        from rudderstack.analytics.client import Client
    return Client(write_key=write_key, host=url, on_error=on_error, **options)


def _send_everything(client, tag: str, n: int) -> dict[str, dict]:
    """Each call type through the library's public API; the messages it queued, by messageId."""
    ctx = {"ip": "198.51.100.4", "userAgent": "pytest", "locale": "en-GB",
           "campaign": {"source": "newsletter", "medium": "email", "name": f"c-{tag}"}}
    sent = []
    for i in range(n):
        user, anon = f"{tag}-u{i % 7}", f"{tag}-a{i % 11}"
        sent.append(client.track(user_id=user, event="Product Viewed", context=ctx,
                                 properties={"product_id": f"p{i}", "price": 10 + i / 100, "tags": ["a", "b"],
                                             "nested": {"depth": {"n": i}}}))
        if i % 10 == 0:
            sent.append(client.track(user_id=user, event="Order Completed", properties={
                "order_id": f"{tag}-o{i}", "revenue": 25 + i, "currency": "EUR", "coupon": "WELCOME",
                "products": [{"product_id": f"p{i}", "price": 25 + i, "quantity": 1}]}))
            sent.append(client.identify(user_id=user, traits={"email": f"{user}@example.org", "plan": "pro"}))
            sent.append(client.page(anonymous_id=anon, name="Pricing", properties={"url": f"https://x/{i}",
                                                                                   "path": f"/{i}"}))
            sent.append(client.screen(user_id=user, name="Home", properties={"variation": "b"}))
            sent.append(client.group(user_id=user, group_id=f"{tag}-acct", traits={"name": "Acme"}))
            sent.append(client.alias(previous_id=anon, user_id=user))
    assert all(ok for ok, _ in sent)
    return {m["messageId"]: m for _, m in sent}


def _loaded(landing, wh, ids: set[str], expect: int) -> list[tuple[str, str]]:
    """(message_id, payload) of `ids` in raw.collected_events, loading the landing zone until `expect` arrive."""
    deadline = time.monotonic() + 30  # closed files reach the landing day within rotate_seconds (0.5 s)
    rows: list = []
    while True:
        load_landing(landing, warehouse=wh)
        with connect(wh) as con:
            con.execute("CREATE OR REPLACE TEMP TABLE _want AS SELECT unnest(?::VARCHAR[]) AS id", [sorted(ids)])
            rows = con.execute("SELECT message_id, payload::VARCHAR FROM raw.collected_events "
                               "JOIN _want ON id = message_id").fetchall()
        if len(rows) >= expect or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


@pytest.mark.parametrize("lib, options", [("segment", {}), ("segment", {"gzip": True}), ("rudderstack", {})],
                         ids=["segment-defaults", "segment-gzip", "rudderstack-defaults"])
def test_library_defaults_every_acknowledged_event_loads_once(svc, tmp_path, lib, options):
    errors: list[tuple[Exception, list]] = []
    lock = threading.Lock()

    def on_error(exc, batch):
        with lock:
            errors.append((exc, batch))

    client = _client(lib, svc.write_key, svc.url, on_error, **options)
    tag = f"lib{int(time.time() * 1000) % 10**8}{lib[0]}{len(options)}"
    sent = _send_everything(client, tag, 300)
    # One event the server refuses (an empty event name; the library lets it through): its whole batch is
    # answered 400 and the library does not retry a 4xx, so none of that batch is acknowledged.
    ok, bad = client.track(user_id=f"{tag}-u0", event="", properties={"order_id": "never"})
    assert ok
    client.flush()
    client.join()

    assert len(errors) == 1, [str(e) for e, _ in errors]
    exc, refused = errors[0]
    # The library surfaces the reason: its APIError carries Beacon's code and the field named in the message.
    assert exc.status == 400 and exc.code == "invalid_payload", str(exc)
    assert ".event: String should have at least 1 character" in exc.message
    refused_ids = {m["messageId"] for m in refused}
    assert bad["messageId"] in refused_ids
    acknowledged = set(sent) - refused_ids
    assert len(acknowledged) > 300

    rows = _loaded(svc.landing, tmp_path / "wh.duckdb", set(sent) | refused_ids, len(acknowledged))
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "an event loaded twice"
    assert set(ids) == acknowledged, (f"missing {len(acknowledged - set(ids))}, "
                                      f"unacknowledged loaded {len(set(ids) - acknowledged)}")
    for mid, payload in rows:  # every field the library sent is in the raw payload, values unchanged
        doc, msg = json.loads(payload), json.loads(json.dumps(sent[mid], default=str))
        for k in ("type", "event", "userId", "anonymousId", "properties", "traits", "groupId", "previousId", "name"):
            assert doc.get(k) == msg.get(k), (mid, k)
        assert doc["context"]["library"] == msg["context"]["library"]
        assert doc["context"].get("campaign") == msg["context"].get("campaign")
        # The time is the library's stamp corrected by its clock offset: close to when it was received.
        ts, rcv = datetime.fromisoformat(doc["timestamp"]), datetime.fromisoformat(doc["receivedAt"])
        assert ts <= rcv and ts.tzinfo is not None and rcv.astimezone(UTC) <= datetime.now(UTC)
    revenue = sorted(json.loads(p)["properties"]["revenue"] for _, p in rows if '"Order Completed"' in p)
    want = sorted(m["properties"]["revenue"] for m in sent.values()
                  if m.get("event") == "Order Completed" and m["messageId"] in acknowledged)
    assert revenue == want and len(want) >= 25


@pytest.mark.parametrize("lib", ["segment", "rudderstack"])
def test_rate_limited_libraries_retry_and_every_event_loads_once(tmp_path, lib):
    """429 with Retry-After: the library backs off and re-sends; nothing of a refused request was kept."""
    from support.service import make_config

    from beacon.testing.service import ServiceProcess

    proc = ServiceProcess(tmp_path, make_config(
        "wk_rate", "", "", ("", ""), "", limits={"rate_events_per_second": 150, "rate_burst": 150})).start()
    errors: list = []
    try:
        client = _client(lib, "wk_rate", proc.url, lambda exc, batch: errors.append(exc))
        sent = [client.track(user_id=f"u{i}", event="Signed Up", properties={"i": i})[1] for i in range(600)]
        client.flush()
        client.join()
    finally:
        proc.stop()  # closes and hands over the open file
    assert errors == []
    log = proc.log_text()
    assert "/v1/batch 429" in log  # the limit was hit, so the libraries really retried
    rows = _loaded(tmp_path / "data" / "landing", tmp_path / "wh.duckdb", {m["messageId"] for m in sent}, len(sent))
    assert sorted(r[0] for r in rows) == sorted(m["messageId"] for m in sent)  # each once
    assert sorted(json.loads(p)["properties"]["i"] for _, p in rows) == list(range(600))
