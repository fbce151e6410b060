"""Issue 27, item 3: the erasure cleans Airflow's metadata database, on a copy of a real one (the schema `airflow db
migrate` made for the test session): XComs and rendered fields holding the person are deleted; Airflow's audit `log`
(a CLI command line naming them), a run's `conf`, an asset event's extra are redacted in rows that stay; a person's id
inside a run id (a key column) is listed unclean with the reason; then a scan of every column of every table finds
none of their values but that one."""

from __future__ import annotations

import json
import sqlite3

import pytest

from beacon.privacy.airflow_meta import erase_airflow_metadata
from beacon.privacy.erase import EraseReport
from beacon.privacy.match import Keys
from beacon.privacy.subject import Subject

ANN = Subject(given={"email": ("ann.lee@example.com",)}, customer_ids=("cus_a1b2c3",),
              emails=("ann.lee@example.com",), phones=("+14155550100",))
TRIGGER = json.dumps({"host_name": "vm", "full_command": str(
    ["airflow", "dags", "trigger", "beacon_privacy", "--conf", '{"email": "Ann.Lee@example.com"}'])})


@pytest.fixture
def metadata(airflow_home, tmp_path):
    """A copy of the session's real Airflow metadata database, with rows that quote Ann and rows that do not."""
    db = tmp_path / "airflow.db"
    src, dst = sqlite3.connect(airflow_home / "airflow.db"), sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.executescript("DELETE FROM log; DELETE FROM xcom; DELETE FROM asset_event;")
    dst.executemany("INSERT INTO log (id, dttm, event, dag_id, extra) VALUES (?, '2026-06-30 10:00:00', ?, ?, ?)", [
        (9001, "cli_dags_trigger", "beacon_privacy", TRIGGER),
        (9002, "running", "beacon_ingest", '{"host_name": "vm"}')])
    run = ("INSERT INTO dag_run (id, dag_id, run_id, run_type, run_after, clear_number, span_status, conf) "
           "VALUES (?, 'beacon_privacy', ?, 'manual', '2026-06-30 10:00:00', 0, 'not_started', ?)")
    dst.execute(run, (9001, "manual__ann", '{"email": "ann.lee@example.com", "kind": "erase"}'))
    dst.execute(run, (9002, "manual__other", '{"kind": "erase"}'))
    dst.execute(run, (9003, "erase:cus_a1b2c3", "{}"))  # a run id made from her customer id: a key column
    dst.executemany("INSERT INTO xcom (dag_run_id, task_id, map_index, key, dag_id, run_id, value, timestamp) "
                    "VALUES (?, ?, -1, 'return_value', 'beacon_activation', 'r', ?, '2026-06-30 10:00:00')", [
                        (9002, "sync", json.dumps({"sample": [{"phone": "(415) 555-0100"}]})),
                        (9002, "count", json.dumps({"rows": 5}))])
    asset = dst.execute("SELECT id FROM asset LIMIT 1").fetchone()
    if asset is None:
        dst.execute("INSERT INTO asset (id, name, uri, \"group\", extra, created_at, updated_at) "
                    "VALUES (9001, 'a', 'beacon://a', 'asset', '{}', '2026-06-30', '2026-06-30')")
        asset = (9001,)
    dst.execute("INSERT INTO asset_event (id, asset_id, extra, timestamp) VALUES (9001, ?, ?, '2026-06-30')",
                (asset[0], '{"last_customer": "cus_a1b2c3"}'))
    dst.commit()
    dst.close()
    return db


def _every_value(db) -> dict[str, list[str]]:
    """table -> every row's values cast to text (what an independent scan reads)."""
    con = sqlite3.connect(db)
    try:
        out = {}
        for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            cols = [r[1] for r in con.execute(f'PRAGMA table_info("{t}")').fetchall()]
            out[t] = [" | ".join("" if v is None else (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
                                 for v in row) for row in con.execute(f'SELECT {", ".join(f"[{c}]" for c in cols)} '
                                                                       f'FROM "{t}"').fetchall()]
        return out
    finally:
        con.close()


def _hits(db) -> set[str]:
    needles = ("ann.lee@example.com", "555-0100", "cus_a1b2c3")
    return {t for t, rows in _every_value(db).items() for r in rows if any(n in r.lower() for n in needles)}


def test_the_metadata_database_is_cleaned_or_listed_unclean(metadata):
    assert _hits(metadata) == {"log", "dag_run", "xcom", "asset_event"}  # the scan can fail
    report = EraseReport("r")
    erase_airflow_metadata(None, Keys.of([ANN]), report, url=f"sqlite:///{metadata}")
    assert report.stores["airflow_xcom"] == {"xcom": 1}
    assert report.stores["airflow_metadata"] == {"log.extra": 1, "dag_run.conf": 1, "asset_event.extra": 1}
    assert report.unclean == [{"store": "airflow_metadata", "place": "airflow metadata table dag_run",
                               "reason": "the value is in a key column (run_id): delete the run or record with "
                                         "Airflow's own commands"}]
    con = sqlite3.connect(metadata)
    # The audit event stays (who did what, when), without the command line that named her.
    assert con.execute("SELECT id, event, dag_id, extra FROM log ORDER BY id").fetchall() == [
        (9001, "cli_dags_trigger", "beacon_privacy", None), (9002, "running", "beacon_ingest", '{"host_name": "vm"}')]
    assert con.execute("SELECT run_id, conf FROM dag_run WHERE id >= 9001 ORDER BY id").fetchall() == [
        ("manual__ann", None), ("manual__other", '{"kind": "erase"}'), ("erase:cus_a1b2c3", "{}")]
    assert con.execute("SELECT task_id FROM xcom").fetchall() == [("count",)]
    assert json.loads(con.execute("SELECT extra FROM asset_event WHERE id = 9001").fetchone()[0]) == {"erased": True}
    con.close()
    # Left: only the run id the report lists as unclean.
    assert _hits(metadata) == {"dag_run"}
    left = [r for r in _every_value(metadata)["dag_run"] if "cus_a1b2c3" in r.lower()]
    assert len(left) == 1 and "erase:cus_a1b2c3" in left[0]


def test_an_unreachable_metadata_database_is_reported_unclean(tmp_path):
    report = EraseReport("r")
    erase_airflow_metadata(None, Keys.of([ANN]), report, url=f"sqlite:///{tmp_path}/missing/dir/airflow.db")
    assert [u["place"] for u in report.unclean] == ["airflow metadata database"]
