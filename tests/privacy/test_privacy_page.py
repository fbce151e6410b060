"""Issue 27: the Beacon page shows privacy requests and their status to admins (op, admin), never to the
marketer's role; what it shows holds no identifier."""

from __future__ import annotations

import secrets

from fastapi import HTTPException, Request
from fastapi.testclient import TestClient

from beacon.config import override_env, settings
from beacon.privacy.queue import accept, new_request, public_status, publish_status
from beacon.ui.app import create_app
from beacon.ui.snapshot import privacy_requests

USERS = {"admin-token": ("admin", True, True, True), "marketer-token": ("marketer", True, False, False)}


async def fake_user(request: Request):
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    if token not in USERS:
        raise HTTPException(status_code=401, detail="Not authenticated")
    return USERS[token]


def test_admins_see_requests_and_marketers_never(tmp_path):
    key = "k" * 16 + secrets.token_hex(4)
    landing = tmp_path / "landing"
    waiting = new_request("erase", {"email": ["ada@example.org"]}, "cli:dpo", "cli", 30)
    accept(landing, key, waiting)
    done = new_request("access", {"customer_id": ["C-77"]}, "api:dpo", "api", 30)
    publish_status(landing, {**public_status(done, "completed"), "completed_at": "2026-12-06T10:00:00"})
    with override_env(BEACON_LANDING_DIR=str(landing)):
        rows = privacy_requests(settings())
    assert {r["request_id"]: r["status"] for r in rows} == {waiting.request_id: "accepted",
                                                            done.request_id: "completed"}
    assert "ada@example.org" not in str(rows) and "C-77" not in str(rows)
    app = create_app(get_user=fake_user, authorize=lambda u: u[1:], snapshot=lambda: None, requests=lambda: rows)
    c = TestClient(app)
    admin = c.get("/", headers={"Authorization": "Bearer admin-token"})
    assert admin.status_code == 200 and 'id="privacy"' in admin.text and waiting.request_id in admin.text
    assert c.get("/api/privacy-requests", headers={"Authorization": "Bearer admin-token"}).json() == rows
    marketer = c.get("/", headers={"Authorization": "Bearer marketer-token"})
    assert marketer.status_code == 200 and 'id="privacy"' not in marketer.text
    assert waiting.request_id not in marketer.text and done.request_id not in marketer.text
    assert c.get("/api/privacy-requests", headers={"Authorization": "Bearer marketer-token"}).status_code == 403
    # A page hook that answers (page, personal) only, as before, shows no privacy requests either.
    old = TestClient(create_app(get_user=fake_user, authorize=lambda u: u[1:3], snapshot=lambda: None,
                                requests=lambda: rows))
    assert 'id="privacy"' not in old.get("/", headers={"Authorization": "Bearer admin-token"}).text
