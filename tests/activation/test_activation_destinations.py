"""Destinations against their real local counterparts: an aiosmtpd SMTP server and a fault-injecting webhook receiver."""

from __future__ import annotations

import json

import pytest
from support.activation_world import AS_OF, audience, consent, segment, warehouse
from support.smtp import email_connection
from support.smtp import smtp_server as smtp_server_

from beacon.activation.destinations.file import batch_id
from beacon.activation.destinations.registry import NotConfigured, build, policy_overrides
from beacon.activation.destinations.webhook import Webhook
from beacon.activation.sync import run_sync
from beacon.testing.receiver import FaultyReceiver


@pytest.fixture()
def smtp_server(monkeypatch, tmp_path):
    with smtp_server_() as (sink, port):
        monkeypatch.setenv("AIRFLOW_CONN_BEACON_EMAIL", email_connection(port, unsubscribe_mailto="unsub@beacon.example"))
        yield sink


def test_smtp_sends_one_personalized_multipart_message_per_new_member(smtp_server, tmp_path):
    con = warehouse(10)
    a = audience("cart_abandoners")
    segment(con, a.name, ["c0", "c1", "c2", "c3"], first_name=["Ann", None, "<b>Eve</b>", "Bob"],
            cart_adds=[2, 1, 3, 1], last_product_id=["p9", None, "p1", "p2"])
    consent(con, "c3", "email", "opt_out")
    dest = build("email", str(tmp_path))
    s = run_sync(con, a, [a], dest, AS_OF)
    assert (s.delivered, s.failed, s.suppressed) == (3, 0, {"opted_out": 1})
    got = {rcpt[0]: msg for rcpt, msg in smtp_server.messages}
    assert sorted(got) == ["p0@example.com", "p1@example.com", "p2@example.com"]  # never the opted-out c3
    for rcpt, msg in smtp_server.messages:
        assert msg["To"] == rcpt[0] and msg["From"] == "Beacon <news@beacon.example>"
        assert msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        lu = msg["List-Unsubscribe"]
        assert lu.startswith("<https://beacon.example/unsubscribe?a=cart_abandoners&u=") and "<mailto:unsub@" in lu
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert "Beacon Inc., 1 Main St, Springfield, IL 62701" in text and "1 Main St" in html
        assert "Unsubscribe" in text and 'href="https://beacon.example/unsubscribe?' in html
    ann = got["p0@example.com"]
    assert ann["Subject"] == "Ann, you left something in your cart"
    assert "Hi Ann," in ann.get_body(("plain",)).get_content() and "(product p9)" in ann.get_body(("plain",)).get_content()
    # A missing first name falls back; a missing product is left out, not rendered as "None".
    nobody = got["p1@example.com"].get_body(("plain",)).get_content()
    assert "Hi there," in nobody and "None" not in nobody and "product" not in nobody
    assert got["p1@example.com"]["Subject"] == "Hi, you left something in your cart"
    # Values are escaped in HTML (not in text).
    eve = got["p2@example.com"]
    assert "&lt;b&gt;Eve&lt;/b&gt;" in eve.get_body(("html",)).get_content()
    assert "<b>Eve</b>" not in eve.get_body(("html",)).get_content()
    # The Message-ID is the change's idempotency key; the re-run sends nothing.
    key = con.execute("SELECT idempotency_key FROM activation.sync_log WHERE customer_id = 'c0' AND "
                      "status = 'delivered'").fetchall()[0][0]
    assert ann["Message-ID"] == f"<{key}@beacon.example>"
    assert run_sync(con, a, [a], dest, AS_OF).changes == 0 and len(smtp_server.messages) == 3


def test_smtp_unknown_audience_uses_the_default_template_and_refused_rows_are_retried(smtp_server, tmp_path):
    con = warehouse(10)
    a = audience("spring_promo")
    segment(con, a.name, ["c0", "c1"])
    smtp_server.refuse = {"p1@example.com"}
    dest = build("email", str(tmp_path))
    s = run_sync(con, a, [a], dest, AS_OF)
    assert (s.delivered, s.failed) == (1, 1)
    [(rcpt, msg)] = smtp_server.messages
    assert "spring_promo description" in msg.get_body(("plain",)).get_content()  # default template, audience text
    err = con.execute("SELECT error FROM activation.sync_log WHERE customer_id = 'c1'").fetchall()[0][0]
    assert "recipient refused" in err
    smtp_server.refuse = set()
    s = run_sync(con, a, [a], dest, AS_OF)
    assert (s.adds, s.delivered) == (1, 1) and [r[0] for r, _ in smtp_server.messages] == ["p0@example.com",
                                                                                            "p1@example.com"]
    assert con.execute("SELECT max(attempt) FROM activation.sync_log WHERE customer_id = 'c1'").fetchall()[0][0] == 2


def test_smtp_requires_a_postal_address_and_an_https_unsubscribe_url():
    from beacon.activation.destinations.smtp import SmtpEmail

    with pytest.raises(ValueError, match="postal address"):
        SmtpEmail("localhost", 25, "a@b.c", "", "https://u", "s")
    with pytest.raises(ValueError, match="https"):
        SmtpEmail("localhost", 25, "a@b.c", "1 Main St", "http://u", "s")


# ---------------------------------------------------------------------------------------------- webhook


def _world(n: int = 100):
    con = warehouse(n)
    a = audience("hooked")
    segment(con, a.name, [f"c{i}" for i in range(n)], points=range(n))
    return con, a


def test_webhook_delivers_every_row_once_through_injected_faults():
    con, a = _world(100)
    with FaultyReceiver(fault_rate=0.5, faults=("500", "503", "timeout"), seed=3, token="tok-123",
                        timeout_sleep=0.6) as r:
        dest = Webhook(r.url, token="tok-123", batch_size=10, timeout=0.3, backoff_base=0.01, backoff_max=0.05,
                       concurrency=3, max_retries=12, seed=1)
        s = run_sync(con, a, [a], dest, AS_OF)
        assert (s.delivered, s.failed) == (100, 0)
        assert len(r.applied) == 100 and r.duplicates_applied == 0
        assert {x["customer_id"] for x in r.applied.values()} == {f"c{i}" for i in range(100)}
        assert r.faults_injected["timeout"] > 0 and r.redelivered > 0  # applied-but-unacknowledged batches came back
        assert sum(r.faults_injected.values()) > 5 and r.requests > 10
        assert all(h["Authorization"] == "Bearer tok-123" for h in r.headers)
        # Every request names its batch; a retried batch keeps its key.
        batches = dest.plan(con.execute("SELECT customer_id, idempotency_key FROM activation.sync_log "
                                        "WHERE status = 'delivered'").df().assign(operation="add"), "x", {})
        expected = {batch_id(b.rows.sort_values("customer_id").reset_index(drop=True)) for b in batches}
        assert {h["Idempotency-Key"] for h in r.headers} == expected
        requests = r.requests
    assert run_sync(con, a, [a], dest, AS_OF).changes == 0 and r.requests == requests  # re-run sends nothing


def test_webhook_honours_retry_after_and_the_rate_limit():
    con, a = _world(100)
    with FaultyReceiver(script=["429"], retry_after="1") as r:
        dest = Webhook(r.url, batch_size=100, backoff_base=0.001, seed=1)
        assert run_sync(con, a, [a], dest, AS_OF).delivered == 100 and r.requests == 2
        assert r.times[1] - r.times[0] >= 1.0  # the retry waited the server's Retry-After: 1 s, not the 1 ms backoff
    con, a = _world(100)
    with FaultyReceiver() as r:
        dest = Webhook(r.url, batch_size=10, rate_limit=10, concurrency=4, seed=1)
        assert run_sync(con, a, [a], dest, AS_OF).delivered == 100 and r.requests == 10
        # 10 requests/s, even with four threads: ten requests span at least nine intervals of 0.1 s.
        assert r.times[-1] - r.times[0] >= 0.85


def test_webhook_hmac_signature_and_bad_credentials_are_not_retried():
    con, a = _world(20)
    with FaultyReceiver(hmac_secret="right-secret") as r:
        wrong = Webhook(r.url, hmac_secret="wrong-secret", batch_size=5, seed=1)
        s = run_sync(con, a, [a], wrong, AS_OF)
        assert (s.delivered, s.failed, r.unauthorized, r.requests) == (0, 20, 4, 4)  # 401: no retries
        assert "HTTP 401" in con.execute("SELECT any_value(error) FROM activation.sync_log WHERE status = 'failed'"
                                         ).fetchall()[0][0]
        right = Webhook(r.url, hmac_secret="right-secret", batch_size=5, seed=1)
        s = run_sync(con, a, [a], right, AS_OF)
        assert (s.adds, s.delivered) == (20, 20) and len(r.applied) == 20
        assert all(h["X-Beacon-Signature"].startswith("sha256=") for h in r.headers)


def test_webhook_rows_rejected_by_the_receiver_fail_alone_and_are_retried():
    con, a = _world(30)
    with FaultyReceiver(reject={"c3": 1, "c20": 2}) as r:
        dest = Webhook(r.url, batch_size=10, seed=1)
        assert (run_sync(con, a, [a], dest, AS_OF).failed, len(r.applied)) == (2, 28)
        assert (run_sync(con, a, [a], dest, AS_OF).delivered, len(r.applied)) == (1, 29)
        assert (run_sync(con, a, [a], dest, AS_OF).delivered, len(r.applied)) == (1, 30)
    log = con.execute("SELECT status, attempt, error FROM activation.sync_log WHERE customer_id = 'c20' "
                      "AND operation = 'add' ORDER BY attempt").fetchall()
    assert log == [("failed", 1, "rejected: invalid record"), ("failed", 2, "rejected: invalid record"),
                   ("delivered", 3, None)]


def test_backoff_is_jittered_exponential_and_never_shorter_than_retry_after():
    dest = Webhook("http://127.0.0.1:1/x", backoff_base=0.5, backoff_max=4.0, seed=1)
    for attempt in range(8):
        cap = min(4.0, 0.5 * 2 ** attempt)
        waits = [dest._backoff(attempt, None) for _ in range(200)]
        assert all(0 <= w <= cap for w in waits) and len(set(waits)) > 100  # spread, not one fixed delay
        assert all(dest._backoff(attempt, 7.0) >= 7.0 for _ in range(20))


def test_destinations_are_built_from_airflow_connections(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_BEACON_WEBHOOK", json.dumps({
        "conn_type": "http", "host": "https://crm.example/api/hook", "password": "sekret",
        "extra": {"auth": "hmac", "batch_size": 250, "rate_limit": 5, "opt_in_required": True,
                  "priority_arbitration": False}}))
    monkeypatch.setenv("AIRFLOW_CONN_BEACON_ADS", json.dumps({
        "conn_type": "customer_match", "extra": {"url": str(tmp_path / "ads"), "platform": "meta"}}))
    w = build("webhook", str(tmp_path))
    assert (w.url, w.hmac_secret, w.token, w.batch_size) == ("https://crm.example/api/hook", "sekret", None, 250)
    assert policy_overrides("webhook") == {"opt_in_required": True, "exclusive": False}  # governance per connection
    assert policy_overrides("ads") == {}
    ads = build("ads", str(tmp_path))
    assert ads.platform == "meta" and ads.base_url == str(tmp_path / "ads")
    assert build("file", str(tmp_path)).base_url == str(tmp_path)  # the file channel defaults to the exports folder
    monkeypatch.delenv("AIRFLOW_CONN_BEACON_EMAIL", raising=False)
    with pytest.raises(NotConfigured, match="AIRFLOW_CONN_BEACON_EMAIL"):
        build("email", str(tmp_path))
