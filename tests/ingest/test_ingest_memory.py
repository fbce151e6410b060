"""The load's memory settings (docs/scale.md, Memory): the batch size and read-ahead change how much is in memory at
once, never what is loaded; the load runs under its own DuckDB memory limit."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from beacon.config import override_env
from beacon.ingest import load_landing

DAY = "2026-06-30"
HEADER = ("contact_id,company_id,first_name,last_name,email,phone,job_title,lifecycle_stage,lead_source,"
          "street,city,state,postal_code,created_at,updated_at")


def _landing(tmp_path: Path) -> Path:
    events = []
    for i in range(40):
        e = {"messageId": f"m{i % 37}", "type": "track", "event": "Product Viewed", "anonymousId": f"a{i % 5}",
             "timestamp": "2026-06-30T10:00:00Z" if i % 11 else "2031-01-01T00:00:00Z",
             "properties": {"path": f"/p/{i}", "product_id": f"SKU-{i}"}}
        events.append(json.dumps(e) if i % 13 else '{"messageId": "broken", ')
    contacts = [f"C{i},A1,Ann,Lee,ann{i}@example.com,+1 555 0100,Analyst,lead,web,1 Main St,Springfield,IL,62701,"
                f"2026-06-01 10:00:00,{'2026-06-30 10:00:00' if i % 7 else 'not a time'}" for i in range(25)]
    day = tmp_path / "landing" / DAY
    day.mkdir(parents=True)
    (day / "web_events.jsonl").write_text("\n".join(events) + "\n")
    (day / "crm_contacts.csv").write_text("\n".join([HEADER, *contacts, "C99,only,three"]) + "\n")
    pd.DataFrame({"order_id": [f"O{i}" for i in range(9)], "customer_id": "S1",
                  "ordered_at": pd.Timestamp("2026-06-30 10:00"), "status": "completed", "currency": "USD",
                  "total_amount": 10.0}).to_parquet(day / "shop_orders.parquet", index=False)
    return tmp_path / "landing"


def _tables(wh: Path) -> dict[str, list]:
    """Every raw table, the quarantine and the ledger, without the load's wall-clock times."""
    con = duckdb.connect(str(wh), read_only=True)
    try:
        out = {}
        for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'raw' "
                                "ORDER BY 1").fetchall():
            cols = [c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE schema_name = 'raw' "
                                              "AND table_name = ? ORDER BY column_index", [t]).fetchall()
                    if c not in ("_loaded_at", "quarantined_at", "loaded_at", "updated_at")]
            sel = ", ".join(f'"{c}"' for c in cols)
            out[t] = con.execute(f'SELECT {sel} FROM raw."{t}" ORDER BY ALL').fetchall()
        return out
    finally:
        con.close()


def test_batch_size_and_read_ahead_change_nothing_that_is_loaded(tmp_path):
    landing = _landing(tmp_path)
    loaded = {}
    for rows, ahead in (("250000", "1"), ("3", "1"), ("2", "4")):
        wh = tmp_path / f"wh-{rows}-{ahead}.duckdb"
        with override_env(BEACON_INGEST_BATCH_ROWS=rows, BEACON_INGEST_PREFETCH=ahead):
            summary = load_landing(landing, warehouse=wh)
        assert all(f.status == "loaded" for f in summary.files), summary.files
        loaded[rows, ahead] = _tables(wh)
    one = loaded["250000", "1"]
    assert len(one["web_events"]) > 20 and len(one["crm_contacts"]) > 15 and len(one["shop_orders"]) == 9
    reasons = {r[3] for r in one["_quarantine"]}
    assert {"malformed", "future_timestamp", "wrong_type"} <= reasons, reasons
    assert loaded["3", "1"] == one and loaded["2", "4"] == one


def test_the_load_runs_under_its_own_memory_limit(tmp_path, monkeypatch):
    import beacon.ingest.run as run

    seen = []
    real = run.load_unit

    def load_unit(con, *a, **kw):
        seen.append(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
        return real(con, *a, **kw)

    monkeypatch.setattr(run, "load_unit", load_unit)
    with override_env(BEACON_INGEST_MEMORY_LIMIT="300MB", BEACON_DUCKDB_MEMORY_LIMIT="2GB"):
        load_landing(_landing(tmp_path), warehouse=tmp_path / "wh.duckdb")
    assert seen and set(seen) == {"286.1 MiB"}  # 300 MB as DuckDB reports it, not the warehouse's 2 GB


@pytest.mark.parametrize("var", ["BEACON_INGEST_BATCH_ROWS", "BEACON_INGEST_PREFETCH"])
def test_a_batch_setting_below_one_names_the_variable(monkeypatch, var):
    from beacon.config import settings

    monkeypatch.setenv(var, "0")
    with pytest.raises(ValueError, match=f"{var}='0'"):
        settings()
