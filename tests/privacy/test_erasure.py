"""Resolution, erasure, access and destination removes on a small hand-made warehouse (no pipeline): the rules each
module promises (docs/privacy.md), person A merged from two records, person B sharing A's household phone."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from beacon.privacy.access import build_access_document, render_access_html, warehouse_section
from beacon.privacy.airflow_meta import erase_xcoms
from beacon.privacy.catalog import PiiColumn
from beacon.privacy.erase import EraseReport, erase_warehouse
from beacon.privacy.files import clean_file, erase_files, record_rewrites
from beacon.privacy.match import Keys
from beacon.privacy.subject import SubjectError, check_identifiers, resolve_subject

CAT = [PiiColumn(s, t, c, k, "test") for s, t, c, k in [
    ("raw", "crm_contacts", "contact_id", "identifier"), ("raw", "crm_contacts", "email", "email"),
    ("raw", "crm_contacts", "phone", "phone"), ("raw", "crm_contacts", "first_name", "name"),
    ("raw", "collected_events", "anonymous_id", "identifier"), ("raw", "collected_events", "email", "email"),
    ("raw", "collected_events", "payload", "free_text"),
    ("marts", "dim_customers", "customer_id", "identifier"), ("marts", "dim_customers", "email", "email"),
    ("activation", "sync_log", "customer_id", "identifier"), ("activation", "sync_log", "error", "free_text"),
    ("marts", "profile_view", "customer_id", "identifier"),
]]


def _warehouse(con: duckdb.DuckDBPyConnection) -> None:
    for schema in ("raw", "intermediate", "marts", "activation"):
        con.execute(f"CREATE SCHEMA {schema}")
    con.execute("""CREATE TABLE intermediate.int_customer_records_unioned AS SELECT * FROM (VALUES
        ('crm:C0000001', 'crm', 'C0000001', 'Ann.Lee@Example.com', 'ann.lee@example.com', '+14155550100', 'Ann', 'Lee'),
        ('shop:S0000001', 'shop', 'S0000001', 'annlee+shop@gmail.com', 'annlee@gmail.com', NULL, 'Ann', 'Lee'),
        ('crm:C0000002', 'crm', 'C0000002', 'bob@example.com', 'bob@example.com', '+14155550100', 'Bob', 'Lee'))
        t(record_key, source, record_id, email, email_canonical, phone_e164, first_name, last_name)""")
    # S1 was its own customer (cus_d4e5f6) until run 2 merged it into cus_a1b2c3.
    con.execute("""CREATE TABLE intermediate.int_identity_events AS SELECT * FROM (VALUES
        ('crm:C0000001', 'crm', 'C0000001', 'cus_a1b2c3', 'assigned', NULL, 1), ('shop:S0000001', 'shop', 'S0000001', 'cus_d4e5f6', 'assigned', NULL, 1),
        ('shop:S0000001', 'shop', 'S0000001', 'cus_a1b2c3', 'merged', 'cus_d4e5f6', 2), ('crm:C0000002', 'crm', 'C0000002', 'cus_g7h8i9', 'assigned', NULL, 1))
        t(record_key, source, record_id, customer_id, event, previous_customer_id, resolution_run)""")
    con.execute("""CREATE TABLE intermediate.int_customer_records_resolved AS SELECT * FROM (VALUES
        ('crm', 'C0000001', 'crm:C0000001', 'cus_a1b2c3'), ('shop', 'S0000001', 'shop:S0000001', 'cus_a1b2c3'), ('crm', 'C0000002', 'crm:C0000002', 'cus_g7h8i9'))
        t(source, record_id, record_key, customer_id)""")
    con.execute("""CREATE TABLE intermediate.int_web_identities_mapped AS SELECT * FROM (VALUES
        ('anon-aaaa1111', 'cus_a1b2c3')) t(anonymous_id, customer_id)""")
    con.execute("""CREATE TABLE raw.crm_contacts AS SELECT * FROM (VALUES
        ('C0000001', 'Ann.Lee@Example.com', '(415) 555-0100', 'Ann'), ('C0000002', 'bob@example.com', '415.555.0100', 'Bob'),
        ('C0000003', 'cy@example.com', '212 555 0199', 'Cy')) t(contact_id, email, phone, first_name)""")
    con.execute("""CREATE TABLE raw.collected_events AS SELECT * FROM (VALUES
        ('anon-zzzz9999', NULL, 'ann.lee@example.com', '{"traits":{"email":"ann.lee@example.com"}}'),
        ('anon-yyyy8888', NULL, NULL, '{"properties":{"note":"call me on +1 415-555-0100"}}'),
        ('anon-xxxx7777', NULL, 'cy@example.com', '{"traits":{"email":"cy@example.com"}}'))
        t(anonymous_id, user_id, email, payload)""")
    con.execute("""CREATE TABLE marts.dim_customers AS SELECT * FROM (VALUES
        ('cus_a1b2c3', 'ann.lee@example.com'), ('cus_g7h8i9', 'bob@example.com')) t(customer_id, email)""")
    con.execute("""CREATE TABLE activation.sync_log AS SELECT * FROM (VALUES
        ('cus_a1b2c3', 'delivered', NULL), ('cus_a1b2c3', 'failed', 'bounce for ann.lee@example.com'), ('cus_g7h8i9', 'delivered', NULL))
        t(customer_id, status, error)""")
    con.execute("CREATE VIEW marts.profile_view AS SELECT customer_id, email FROM marts.dim_customers")


@pytest.fixture
def con():
    c = duckdb.connect()
    _warehouse(c)
    yield c
    c.close()


def test_identifiers_are_checked():
    with pytest.raises(SubjectError, match="unknown identifier kind 'ssn'"):
        check_identifiers({"ssn": ["1"]})
    with pytest.raises(SubjectError, match="at least one identifier"):
        check_identifiers({"email": ["  "]})
    with pytest.raises(SubjectError, match="not an e-mail"):
        check_identifiers({"email": ["nobody"]})
    assert check_identifiers({"email": " a@b.co "}) == {"email": ("a@b.co",)}


def test_one_email_resolves_to_every_record_and_id_of_the_person(con):
    sub = resolve_subject(con, {"email": ["ANN.LEE@example.com"]})
    assert set(sub.customer_ids) == {"cus_a1b2c3", "cus_d4e5f6"}  # the merged-away id too
    assert set(sub.record_keys) == {"crm:C0000001", "shop:S0000001"}
    assert {"ann.lee@example.com", "annlee+shop@gmail.com", "annlee@gmail.com"} <= set(sub.emails)
    assert {"anon-aaaa1111", "anon-zzzz9999"} <= set(sub.anonymous_ids)  # identity map and a collected identify
    assert set(sub.names) == {"Ann", "Lee"} and "+14155550100" in sub.phones


def test_the_merged_away_customer_id_resolves_to_the_same_person(con):
    assert set(resolve_subject(con, {"customer_id": ["cus_d4e5f6"]}).record_keys) == {"crm:C0000001", "shop:S0000001"}


def test_a_household_phone_alone_is_refused_and_pinned_by_another_identifier(con):
    with pytest.raises(SubjectError, match="belongs to 2 different customers"):
        resolve_subject(con, {"phone": ["415-555-0100"]})
    sub = resolve_subject(con, {"phone": ["415-555-0100"], "anonymous_id": ["anon-aaaa1111"]})
    assert "crm:C0000002" not in sub.record_keys and "crm:C0000001" in sub.record_keys


def test_an_unknown_person_keeps_the_identifiers_given(con):
    sub = resolve_subject(con, {"email": ["ghost@example.com"]})
    assert not sub.found and sub.emails == ("ghost@example.com",) and sub.notes


def test_keys_match_tokens_and_phones_in_any_format():
    k = Keys.of([resolve_subject(duckdb.connect(), {"email": ["a.b@x.com"], "phone": ["+1 415 555 0100"]})])
    assert k.tokens_hit('{"email":"A.B@x.com"}') and k.tokens_hit("call (415) 555-0100.")
    assert not k.tokens_hit("aa.b@x.com") and not k.tokens_hit("order 4155550101")


def test_erasure_deletes_pseudonymizes_and_blanks(con):
    sub = resolve_subject(con, {"email": ["ann.lee@example.com"]})
    report = EraseReport("r1")
    erase_warehouse(con, [sub], report, cat=CAT)
    assert con.execute("SELECT contact_id, phone FROM raw.crm_contacts ORDER BY 1").fetchall() == [
        ("C0000002", None), ("C0000003", "212 555 0199")]  # Bob keeps his row; the shared phone goes
    # Ann's identify goes; another visitor's message quoting her (shared) phone stays, without the message.
    assert con.execute("SELECT anonymous_id, payload FROM raw.collected_events ORDER BY 1").fetchall() == [
        ("anon-xxxx7777", '{"traits":{"email":"cy@example.com"}}'), ("anon-yyyy8888", None)]
    assert report.blanked == {"raw.crm_contacts": 1, "raw.collected_events": 1}
    assert con.execute("SELECT customer_id FROM marts.dim_customers").fetchall() == [("cus_g7h8i9",)]
    log = con.execute("SELECT customer_id, status, error FROM activation.sync_log ORDER BY status, customer_id").fetchall()
    assert len(log) == 3 and {r[2] for r in log} == {None}  # counts kept, the quoted address blanked
    tokens = {r[0] for r in log if r[0] != "cus_g7h8i9"}
    assert len(tokens) == 1 and next(iter(tokens)).startswith("erased_")  # one random token for Ann's rows
    assert report.pseudonymized == {"activation.sync_log": 2} and report.complete
    assert "ann" not in json.dumps(report.to_dict()).lower()


def test_erasure_drops_the_identity_view_left_behind(con):
    con.execute("CREATE VIEW main._records_in AS SELECT * FROM intermediate.int_customer_records_unioned")
    erase_warehouse(con, [resolve_subject(con, {"email": ["ann.lee@example.com"]})], EraseReport("r"), cat=CAT)
    assert not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = '_records_in'"
                           ).fetchall()[0][0]


def _files(root: Path) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    f = {"csv": root / "a.csv", "jsonl": root / "b.jsonl", "json": root / "c.json", "parquet": root / "d.parquet",
         "gz": root / "e.log.gz", "bin": root / "f.bin", "html": root / "g.html"}
    f["csv"].write_text("id,email\nC0000001,Ann.Lee@Example.com\nC0000003,cy@example.com\n")
    f["jsonl"].write_text('{"anonymousId":"anon-aaaa1111"}\n{"anonymousId":"anon-other000"}\n')
    f["json"].write_text(json.dumps({"sample": [{"customer_id": "cus_a1b2c3"}, {"customer_id": "cus_g7h8i9"}],
                                     "owner": "cus_a1b2c3", "n": 2}))
    pq.write_table(pa.table({"customer_id": ["cus_a1b2c3", "cus_g7h8i9"], "v": [1, 2]}), f["parquet"])
    f["gz"].write_bytes(gzip.compress(b"INFO sent to ann.lee@example.com\nINFO done\n"))
    f["bin"].write_bytes(b"\x00\x01 ann.lee@example.com \x00")
    f["html"].write_text("<tr><td>Ann Lee</td><td>ann.lee@example.com</td></tr>\n<tr><td>Cy</td></tr>\n")
    return f


def test_files_are_rewritten_without_the_person(con, tmp_path):
    f = _files(tmp_path)
    keys = Keys.of([resolve_subject(con, {"email": ["ann.lee@example.com"]})])
    results = {k: clean_file(p, keys) for k, p in f.items()}
    assert f["csv"].read_text() == "id,email\nC0000003,cy@example.com\n"
    assert f["jsonl"].read_text() == '{"anonymousId":"anon-other000"}\n'
    assert json.loads(f["json"].read_text()) == {"sample": [{"customer_id": "cus_g7h8i9"}], "owner": None, "n": 2}
    assert pd.read_parquet(f["parquet"]).customer_id.tolist() == ["cus_g7h8i9"]
    assert gzip.decompress(f["gz"].read_bytes()) == b"INFO done\n"
    assert "ann" not in f["html"].read_text().lower()
    assert results["bin"] == (0, "binary file of an unknown format (.bin) holds a key")
    assert not [p for p in tmp_path.iterdir() if "erase-tmp" in p.name]  # renamed into place


def test_rewritten_landing_files_are_known_to_the_load_ledger(con, tmp_path, monkeypatch):
    from beacon.config import settings
    from beacon.ingest.files import file_sha256

    landing = tmp_path / "data" / "landing" / "2026-01-01"
    landing.mkdir(parents=True)
    csv_file = landing / "crm_contacts.csv"
    csv_file.write_text("contact_id,email\nC0000001,ann.lee@example.com\nC0000003,cy@example.com\n")
    old = file_sha256(csv_file)
    con.execute("""CREATE TABLE raw._load_ledger (batch_id VARCHAR, source VARCHAR, file VARCHAR, file_sha256 VARCHAR,
        file_bytes BIGINT, rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, status VARCHAR, error VARCHAR,
        loaded_at TIMESTAMP, reason VARCHAR)""")
    con.execute("INSERT INTO raw._load_ledger VALUES ('b', 'crm_contacts', ?, ?, 1, 2, 2, 0, 'loaded', NULL, now(), NULL)",
                [str(csv_file), old])
    monkeypatch.setenv("BEACON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    report = EraseReport("r")
    rewritten = erase_files(settings(), Keys.of([resolve_subject(con, {"email": ["ann.lee@example.com"]})]), report)
    assert rewritten == [(str(csv_file), old, file_sha256(csv_file))]
    assert record_rewrites(con, rewritten) == 1 and record_rewrites(con, rewritten) == 0  # idempotent
    assert con.execute("SELECT count(*) FROM raw._load_ledger WHERE file_sha256 = ? AND status = 'loaded'",
                       [file_sha256(csv_file)]).fetchall()[0][0] == 1


def test_xcoms_holding_the_person_are_deleted(con, tmp_path):
    db = tmp_path / "airflow.db"
    lite = sqlite3.connect(db)
    lite.execute("CREATE TABLE xcom (dag_run_id INTEGER, task_id TEXT, map_index INTEGER, key TEXT, dag_id TEXT, "
                 "run_id TEXT, value TEXT, PRIMARY KEY (dag_run_id, task_id, map_index, key))")
    lite.executemany("INSERT INTO xcom VALUES (1, ?, -1, 'return_value', 'd', 'r', ?)",
                     [("t1", '{"sample": [{"email": "ann.lee@example.com"}]}'), ("t2", '{"rows": 5}')])
    lite.commit()
    lite.close()
    report = EraseReport("r")
    erase_xcoms(None, Keys.of([resolve_subject(con, {"email": ["ann.lee@example.com"]})]), report,
                url=f"sqlite:///{db}")
    assert report.stores["airflow_xcom"] == {"xcom": 1}
    assert sqlite3.connect(db).execute("SELECT task_id FROM xcom").fetchall() == [("t2",)]


def test_access_document_lists_every_value_with_its_source(con, tmp_path, monkeypatch):
    from beacon.config import settings

    monkeypatch.setenv("BEACON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    _files(tmp_path / "data" / "exports")
    sub = resolve_subject(con, {"email": ["ann.lee@example.com"]})
    section = warehouse_section(con, sub, cat=CAT)
    assert section["marts.dim_customers"]["rows"] == [{"customer_id": "cus_a1b2c3", "email": "ann.lee@example.com"}]
    assert section["marts.profile_view"]["kind"] == "view"
    assert len(section["activation.sync_log"]["rows"]) == 2
    assert {r["anonymous_id"] for r in section["raw.collected_events"]["rows"]} == {"anon-zzzz9999", "anon-yyyy8888"}
    monkeypatch.setattr("beacon.privacy.access.catalog", lambda: CAT)
    doc = build_access_document(settings(), sub, con)
    assert doc["messages"]["activation.sync_log"] and doc["files"][str(tmp_path / "data/exports/a.csv")] == [
        "C0000001,Ann.Lee@Example.com"]
    page = render_access_html(doc)
    assert "ann.lee@example.com" in page and "<script" not in page


def test_large_files_are_cleaned_in_duckdb_alike(con, tmp_path, monkeypatch):
    keys = Keys.of([resolve_subject(con, {"email": ["ann.lee@example.com"]})])
    small, large = _files(tmp_path / "small"), _files(tmp_path / "large")
    for name in ("csv", "jsonl", "html", "parquet"):
        clean_file(small[name], keys)
    monkeypatch.setattr("beacon.privacy.files.LARGE", 0)  # every file takes the DuckDB path
    counts = {name: clean_file(large[name], keys) for name in ("csv", "jsonl", "html", "parquet")}
    assert counts == {"csv": (1, None), "jsonl": (1, None), "html": (1, None), "parquet": (1, None)}
    for name in ("csv", "jsonl", "html"):
        assert large[name].read_bytes() == small[name].read_bytes(), name
    assert pd.read_parquet(large["parquet"]).to_dict("list") == {"customer_id": ["cus_g7h8i9"], "v": [2]}
