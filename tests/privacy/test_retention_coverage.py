"""Issue 27, item 8: retention covers every store where personal data accumulates, through the beacon_privacy DAG's
own task (`apply_retention` of dags/beacon_privacy.py). Rows and files are planted on both sides of each window,
counted back from the warehouse clock (2020-06-30, years before the wall clock); exactly the old ones go."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pytest

from beacon.config import settings
from beacon.warehouse import connect

AS_OF = datetime(2020, 6, 30, 23, 59, 59)
OLD, YOUNG = datetime(2019, 1, 10), datetime(2020, 6, 20)  # past every window / within every window


def _rows(con, sql: str) -> list:
    return sorted(con.execute(sql).fetchall())


def _plant_warehouse(con) -> None:
    for schema in ("marts", "raw", "staging", "journeys", "audiences", "ml", "activation"):
        con.execute(f"CREATE SCHEMA {schema}")
    con.execute("CREATE TABLE marts.warehouse_as_of AS SELECT ?::TIMESTAMP AS as_of_at", [AS_OF])
    con.execute("CREATE TABLE raw.web_events (message_id VARCHAR, anonymous_id VARCHAR, event_at TIMESTAMP)")
    con.executemany("INSERT INTO raw.web_events VALUES (?, 'anon-1', ?)", [("w-old", OLD), ("w-young", YOUNG)])
    con.execute("CREATE TABLE raw.email_events (event_id VARCHAR, email VARCHAR, event_at TIMESTAMP)")
    con.executemany("INSERT INTO raw.email_events VALUES (?, 'a@example.org', ?)",
                    [("e-old", OLD), ("e-edge", datetime(2019, 5, 30, 23, 59, 59)), ("e-young", YOUNG)])
    for model in ("stg_web__events", "stg_esp__email_events"):  # dbt's incremental staging copies
        con.execute(f"CREATE TABLE staging.{model} (event_id VARCHAR, event_at TIMESTAMP)")
        con.executemany(f"INSERT INTO staging.{model} VALUES (?, ?)", [("s-old", OLD), ("s-young", YOUNG)])
    con.execute("CREATE TABLE raw._quarantine (source VARCHAR, payload VARCHAR, quarantined_at TIMESTAMP)")
    con.executemany("INSERT INTO raw._quarantine VALUES ('crm_contacts', ?, ?)",
                    [("q-old", datetime(2020, 5, 30)), ("q-young", datetime(2020, 6, 15))])
    meta = "_loaded_at TIMESTAMP, _line BIGINT"
    con.execute(f"CREATE TABLE raw.crm_contacts (contact_id VARCHAR, email VARCHAR, updated_at TIMESTAMP, {meta})")
    con.executemany("INSERT INTO raw.crm_contacts VALUES (?, ?, ?, ?, ?)", [
        ("C1", "c1-old@example.org", OLD, datetime(2026, 1, 1), 2),       # replaced, old: goes
        ("C1", "c1-new@example.org", YOUNG, datetime(2026, 1, 2), 2),     # the copy staging reads
        ("C2", "c2@example.org", datetime(2017, 1, 1), datetime(2026, 1, 1), 3),  # old but current: stays
        ("C3", "c3-old@example.org", datetime(2020, 3, 1), datetime(2026, 1, 1), 4),  # replaced, young: stays
        ("C3", "c3-new@example.org", YOUNG, datetime(2026, 1, 2), 4)])
    con.execute(f"CREATE TABLE raw.shop_customers (customer_id VARCHAR, email VARCHAR, created_at TIMESTAMP, {meta})")
    con.executemany("INSERT INTO raw.shop_customers VALUES (?, ?, ?, ?, ?)", [
        ("S1", "s1-old@example.org", OLD, datetime(2026, 1, 1), 2), ("S1", "s1-new@example.org", OLD,
                                                                     datetime(2026, 1, 2), 2),
        ("S2", "s2@example.org", OLD, datetime(2026, 1, 1), 3)])
    con.execute(f"CREATE TABLE raw.shop_orders (order_id VARCHAR, customer_id VARCHAR, status VARCHAR, "
                f"ordered_at TIMESTAMP, {meta})")
    con.executemany("INSERT INTO raw.shop_orders VALUES (?, 'S1', ?, ?, ?, 1)", [
        ("O1", "placed", OLD, datetime(2026, 1, 1)), ("O1", "shipped", OLD, datetime(2026, 1, 2)),
        ("O2", "placed", YOUNG, datetime(2026, 1, 1)), ("O2", "shipped", YOUNG, datetime(2026, 1, 2))])
    con.execute("""CREATE TABLE journeys.transitions (journey VARCHAR, customer_id VARCHAR, entry_no INTEGER,
        step INTEGER, occurred_at TIMESTAMP)""")
    con.executemany("INSERT INTO journeys.transitions VALUES ('j', ?, 1, ?, ?)", [
        ("c1", 0, OLD), ("c1", 1, datetime(2019, 2, 1)),  # step 0 goes; step 1 is c1's state: stays
        ("c2", 0, YOUNG)])
    con.execute("CREATE TABLE journeys.finished (journey VARCHAR, customer_id VARCHAR, exited_at TIMESTAMP)")
    con.executemany("INSERT INTO journeys.finished VALUES ('j', ?, ?)", [("c3", OLD), ("c4", YOUNG)])
    con.execute("CREATE TABLE journeys.actions (action_id VARCHAR, customer_id VARCHAR, occurred_at TIMESTAMP)")
    con.executemany("INSERT INTO journeys.actions VALUES (?, 'c1', ?)", [("a-old", OLD), ("a-young", YOUNG)])
    con.execute("""CREATE TABLE audiences.membership_events (audience VARCHAR, customer_id VARCHAR, change VARCHAR,
        as_of DATE, qualifying JSON)""")
    con.executemany("INSERT INTO audiences.membership_events VALUES ('a', ?, ?, ?, NULL)", [
        ("m1", "entered", OLD), ("m1", "exited", datetime(2019, 2, 1)),          # left long ago: both go
        ("m2", "entered", OLD),                                                  # still a member: stays
        ("m3", "entered", OLD), ("m3", "exited", YOUNG)])                        # old entry goes, exit stays
    con.execute("CREATE TABLE ml.scores (customer_id VARCHAR, model VARCHAR, score DOUBLE, scored_at TIMESTAMP)")
    con.executemany("INSERT INTO ml.scores VALUES ('c1', ?, 0.5, ?)", [("retired", OLD), ("lead_score", AS_OF)])


def _plant_files(s, airflow_logs) -> dict[str, float]:
    """Files dated by their day folder, and files dated by when they were written (mtime); returns path -> mtime."""
    for day in ("2019-01-10", "2020-06-20"):
        d = s.landing_dir / day
        d.mkdir(parents=True)
        (d / "web_events.jsonl").write_text('{"anonymousId": "anon-1"}\n')
        (d / "collected_events-svc.jsonl").write_text('{"anonymousId": "anon-2"}\n')
        (s.exports_dir / "win_back" / day).mkdir(parents=True)
        (s.exports_dir / "win_back" / day / "win_back-1.csv").write_text("email\nx@example.org\n")
    written = {s.landing_dir / "_spool" / "collected_events-old.part": OLD,
               s.landing_dir / "_spool" / "collected_events-young.part": YOUNG,
               s.landing_dir / "_spool" / "collected_events-now.part": None,  # written today: after the clock
               airflow_logs / "dag_id=beacon_activation" / "run_id=r1" / "task_id=sync" / "attempt=1.log": OLD,
               airflow_logs / "dag_id=beacon_activation" / "run_id=r2" / "task_id=sync" / "attempt=1.log": YOUNG}
    for path, at in written.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x@example.org\n")
        if at is not None:
            os.utime(path, (at.replace(tzinfo=UTC).timestamp(),) * 2)
    return written


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("BEACON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow"))
    for var in ("BEACON_WAREHOUSE", "BEACON_WAREHOUSE_KEY", "BEACON_RETENTION_CONFIG", "BEACON_LANDING_DIR",
                "BEACON_EXPORTS_DIR", "AIRFLOW__LOGGING__BASE_LOG_FOLDER"):
        monkeypatch.delenv(var, raising=False)
    s = settings()
    with connect(s.warehouse_path) as con:
        _plant_warehouse(con)
    _plant_files(s, tmp_path / "airflow" / "logs")
    return s


def test_every_store_ages_out_through_the_dag_task(world, dagbag):
    s = world
    task = dagbag.get_dag("beacon_privacy").get_task("apply_retention")
    out = task.python_callable({"completed": 0})
    assert out["as_of"] == str(AS_OF)
    with connect(s.warehouse_path, read_only=True) as con:
        assert _rows(con, "SELECT message_id FROM raw.web_events") == [("w-young",)]
        assert _rows(con, "SELECT event_id FROM raw.email_events") == [("e-edge",), ("e-young",)]
        assert _rows(con, "SELECT payload FROM raw._quarantine") == [("q-young",)]
        for model in ("stg_web__events", "stg_esp__email_events"):
            assert _rows(con, f"SELECT event_id FROM staging.{model}") == [("s-young",)]
        assert _rows(con, "SELECT email FROM raw.crm_contacts") == [
            ("c1-new@example.org",), ("c2@example.org",), ("c3-new@example.org",), ("c3-old@example.org",)]
        assert _rows(con, "SELECT email FROM raw.shop_customers") == [("s1-new@example.org",), ("s2@example.org",)]
        assert _rows(con, "SELECT order_id, status FROM raw.shop_orders") == [
            ("O1", "shipped"), ("O2", "placed"), ("O2", "shipped")]
        assert _rows(con, "SELECT customer_id, step FROM journeys.transitions") == [("c1", 1), ("c2", 0)]
        assert _rows(con, "SELECT customer_id FROM journeys.finished") == [("c4",)]
        assert _rows(con, "SELECT action_id FROM journeys.actions") == [("a-young",)]
        assert _rows(con, "SELECT customer_id, change FROM audiences.membership_events") == [
            ("m2", "entered"), ("m3", "exited")]
        assert _rows(con, "SELECT model FROM ml.scores") == [("lead_score",)]
    left = sorted(str(p.relative_to(s.data_dir)) for p in s.data_dir.rglob("*") if p.is_file()
                  and "warehouse" not in p.parts)
    assert left == ["exports/win_back/2020-06-20/win_back-1.csv",
                    "landing/2020-06-20/collected_events-svc.jsonl", "landing/2020-06-20/web_events.jsonl",
                    "landing/_spool/collected_events-now.part", "landing/_spool/collected_events-young.part"]
    logs = s.airflow_home / "logs"
    assert sorted(str(p.relative_to(logs)) for p in logs.rglob("*") if p.is_file()) == [
        "dag_id=beacon_activation/run_id=r2/task_id=sync/attempt=1.log"]
    assert not (logs / "dag_id=beacon_activation" / "run_id=r1").exists()  # emptied folders go too
    changed = out["changed"]
    assert changed["raw.email_events"] == 1 and changed["raw.crm_contacts"] == 1 and changed["raw.shop_orders"] == 1
    assert changed["landing/_spool"] == 1 and changed["airflow task logs"] == 1
    assert changed["journeys.transitions"] == 1 and changed["audiences.membership_events"] == 3
    assert "@" not in json.dumps(out)  # counts and cutoffs only
    # A second run finds nothing more.
    assert "changed" in (again := task.python_callable({})) and again["changed"] == {}
