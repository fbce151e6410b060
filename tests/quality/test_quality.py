"""Quality checkpoints: bad data opens the circuit breaker, warnings are reported only, good data keeps it closed."""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd
import pytest

from beacon.generate import GenConfig, generate
from beacon.ingest import load_landing
from beacon.quality.breaker import breaker_state
from beacon.quality.checkpoint import run_marts_checkpoint, run_raw_checkpoint, run_suites
from beacon.quality.suites import Check, SuiteDef


def _marts(con, customers: pd.DataFrame | None = None, consent: pd.DataFrame | None = None) -> None:
    """Tiny marts: 50 customers, their orders and consent (all valid unless replaced)."""
    n = 50
    cust = customers if customers is not None else pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)], "email": [f"p{i}@example.com" for i in range(n)],
        "crm_records": 1, "shop_records": 0, "first_seen_at": pd.Timestamp("2026-06-01")})
    orders = pd.DataFrame({"order_id": [f"o{i}" for i in range(n)], "customer_id": [f"c{i}" for i in range(n)],
                           "ordered_at": pd.Timestamp("2026-06-29"), "status": "completed", "total_amount": 10.0})
    cons = consent if consent is not None else pd.DataFrame({
        "consent_key": [f"c{i}:email" for i in range(n)], "customer_id": [f"c{i}" for i in range(n)],
        "channel": "email", "status": "opt_in", "recorded_at": pd.Timestamp("2026-06-01")})
    con.execute("CREATE SCHEMA IF NOT EXISTS marts")
    for name, df in (("dim_customers", cust), ("fct_orders", orders), ("dim_consent", cons)):
        con.register("_df", df)
        con.execute(f"CREATE OR REPLACE TABLE marts.{name} AS SELECT * FROM _df")
        con.unregister("_df")
    con.execute("CREATE OR REPLACE TABLE marts.warehouse_as_of AS SELECT TIMESTAMP '2026-06-30 23:59:59' AS as_of_at")


def test_marts_good_then_critical_then_warning_then_fixed(tmp_path):
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    docs = tmp_path / "quality" / "docs"
    # Good data: every expectation passes, the breaker stays closed.
    _marts(con)
    rep = run_marts_checkpoint(con, docs)
    assert not rep.blocking and {s.suite for s in rep.suites} == {"marts_dim_customers", "marts_fct_orders",
                                                                   "marts_dim_consent"}
    st = breaker_state(con)
    assert not st.open and st.failures == [] and st.warnings == []
    assert (docs / "index.html").exists()
    rows = con.execute("SELECT count(*), count(DISTINCT severity), bool_and(success) FROM quality.expectation_results").fetchall()[0]
    assert rows[0] >= 15 and rows[1] == 2 and rows[2]  # one row per expectation, both severities

    # Critical: an unknown consent status and a duplicated key -> the breaker opens, naming them.
    bad = pd.DataFrame({"consent_key": ["c1:email", "c1:email", "c2:sms"], "customer_id": ["c1", "c1", "c2"],
                        "channel": ["email", "email", "sms"], "status": ["opt_in", "opt_in", "maybe"],
                        "recorded_at": pd.Timestamp("2026-06-01")})
    _marts(con, consent=bad)
    rep = run_marts_checkpoint(con, docs)
    assert rep.blocking
    st = breaker_state(con)
    assert st.open
    assert any("expect_column_values_to_be_in_set(status)" in f for f in st.failures)
    assert any("expect_column_values_to_be_unique(consent_key)" in f for f in st.failures)

    # Fixed consent, but 30% of customers without a valid email: a warning, reported, breaker closed.
    cust = pd.DataFrame({"customer_id": [f"c{i}" for i in range(50)],
                         "email": [None if i % 3 == 0 else f"p{i}@example.com" for i in range(50)],
                         "crm_records": 1, "shop_records": 0, "first_seen_at": pd.Timestamp("2026-06-01")})
    _marts(con, customers=cust)
    rep = run_marts_checkpoint(con, docs)
    assert not rep.blocking
    st = breaker_state(con)
    assert not st.open and any("marts_dim_customers: expect_column_values_to_not_be_null(email)" in w for w in st.warnings)
    sev = con.execute("""SELECT severity, success FROM quality.expectation_results
                         WHERE suite = 'marts_dim_customers' AND expectation = 'expect_column_values_to_not_be_null(email)'
                         ORDER BY run_at DESC LIMIT 1""").fetchall()
    assert sev == [("warning", False)]


def test_volume_drop_against_previous_run_is_a_warning(tmp_path):
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    _marts(con)
    run_marts_checkpoint(con, tmp_path / "docs")
    few = pd.DataFrame({"customer_id": ["c1", "c2"], "email": ["a@b.co", "c@d.co"], "crm_records": 1,
                        "shop_records": 0, "first_seen_at": pd.Timestamp("2026-06-01")})
    _marts(con, customers=few)  # 50 -> 2 customers
    run_marts_checkpoint(con, tmp_path / "docs")
    st = breaker_state(con)
    assert not st.open
    assert any("marts_dim_customers: expect_table_row_count_to_be_between" in w and "observed 2" in w for w in st.warnings)


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    cfg = GenConfig(people=600, seed=5)
    generate(cfg, out)
    return cfg, out


def test_raw_suites_pass_on_generated_data_and_fail_on_bad_consent(small_world, tmp_path):
    cfg, out = small_world
    wh = tmp_path / "wh.duckdb"
    load_landing(out / "landing", warehouse=wh)
    con = duckdb.connect(str(wh))
    rep = run_raw_checkpoint(con, cfg.day_date(), tmp_path / "docs")
    assert {s.suite for s in rep.suites} >= {"raw_consent", "raw_web_events", "raw_crm_contacts", "raw_email_events"}
    assert not rep.blocking, [s.failed_critical for s in rep.suites]
    assert not breaker_state(con).open
    # The generator's invalid emails are measured (the rate passes its 95% threshold) and recorded.
    obs = con.execute("""SELECT observed FROM quality.expectation_results WHERE suite = 'raw_crm_contacts'
                         AND expectation = 'expect_column_values_to_match_regex(email)'""").fetchall()[0][0]
    assert 0 < int(obs.split()[0])
    con.close()

    # A new delivery of consent with an unknown channel: loaded (a valid row), but the raw suite fails critically.
    day = out / "landing" / "2099-01-01"
    day.mkdir()
    (day / "consent.csv").write_text("consent_id,email,phone,channel,status,source,recorded_at\n"
                                     "K1,a@b.co,,email,opt_in,web,2026-06-30 10:00:00\n"
                                     "K2,c@d.co,,fax,opt_in,web,2026-06-30 10:00:00\n")
    s = load_landing(out / "landing", warehouse=wh)
    day_loads = [f for f in s.files if f.status == "loaded"]
    assert [(f.source, f.rows_loaded) for f in day_loads] == [("consent", 2)]
    con = duckdb.connect(str(wh))
    rep = run_raw_checkpoint(con, date(2099, 1, 1), tmp_path / "docs")
    assert [s.suite for s in rep.suites if s.failed_critical] == ["raw_consent"]
    st = breaker_state(con)
    assert st.open and st.failures[0].startswith("raw_consent: expect_column_values_to_be_in_set(channel)")


def test_failing_values_are_counted_never_copied_into_results_or_docs(tmp_path):
    """A check that fails on personal values records how many failed, not which: the results table and the Data
    Docs hold no copy of a malformed e-mail an erasure could no longer match to its person."""
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    con.execute("CREATE TABLE people AS SELECT * FROM (VALUES ('ok@example.com'), ('cody.brown at brandtco.com'), "
                "('cody.brown at brandtco.com'), ('zoe@example.org')) t(email)")
    suite = SuiteDef("people", "SELECT * FROM people", [
        Check("ExpectColumnValuesToMatchRegex", {"column": "email", "regex": r"^[^@ ]+@[^@ ]+$"}),
        Check("ExpectColumnValuesToBeUnique", {"column": "email"})])
    docs = tmp_path / "docs"
    rep = run_suites(con, [suite], docs)
    assert rep.blocking and len(rep.suites[0].failed_critical) == 2
    rows = con.execute("SELECT observed, details FROM quality.expectation_results ORDER BY expectation").fetchall()
    assert [r[0] for r in rows] == ["2 of 4 unexpected", "2 of 4 unexpected"]
    pages = [p.read_text(errors="replace") for p in docs.rglob("*") if p.is_file()]
    assert pages and any("unexpected" in p.lower() for p in pages)  # the docs were written and report the failures
    for text in [r[1] for r in rows] + pages:
        assert "cody.brown" not in text and "brandtco" not in text


def test_raw_suites_load_only_the_columns_their_checks_read(small_world, tmp_path):
    """A raw suite selects the columns its expectations name (the keys at least), not the table: at 1M people the
    day-1 checkpoint's `SELECT *` (the events' payloads included, every suite's frame at once) took the machine's
    24 GB and was killed; with the checked columns, one suite at a time, 5.7 GB (docs/ingestion.md)."""
    from beacon.quality.suites import checked_columns, latest_batches, raw_suites

    cfg, out = small_world
    wh = tmp_path / "wh.duckdb"
    load_landing(out / "landing", warehouse=wh)
    con = duckdb.connect(str(wh))
    suites = {s.name: s for s in raw_suites(con, cfg.day_date())}
    web = suites["raw_web_events"]
    assert checked_columns(web.checks) == ["message_id", "anonymous_id", "event_at", "type"]
    assert list(con.execute(web.sql).df().columns) == ["message_id", "anonymous_id", "event_at", "type"]
    table_columns = {r[0] for r in con.execute("DESCRIBE raw.web_events").fetchall()}
    assert len(table_columns) > 8  # the table holds more than the suite reads
    latest = latest_batches(con)
    for s in suites.values():  # every suite reads every row of its source's latest load, only the checked columns
        frame = con.execute(s.sql).df()
        source = s.name.removeprefix("raw_")
        assert list(frame.columns) == checked_columns(s.checks)
        assert len(frame) == con.execute(f"SELECT count(*) FROM raw.{source} WHERE list_contains(?, _batch_id)",
                                         [latest[source]]).fetchone()[0] > 0
    con.close()


def test_arrow_backed_frames_give_the_results_plain_pandas_gives(tmp_path, monkeypatch):
    """The checkpoint hands GX Arrow-backed columns (a string's bytes in one buffer, not an object each); every kind
    of expectation the suites use reports the same success and observed value as on plain pandas columns."""
    from datetime import datetime

    from beacon.quality import checkpoint

    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    con.execute("""CREATE TABLE t AS SELECT CASE WHEN i % 97 = 0 THEN NULL ELSE 'id' || i END AS k,
        CASE WHEN i % 5 = 0 THEN 'bogus' ELSE ['page', 'track', 'identify'][1 + i % 3] END AS type,
        CASE WHEN i % 7 = 0 THEN 'not-an-email' WHEN i % 11 = 0 THEN NULL ELSE 'a' || i || '@x.com' END AS email,
        TIMESTAMP '2026-01-01' + INTERVAL (i) MINUTE AS ts, (i % 13) - 2 AS q FROM range(5000) r(i)""")
    checks = [Check("ExpectColumnValuesToNotBeNull", {"column": "k"}),
              Check("ExpectColumnValuesToBeInSet", {"column": "type", "value_set": ["page", "track", "identify"]}),
              Check("ExpectColumnValuesToMatchRegex", {"column": "email", "regex": r"^[^@ ]+@[^@ ]+$", "mostly": 0.9},
                    "warning"),
              Check("ExpectColumnMaxToBeBetween", {"column": "ts", "min_value": datetime(2026, 1, 2)}, "warning"),
              Check("ExpectColumnValuesToBeBetween", {"column": "q", "min_value": 0}, "warning"),
              Check("ExpectColumnValuesToBeUnique", {"column": "k"}),
              Check("ExpectCompoundColumnsToBeUnique", {"column_list": ["type", "email"]}),
              Check("ExpectTableRowCountToBeBetween", {"min_value": 1, "max_value": 10})]
    sql = "SELECT expectation, success, observed FROM quality.expectation_results WHERE suite = ? ORDER BY 1"
    checkpoint.run_suites(con, [SuiteDef("arrow", "SELECT * FROM t", checks)], tmp_path / "docs")
    monkeypatch.setattr(checkpoint, "_frame", lambda c, q: c.execute(q).df())  # plain pandas: objects, numpy
    checkpoint.run_suites(con, [SuiteDef("plain", "SELECT * FROM t", checks)], tmp_path / "docs")
    arrow, plain = con.execute(sql, ["arrow"]).fetchall(), con.execute(sql, ["plain"]).fetchall()
    assert arrow == plain and len(arrow) == len(checks)
    assert {r[0]: r[2] for r in arrow}["expect_column_values_to_not_be_null(k)"] == "52 of 5000 unexpected"
    assert sum(not r[1] for r in arrow) == 6  # the table fails most checks: the comparison covers failures too
