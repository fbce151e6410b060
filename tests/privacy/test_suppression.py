"""Issue 27, suppress first: from the moment a privacy request is accepted (before any processing), governance
refuses every send to the person (an audience sync and a journey already in flight), the ingest quarantines their
rows as `erased` without keeping them, and a tombstone keeps them out on every re-delivery."""

from __future__ import annotations

import json
import secrets
from datetime import date, timedelta

import pytest
from support.activation_world import AS_OF, audience, segment, warehouse
from support.journeys_world import Outboxes, env, journey

from beacon.activation.governance import governed
from beacon.activation.sync import run_sync
from beacon.ingest import load_landing
from beacon.journeys.engine import advance, ensure_tables
from beacon.privacy.queue import accept, new_request
from beacon.privacy.requests import ensure_tables as ensure_privacy_tables
from beacon.privacy.requests import record, suppress
from beacon.tombstones import blocked_dir
from beacon.warehouse import connect

KEY = "test-privacy-key-" + secrets.token_hex(8)


@pytest.fixture
def landing(tmp_path, monkeypatch):
    """A landing folder and a privacy key in the environment (as Settings read them)."""
    monkeypatch.setenv("BEACON_PRIVACY_KEY", KEY)
    monkeypatch.setenv("BEACON_LANDING_DIR", str(tmp_path / "landing"))
    (tmp_path / "landing").mkdir()
    return tmp_path / "landing"


def _accept(landing, kind: str = "erase", **identifiers):
    req = new_request(kind, identifiers, "tests", "api", 30)
    accept(landing, KEY, req)
    return req


class Recorder:
    """A webhook destination that records the customer ids it receives."""

    name, channel, default_mode, fields, required_any = "rec", "webhook", "upsert", None, ()

    def __init__(self):
        self.received: list[str] = []

    def plan(self, rows, name, meta):
        from beacon.activation.destinations import Batch

        return [Batch(name=name, rows=rows, meta=meta)] if len(rows) else []

    def send(self, batch):
        from beacon.activation.destinations import RowResult

        self.received += list(batch.rows.customer_id)
        return [RowResult(c, "delivered") for c in batch.rows.customer_id]


def test_accepted_requests_stop_an_audience_sync_and_a_journey_in_flight(landing):
    con = warehouse(20)
    ensure_tables(con)
    segment(con, "members", ["c1", "c2", "c3", "c4"])
    j = journey(name="flight", version=1, entry={"audience": "members"}, start="a",
                nodes=[{"id": "a", "type": "send", "channel": "email", "template": "t", "next": "w"},
                       {"id": "w", "type": "wait", "duration": "2d", "next": "b"},
                       {"id": "b", "type": "send", "channel": "email", "template": "t", "next": "done"},
                       {"id": "done", "type": "exit"}])
    boxes = Outboxes()
    t0 = AS_OF
    advance(con, j, t0, env(boxes), lock_path=str(landing / "j.lock"))
    assert sorted(c for _, c, _ in boxes.sent()) == ["c1", "c2", "c3", "c4"]  # all four are in flight
    # Requests accepted by the service (files only: nothing in the warehouse yet, nothing processed).
    _accept(landing, "erase", email=["P1@Example.com "])  # matched on the normalized e-mail
    _accept(landing, "suppress", phone=["(415) 555-0002"])  # on the phone's digits
    _accept(landing, "erase", customer_id=["c3"])
    _accept(landing, "access", customer_id=["c4"])  # an access request suppresses nothing
    with connect(landing.parent / "untouched.duckdb") as other:  # no request reached a warehouse
        assert other.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'privacy'"
                             ).fetchone()[0] == 0
    advance(con, j, t0 + timedelta(days=2, minutes=15), env(boxes), lock_path=str(landing / "j.lock"))
    second = sorted(c for a, c, _ in boxes.sent() if a.endswith("__b"))
    assert second == ["c4"]
    # An audience sync to a destination sends nothing to them either; each is counted as erased.
    aud = audience("members", channels=("webhook",))
    dest = Recorder()
    s = run_sync(con, aud, [aud], dest, AS_OF)
    assert sorted(dest.received) == ["c4"] and s.suppressed.get("erased") == 3
    reasons = governed(con, aud, [aud], "webhook", AS_OF).set_index("customer_id").reason.to_dict()
    assert reasons == {"c1": "erased", "c2": "erased", "c3": "erased", "c4": None}


def test_without_the_key_blocked_files_are_an_error_not_a_send(landing, monkeypatch):
    con = warehouse(5)
    segment(con, "members", ["c1"])
    _accept(landing, "erase", customer_id=["c1"])
    monkeypatch.delenv("BEACON_PRIVACY_KEY")
    aud = audience("members", channels=("webhook",))
    with pytest.raises(ValueError, match="BEACON_PRIVACY_KEY"):
        governed(con, aud, [aud], "webhook", AS_OF)


def _landing_day(landing, day: str, contacts: list[tuple[str, str]], events: list[dict]) -> None:
    d = landing / day
    d.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{cid},co1,Ann,Lee,{email},+1 415 555 01{i:02d},,,,,,,,2026-01-01 00:00:00,2026-01-02 00:00:00\n"
                   for i, (cid, email) in enumerate(contacts))
    (d / "crm_contacts.csv").write_text("contact_id,company_id,first_name,last_name,email,phone,job_title,"
                                        "lifecycle_stage,lead_source,street,city,state,postal_code,created_at,"
                                        "updated_at\n" + rows)
    (d / f"collected_events-{day.replace('-', '')}T000000000000-1-000001.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in events))


def _event(mid: str, anon: str, email: str | None = None) -> dict:
    e = {"messageId": mid, "type": "identify" if email else "page", "anonymousId": anon,
         "timestamp": "2026-01-02T10:00:00Z", "receivedAt": "2026-01-02T10:00:00Z", "source": "web"}
    return {**e, "traits": {"email": email}} if email else e


def test_ingest_quarantines_the_persons_rows_as_erased_and_tombstones_stop_redelivery(landing, tmp_path):
    wh = tmp_path / "wh.duckdb"
    req = _accept(landing, "erase", email=["gone@example.com"], anonymous_id=["anon-gone"])
    _landing_day(landing, "2026-01-02", [("k1", "gone@example.com"), ("k2", "stay@example.com")],
                 [_event("m1", "anon-gone"), _event("m2", "anon-stay", "stay@example.com"),
                  _event("m3", "anon-other", "Gone@Example.com")])
    s = load_landing(landing, until=date(2026, 1, 3), warehouse=wh, webhooks=False)
    assert s.totals()["rows_quarantined"] >= 3
    with connect(wh) as con:
        assert con.execute("SELECT contact_id FROM raw.crm_contacts").fetchall() == [("k2",)]
        assert con.execute("SELECT message_id FROM raw.collected_events").fetchall() == [("m2",)]
        q = con.execute("SELECT source, reason, payload FROM raw._quarantine ORDER BY source, line").fetchall()
        assert q == [("collected_events", "erased", None), ("collected_events", "erased", None),
                     ("crm_contacts", "erased", None)]
        dump = " ".join(str(r) for r in con.execute("SELECT * FROM raw._quarantine").fetchall()).lower()
        assert "gone@example.com" not in dump and "anon-gone" not in dump
        # Processing moves the person to the warehouse's tombstones (here also a source record id).
        ensure_privacy_tables(con)
        record(con, KEY, req)
        suppress(con, landing, KEY, req, linked={"id": ["k9"]})
    # The blocked files gone, the tombstones alone keep the person out of a re-delivered file.
    for f in blocked_dir(landing).glob("*.json"):
        f.unlink()
    _landing_day(landing, "2026-01-03", [("k1", " GONE@example.com"), ("k9", "new@example.com"),
                                         ("k3", "new3@example.com")], [_event("m4", "anon-gone")])
    load_landing(landing, until=date(2026, 1, 4), warehouse=wh, webhooks=False)
    with connect(wh) as con:
        assert sorted(con.execute("SELECT contact_id FROM raw.crm_contacts").fetchall()) == [("k2",), ("k3",)]
        assert con.execute("SELECT count(*) FROM raw.collected_events WHERE message_id = 'm4'").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FILTER (WHERE reason = 'erased'), count(*) FILTER (WHERE payload "
                           "IS NOT NULL AND reason = 'erased') FROM raw._quarantine").fetchone() == (6, 0)
