"""The bad-input matrix: each kind of broken delivery and its documented outcome (docs/ingestion.md).

Every case writes one small landing file (or serves one API page), loads it, and checks the outcome:
loaded, quarantined with a reason, or the file rejected with a message naming it; and for every load,
rows read = rows loaded + rows quarantined. Nothing is lost: a rejected file keeps nothing and is
recorded in the ledger; a quarantined row keeps its raw payload.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from beacon.ingest import load_landing

DAY = "2026-06-30"
HEADER = ("contact_id,company_id,first_name,last_name,email,phone,job_title,lifecycle_stage,lead_source,"
          "street,city,state,postal_code,created_at,updated_at")


def contact(cid: str = "C1", first: str = "Ann", email: str = "ann@example.com", created: str = "2026-06-01 10:00:00",
            updated: str = "2026-06-30 10:00:00") -> str:
    return f"{cid},A1,{first},Lee,{email},+1 555 0100,Analyst,lead,web,1 Main St,Springfield,IL,62701,{created},{updated}"


def csv_bytes(*rows: str, header: str = HEADER, nl: str = "\n") -> bytes:
    return (nl.join([header, *rows]) + nl).encode("utf-8")


def event(mid: str = "m1", ts: str = "2026-06-30T10:00:00.000Z", **extra) -> dict:
    return {"messageId": mid, "type": "track", "event": "Product Viewed", "anonymousId": "anon-1", "userId": None,
            "timestamp": ts, "traits": None, "properties": {"path": "/p/1", "product_id": "SKU-1"}, **extra}


def jsonl(*lines) -> bytes:
    return ("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n").encode("utf-8")


GOOD = [contact("C1"), contact("C2", "Bea", "bea@example.com")]


@dataclass
class Case:
    """One bad input: the file(s) to land, and the documented outcome."""

    files: dict[str, bytes]
    status: str  # loaded | failed | skipped (of the last file)
    loaded: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    error: str = ""  # substring of the rejection message
    check: str | None = None  # SQL that must return True afterwards


def _parquet(df: pd.DataFrame) -> bytes:
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


ORDERS = pd.DataFrame({"order_id": ["O1", "O2"], "customer_id": ["S1", "S2"],
                       "ordered_at": pd.to_datetime(["2026-06-29 10:00", "2026-06-30 11:00"]),
                       "status": ["completed", "refunded"], "currency": ["USD", "USD"], "total_amount": [10.0, 20.0]})

CASES: dict[str, Case] = {
    # --- CSV structure
    "valid_csv": Case({"crm_contacts.csv": csv_bytes(*GOOD)}, "loaded", 2),
    "broken_quoting_unclosed_quote": Case(
        {"crm_contacts.csv": csv_bytes(contact("C1"), contact("C2", first='"Bea'), contact("C3"))}, "loaded", 1,
        {"malformed": 1}, check="SELECT payload LIKE '%C3%' FROM raw._quarantine"),  # swallowed lines kept in payload
    "stray_quote_inside_field": Case({"crm_contacts.csv": csv_bytes(contact("C1", first='Be"a'))}, "loaded", 1,
                                     check="""SELECT first_name = 'Be"a' FROM raw.crm_contacts"""),
    "ragged_row_too_many_fields": Case({"crm_contacts.csv": csv_bytes(contact("C1"), contact("C2") + ",extra")},
                                       "loaded", 1, {"malformed": 1}),
    "wrong_delimiter_semicolon": Case({"crm_contacts.csv": csv_bytes(contact("C1").replace(",", ";"),
                                                                     header=HEADER.replace(",", ";"))},
                                      "failed", error="missing required column(s) contact_id"),
    "utf8_bom": Case({"crm_contacts.csv": b"\xef\xbb\xbf" + csv_bytes(*GOOD)}, "loaded", 2),
    "crlf_line_endings": Case({"crm_contacts.csv": csv_bytes(*GOOD, nl="\r\n")}, "loaded", 2,
                              check="SELECT bool_and(updated_at IS NOT NULL) FROM raw.crm_contacts"),
    "latin1_bytes": Case({"crm_contacts.csv": csv_bytes(contact("C1")) + contact("C2", first="Jos\xe9").encode("latin-1") + b"\n"},
                         "loaded", 1, {"malformed": 1},
                         check="SELECT message LIKE '%UTF-8%' AND payload LIKE '%Jos\u00e9%' FROM raw._quarantine"),
    "truncated_gzip": Case({"crm_contacts.csv.gz": gzip.compress(csv_bytes(*[contact(f"C{i}") for i in range(2000)]))[:3000]},
                           "failed", error="crm_contacts.csv.gz", check="SELECT count(*) = 0 FROM raw.crm_contacts"),
    "empty_file": Case({"crm_contacts.csv": b""}, "failed", error="empty file"),
    "header_only": Case({"crm_contacts.csv": csv_bytes()}, "loaded", 0),
    "duplicated_file_redelivered": Case({"crm_contacts.csv": csv_bytes(*GOOD), "../2026-07-01/crm_contacts.csv": csv_bytes(*GOOD)},
                                        "skipped", check="SELECT count(*) = 2 FROM raw.crm_contacts"),
    # --- values
    "wrong_type_integer": Case({"crm_companies.csv": b"company_id,name,domain,industry,employees,country,created_at\n"
                                                    b"A1,Acme,acme.example,retail,many,US,2026-06-01 10:00:00\n"
                                                    b"A2,Bolt,bolt.example,retail,12,US,2026-06-01 10:00:00\n"},
                               "loaded", 1, {"wrong_type": 1},
                               check="SELECT message = 'employees: many is not a integer' FROM raw._quarantine"),
    "null_key": Case({"crm_contacts.csv": csv_bytes(contact(""), contact("C2"))}, "loaded", 1, {"missing_key": 1}),
    "impossible_date": Case({"crm_contacts.csv": csv_bytes(contact("C1", created="2026-02-30 10:00:00"))}, "loaded", 0,
                            {"wrong_type": 1}),
    "future_date": Case({"crm_contacts.csv": csv_bytes(contact("C1", updated="2099-01-01 00:00:00"))}, "loaded", 0,
                        {"future_timestamp": 1}),
    "invalid_email": Case({"crm_contacts.csv": csv_bytes(contact("C1", email="ann at example"))}, "loaded", 1,
                          check="SELECT email = 'ann at example' FROM raw.crm_contacts"),  # GX measures the rate
    "one_mb_text_field": Case({"crm_contacts.csv": csv_bytes(contact("C1", first="x" * 1_000_000))}, "loaded", 1,
                              check="SELECT length(first_name) = 1000000 FROM raw.crm_contacts"),
    "formula_injection": Case({"crm_contacts.csv": csv_bytes(contact("C1", first='"=HYPERLINK(""http://evil.example"",""click"")"'))},
                              "loaded", 1, check="SELECT first_name LIKE '=HYPERLINK(%' FROM raw.crm_contacts"),
    "sql_fragment_in_name": Case({"crm_contacts.csv": csv_bytes(contact("C1", first="Robert'); DROP TABLE raw.crm_contacts;--"))},
                                 "loaded", 1, check="SELECT first_name LIKE 'Robert''); DROP%' FROM raw.crm_contacts"),
    "unicode_homoglyphs": Case({"crm_contacts.csv": csv_bytes(contact("C1", first="\u03a1aul", email="\u0430nn@example.com"))},
                               "loaded", 1, check="SELECT first_name = '\u03a1aul' AND email = '\u0430nn@example.com' FROM raw.crm_contacts"),
    # --- schema drift
    "extra_column": Case({"crm_contacts.csv": csv_bytes(contact("C1") + ",gold", header=HEADER + ",loyalty_tier")},
                         "loaded", 1, check="SELECT loyalty_tier = 'gold' FROM raw.crm_contacts"),
    "missing_optional_column": Case({"crm_contacts.csv": csv_bytes(
        *[",".join(v for i, v in enumerate(contact("C1").split(",")) if i != 5)],
        header=",".join(h for h in HEADER.split(",") if h != "phone"))}, "loaded", 1,
        check="SELECT phone IS NULL AND email = 'ann@example.com' FROM raw.crm_contacts"),
    "missing_required_column": Case({"crm_contacts.csv": csv_bytes(
        *[",".join(contact("C1").split(",")[1:])], header=",".join(HEADER.split(",")[1:]))}, "failed",
        error="missing required column(s) contact_id"),
    # --- JSON lines
    "jsonl_invalid_line": Case({"web_events.jsonl": jsonl(event("m1"), '{"messageId": "m2", ', event("m3"))}, "loaded", 2,
                               {"malformed": 1}, check="SELECT line = 2 FROM raw._quarantine"),
    "jsonl_not_an_object": Case({"web_events.jsonl": jsonl(event("m1"), "[1, 2]", '"text"')}, "loaded", 1, {"malformed": 2}),
    "jsonl_blank_line": Case({"web_events.jsonl": jsonl(event("m1"), "", event("m2"))}, "loaded", 2, {"malformed": 1}),
    "jsonl_utf8_bom": Case({"web_events.jsonl": b"\xef\xbb\xbf" + jsonl(event("m1"), event("m2"))}, "loaded", 2),
    "jsonl_unexpected_nesting_in_string_field": Case(
        {"web_events.jsonl": jsonl(event("m1", traits={"email": {"value": "a@b.co"}}))}, "loaded", 1,
        check="""SELECT email = '{"value":"a@b.co"}' FROM raw.web_events"""),  # kept as JSON text, GX flags the email
    "jsonl_unexpected_nesting_in_timestamp": Case({"web_events.jsonl": jsonl(event("m1", ts={"iso": "2026-06-30"}))},
                                                  "loaded", 0, {"wrong_type": 1}),
    "jsonl_extra_field": Case({"web_events.jsonl": jsonl(event("m1", channel="mobile"), event("m2", context={"ip": "x"}))},
                              "loaded", 2, check="SELECT list(channel ORDER BY _line) = ['mobile', NULL] FROM raw.web_events"),
    "jsonl_truncated_gzip": Case({"web_events.jsonl.gz": gzip.compress(jsonl(*[event(f"m{i}") for i in range(3000)]))[:2000]},
                                 "failed", error="web_events.jsonl.gz", check="SELECT count(*) = 0 FROM raw.web_events"),
    # --- Parquet
    "parquet_wrong_type": Case({"shop_orders.parquet": _parquet(ORDERS.assign(total_amount=["10.0", "lots"]))}, "loaded", 1,
                               {"wrong_type": 1}),
    "parquet_missing_key_column": Case({"shop_orders.parquet": _parquet(ORDERS.drop(columns=["order_id"]))}, "failed",
                                       error="missing required column(s) order_id"),
    "parquet_extra_column": Case({"shop_orders.parquet": _parquet(ORDERS.assign(coupon=["X", None]))}, "loaded", 2,
                                 check="SELECT count(coupon) = 1 FROM raw.shop_orders"),
}


def _summary_holds(summary) -> None:
    for f in summary.files:  # for every load: rows read = rows loaded + rows quarantined
        assert f.rows_read == f.rows_loaded + f.rows_quarantined, f


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tmp_path):
    case = CASES[name]
    landing = tmp_path / "landing"
    wh = tmp_path / "wh.duckdb"
    last = None
    for rel, data in case.files.items():
        p = (landing / DAY / rel).resolve()
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        last = p
    summary = load_landing(landing, warehouse=wh)
    _summary_holds(summary)
    f = next(x for x in summary.files if Path(x.file).resolve() == last)
    assert f.status == case.status, (f.status, f.error)
    con = duckdb.connect(str(wh))
    try:
        if case.status == "failed":
            assert case.error in f.error and str(last.name) in f.error, f.error
            led = con.execute("SELECT status, error FROM raw._load_ledger WHERE file = ?", [str(last)]).fetchall()
            assert led and led[-1][0] == "failed"  # the rejection is recorded, with its message
        elif case.status == "loaded":
            assert f.rows_loaded == case.loaded and f.reasons == case.reasons
            q = con.execute("SELECT count(*), count(payload), count(message) FROM raw._quarantine").fetchall()[0]
            assert q[0] == q[1] == q[2] == sum(case.reasons.values())  # each with its payload and message
        if case.check:
            assert con.execute(case.check).fetchall()[0][0] is True, case.check
    finally:
        con.close()


def test_api_page_with_invalid_json_is_quarantined(tmp_path):
    """Case 35 of the matrix: an API page returning invalid JSON (the CRM source; see test_crm_api for the retry)."""
    from support.fake_crm import TOKEN, FakeCrm, contacts

    from beacon.ingest.crm_api import ApiConfig, load_crm_api

    with FakeCrm({"contacts": contacts(3)}) as crm:
        crm.faults[("contacts", 1)] = [b"<html>502 Bad Gateway</html>", b"<html>502 Bad Gateway</html>"]
        summary, runs = load_crm_api(ApiConfig(base_url=crm.url, token=TOKEN, backoff=0.01), datetime(2026, 7, 2),
                                     warehouse=tmp_path / "wh.duckdb", resources={"contacts": "crm_contacts"})
    _summary_holds(summary)
    assert [f.status for f in summary.files] == ["failed"] and "not valid JSON" in summary.files[0].error
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    assert con.execute("SELECT reason, payload FROM raw._quarantine").fetchall() == [
        ("invalid_page", "<html>502 Bad Gateway</html>")]
    con.close()


def test_schema_drift_is_reported_as_documented(tmp_path):
    """docs/ingestion.md, "Schema drift": new CSV header fields, Parquet columns and JSON top-level fields (within
    the first DRIFT_SAMPLE_LINES lines) become VARCHAR columns and are reported in `added_columns` and the run's
    `schema_changes`; fields under `ignore:` are not reported; a field already added is not reported again."""
    import re

    from beacon.ingest.landing import DRIFT_SAMPLE_LINES

    doc = (Path(__file__).resolve().parents[2] / "docs" / "ingestion.md").read_text()
    documented = re.search(r"detected in the first ([\d,]+) lines", doc)
    assert documented and int(documented.group(1).replace(",", "")) == DRIFT_SAMPLE_LINES  # docs and code agree
    n = DRIFT_SAMPLE_LINES
    lines = [event(f"m{i}", context={"ip": "x"}) for i in range(n + 5)]
    lines[0]["channel"] = "mobile"  # new field on the first line: detected
    lines[n - 1]["Device Type"] = "ios"  # on the last sampled line: detected, with a safe column name
    lines[n + 2]["late_field"] = "x"  # after the sample: not detected (documented), the row still loads
    day = tmp_path / "landing" / DAY
    day.mkdir(parents=True)
    (day / "web_events.jsonl").write_bytes(jsonl(*lines))
    (day / "crm_contacts.csv").write_bytes(csv_bytes(contact("C1") + ",gold", header=HEADER + ",loyalty_tier"))
    (day / "shop_orders.parquet").write_bytes(_parquet(ORDERS.assign(coupon=["X", None])))
    wh = tmp_path / "wh.duckdb"
    summary = load_landing(tmp_path / "landing", warehouse=wh)
    assert summary.schema_changes() == {"crm_contacts": ["loyalty_tier"], "shop_orders": ["coupon"],
                                        "web_events": ["channel", "device_type"]}
    assert summary.to_dict()["schema_changes"] == summary.schema_changes()
    web = next(f for f in summary.files if f.source == "web_events")
    assert web.rows_loaded == n + 5 and "context" not in web.added_columns  # ignored field: known, not drift
    con = duckdb.connect(str(wh))
    cols = {r[0]: r[1] for r in con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                            "WHERE table_schema = 'raw'").fetchall()}
    assert cols["loyalty_tier"] == cols["coupon"] == cols["channel"] == cols["device_type"] == "VARCHAR"
    assert "late_field" not in cols
    con.close()
    # The next file with the same extra field: loaded into the column, not reported again.
    (tmp_path / "landing" / "2026-07-01").mkdir()
    (tmp_path / "landing" / "2026-07-01" / "crm_contacts.csv").write_bytes(
        csv_bytes(contact("C9") + ",silver", header=HEADER + ",loyalty_tier"))
    again = load_landing(tmp_path / "landing", warehouse=wh)
    assert again.schema_changes() == {}
    assert [f.extra_columns for f in again.files if f.status == "loaded"] == [["loyalty_tier"]]


def test_json_keys_that_are_odd_names_do_not_fail_the_file(tmp_path):
    """New top-level keys with a quote, an empty name or a NUL character: the file loads; the quoted key becomes
    a column (its path is a proper SQL literal), the two that no JSON path can name are not drift."""
    day = tmp_path / "landing" / DAY
    day.mkdir(parents=True)
    (day / "web_events.jsonl").write_bytes(jsonl(event("m1", **{"it's": "yes", "": "empty", "a\x00b": "nul"}),
                                                 event("m2")))
    wh = tmp_path / "wh.duckdb"
    summary = load_landing(tmp_path / "landing", warehouse=wh)
    web = next(f for f in summary.files if f.source == "web_events")
    assert (web.status, web.rows_loaded, web.added_columns) == ("loaded", 2, ["it_s"]), web.error
    con = duckdb.connect(str(wh))
    assert con.execute("SELECT it_s FROM raw.web_events ORDER BY _line").fetchall() == [("yes",), (None,)]
    con.close()
