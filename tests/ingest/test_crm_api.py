"""CRM REST API source against a local server: pagination, incremental cursor, retries, invalid pages, auth."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import pytest
from support.fake_crm import TOKEN, FakeCrm, companies, contacts

from beacon.ingest.crm_api import ApiConfig, ApiError, config_from_connection, load_crm_api

MAX_TS = datetime(2026, 1, 16)


def _cfg(crm: FakeCrm, **kw) -> ApiConfig:
    return ApiConfig(base_url=crm.url, token=TOKEN, per_page=50, backoff=0.01, **kw)


def _count(wh, table: str) -> int:
    con = duckdb.connect(str(wh))
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    finally:
        con.close()


def test_pages_retries_and_incremental_cursor(tmp_path):
    wh = tmp_path / "wh.duckdb"
    with FakeCrm({"contacts": contacts(230), "companies": companies(7)}) as crm:
        crm.faults[("contacts", 2)] = [429]  # rate limited once: must wait Retry-After (1 s)
        crm.faults[("contacts", 3)] = [503, 502]  # transient server errors: retried with backoff
        summary, runs = load_crm_api(_cfg(crm), MAX_TS, warehouse=wh)
        assert runs[0].pages == 5 and runs[1].pages == 1  # 230 contacts in pages of 50
        for f in summary.files:  # per page: rows read = rows loaded + rows quarantined
            assert f.status == "loaded" and f.rows_read == f.rows_loaded + f.rows_quarantined
        assert _count(wh, "raw.crm_contacts") == 230 and _count(wh, "raw.crm_companies") == 7
        page2 = [t for t, r, q in crm.calls if r == "contacts" and q["page"] == "2"]
        assert len(page2) == 2 and page2[1] - page2[0] >= 0.95  # Retry-After honoured
        assert len([1 for _, r, q in crm.calls if r == "contacts" and q["page"] == "3"]) == 3
        assert runs[0].cursor_after == contacts(230)[-1]["updated_at"]

        # Second run, nothing changed: the boundary records come back (inclusive cursor) and are skipped.
        crm.calls.clear()
        again, runs2 = load_crm_api(_cfg(crm), MAX_TS, warehouse=wh)
        assert again.totals()["rows_loaded"] == 0
        assert all(q.get("updated_since") for _, _, q in crm.calls)  # the stored cursor was sent
        assert _count(wh, "raw.crm_contacts") == 230

        # Three contacts change: exactly those three load next time.
        for r in crm.data["contacts"][:3]:
            r["updated_at"], r["job_title"] = "2026-01-14 23:00:00", "Director"
        third, _ = load_crm_api(_cfg(crm), MAX_TS, warehouse=wh)
        assert third.totals()["rows_loaded"] == 3
        con = duckdb.connect(str(wh))
        meta = con.execute("SELECT DISTINCT _source FROM raw.crm_contacts").fetchall()
        drift = con.execute("SELECT count(updated_at) FROM raw.crm_companies").fetchall()[0][0]
        con.close()
        assert meta == [("crm_api",)]
        assert drift == 7  # companies carry updated_at, not declared: added as a new column (schema drift)


def test_invalid_json_page_is_quarantined_and_fetched_again_next_run(tmp_path):
    wh = tmp_path / "wh.duckdb"
    with FakeCrm({"contacts": contacts(120), "companies": companies(3)}) as crm:
        crm.faults[("contacts", 2)] = [b'{"data": [{"contact_id": "C1"', b'{"data": [{"contact_id": "C1"']
        summary, runs = load_crm_api(_cfg(crm), MAX_TS, warehouse=wh)
        failed = [f for f in summary.files if f.status == "failed"]
        assert len(failed) == 1 and "page=2" in failed[0].file and "not valid JSON" in failed[0].error
        assert _count(wh, "raw.crm_contacts") == 70  # pages 1 and 3 loaded (50 + 20)
        con = duckdb.connect(str(wh))
        q = con.execute("SELECT source, file, reason, payload FROM raw._quarantine").fetchall()
        cur = con.execute("SELECT count(*) FROM raw._cursors WHERE source = 'crm_api:contacts'").fetchall()[0][0]
        con.close()
        assert q == [("crm_contacts", failed[0].file, "invalid_page", '{"data": [{"contact_id": "C1"')]
        assert runs[0].cursor_after is None and cur == 0  # the cursor did not move past the bad page
        # The API recovers: the same interval is fetched again; pages 1 and 3 are known, page 2 loads.
        again, _ = load_crm_api(_cfg(crm), MAX_TS, warehouse=wh)
        assert [f.status for f in again.files if f.source == "crm_contacts"] == ["skipped", "loaded", "skipped"]
        assert _count(wh, "raw.crm_contacts") == 120


def test_records_with_wrong_types_are_quarantined_per_record(tmp_path):
    wh = tmp_path / "wh.duckdb"
    rows = contacts(10)
    rows[3]["updated_at"] = {"date": "2026-01-14"}  # unexpected nesting in a timestamp field
    rows[5]["contact_id"] = None  # null key
    rows.append("not an object")
    with FakeCrm({"contacts": rows, "companies": []}) as crm:
        crm.data["contacts"] = rows
        summary, _ = load_crm_api(_cfg(crm), MAX_TS, warehouse=wh, resources={"contacts": "crm_contacts"})
    f = summary.files[0]
    assert (f.rows_read, f.rows_loaded, f.rows_quarantined) == (11, 8, 3)
    assert f.reasons == {"malformed": 1, "missing_key": 1, "wrong_type": 1}


def test_token_comes_from_the_airflow_connection(monkeypatch, tmp_path):
    with FakeCrm({"contacts": contacts(5), "companies": []}) as crm:
        monkeypatch.setenv("AIRFLOW_CONN_BEACON_CRM_API", json.dumps(
            {"conn_type": "http", "host": crm.url, "password": TOKEN, "extra": {"per_page": 2, "backoff": 0.01}}))
        cfg = config_from_connection()
        assert cfg.token == TOKEN and cfg.per_page == 2 and TOKEN not in repr(cfg)
        summary, runs = load_crm_api(cfg, MAX_TS, warehouse=tmp_path / "wh.duckdb", resources={"contacts": "crm_contacts"})
        assert runs[0].pages == 3 and summary.totals()["rows_loaded"] == 5
        with pytest.raises(ApiError, match="HTTP 401"):
            load_crm_api(ApiConfig(base_url=crm.url, token="wrong"), MAX_TS, warehouse=tmp_path / "wh2.duckdb")


def test_an_api_that_only_returns_garbage_stops_after_three_pages(tmp_path):
    with FakeCrm({"contacts": contacts(500)}) as crm:
        for p in range(1, 20):
            crm.faults[("contacts", p)] = [b"<html>oops</html>"] * 2
        summary, runs = load_crm_api(_cfg(crm), MAX_TS, warehouse=tmp_path / "wh.duckdb",
                                     resources={"contacts": "crm_contacts"})
    assert runs[0].pages == 3 and [f.status for f in summary.files] == ["failed"] * 3
    assert runs[0].cursor_after is None  # nothing skipped for good: the next run starts from the same cursor
