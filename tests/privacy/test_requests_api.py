"""Issue 27: POST /v1/privacy/requests and GET /v1/privacy/requests/{id} on `beacon serve` take an admin key (never
a write or offers key, never none), queue the request durably without the warehouse, and from that moment the
offers routes answer for the person exactly as for a stranger."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from support.activation_world import audience, segment, warehouse

from beacon.activation.offers import publish_offers
from beacon.privacy.queue import queue_path, queued
from beacon.privacy.requests import ensure_tables, suppress
from beacon.service.app import create_app
from beacon.service.config import ServiceConfig

KEY = "test-privacy-key-" + secrets.token_hex(8)
ADMIN, WRITE, OFFERS = "ak_" + secrets.token_hex(16), "wk_" + secrets.token_hex(8), "ok_" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A service over a published snapshot: c1 and c2 have offers (audience winback), `nobody` is a stranger."""
    work = tmp_path_factory.mktemp("privacy-api")
    con = warehouse(5)
    winback = audience("winback", priority=10)
    segment(con, "winback", ["c1", "c2"])
    snap = work / "offers.parquet"
    publish_offers(con, [winback], snap)
    cfg = ServiceConfig(landing_dir=work / "landing", write_keys={WRITE: "web"}, offers_snapshot=snap,
                        offers_keys={OFFERS: "shop"}, admin_keys={ADMIN: "dpo"}, privacy_key=KEY)
    with TestClient(create_app(cfg)) as client:
        yield client, cfg, con


def _post(client, bearer: str | None, body: dict | bytes):
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/v1/privacy/requests", content=data, headers={**headers, "Content-Type": "application/json"})


def _offers(client, subject: str):
    return client.get(f"/v1/profiles/{subject}/offers", headers={"Authorization": f"Bearer {OFFERS}"})


def test_only_an_admin_key_is_accepted_and_nothing_is_queued_otherwise(world):
    client, cfg, _ = world
    body = {"kind": "erase", "identifiers": {"email": "p3@example.com"}}
    for bearer in (None, WRITE, OFFERS, "ak_wrong" + "0" * 24):
        r = _post(client, bearer, body)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized", bearer
    # The write key as HTTP Basic (as the collection libraries send it) is no admin key either.
    r = client.post("/v1/privacy/requests", json=body, auth=(WRITE, ""))
    assert r.status_code == 401
    assert client.get("/v1/privacy/requests/pr-20260101-000000000000",
                      headers={"Authorization": f"Bearer {WRITE}"}).status_code == 401
    assert queued(cfg.landing_dir) == []


@pytest.mark.parametrize(("body", "field"), [
    (b"{not json", "not JSON"),
    ({"kind": "forget", "identifiers": {"email": "a@b.c"}}, "kind"),
    ({"kind": "erase", "identifiers": {}}, "identifiers"),
    ({"kind": "erase", "identifiers": {"ssn": "1"}}, "identifiers.ssn"),
    ({"kind": "erase", "identifiers": {"phone": "12"}}, "identifiers.phone"),
    ({"kind": "erase", "identifiers": {"email": "not-an-address"}}, "identifiers.email"),
])
def test_a_bad_body_is_400_naming_the_field(world, body, field):
    client, cfg, _ = world
    r = _post(client, ADMIN, body)
    assert r.status_code == 400 and field in r.json()["detail"], r.text
    assert "not-an-address" not in r.text  # the value is never echoed


def test_accepted_request_gets_an_id_status_and_due_date_and_blocks_offers_at_once(world):
    client, cfg, con = world
    stranger = _offers(client, "nobody")
    email_sha = hashlib.sha256(b"p1@example.com").hexdigest()
    assert _offers(client, email_sha).content != stranger.content  # a customer with offers
    r = _post(client, ADMIN, {"kind": "erase", "identifiers": {"email": ["P1@example.com"]}})
    assert r.status_code == 202, r.text
    doc = r.json()
    assert doc["status"] == "accepted" and doc["kind"] == "erase"
    accepted, due = datetime.fromisoformat(doc["accepted_at"]), datetime.fromisoformat(doc["due_at"])
    assert (due - accepted).days == 30
    assert queue_path(cfg.landing_dir, doc["request_id"]).exists()  # durable before the answer
    [req] = [q for q in queued(cfg.landing_dir) if q.request_id == doc["request_id"]]
    assert req.requested_by == "api:dpo" and req.identifiers == {"email": ["P1@example.com"]}
    # From acceptance: the person's e-mail lookup is answered exactly as a stranger's (status, headers, bytes).
    blocked = _offers(client, email_sha)
    assert (blocked.status_code, blocked.content) == (stranger.status_code, stranger.content)
    same = lambda r: sorted((k, v) for k, v in r.headers.items() if k != "date")  # noqa: E731  (the clock aside)
    assert same(blocked) == same(stranger)
    # The status, for an admin only; no identifier in it.
    st = client.get(f"/v1/privacy/requests/{doc['request_id']}", headers={"Authorization": f"Bearer {ADMIN}"})
    assert st.status_code == 200 and st.json()["status"] == "accepted" and "p1@" not in st.text.lower()
    assert client.get("/v1/privacy/requests/pr-20260101-000000000000",
                      headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 404
    # Processing resolves the person and widens the block to their customer id: offers by id go blank too.
    assert _offers(client, "c1").content != stranger.content
    ensure_tables(con)
    suppress(con, cfg.landing_dir, KEY, req, linked={"id": ["c1"]})
    deadline = time.time() + 10
    while _offers(client, "c1").content != stranger.content:
        assert time.time() < deadline, "the widened block did not reach the offers routes"
        time.sleep(0.2)
    assert _offers(client, "c2").content != stranger.content  # nobody else is touched


def test_without_a_privacy_key_the_service_accepts_nothing(tmp_path):
    cfg = ServiceConfig(landing_dir=tmp_path / "landing", write_keys={}, admin_keys={ADMIN: "dpo"}, privacy_key=None)
    with TestClient(create_app(cfg)) as client:
        r = _post(client, ADMIN, {"kind": "erase", "identifiers": {"email": "p3@example.com"}})
    assert r.status_code == 503 and r.json()["error"] == "not_configured"
    assert queued(cfg.landing_dir) == []
