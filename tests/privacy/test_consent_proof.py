"""Issue 27, item 8: an erased person's consent records are kept as proof (that consent was given or withdrawn, when,
from which source) but hold no plaintext identifier: through a real erase request (`submit` + `process_request`, as
`beacon privacy erase` does), the person's `raw.consent` rows stay, with each identifier replaced by `erased:<keyed
hash>` (the hash the tombstones hold) and the proof by its digest; everyone else's records are untouched. (The consent staging model leaves pseudonymized records out: its dbt unit
test in stg_consent__records.yml.)"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime

import pytest
from support.privacy_world import request_world

from beacon.activation.erasure import remove_subject
from beacon.privacy.requests import process_request, submit
from beacon.tombstones import keyed_hash
from beacon.warehouse import connect

KEY = "test-privacy-key-" + secrets.token_hex(8)
PROOF_1 = json.dumps({"ip": "198.51.100.7", "email": "p1@example.com", "asked": "newsletter"})
PROOF_2 = json.dumps({"ip": "198.51.100.8", "email": "p2@example.com", "asked": "newsletter"})
# (consent_id, email, phone, channel, status, source, recorded_at, topic, customer_id, audience, proof)
CONSENT = [
    ("k1", " P1@Example.com", None, "email", "opt_in", "form", datetime(2026, 1, 5, 9), None, None, None, PROOF_1),
    ("k2", None, "(415) 555-0001", "sms", "opt_out", "crm_form", datetime(2026, 2, 1), None, None, None, None),
    ("k3", None, None, "email", "opt_out", "preference-centre", datetime(2026, 3, 1), "news", "CUS-000001", None,
     None),
    ("k4", "p2@example.com", "+1 415 555 0002", "email", "opt_in", "form", datetime(2026, 1, 6), None, None, None,
     PROOF_2),
]


@pytest.fixture
def world(tmp_path, monkeypatch, manifest):
    s, con = request_world(tmp_path, monkeypatch, KEY)
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute("""CREATE TABLE raw.consent (consent_id VARCHAR, email VARCHAR, phone VARCHAR, channel VARCHAR,
        status VARCHAR, source VARCHAR, recorded_at TIMESTAMP, topic VARCHAR, customer_id VARCHAR, audience VARCHAR,
        proof VARCHAR, _loaded_at TIMESTAMP)""")
    con.executemany("INSERT INTO raw.consent VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '2026-06-30')", CONSENT)
    con.close()
    return s


def test_an_erase_request_keeps_the_consent_records_as_pseudonymized_proof(world):
    s = world
    ids = {"email": ["p1@example.com"], "phone": ["+1 415 555 0001"], "customer_id": ["CUS-000001"]}
    doc = process_request(s, submit(s, "erase", ids, "cli:dpo"), remove_subject)
    assert doc["status"] == "completed", doc
    assert doc["result"]["pseudonymized"]["raw.consent"] == 3
    with connect(s.warehouse_path) as con:
        rows = {r[0]: r[1:] for r in con.execute("""SELECT consent_id, email, phone, customer_id, channel, status,
            source, recorded_at, topic, proof FROM raw.consent""").fetchall()}
        tombstones = {r[0] for r in con.execute("SELECT key_hash FROM privacy.tombstones").fetchall()}
        assert con.execute("SELECT count(*) FROM marts.dim_consent WHERE customer_id = 'CUS-000001'").fetchone()[0] == 0
    assert sorted(rows) == ["k1", "k2", "k3", "k4"]  # nothing deleted: the proof is kept
    k1, k2, k3 = rows["k1"], rows["k2"], rows["k3"]
    # The fact, the time and the source stay.
    assert k1[3:8] == ("email", "opt_in", "form", datetime(2026, 1, 5, 9), None)
    assert k2[3:6] == ("sms", "opt_out", "crm_form") and k3[3:6] == ("email", "opt_out", "preference-centre")
    # Each identifier is the keyed hash the tombstones hold, whatever its case, spacing or phone format.
    assert k1[0] == "erased:" + keyed_hash(KEY, "email", "p1@example.com") and k1[1] is None
    assert k2[1] == "erased:" + keyed_hash(KEY, "phone", "+14155550001")
    assert k3[2] == "erased:" + keyed_hash(KEY, "id", "CUS-000001")
    assert {k1[0][7:], k2[1][7:], k3[2][7:]} <= tombstones
    # The proof becomes its digest: a copy of the original shown later still matches it.
    assert json.loads(k1[8]) == {"erased": True, "proof_sha256": hashlib.sha256(PROOF_1.encode()).hexdigest()}
    assert k2[8] is None
    text = json.dumps([rows[k] for k in ("k1", "k2", "k3")], default=str).lower()
    assert not [v for v in ("p1@example.com", "4155550001", "555-0001", "cus-000001", "198.51.100.7") if v in text]
    # Someone else's record is untouched.
    assert rows["k4"][:3] == ("p2@example.com", "+1 415 555 0002", None) and rows["k4"][8] == PROOF_2
    # A second request for the same person changes nothing more (the pseudonyms no longer match anyone).
    again = process_request(s, submit(s, "erase", ids, "cli:dpo"), remove_subject)
    assert again["status"] == "completed" and "raw.consent" not in again["result"]["pseudonymized"]
