"""Issue 14: no input stops the run. One test per class of bad input (docs/ingestion.md, "Limits and
rejections"), UTC timestamps in every form, and a second writer waiting for the warehouse lock.

Each load also checks the engine's invariant: for every file, rows read = rows loaded + rows quarantined,
and a failed file leaves nothing in raw, a `failed` ledger row and a quarantine row, all valid UTF-8.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from beacon.ingest import load_landing, load_specs
from beacon.ingest.core import IngestError, Limits, safe_text
from beacon.warehouse import WarehouseBusy, connect

DAY = "2026-06-30"
HEADER = ("contact_id,company_id,first_name,last_name,email,phone,job_title,lifecycle_stage,lead_source,"
          "street,city,state,postal_code,created_at,updated_at")
PRODUCTS = b"product_id,name,category,product_line,price\nSKU-1,Mug,home,consumer,4.50\nSKU-2,Cap,wear,consumer,9.00\n"


def contact(cid: str = "C1", first: str = "Ann", email: str = "ann@example.com",
            created: str = "2026-06-01 10:00:00", updated: str = "2026-06-30 10:00:00") -> str:
    return f"{cid},A1,{first},Lee,{email},+1 555 0100,Analyst,lead,web,1 Main St,Springfield,IL,62701,{created},{updated}"


def csv_text(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def event(mid: str = "m1", ts: str = "2026-06-30T10:00:00.000Z", **extra) -> dict:
    return {"messageId": mid, "type": "track", "event": "Product Viewed", "anonymousId": "anon-1", "userId": None,
            "timestamp": ts, "traits": None, "properties": {"path": "/p/1", "product_id": "SKU-1"}, **extra}


def jsonl(*lines) -> bytes:
    return ("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n").encode("utf-8")


def land(tmp_path: Path, files: dict[str, bytes], with_products: bool = True) -> Path:
    """Write landing files of one day (plus a valid products file: the rest of the run must still load)."""
    day = tmp_path / "landing" / DAY
    day.mkdir(parents=True, exist_ok=True)
    if with_products:
        (day / "shop_products.csv").write_bytes(PRODUCTS)
    for rel, data in files.items():
        p = day / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return tmp_path / "landing"


def specs_with(**changes) -> dict:
    """The project's sources with some fields changed on every source (e.g. limits=...)."""
    return {k: replace(v, **changes) for k, v in load_specs().items()}


def run(tmp_path: Path, files: dict[str, bytes], specs: dict | None = None, **kw):
    landing = land(tmp_path, files, **kw)
    wh = tmp_path / "wh.duckdb"
    summary = load_landing(landing, warehouse=wh, specs=specs)
    for f in summary.files:
        assert f.rows_read == f.rows_loaded + f.rows_quarantined, f
    if kw.get("with_products", True):  # the valid file of the same run always loads
        prod = next(f for f in summary.files if f.source == "shop_products")
        assert (prod.status, prod.rows_loaded) == ("loaded", 2), prod
    return summary, wh


def one(summary, name: str):
    return next(f for f in summary.files if Path(f.file).name == name)


def query(wh: Path, sql: str, params=None):
    con = duckdb.connect(str(wh))
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def assert_rejected(summary, wh: Path, name: str, reason: str, *words: str) -> None:
    """The file failed with `reason`, its message names it (and `words`), and nothing of it is kept."""
    f = one(summary, name)
    assert (f.status, f.reason) == ("failed", reason), (f.status, f.reason, f.error)
    assert name in f.error, f.error
    for w in words:
        assert w in f.error, (w, f.error)
    led = query(wh, "SELECT status, reason, error FROM raw._load_ledger WHERE file = ?", [f.file])
    assert led and led[-1][:2] == ("failed", reason)
    q = query(wh, "SELECT reason, message FROM raw._quarantine WHERE file = ?", [f.file])
    assert q and q[-1][0] == reason and q[-1][1] == f.error
    assert query(wh, f"SELECT count(*) FROM raw.{f.source} WHERE _source_file = ?", [f.file])[0][0] == 0


# ------------------------------------------------------------------ 1. the failure path cannot fail


def test_any_exception_fails_that_file_only_recorded_as_utf8(tmp_path, monkeypatch):
    """A reader that dies with MemoryError (or any error, with undecodable bytes in its message) fails
    its file alone; the next file of the run loads; ledger and quarantine hold valid UTF-8 text."""
    from beacon.ingest.readers import READERS

    real = READERS["csv"]

    def exploding(spec, path, fs, location):
        if spec.name == "crm_contacts":
            raise MemoryError("out of memory reading \udcff\udcfe bytes")
        if spec.name == "consent":
            raise RuntimeError(b"\xff\xfe raw bytes".decode("utf-8", "surrogateescape"))
        return real(spec, path, fs, location)

    monkeypatch.setitem(READERS, "csv", exploding)
    summary, wh = run(tmp_path, {"crm_contacts.csv": csv_text(contact()).encode(),
                                 "consent.csv": b"consent_id,email,phone,channel,status,source,recorded_at\n"})
    assert_rejected(summary, wh, "crm_contacts.csv", "resource_limit", "MemoryError")
    assert_rejected(summary, wh, "consent.csv", "unexpected_error", "RuntimeError", "\\udcff")
    assert summary.totals()["files_failed"] == 2 and summary.totals()["files_loaded"] == 1
    # Stored as valid UTF-8: DuckDB would refuse lone surrogates; they are escaped.
    msgs = [m for (m,) in query(wh, "SELECT message FROM raw._quarantine")]
    assert all(m.encode("utf-8") for m in msgs) and any("\\udcff" in m for m in msgs)


def test_a_failed_file_leaves_no_partial_rows(tmp_path, monkeypatch):
    """The second batch of a file fails: the rows of its first batch (already inserted) are rolled back."""
    from beacon.ingest.readers import csv_reader

    monkeypatch.setenv("BEACON_INGEST_BATCH_ROWS", "2")
    rows = [contact(f"C{i}") for i in range(5)] + ["x" * 10]  # batch 1-2 fine, then a failure in batch 3
    real = csv_reader.BoundedLines.__next__

    def failing_next(self):
        line = real(self)
        if line.startswith("x"):
            raise OSError("disk went away")
        return line

    monkeypatch.setattr(csv_reader.BoundedLines, "__next__", failing_next)
    summary, wh = run(tmp_path, {"crm_contacts.csv": csv_text(*rows).encode()})
    assert_rejected(summary, wh, "crm_contacts.csv", "unreadable", "disk went away")
    assert query(wh, "SELECT count(*) FROM raw.crm_contacts")[0][0] == 0


def test_safe_text_is_valid_utf8_and_bounded():
    s = safe_text("a\udcff" + "b" * 5000)
    assert s.encode("utf-8") and "\\udcff" in s and len(s) <= 2000
    assert safe_text(b"\xff\x00ok") == "\\xff\x00ok"


# ------------------------------------------------------------------ 2. limits


def small(**kw) -> dict:
    return specs_with(limits=replace(Limits(), **kw))


def test_not_a_regular_file_is_rejected_without_opening(tmp_path):
    """A FIFO (an open would block), a directory and a symlink to a device, each under a data file's name."""
    day = tmp_path / "landing" / DAY
    day.mkdir(parents=True)
    os.mkfifo(day / "crm_contacts.csv")
    (day / "consent.csv").mkdir()
    os.symlink("/dev/zero", day / "web_events.jsonl")
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(r=run(tmp_path, {})), daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the load blocked on the FIFO"
    summary, wh = result["r"]
    assert_rejected(summary, wh, "crm_contacts.csv", "not_regular_file", "FIFO")
    assert_rejected(summary, wh, "consent.csv", "not_regular_file", "directory")
    assert_rejected(summary, wh, "web_events.jsonl", "not_regular_file", "device")


def test_file_too_large_is_rejected_by_its_size(tmp_path):
    summary, wh = run(tmp_path, {"crm_contacts.csv": csv_text(*[contact(f"C{i}") for i in range(50)]).encode()},
                      specs=small(max_file_bytes=4096))
    assert_rejected(summary, wh, "crm_contacts.csv", "file_too_large", "max_file_bytes 4096")


def test_gzip_bomb_is_stopped_at_max_file_bytes(tmp_path):
    body = jsonl(*[event(f"m{i}") for i in range(2000)])
    summary, wh = run(tmp_path, {"web_events.jsonl.gz": gzip.compress(body)}, specs=small(max_file_bytes=100_000))
    assert len(gzip.compress(body)) < 100_000 < len(body)
    assert_rejected(summary, wh, "web_events.jsonl.gz", "file_too_large", "after decompression")


def test_csv_line_too_long_is_quarantined_and_the_rest_loads(tmp_path):
    rows = [contact("C1"), contact("C2", first="x" * 5000), contact("C3")]
    summary, wh = run(tmp_path, {"crm_contacts.csv": csv_text(*rows).encode()}, specs=small(max_line_bytes=1000))
    f = one(summary, "crm_contacts.csv")
    assert (f.status, f.rows_loaded, f.reasons) == ("loaded", 2, {"line_too_long": 1})
    line, msg, payload = query(wh, "SELECT line, message, payload FROM raw._quarantine")[0]
    assert line == 3 and "max_line_bytes 1000" in msg and len(payload) < 1200


@pytest.mark.parametrize("chunk", [None, 4096], ids=["line-within-chunk", "line-longer-than-chunk"])
def test_jsonl_line_too_long_is_quarantined(tmp_path, monkeypatch, chunk):
    """An over-long JSON line is quarantined; when it is longer than a read chunk it is skipped in
    pieces, never held whole."""
    from beacon.ingest.readers import jsonl_reader

    if chunk:
        monkeypatch.setattr(jsonl_reader, "CHUNK_BYTES", chunk)
    big = event("m2", traits={"email": "a" * 50_000})
    summary, wh = run(tmp_path, {"web_events.jsonl": jsonl(event("m1"), big, event("m3"))},
                      specs=small(max_line_bytes=10_000))
    f = one(summary, "web_events.jsonl")
    assert (f.status, f.rows_loaded, f.reasons) == ("loaded", 2, {"line_too_long": 1})
    assert query(wh, "SELECT line FROM raw._quarantine") == [(2,)]
    assert query(wh, "SELECT list(_line ORDER BY _line) FROM raw.web_events") == [([1, 3],)]


def test_json_too_deep_is_quarantined_before_any_parse(tmp_path):
    deep = '{"messageId": "m2", "anonymousId": "a", "timestamp": "2026-06-30T10:00:00Z", "x": ' + \
        "[" * 100_000 + "]" * 100_000 + "}"
    strings = event("m3", properties={"path": "[" * 500})  # brackets inside strings do not count
    summary, wh = run(tmp_path, {"web_events.jsonl": jsonl(event("m1"), deep, strings)})
    f = one(summary, "web_events.jsonl")
    assert (f.status, f.rows_loaded, f.reasons) == ("loaded", 2, {"json_too_deep": 1})
    assert query(wh, "SELECT line, message LIKE '%max_json_depth 64%' FROM raw._quarantine") == [(2, True)]


def test_webhook_body_too_deep_rejects_that_file(tmp_path):
    deep = b"[" * 200_000 + b"]" * 200_000
    summary, wh = run(tmp_path, {"webhooks/sendgrid-deadbeef.json": deep})
    assert_rejected(summary, wh, "sendgrid-deadbeef.json", "json_too_deep")


def test_too_many_columns_header_rejected_row_quarantined(tmp_path):
    header = HEADER + "," + ",".join(f"x{i}" for i in range(20))
    summary, wh = run(tmp_path, {"crm_contacts.csv": csv_text(contact(), header=header).encode(),
                                 "consent.csv": b"consent_id,email,phone,channel,status,source,recorded_at\n"
                                                b"K1,a@b.co,,email,granted,web,2026-06-30 10:00:00\n"
                                                + b"K2" + b",x" * 40 + b"\n"},
                      specs=small(max_columns=30))
    assert_rejected(summary, wh, "crm_contacts.csv", "too_many_columns", "35 fields", "max_columns 30")
    f = one(summary, "consent.csv")
    assert (f.rows_loaded, f.reasons) == (1, {"too_many_columns": 1})


# ------------------------------------------------------------------ 3. encodings


@pytest.mark.parametrize("codec,bom", [("utf-16-le", codecs.BOM_UTF16_LE), ("utf-16-be", codecs.BOM_UTF16_BE),
                                       ("utf-8", codecs.BOM_UTF8)])
def test_bom_files_decode(tmp_path, codec, bom):
    text = csv_text(contact("C1", first="Jos\u00e9"), contact("C2", first="\u674e"))
    events = jsonl(event("m1", traits={"email": "jos\u00e9@example.com"})).decode()
    summary, wh = run(tmp_path, {"crm_contacts.csv": bom + text.encode(codec),
                                 "web_events.jsonl": bom + events.encode(codec)})
    assert one(summary, "crm_contacts.csv").rows_loaded == 2
    assert one(summary, "web_events.jsonl").rows_loaded == 1
    assert query(wh, "SELECT list(first_name ORDER BY _line) FROM raw.crm_contacts") == [(["Jos\u00e9", "\u674e"],)]
    assert query(wh, "SELECT email FROM raw.web_events") == [("jos\u00e9@example.com",)]


def test_utf32_is_rejected_with_the_reason(tmp_path):
    summary, wh = run(tmp_path, {"crm_contacts.csv": codecs.BOM_UTF32_LE + csv_text(contact()).encode("utf-32-le")})
    assert_rejected(summary, wh, "crm_contacts.csv", "encoding", "UTF-32")


@pytest.mark.parametrize("name,data,words", [
    ("crm_contacts.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), ["NUL byte", "PNG"]),
    ("web_events.jsonl", gzip.compress(jsonl(event())), ["gzip"]),
    ("crm_contacts.csv", csv_text(contact()).encode("utf-16-le"), ["without a byte-order mark"]),
    ("shop_orders.parquet", b"order_id,customer_id\nO1,S1\n", ["not a Parquet file"]),
])
def test_binary_content_under_a_data_name_is_rejected(tmp_path, name, data, words):
    summary, wh = run(tmp_path, {name: data})
    assert_rejected(summary, wh, name, "binary_content", *words)


def test_per_source_encoding_reads_a_latin1_feed(tmp_path):
    specs = load_specs()
    specs["crm_contacts"] = replace(specs["crm_contacts"], encoding="latin-1")
    summary, wh = run(tmp_path, {"crm_contacts.csv": csv_text(contact(first="Jos\u00e9")).encode("latin-1")},
                      specs=specs)
    f = one(summary, "crm_contacts.csv")
    assert (f.rows_loaded, f.encoding) == (1, "iso8859-1")
    assert query(wh, "SELECT first_name FROM raw.crm_contacts") == [("Jos\u00e9",)]


def test_sources_yml_validates_encoding_and_time_zone(tmp_path):
    base = "sources:\n  x:\n    file: x.csv\n    format: csv\n    key: [id]\n    columns:\n      id: varchar\n"
    for extra, msg in [("    encoding: klingon\n", "unknown encoding"), ("    time_zone: Mars/Olympus\n", "unknown time zone")]:
        p = tmp_path / "s.yml"
        p.write_text(base + extra)
        with pytest.raises(IngestError, match=msg):
            load_specs(p)
    p.write_text("defaults:\n  limits: {max_line_bytes: 0}\n" + base)
    with pytest.raises(IngestError, match="positive"):
        load_specs(p)


def test_project_sources_state_utc_and_limits():
    specs = load_specs()
    assert {s.time_zone for s in specs.values()} == {"UTC"}
    assert all(s.limits == specs["web_events"].limits for s in specs.values())
    assert specs["web_events"].limits.max_json_depth == 64


# ------------------------------------------------------------------ 4. headers


def test_headers_match_after_trim_and_casefold_and_the_mapping_is_reported(tmp_path):
    header = HEADER.replace("contact_id", " Contact_ID ").replace("email", "EMAIL")
    summary, wh = run(tmp_path, {"crm_contacts.csv": csv_text(contact(), header=header).encode()})
    f = one(summary, "crm_contacts.csv")
    assert f.rows_loaded == 1 and f.header_mapping == {" Contact_ID ": "contact_id", "EMAIL": "email"}
    assert query(wh, "SELECT contact_id, email FROM raw.crm_contacts") == [("C1", "ann@example.com")]


@pytest.mark.parametrize("header,names", [
    (HEADER + ",email ", ["'email'", "'email '"]),
    (HEADER.replace("email", "Email") + ",email ", ["'Email'", "'email '"]),
    (HEADER + ",Loyalty Tier,loyalty_tier", ["'Loyalty Tier'", "'loyalty_tier'"]),
])
def test_ambiguous_headers_reject_the_file_naming_both(tmp_path, header, names):
    n = header.count(",") + 1
    row = contact() + ",x" * (n - 15)
    summary, wh = run(tmp_path, {"crm_contacts.csv": csv_text(row, header=header).encode()})
    assert_rejected(summary, wh, "crm_contacts.csv", "ambiguous_header", *names)


def test_ambiguous_parquet_columns_are_rejected(tmp_path):
    df = pd.DataFrame({"order_id": ["O1"], "customer_id": ["S1"], "Order_ID ": ["O2"]})
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    summary, wh = run(tmp_path, {"shop_orders.parquet": buf.getvalue()})
    assert_rejected(summary, wh, "shop_orders.parquet", "ambiguous_header", "'order_id'", "'Order_ID '")


# ------------------------------------------------------------------ 5. time: stored in UTC


@pytest.mark.parametrize("value,utc", [
    ("2026-01-01T10:00:00+02:00", "2026-01-01 08:00:00"),
    ("2026-01-01 10:00:00-05:30", "2026-01-01 15:30:00"),
    ("2026-01-01T10:00:00Z", "2026-01-01 10:00:00"),
    ("2026-01-01T10:00:00.250+0100", "2026-01-01 09:00:00.25"),
    ("2026-01-01 10:00:00", "2026-01-01 10:00:00"),  # naive: the source's zone, UTC by default
])
def test_csv_timestamps_are_stored_in_utc(tmp_path, value, utc):
    summary, wh = run(tmp_path, {"crm_contacts.csv": csv_text(contact(updated=value)).encode()})
    assert one(summary, "crm_contacts.csv").rows_loaded == 1
    assert query(wh, "SELECT updated_at::VARCHAR FROM raw.crm_contacts") == [(utc,)]


def test_naive_timestamps_are_read_in_the_sources_time_zone(tmp_path):
    specs = load_specs()
    specs["crm_contacts"] = replace(specs["crm_contacts"], time_zone="Europe/Paris")
    rows = [contact("C1", updated="2026-01-01 10:00:00"), contact("C2", updated="2026-07-01 10:00:00"),
            contact("C3", updated="2026-07-01T10:00:00Z")]  # an explicit zone wins over the source's
    summary, wh = run(tmp_path, {"crm_contacts.csv": csv_text(*rows).encode()}, specs=specs)
    got = query(wh, "SELECT list(updated_at::VARCHAR ORDER BY _line) FROM raw.crm_contacts")[0][0]
    assert got == ["2026-01-01 09:00:00", "2026-07-01 08:00:00", "2026-07-01 10:00:00"]
    # The session is back on UTC afterwards (nothing else read in Paris time).
    assert one(summary, "shop_products.csv").status == "loaded"


def test_jsonl_offsets_and_epoch_seconds_vs_milliseconds_by_declared_type(tmp_path):
    specs = load_specs()
    assert specs["email_events"].columns[3].type == "epoch"
    cols = tuple(replace(c, type="epoch_ms") if c.name == "event_at" else c for c in specs["email_events"].columns)
    ms = replace(specs["email_events"], columns=cols)
    web = jsonl(event("m1", ts="2026-06-30T10:00:00+02:00"), event("m2", ts="2026-06-30T10:00:00.000Z"))
    email = jsonl({"event_id": "e1", "event": "open", "email": "a@b.co", "timestamp": 1782813600})
    summary, wh = run(tmp_path, {"web_events.jsonl": web, "email_events.jsonl": email})
    assert query(wh, "SELECT list(event_at::VARCHAR ORDER BY _line) FROM raw.web_events")[0][0] == [
        "2026-06-30 08:00:00", "2026-06-30 10:00:00"]
    assert query(wh, "SELECT event_at::VARCHAR FROM raw.email_events") == [("2026-06-30 10:00:00",)]
    # The same instant in milliseconds, declared epoch_ms, lands on the same UTC time; declared as
    # seconds it would be in the year 58,000: quarantined, never silently mis-scaled.
    ms_mail = jsonl({"event_id": "e2", "event": "open", "email": "a@b.co", "timestamp": 1782813600000})
    specs2 = {**load_specs(), "email_events": ms}
    s2, wh2 = run(tmp_path / "ms", {"email_events.jsonl": ms_mail}, specs=specs2)
    assert query(wh2, "SELECT event_at::VARCHAR FROM raw.email_events") == [("2026-06-30 10:00:00",)]
    s3, _ = run(tmp_path / "s", {"email_events.jsonl": ms_mail})
    assert one(s3, "email_events.jsonl").reasons == {"wrong_type": 1}


def test_parquet_timestamps_with_a_zone_are_stored_in_utc(tmp_path):
    df = pd.DataFrame({"order_id": ["O1", "O2"], "customer_id": ["S1", "S2"],
                       "ordered_at": pd.to_datetime(["2026-06-29 10:00", "2026-06-30 11:00"]).tz_localize(
                           "Europe/Paris"),
                       "status": ["completed", "completed"], "currency": ["EUR", "EUR"], "total_amount": [1.0, 2.0]})
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    summary, wh = run(tmp_path, {"shop_orders.parquet": buf.getvalue()})
    assert one(summary, "shop_orders.parquet").rows_loaded == 2
    assert query(wh, "SELECT list(ordered_at::VARCHAR ORDER BY _line) FROM raw.shop_orders")[0][0] == [
        "2026-06-29 08:00:00", "2026-06-30 09:00:00"]


def test_webhook_naive_iso_time_is_utc_not_local(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        body = json.dumps({"RecordType": "Delivery", "ID": "p1", "Recipient": "a@b.co",
                           "DeliveredAt": "2026-06-30T10:00:00"}).encode()
        summary, wh = run(tmp_path, {"webhooks/postmark-00aa.json": body})
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert query(wh, "SELECT event_at::VARCHAR FROM raw.email_events") == [("2026-06-30 10:00:00",)]


# ------------------------------------------------------------------ 6. a second writer


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    code = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); "
            "time.sleep(float(sys.argv[2]))")
    p = subprocess.Popen([sys.executable, "-c", code, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_writer_waits_with_logged_back_off_then_loads_everything(tmp_path, caplog):
    landing = land(tmp_path, {"crm_contacts.csv": csv_text(contact("C1"), contact("C2")).encode()})
    wh = tmp_path / "wh.duckdb"
    holder = _hold_lock(wh, 2.5)
    t0 = time.monotonic()
    with caplog.at_level("WARNING", logger="beacon.warehouse"):
        summary = load_landing(landing, warehouse=wh, lock_wait=60)
    holder.wait()
    assert time.monotonic() - t0 >= 1.5  # it did wait
    assert summary.totals()["files_loaded"] == 2 and summary.totals()["files_failed"] == 0
    waits = [r.getMessage() for r in caplog.records if "locked by another writer" in r.getMessage()]
    assert waits and "waiting" in waits[0] and "PID" in waits[0]
    assert query(wh, "SELECT count(*) FROM raw.crm_contacts")[0][0] == 2


def test_second_writer_gives_up_after_the_bound_or_refuses_at_once(tmp_path):
    wh = tmp_path / "wh.duckdb"
    holder = _hold_lock(wh, 30)
    try:
        t0 = time.monotonic()
        with pytest.raises(WarehouseBusy, match="locked by another writer.*not waiting"):
            with connect(wh, lock_wait=0):
                pass
        assert time.monotonic() - t0 < 2
        with pytest.raises(WarehouseBusy, match="gave up after 1 s"):
            with connect(wh, lock_wait=1):
                pass
    finally:
        holder.kill()
        holder.wait()


def test_cli_no_wait_is_one_line_without_traceback_and_loads_nothing(tmp_path):
    landing = land(tmp_path, {"crm_contacts.csv": csv_text(contact()).encode()})
    wh = tmp_path / "wh.duckdb"
    holder = _hold_lock(wh, 30)
    try:
        env = {**os.environ, "BEACON_WAREHOUSE": str(wh), "COLUMNS": "60"}
        r = subprocess.run([sys.executable, "-m", "beacon.cli", "ingest", "--landing", str(landing), "--no-wait"],
                           capture_output=True, text=True, env=env, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 2, r
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "locked by another writer" in r.stderr
    con = duckdb.connect(str(wh))
    assert con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw'").fetchall()[0][0] == 0
    con.close()


def test_cli_exit_status_and_summary_count_failed_files(tmp_path):
    landing = land(tmp_path, {"crm_contacts.csv": b"\x00\x01\x02binary",
                              "consent.csv": codecs.BOM_UTF32_LE + b"x\x00\x00\x00"})
    env = {**os.environ, "BEACON_WAREHOUSE": str(tmp_path / "wh.duckdb")}
    r = subprocess.run([sys.executable, "-m", "beacon.cli", "ingest", "--landing", str(landing), "--json"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1, r.stderr
    d = json.loads(r.stdout)
    assert d["totals"]["files_failed"] == 2 and d["totals"]["files_loaded"] == 1
    assert sorted(f["reason"] for f in d["failures"]) == ["binary_content", "encoding"]
    r = subprocess.run([sys.executable, "-m", "beacon.cli", "ingest", "--landing", str(landing)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and "2 of 3 file(s) failed" in r.stderr and "Traceback" not in r.stderr


def test_reason_names_are_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "ingestion.md").read_text()
    for reason in ("not_regular_file", "file_too_large", "line_too_long", "json_too_deep", "too_many_columns",
                   "binary_content", "encoding", "ambiguous_header", "missing_column", "empty_file", "unreadable",
                   "resource_limit", "warehouse_error", "unexpected_error", "malformed_document"):
        assert f"`{reason}`" in doc, reason


def test_parquet_strings_with_invalid_utf8_are_rejected_naming_the_column(tmp_path):
    """Found by the fuzzer: Arrow does not check Parquet strings, and DuckDB's fatal error on them
    invalidated the database for the rest of the run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.table({"order_id": pa.array([b"O1", b"O\xff2"], pa.binary()).view(pa.string()),
                  "customer_id": ["S1", "S2"], "total_amount": [1.0, 2.0]})
    buf = io.BytesIO()
    pq.write_table(t, buf)
    summary, wh = run(tmp_path, {"shop_orders.parquet": buf.getvalue(),
                                 "consent.csv": b"consent_id,email,phone,channel,status,source,recorded_at\n"
                                                b"K1,a@b.co,,email,granted,web,2026-06-30 10:00:00\n"})
    assert_rejected(summary, wh, "shop_orders.parquet", "encoding", "column 'order_id'", "invalid UTF-8")
    assert one(summary, "consent.csv").rows_loaded == 1  # loaded after it, on a healthy connection


def test_a_connection_invalidated_by_a_fatal_error_is_reopened(tmp_path):
    from beacon.ingest.run import ReopeningWarehouse

    wh = ReopeningWarehouse(tmp_path / "wh.duckdb", lock_wait=0)
    try:
        assert wh.reopen_if_broken() is False
        wh.con.close()  # as unusable as an invalidated database: every statement raises
        assert wh.reopen_if_broken() is True
        assert wh.con.execute("SELECT 42").fetchall() == [(42,)]
    finally:
        wh.close()


def test_api_page_nested_too_deep_is_quarantined_not_parsed(tmp_path):
    from support.fake_crm import TOKEN, FakeCrm, contacts

    from beacon.ingest.crm_api import ApiConfig, load_crm_api

    deep = b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with FakeCrm({"contacts": contacts(3)}) as crm:
        crm.faults[("contacts", 1)] = [deep, deep]
        summary, _ = load_crm_api(ApiConfig(base_url=crm.url, token=TOKEN, backoff=0.01), datetime(2026, 7, 2),
                                  warehouse=tmp_path / "wh.duckdb", resources={"contacts": "crm_contacts"})
    assert [f.status for f in summary.files] == ["failed"]
    assert "deeper than max_json_depth 64" in summary.files[0].error
    assert query(tmp_path / "wh.duckdb", "SELECT reason FROM raw._quarantine") == [("invalid_page",)]
