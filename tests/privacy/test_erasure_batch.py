"""Erasure as a batch (docs/privacy.md "What is erased"): many requests resolved in set-based joins give each the
person it would get alone; one pass over a file finds every person of the batch; and the warehouse file itself keeps
no byte of an erased e-mail once the batch is done (a scan of the .duckdb file, not of SQL results)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beacon.privacy.catalog import PiiColumn
from beacon.privacy.erase import erase_subjects
from beacon.privacy.files import clean_file
from beacon.privacy.match import Keys
from beacon.privacy.subject import Subject, SubjectError, resolve_subject, resolve_subjects
from privacy.test_erasure import CAT, _warehouse
from privacy.test_request_processing import world  # noqa: F401 - the fixture

# The identity tables too, so that after the erasure nothing of Ann is live anywhere in the file.
FULL_CAT = CAT + [PiiColumn("intermediate", t, c, k, "test") for t, c, k in [
    ("int_customer_records_unioned", "record_key", "identifier"), ("int_customer_records_unioned", "email", "email"),
    ("int_customer_records_unioned", "email_canonical", "email"), ("int_customer_records_unioned", "phone_e164", "phone"),
    ("int_identity_events", "record_key", "identifier"), ("int_identity_events", "customer_id", "identifier"),
    ("int_identity_events", "previous_customer_id", "identifier"),
    ("int_customer_records_resolved", "record_key", "identifier"),
    ("int_customer_records_resolved", "customer_id", "identifier"),
    ("int_web_identities_mapped", "anonymous_id", "identifier"),
    ("int_web_identities_mapped", "customer_id", "identifier")]]
ANN = [b"ann.lee@example.com", b"annlee+shop@gmail.com", b"annlee@gmail.com"]

REQUESTS = [
    {"email": ["ANN.LEE@example.com"]},
    {"customer_id": ["cus_d4e5f6"]},  # Ann's merged-away id
    {"phone": ["415-555-0100"]},  # a household phone alone: refused
    {"phone": ["415-555-0100"], "anonymous_id": ["anon-aaaa1111"]},  # pinned to Ann
    {"email": ["bob@example.com"]},
    {"email": ["ghost@example.com"]},  # unknown: kept as given
    {"ssn": ["1"]},  # unusable
    {"anonymous_id": ["anon-zzzz9999"]},
]


@pytest.fixture
def con():
    c = duckdb.connect()
    _warehouse(c)
    yield c
    c.close()


def _one(con, ids) -> Subject | SubjectError:
    try:
        return resolve_subject(con, ids)
    except SubjectError as exc:
        return exc


def test_a_batch_resolves_each_request_as_it_would_be_alone(con):
    batch = resolve_subjects(con, REQUESTS)
    assert len(batch) == len(REQUESTS)
    for ids, got in zip(REQUESTS, batch, strict=True):
        alone = _one(con, ids)
        if isinstance(alone, SubjectError):
            assert isinstance(got, SubjectError) and str(got) == str(alone), ids
        else:
            assert got == alone, ids
    assert isinstance(batch[2], SubjectError) and "2 different customers" in str(batch[2])
    assert isinstance(batch[6], SubjectError)
    assert "crm:C0000002" in batch[4].record_keys and "crm:C0000002" not in batch[0].record_keys


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(range(len(REQUESTS))), min_size=1, max_size=12))
def test_any_batch_order_gives_the_same_people(order):
    c = duckdb.connect()
    _warehouse(c)
    batch = resolve_subjects(c, [REQUESTS[i] for i in order])
    for i, got in zip(order, batch, strict=True):
        alone = _one(c, REQUESTS[i])
        assert (str(got) == str(alone)) if isinstance(alone, SubjectError) else got == alone
    c.close()


def test_one_pass_over_a_file_finds_every_person_of_the_batch(con, tmp_path, monkeypatch):
    ann, bob = resolve_subjects(con, [REQUESTS[0], REQUESTS[4]])
    lines = ["id,email,phone\n", "C0000003,cy@example.com,\n", "C0000001,Ann.Lee@Example.com,\n",
             "x,y,+1 (415) 555-0100\n", "C0000002,BOB@example.com,\n", "C0000009,bobby@example.com,\n"]
    text = "".join(lines * 50)
    plain, gz = tmp_path / "a.csv", tmp_path / "b.csv.gz"
    plain.write_text(text)
    gz.write_bytes(gzip.compress(text.encode()))
    monkeypatch.setattr("beacon.privacy.files.LARGE", 64)  # blocks of 64 bytes: lines straddle every block edge
    keys = Keys.of([ann, bob])
    kept = "".join((lines[0], lines[1], lines[5]) * 50)
    assert clean_file(plain, keys) == (150, None) and plain.read_text() == kept
    assert clean_file(gz, keys) == (150, None) and gzip.decompress(gz.read_bytes()).decode() == kept
    untouched = tmp_path / "c.csv"
    untouched.write_text("id\nC0000003\n")
    before = untouched.stat().st_mtime_ns
    assert clean_file(untouched, keys) == (0, None) and untouched.stat().st_mtime_ns == before  # not rewritten


def _file_warehouse(path: Path) -> tuple[Subject, Subject]:
    path.parent.mkdir(parents=True, exist_ok=True)
    c = duckdb.connect(str(path))
    _warehouse(c)
    c.execute("CREATE SCHEMA IF NOT EXISTS privacy")
    c.execute("CREATE SEQUENCE privacy.audit_seq")
    c.execute("CREATE TABLE privacy.audit (seq BIGINT DEFAULT nextval('privacy.audit_seq'), event VARCHAR)")
    c.execute("INSERT INTO privacy.audit (event) VALUES ('accepted'), ('suppressed')")
    subjects = resolve_subjects(c, [REQUESTS[0], {"email": ["cy@example.com"]}])
    c.execute("CHECKPOINT")
    c.close()
    return subjects[0], subjects[1]


def test_the_warehouse_file_keeps_no_byte_of_an_erased_email(tmp_path, monkeypatch):
    from beacon.config import settings as beacon_settings

    monkeypatch.setenv("BEACON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    (tmp_path / "airflow").mkdir()
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}")
    for var in ("BEACON_WAREHOUSE_KEY", "BEACON_WAREHOUSE_KEY_FILE", "BEACON_WAREHOUSE_KEY_CONN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("beacon.privacy.erase.catalog", lambda: FULL_CAT)
    s = beacon_settings()
    wh = Path(s.warehouse_path)
    ann, cy = _file_warehouse(wh)
    assert all(e in wh.read_bytes().lower() for e in ANN)  # the scan can fail: the plain file holds her e-mails
    uncompacted = tmp_path / "uncompacted.duckdb"
    shutil.copy(wh, uncompacted)

    report = erase_subjects(s, [ann, cy], "batch")

    assert report.compaction["done"] and "compact" in report.seconds and report.complete, report.unclean
    data = wh.read_bytes().lower()
    assert not [e for e in ANN if e in data] and b"cy@example.com" not in data
    assert b"bob@example.com" in data  # the others' rows are still there
    assert not Path(str(wh) + ".wal").exists() and not list(wh.parent.glob("*.compacting*"))
    c = duckdb.connect(str(wh))
    assert c.execute("SELECT customer_id FROM marts.dim_customers").fetchall() == [("cus_g7h8i9",)]
    assert c.execute("SELECT email FROM marts.profile_view").fetchall() == [("bob@example.com",)]  # views kept
    c.execute("INSERT INTO privacy.audit (event) VALUES ('completed')")
    assert c.execute("SELECT seq FROM privacy.audit ORDER BY seq").fetchall() == [(1,), (2,), (3,)]  # sequence kept
    c.close()

    # Why the compaction: without it, DuckDB leaves the deleted rows' bytes in the file's free blocks.
    monkeypatch.setenv("BEACON_WAREHOUSE", str(uncompacted))
    report = erase_subjects(beacon_settings(), [ann, cy], "batch", files=False, compaction=False)
    assert report.compaction == {"done": False, "reason": "not asked"}
    assert any(e in uncompacted.read_bytes().lower() for e in ANN)


def test_queued_erase_requests_are_processed_as_one_batch(world):  # noqa: F811 - the imported fixture
    """The DAG's queue: several erase requests resolved and erased together, each with its own complete record."""
    from beacon.activation.erasure import remove_subject
    from beacon.privacy.queue import queued
    from beacon.privacy.requests import process_queued, submit
    from beacon.warehouse import connect

    s = world
    reqs = [submit(s, "erase", {"customer_id": [f"CUS-00000{i}"]}, "api:dpo") for i in (4, 5, 6)]
    access = submit(s, "access", {"customer_id": ["CUS-000002"]}, "api:dpo")
    docs = {d["request_id"]: d for d in process_queued(s, remove_subject)}
    assert {i: d["status"] for i, d in docs.items()} == {r.request_id: "completed" for r in [*reqs, access]}
    assert not queued(s.landing_dir)
    with connect(s.warehouse_path) as con:
        assert con.execute("""SELECT count(*) FROM marts.dim_customers
                              WHERE customer_id IN ('CUS-000004', 'CUS-000005', 'CUS-000006')""").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM marts.dim_customers").fetchone()[0] == 7
        done = con.execute("""SELECT request_id, detail, stores FROM privacy.audit WHERE event = 'completed'
                              AND request_id IN (SELECT unnest(?))""", [[r.request_id for r in reqs]]).fetchall()
    assert sorted(r for r, _, _ in done) == sorted(r.request_id for r in reqs)  # one completed record each
    assert all("with 2 other requests" in d and json.loads(st)["warehouse"]["marts.dim_customers"] == 3
               for _, d, st in done)
    assert all(docs[r.request_id]["result"]["batch"]["requests"] == 3 for r in reqs)
