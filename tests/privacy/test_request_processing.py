"""Issue 27: a request is recorded, suppressed, processed and audited: the command's urgent path and the queue the
DAG drains; a failed attempt is recorded and retried; the audit trail has one complete record per request and
holds no plaintext identifier; the plaintext queue file is gone once the request completes."""

from __future__ import annotations

import json
import secrets

import pytest
from support.privacy_world import request_world

from beacon.activation.erasure import remove_subject
from beacon.cli import main
from beacon.privacy.queue import queue_path, queued
from beacon.privacy.requests import load_queued, process_queued, process_request, statuses, submit
from beacon.warehouse import connect

KEY = "test-privacy-key-" + secrets.token_hex(8)
# People of the small world are CUS-000000..CUS-000009 with p<i>@example.com and +1415555000<i>.
PLAIN = ("p1@example.com", "p2@example.com", "p3@example.com", "4155550001", "4155550002", "4155550003")


@pytest.fixture
def world(tmp_path, monkeypatch, manifest):
    """A file warehouse of ten people, and every folder a request touches inside tmp_path (the PII tags come from
    the dbt manifest)."""
    s, con = request_world(tmp_path, monkeypatch, KEY)
    con.close()
    return s


def _privacy_text(s) -> str:
    """Everything the privacy schema holds, as text."""
    with connect(s.warehouse_path) as con:
        return json.dumps([con.execute(f"SELECT * FROM privacy.{t}").fetchall()
                           for t in ("requests", "audit", "tombstones")], default=str)


def test_urgent_erase_completes_with_one_complete_audit_record_and_no_plaintext(world):
    s = world
    req = submit(s, "erase", {"email": ["P1@example.com"], "phone": ["(415) 555-0001"], "customer_id": ["CUS-000001"]},
                 "cli:dpo")
    doc = process_request(s, req, remove_subject)
    assert doc["status"] == "completed", doc
    assert not queue_path(s.landing_dir, req.request_id).exists()  # the only plaintext copy is gone
    with connect(s.warehouse_path) as con:
        assert con.execute("SELECT count(*) FROM marts.dim_customers WHERE customer_id = 'CUS-000001'").fetchone()[0] == 0
        events = con.execute("SELECT event FROM privacy.audit WHERE request_id = ? ORDER BY seq",
                             [req.request_id]).fetchall()
        assert [e for (e,) in events] == ["accepted", "suppressed", "completed"]
        done = con.execute("""SELECT requested_by, channel, kind, accepted_at, due_at, completed_at, status, stores,
                                     destinations, unclean FROM privacy.audit
                              WHERE request_id = ? AND event = 'completed'""", [req.request_id]).fetchall()
        assert len(done) == 1
        who, channel, kind, accepted, due, completed, status, stores, dests, unclean = done[0]
        assert (who, channel, kind, status) == ("cli:dpo", "cli", "erase", "completed")
        assert accepted <= completed and (due - accepted).days == 30
        assert json.loads(stores)["warehouse"]["marts.dim_customers"] == 1  # rows touched per store and table
        assert json.loads(dests) == {} and json.loads(unclean) == []  # no destination synced in this world
    text = _privacy_text(s)
    assert not [p for p in PLAIN if p in text.lower()]
    assert "cus-000001" not in text.lower()
    assert statuses(s, req.request_id)[0]["status"] == "completed"


def test_queued_requests_load_suppressed_then_a_failure_is_recorded_and_retried(world):
    s = world
    a = submit(s, "erase", {"email": ["p2@example.com"]}, "api:dpo")
    b = submit(s, "suppress", {"customer_id": ["CUS-000003"]}, "api:dpo")
    assert {r.request_id for r in load_queued(s)} == {a.request_id, b.request_id}
    assert {d["request_id"]: d["status"] for d in statuses(s)} == {a.request_id: "suppressed",
                                                                   b.request_id: "suppressed"}

    def broken(settings_, subject):
        raise ConnectionError("destination unreachable")

    docs = process_queued(s, broken)
    assert {d["request_id"]: d["status"] for d in docs} == {a.request_id: "failed", b.request_id: "completed"}
    assert [r.request_id for r in queued(s.landing_dir)] == [a.request_id]  # kept for the next run
    docs = process_queued(s, remove_subject)
    assert [(d["request_id"], d["status"]) for d in docs] == [(a.request_id, "completed")]
    with connect(s.warehouse_path) as con:
        per_request = dict(con.execute("SELECT request_id, count(*) FILTER (WHERE event = 'completed') "
                                       "FROM privacy.audit GROUP BY 1").fetchall())
        assert per_request == {a.request_id: 1, b.request_id: 1}
        assert con.execute("SELECT detail FROM privacy.audit WHERE event = 'failed'").fetchall() == [
            ("ConnectionError: destination unreachable",)]
        # Suppress keeps the data (the person is only blocked).
        assert con.execute("SELECT count(*) FROM marts.dim_customers WHERE customer_id = 'CUS-000003'").fetchone()[0] == 1
    text = _privacy_text(s)
    assert not [p for p in PLAIN if p in text.lower()]


def test_the_command_erases_accesses_and_reports_status(world, capsys):
    assert main(["privacy", "access", "--customer-id", "CUS-000003", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "completed" and doc["kind"] == "access"
    path = doc["result"]["access_document"]
    assert "p3@example.com" in open(path).read() and open(path.replace(".json", ".html")).read().startswith("<")
    assert main(["privacy", "suppress", "--phone", "+1 415 555 0002", "--queue-only", "--json"]) == 0
    queued_doc = json.loads(capsys.readouterr().out)
    assert queued_doc["status"] == "accepted"
    assert main(["privacy", "status", queued_doc["request_id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "accepted"
    assert main(["privacy", "erase", "--json"]) == 2  # no identifier: a clear error
    assert "give at least one of" in capsys.readouterr().err
