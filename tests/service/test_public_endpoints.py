"""Issue 27: without a credential nothing about a person comes back, and a customer looks like a stranger.

A real server answers offers from a snapshot published from a warehouse: c2 is a customer with offers and
recommendations, c3 is erased (not allowed), `nobody` is unknown.
"""

from __future__ import annotations

import hashlib
import secrets
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.activation_world import audience, segment, warehouse
from support.service import make_config

from beacon.activation.governance import add_suppression
from beacon.activation.offers import publish_offers
from beacon.service.auth import issue_token
from beacon.testing.service import ServiceProcess

CUSTOMER, ERASED, STRANGER = "c2", "c3", "nobody"
CUSTOMER_EMAIL_SHA = hashlib.sha256(b"p2@example.com").hexdigest()


class Offers:
    def __init__(self, proc: ServiceProcess, key: str, token_secret: str, write_key: str):
        self.proc, self.key, self.token_secret, self.write_key = proc, key, token_secret, write_key

    def get(self, path: str, bearer: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        return httpx.get(f"{self.proc.url}{path}", headers=headers)

    def token(self, subject: str) -> str:
        r = httpx.post(f"{self.proc.url}/v1/offers/tokens", headers={"Authorization": f"Bearer {self.key}"},
                       json={"subject": subject, "ttl_seconds": 600})
        assert r.status_code == 200, r.text
        return r.json()["token"]


@pytest.fixture(scope="module")
def offers(tmp_path_factory) -> Offers:
    work = tmp_path_factory.mktemp("public")
    con = warehouse(10)
    winback = audience("winback_lapsed", priority=10)
    segment(con, "winback_lapsed", ["c1", CUSTOMER, ERASED])
    add_suppression(con, "erased", "2026-06-01", customer_id=ERASED)
    con.execute("CREATE SCHEMA IF NOT EXISTS ml")
    con.execute("CREATE TABLE ml.recommendations AS SELECT * FROM (VALUES ('c2', 1, 'p4'), ('c3', 1, 'p1')) "
                "t(customer_id, rank, product_id)")
    snap = work / "offers.parquet"
    publish_offers(con, [winback], snap)
    key, secret, wk = "ok_" + secrets.token_hex(16), "ts_" + secrets.token_hex(24), "wk_" + secrets.token_hex(8)
    proc = ServiceProcess(work, {**make_config(wk, "", "", ("", ""), ""), "offers_snapshot": str(snap),
                                 "offers_keys": {key: "shop"}, "offers_token_secret": secret}).start()
    deadline = time.time() + 20
    while httpx.get(f"{proc.url}/health").json()["offers_snapshot"] is None:
        assert time.time() < deadline, "no snapshot loaded"
        time.sleep(0.1)
    yield Offers(proc, key, secret, wk)
    proc.stop()


def _same(a: httpx.Response, b: httpx.Response) -> None:
    """The same status, the same headers (the clock's Date aside) and the same body bytes."""
    assert a.status_code == b.status_code
    strip = lambda r: sorted((k, v) for k, v in r.headers.items() if k != "date")  # noqa: E731
    assert strip(a) == strip(b)
    assert a.content == b.content


def test_the_fixture_really_holds_a_customer_with_offers(offers):
    r = offers.get(f"/v1/profiles/{CUSTOMER}/offers", offers.key).json()
    assert [o["offer"] for o in r["offers"]] == ["winback_lapsed"] and r["recommendations"] == ["p4"]


def test_without_a_credential_a_customer_and_a_stranger_get_the_same_answer(offers):
    for path in ("/v1/profiles/{}/offers",):
        for creds in (None, "wrong", offers.write_key):  # none, a guess, a write key (shipped in pages)
            customer = offers.get(path.format(CUSTOMER), creds)
            for other in (STRANGER, ERASED, CUSTOMER_EMAIL_SHA, "p2@example.com", "nobody@example.com"):
                _same(customer, offers.get(path.format(other), creds))
            assert customer.status_code == 401 and b"winback" not in customer.content
    # The browser route without a valid token: the same 401 whoever the forged token names.
    forged_customer = issue_token("not-the-secret", CUSTOMER, int(time.time()) + 600)
    forged_stranger = issue_token("not-the-secret", STRANGER, int(time.time()) + 600)
    _same(offers.get("/v1/offers", forged_customer), offers.get("/v1/offers", forged_stranger))
    _same(offers.get("/v1/offers"), offers.get("/v1/offers", forged_customer))
    # No visitor token without the offers key, for a customer or a stranger.
    for subject in (CUSTOMER, STRANGER):
        r = httpx.post(f"{offers.proc.url}/v1/offers/tokens", json={"subject": subject})
        assert r.status_code == 401 and "token" not in r.json()


def test_with_a_credential_unknown_and_not_allowed_are_indistinguishable(offers):
    unknown = offers.get(f"/v1/profiles/{STRANGER}/offers", offers.key)
    erased = offers.get(f"/v1/profiles/{ERASED}/offers", offers.key)  # in an audience, with recommendations
    assert unknown.status_code == 200
    _same(unknown, erased)
    assert unknown.json()["offers"] == [] and unknown.json()["recommendations"] == []
    # Tokens are issued for any subject (issuing says nothing) and answer the same way.
    _same(offers.get("/v1/offers", offers.token(STRANGER)), offers.get("/v1/offers", offers.token(ERASED)))


def test_a_visitor_token_binds_its_subject_and_expires(offers):
    tok = offers.token(CUSTOMER)
    assert offers.get("/v1/offers", tok).json()["offers"][0]["offer"] == "winback_lapsed"
    v, subj, exp, mac = tok.split(".")
    other = issue_token(offers.token_secret, STRANGER, int(exp)).split(".")[1]
    assert offers.get("/v1/offers", f"{v}.{other}.{exp}.{mac}").status_code == 401  # subject swapped
    assert offers.get("/v1/offers", f"{v}.{subj}.{int(exp) + 3600}.{mac}").status_code == 401  # expiry stretched
    expired = issue_token(offers.token_secret, CUSTOMER, int(time.time()) - 1)
    assert offers.get("/v1/offers", expired).status_code == 401
    # A token is not an offers key, and the offers key is not a token.
    assert offers.get(f"/v1/profiles/{CUSTOMER}/offers", tok).status_code == 401
    assert offers.get("/v1/offers", offers.key).status_code == 401
    # Never a raw email, known or not (the same 400 either way), and no token for one.
    _same(offers.get("/v1/profiles/p2@example.com/offers", offers.key),
          offers.get("/v1/profiles/nobody@example.com/offers", offers.key))
    r = httpx.post(f"{offers.proc.url}/v1/offers/tokens", headers={"Authorization": f"Bearer {offers.key}"},
                   json={"subject": "p2@example.com"})
    assert r.status_code == 400
    r = httpx.post(f"{offers.proc.url}/v1/offers/tokens", headers={"Authorization": f"Bearer {offers.key}"},
                   json={"subject": CUSTOMER, "ttl_seconds": 86400})
    assert r.status_code == 400  # at most an hour


def test_an_offers_key_may_not_be_a_write_key():
    from beacon import config
    from beacon.service.config import from_dict

    with pytest.raises(ValueError, match="write key cannot be an offers key"):
        from_dict({"write_keys": {"k" * 20: "web"}, "offers_keys": {"k" * 20: "shop"}}, config.settings(), "cfg.json")
    with pytest.raises(ValueError, match="offers_keys"):
        from_dict({"offers_keys": {"short": "shop"}}, config.settings(), "cfg.json")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120), st.text(min_size=1, max_size=40))
def test_token_parser_never_raises_and_accepts_only_its_own_tokens(junk, subject):
    from beacon.service.auth import verify_token

    now = 1_800_000_000
    assert verify_token("s" * 32, junk, now) is None  # no forged string passes, none raises
    good = issue_token("s" * 32, subject, now + 60)
    assert verify_token("s" * 32, good, now) == subject
    assert verify_token("t" * 32, good, now) is None  # another secret
    assert verify_token("s" * 32, good, now + 61) is None  # expired


def test_the_window_limiter_counts_per_key_resets_and_stays_bounded():
    from beacon.service.auth import WindowLimiter

    lim = WindowLimiter(2, 60, max_keys=100)
    assert lim.hit("a", 0) == 0 and lim.hit("a", 1) == 0
    assert lim.hit("a", 2) == pytest.approx(58)  # the 3rd in the window: wait to its end
    assert lim.hit("b", 2) == 0  # another key is not affected
    assert lim.hit("a", 60) == 0  # a new window
    for i in range(10_000):
        lim.hit(f"k{i}", 61)
    assert len(lim._hits) == 100  # a flood of distinct keys cannot grow memory
