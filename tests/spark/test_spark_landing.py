"""Landing to raw on the spark engine is the ingest contract, unchanged (issue 29, item 2; beacon.spark.landing).

The same landing files go through DuckDB's ingest (`load_landing` into the warehouse) and the spark engine's
(`ingest_landing`: the same run loop on a scratch DuckDB, written out as Parquet partitioned by load day with the
quarantine and the ledger). Compared: what each run reports per file (status, named reason, rows read, loaded and
quarantined, the reasons, the columns drift added, the message), every raw row (every column as text; the load
time aside), every quarantine row (reason, message, payload, line) and every ledger row; then a second run of the
same files, which must load nothing on either side (the ledger read back from Parquet makes re-delivery
idempotent). The inputs: every bad-input case of tests/ingest/test_bad_input.py, every file of the regression
corpus (binary, UTF-16, 50,000 columns, a 20 MB line, ...), and two days of a generated world with late rows, a
message re-sent days later (a `duplicate` only the dedupe values of the earlier day can catch) and a file
re-delivered the next day. No JVM: the Parquet files are read here by DuckDB (the Spark tables over them are
checked in tests/dbt/test_spark_engine.py).
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from ingest.test_bad_input import CASES, DAY

from beacon.config import override_env

CORPUS = Path(__file__).resolve().parents[1] / "ingest" / "corpus"
# Audit times (when a row was loaded or quarantined): the wall clock of each run, never compared.
WHEN = {"_loaded_at", "quarantined_at", "loaded_at"}


def _summary(summary) -> list[tuple]:
    return sorted((f.source, f.file, f.status, f.reason, f.batch_id, f.rows_read, f.rows_loaded, f.rows_quarantined,
                   tuple(sorted(f.reasons.items())), tuple(f.added_columns), f.error) for f in summary.files)


def _text_rows(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[list[str], list[tuple]]:
    """A relation's columns (sorted, audit times aside) and its rows, every value as text, sorted."""
    cols = sorted(c for (c, *_) in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall() if c not in WHEN)
    sel = ", ".join(f'CAST("{c}" AS VARCHAR)' for c in cols)
    rows = con.execute(f"SELECT {sel} FROM {relation}").fetchall()
    return cols, sorted(rows, key=repr)


def _duckdb_state(warehouse: Path) -> dict[str, tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'raw' AND table_name <> '_cursors'").fetchall()]
        return {t: _text_rows(con, f'raw."{t}"') for t in tables}


def _parquet_state(data: Path, tables: list[str]) -> dict[str, tuple]:
    from beacon.spark.landing import spark_raw_root

    with override_env(BEACON_DATA_DIR=str(data)):
        root = spark_raw_root()
    out = {}
    with duckdb.connect() as con:
        for t in tables:
            folder = root / t
            if next(folder.rglob("*.parquet"), None) is None:  # a table nothing was loaded into
                out[t] = None
                continue
            rel = f"read_parquet('{folder}/**/*.parquet', union_by_name = true, hive_partitioning = false)"
            out[t] = _text_rows(con, rel)
    return out


def _comparable(state: dict[str, tuple]) -> dict[str, tuple]:
    """Empty tables as None (DuckDB has every raw table; the Parquet layer only those something was loaded into);
    the columns of an empty table are not compared."""
    return {t: (v if v and v[1] else None) for t, v in state.items()}


def _env(landing: Path, tmp: Path, **extra: str):
    """One environment for both engines: the same landing root (whose privacy folder the ingest reads), the same
    control-plane warehouse (whose tombstones it reads), the Parquet layer under tmp/data."""
    return override_env(BEACON_DATA_DIR=str(tmp / "data"), BEACON_LANDING_DIR=str(landing), **extra)


def _both(landing: Path, tmp: Path, until: date | None = None, **env: str) -> tuple[list, list]:
    """One ingest run of `landing` on each engine (the DuckDB warehouse and the Parquet layer under tmp/data)."""
    from beacon.config import settings
    from beacon.ingest import load_landing
    from beacon.spark.landing import ingest_landing

    with _env(landing, tmp, **env):
        theirs = ingest_landing(landing, until)
        ours = load_landing(landing, until, warehouse=settings().warehouse_path)
    return _summary(ours), _summary(theirs)


def _assert_same(tmp: Path) -> dict[str, tuple]:
    duck = _comparable(_duckdb_state(_warehouse(tmp)))
    spark = _comparable(_parquet_state(tmp / "data", list(duck)))
    for table in duck:
        assert spark[table] == duck[table], table
    return duck


def _warehouse(tmp: Path) -> Path:
    from beacon.config import settings

    with override_env(BEACON_DATA_DIR=str(tmp / "data")):
        return settings().warehouse_path


def _land(files: dict[str, bytes], landing: Path) -> None:
    for rel, data in files.items():
        p = (landing / DAY / rel).resolve()
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def _check_case(files: dict[str, bytes], tmp: Path) -> dict[str, tuple]:
    landing = tmp / "landing"
    _land(files, landing)
    ours, theirs = _both(landing, tmp)
    assert theirs == ours
    state = _assert_same(tmp)
    again_ours, again_theirs = _both(landing, tmp)  # the same files again: loaded files are skipped on both
    assert again_theirs == again_ours
    assert all(f[2] != "loaded" for f in again_ours)
    _assert_same(tmp)  # failed files are tried and recorded again, on both
    return state


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gives_the_same_raw_quarantine_and_ledger(name, tmp_path):
    state = _check_case(CASES[name].files, tmp_path)
    assert state["_load_ledger"] is not None  # every case leaves a ledger row


def test_a_new_column_of_a_file_without_good_rows_is_known_the_next_day(tmp_path):
    """Schema drift in a file whose only row is quarantined: the column is added (and reported) once, on both; the
    next day's file with it reports nothing new."""
    from ingest.test_bad_input import HEADER, contact, csv_bytes

    landing = tmp_path / "landing"
    _land({"crm_contacts.csv": csv_bytes(contact("") + ",gold", header=HEADER + ",loyalty_tier")}, landing)
    first = _both(landing, tmp_path)
    assert first[1] == first[0] and [f[9] for f in first[0]] == [("loyalty_tier",)]
    nxt = landing / "2026-07-01"
    nxt.mkdir()
    (nxt / "crm_contacts.csv").write_bytes(csv_bytes(contact("C9") + ",silver", header=HEADER + ",loyalty_tier"))
    ours, theirs = _both(landing, tmp_path)
    assert theirs == ours and all(f[9] == () for f in ours)
    _assert_same(tmp_path)


def test_rows_of_erased_people_are_quarantined_the_same(tmp_path):
    """The control plane's privacy tombstones (and the landing root's blocked identifiers) reach the Parquet ingest:
    a row of an erased person is quarantined `erased`, without its payload, on both."""
    from ingest.test_bad_input import contact, csv_bytes

    from beacon.privacy.requests import ensure_tables
    from beacon.tombstones import hashes_of, write_blocked

    key = "k" * 40
    landing = tmp_path / "landing"
    _land({"crm_contacts.csv": csv_bytes(contact("C1"), contact("C2", "Bea", "bea@example.com"),
                                         contact("C3", "Cy", "cy@example.com"))}, landing)
    warehouse = _warehouse(tmp_path)
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(warehouse)) as con:
        ensure_tables(con)
        con.executemany("INSERT INTO privacy.tombstones VALUES (?, 'r1', TIMESTAMP '2026-06-01')",
                        [[h] for h in hashes_of(key, {"email": ["bea@example.com"]})])
    write_blocked(landing, "r2", hashes_of(key, {"email": ["cy@example.com"]}))
    ours, theirs = _both(landing, tmp_path, BEACON_PRIVACY_KEY=key)
    assert theirs == ours
    contacts = next(f for f in ours if f[0] == "crm_contacts")
    assert contacts[6] == 1 and dict(contacts[8]) == {"erased": 2}
    state = _assert_same(tmp_path)
    columns, rows = state["_quarantine"]
    assert {row[columns.index("payload")] for row in rows} == {None}


def _corpus() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_dir())


@pytest.mark.parametrize("case", _corpus(), ids=lambda p: p.name)
def test_the_regression_corpus_gives_the_same_raw_quarantine_and_ledger(case, tmp_path):
    files = {str(p.relative_to(case)): p.read_bytes() for p in sorted(case.rglob("*")) if p.is_file()}
    _check_case(files, tmp_path)


def test_two_days_with_late_rows_resent_messages_and_a_redelivered_file(tmp_path):
    """Run by run (each landing day in its own run, as the daily ingest does), both engines load, skip and
    quarantine the same rows: day 2 carries late rows of day 1, and collected messages of day 1 re-sent (quarantined
    `duplicate` only because the Parquet layer's dedupe values were read back); a third day re-delivers day 1's
    consent file (skipped by its content hash, known from the Parquet ledger)."""
    from support.incremental_world import plant_late_rows

    from beacon.generate import GenConfig, generate

    for day in (1, 2):
        generate(GenConfig(people=300, seed=29, day=day), tmp_path)
    landing = tmp_path / "landing"
    day1, day2 = sorted(p for p in landing.iterdir())
    plant_late_rows(day2, day1)
    # Events posted to the collector (collected_events: `dedupe` on message_id): day 2 re-sends 10 of day 1's.
    web1 = (day1 / "web_events.jsonl").read_text().splitlines()[:20]
    (day1 / "collected_events-a.jsonl").write_text("\n".join(web1) + "\n")
    resent = web1[:10] + [line.replace('"messageId":"', '"messageId":"new-') for line in web1[10:]]
    (day2 / "collected_events-b.jsonl").write_text("\n".join(resent) + "\n")
    day3 = landing / (date.fromisoformat(day2.name) + timedelta(days=1)).isoformat()
    day3.mkdir()
    shutil.copy(day1 / "consent.csv", day3 / "consent.csv")
    runs = []
    for day in (day1, day2, day3):
        ours, theirs = _both(landing, tmp_path, date.fromisoformat(day.name))
        assert theirs == ours
        runs.append(ours)
        state = _assert_same(tmp_path)
    collected = next(f for f in runs[1] if f[0] == "collected_events" and day2.name in f[1])
    assert dict(collected[8]) == {"duplicate": 10} and collected[6] == 10  # re-sent messages: caught across runs
    assert [f[2] for f in runs[2] if day3.name in f[1]] == ["skipped"]  # the re-delivered file
    columns, rows = state["_quarantine"]
    assert {"duplicate", "malformed"} <= {row[columns.index("reason")] for row in rows}  # the world's bad rows too
    again_ours, again_theirs = _both(landing, tmp_path)
    assert again_theirs == again_ours and {f[2] for f in again_ours} == {"skipped"}
    assert _assert_same(tmp_path) == state  # a second run of every file changes nothing on either side
