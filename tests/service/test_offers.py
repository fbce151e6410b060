"""Offers: published from the warehouse, served from memory by a real server, swapped when republished."""

from __future__ import annotations

import hashlib
import secrets
import time

import httpx
from support.activation_world import audience, segment, warehouse
from support.service import make_config

from beacon.activation.governance import add_suppression
from beacon.activation.offers import publish_offers
from beacon.testing.service import ServiceProcess


def _wait_version(url: str, old, timeout: float = 120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        snap = httpx.get(f"{url}/health").json()["offers_snapshot"]
        if snap and snap["published"] != old:
            return snap["published"]
        time.sleep(0.1)
    raise AssertionError("the server did not pick up the new snapshot")


def test_offers_from_the_published_snapshot_swap_and_respect_suppression(tmp_path):
    con = warehouse(10)
    winback, vip = audience("winback", priority=10), audience("vip", priority=90)
    segment(con, "winback", ["c1", "c2", "c3"])
    segment(con, "vip", ["c2"])
    add_suppression(con, "erased", "2026-06-01", customer_id="c3")
    con.execute("CREATE SCHEMA IF NOT EXISTS ml")
    con.execute("CREATE TABLE ml.recommendations AS SELECT * FROM (VALUES ('c2', 2, 'p9'), ('c2', 1, 'p4'), "
                "('c3', 1, 'p1')) t(customer_id, rank, product_id)")
    snap = tmp_path / "offers.parquet"
    assert publish_offers(con, [winback, vip], snap) == 10
    key = "ok_" + secrets.token_hex(16)
    proc = ServiceProcess(tmp_path, {**make_config("k", "", "", ("", ""), ""), "offers_snapshot": str(snap),
                                     "offers_keys": {key: "shop"}}).start()
    auth = {"Authorization": f"Bearer {key}"}

    def get(subject: str) -> httpx.Response:
        return httpx.get(f"{proc.url}/v1/profiles/{subject}/offers", headers=auth)

    try:
        v1 = _wait_version(proc.url, None)
        r = get("c2").json()
        assert [o["offer"] for o in r["offers"]] == ["vip", "winback"]  # highest priority first
        assert r["recommendations"] == ["p4", "p9"]  # by rank
        assert "customer_id" not in r  # the caller holds the key it asked for; nothing more is echoed
        # By the email's SHA-256: the same person. A raw email is refused, whoever it is.
        by_hash = get(hashlib.sha256(b"p2@example.com").hexdigest()).json()
        assert by_hash == r
        assert get("P2@Example.com").status_code == get("nobody@example.com").status_code == 400
        erased = get("c3")
        assert erased.status_code == 200 and erased.json()["offers"] == [] and erased.json()["recommendations"] == []
        assert get("c4").json()["offers"] == []  # in no audience
        unknown = get("nobody")
        assert unknown.status_code == 200 and unknown.content == erased.content  # unknown looks like not allowed
        assert httpx.get(f"{proc.url}/v1/profiles/c2/offers").status_code == 401  # no key, no offers
        # The warehouse publishes new marts: c1 leaves winback; the server swaps without a restart.
        assert get("c1").json()["offers"] != []
        segment(con, "winback", ["c2", "c3"])
        publish_offers(con, [winback, vip], snap)
        _wait_version(proc.url, v1)
        assert get("c1").json()["offers"] == []
    finally:
        proc.stop()


def test_no_snapshot_yet_is_503(tmp_path):
    proc = ServiceProcess(tmp_path, {**make_config("k", "", "", ("", ""), ""),
                                     "offers_snapshot": str(tmp_path / "none.parquet")}).start()
    try:
        assert httpx.get(f"{proc.url}/v1/profiles/c1/offers").status_code == 503
    finally:
        proc.stop()
