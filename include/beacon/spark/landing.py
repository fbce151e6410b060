"""Landing to raw on the spark engine (issue 29, item 2): the ingest contract run per landing file, written as
Parquet partitioned by load day, with the quarantine and the ledger beside it; no shared DuckDB file holds raw.

The contract (sources.yml: types, keys, dedupe, event times, quarantine reasons, the ledger) has one
implementation, `beacon.ingest`: its run loop (`load_landing`: every dated folder, every file one unit, webhooks
too) runs here unchanged, on a scratch DuckDB file that lives for one run. Before the run the scratch is given
what the contract reads of earlier runs, from the Parquet raw layer: the ledger (a re-delivered file is skipped
by its content hash), the values of each source's `dedupe` columns (a message re-sent days later is quarantined
`duplicate`), and the columns schema drift added (not reported as new again). After the run the rows each loaded
unit wrote are copied out, one Parquet file per unit under its load-day folder
(<data>/spark/raw/raw/<source>/_load_date=<day>/<batch>.parquet), then the run's quarantine rows, then its ledger
rows (the commit record: a unit is loaded once its ledger row is written). A unit's file name is fixed by its
batch id (source, landing day, content hash), so a run that stops after writing a unit's rows and before its
ledger row writes the same file again on the next run: nothing is doubled. `declare_raw` declares the folders as
Spark tables (`raw.<source>` partitioned by `_load_date`, `raw._quarantine`, `raw._load_ledger`).

This runs where the ingest task runs (one node, the landing files read once, DuckDB classifying each batch), as
the DuckDB engine's ingest does; docs/scale.md ("Landing to raw on Spark") says what bounds it and what would
spread it over executors.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from beacon.config import Settings, settings
from beacon.ingest.ddl import ensure_raw_schema
from beacon.ingest.results import FileLoad, LoadSummary
from beacon.ingest.run import load_landing
from beacon.ingest.spec import META_COLUMNS, SourceSpec, load_specs
from beacon.spark.raw import PARTITION, parquet_dir, spark_ddl
from beacon.spark.session import spark_dir
from beacon.warehouse import connect, quote_ident, sql_literal, table_exists

LEDGER, QUARANTINE = "_load_ledger", "_quarantine"
HYDRATED = "_hydrated"  # marks, in the scratch ledger, the rows read back from the Parquet ledger


def _files(folder: Path) -> str | None:
    """The glob of a folder's Parquet files, None when it has none."""
    return sql_literal(str(folder / "**" / "*.parquet")) if next(folder.rglob("*.parquet"), None) else None


def _describe(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    """The columns of a relation (name, DuckDB type)."""
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]


def _parquet_columns(con: duckdb.DuckDBPyConnection, folder: Path) -> list[tuple[str, str]]:
    """The union of the columns of a folder's Parquet files (name, DuckDB type), the partition column left out."""
    files = _files(folder)
    if files is None:
        return []
    return _describe(con, f"read_parquet({files}, union_by_name = true, hive_partitioning = false)")


def _hydrate(con: duckdb.DuckDBPyConnection, specs: dict[str, SourceSpec], s: Settings) -> None:
    """Give the scratch what the contract reads of earlier runs: the ledger, each source's dedupe values and the
    columns drift added; and the privacy tombstones of the control plane (rows of erased people are quarantined
    `erased`, as on DuckDB)."""
    ensure_raw_schema(con, specs)
    con.execute(f"ALTER TABLE raw.{LEDGER} ADD COLUMN {HYDRATED} BOOLEAN")
    ledger = _files(parquet_dir("raw", LEDGER, s))
    if ledger is not None:
        con.execute(f"INSERT INTO raw.{LEDGER} BY NAME SELECT *, true AS {HYDRATED} FROM read_parquet({ledger}, "
                    "union_by_name = true, hive_partitioning = false)")
    for spec in specs.values():
        folder = parquet_dir("raw", spec.name, s)
        have = {c.name for c in spec.columns} | set(META_COLUMNS)
        for col, _type in _parquet_columns(con, folder):
            if col not in have:  # a column schema drift added in an earlier run
                con.execute(f"ALTER TABLE raw.{quote_ident(spec.name)} ADD COLUMN {quote_ident(col)} VARCHAR")
        if spec.dedupe and (files := _files(folder)) is not None:
            cols = ", ".join(quote_ident(d) for d in spec.dedupe)
            con.execute(f"INSERT INTO raw.{quote_ident(spec.name)} ({cols}) SELECT DISTINCT {cols} "
                        f"FROM read_parquet({files}, union_by_name = true, hive_partitioning = false)")
    if s.warehouse_path.exists():
        with connect(s.warehouse_path) as wh:  # read-write even to read (beacon.warehouse.connect)
            if table_exists(wh, "privacy", "tombstones"):
                tombstones = wh.sql("SELECT * FROM privacy.tombstones").to_arrow_table()
                con.execute("CREATE SCHEMA IF NOT EXISTS privacy")
                con.register("_tombstones", tombstones)
                con.execute("CREATE TABLE privacy.tombstones AS SELECT * FROM _tombstones")
                con.unregister("_tombstones")


def _select(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """The columns of a scratch table, JSON as text (Parquet and Spark have no JSON type: staging reads text)."""
    rows = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'raw' "
                       "AND table_name = ? ORDER BY ordinal_position", [table]).fetchall()
    return ", ".join(f"cast({quote_ident(c)} AS VARCHAR) AS {quote_ident(c)}" if t == "JSON" else quote_ident(c)
                     for c, t in rows if c != HYDRATED)


def _copy(con: duckdb.DuckDBPyConnection, sql: str, params: list, out: Path) -> None:
    """COPY a query's rows to one Parquet file, written beside it first and moved into place (a reader never sees
    half a file; a file written again replaces the earlier one whole)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    con.execute(f"COPY ({sql}) TO {sql_literal(str(part))} (FORMAT parquet)", params)
    os.replace(part, out)


def _safe(batch_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", batch_id)


def _write_units(con: duckdb.DuckDBPyConnection, loads: list[FileLoad], s: Settings) -> dict[str, int]:
    """Each loaded unit's raw rows, one Parquet file in its load-day folder; returns rows written per source. A unit
    that loaded no row but added columns (schema drift) leaves an empty file with them, so the next run knows them."""
    written: dict[str, int] = {}
    for fl in loads:
        if fl.status != "loaded" or not (fl.rows_loaded or fl.added_columns):
            continue
        table = f"raw.{quote_ident(fl.source)}"
        days = [d for (d,) in con.execute(f"SELECT DISTINCT cast(_loaded_at AS DATE) FROM {table} "
                                          "WHERE _batch_id = ?", [fl.batch_id]).fetchall()]
        days = days or [d for (d,) in con.execute(f"SELECT DISTINCT cast(loaded_at AS DATE) FROM raw.{LEDGER} "
                                                  f"WHERE batch_id = ? AND {HYDRATED} IS NULL", [fl.batch_id]).fetchall()]
        for day in days:
            out = parquet_dir("raw", fl.source, s) / f"{PARTITION}={day}" / f"{_safe(fl.batch_id)}.parquet"
            _copy(con, f"SELECT {_select(con, fl.source)} FROM {table} WHERE _batch_id = ? AND "
                  "cast(_loaded_at AS DATE) = ? ORDER BY _line", [fl.batch_id, day], out)
        written[fl.source] = written.get(fl.source, 0) + fl.rows_loaded
    return written


def ingest_landing(landing_dir: str | Path | None = None, until: date | None = None, s: Settings | None = None,
                   specs: dict[str, SourceSpec] | None = None, storage_options: dict | None = None,
                   since: date | None = None, webhooks: bool = True) -> LoadSummary:
    """Load every not-yet-loaded landing file up to `until` into the Parquet raw layer of the spark engine (the
    ingest contract of beacon.ingest, unchanged); returns the run's LoadSummary, as load_landing does. No Spark
    session is needed: the files are written by DuckDB, and `declare_raw` makes them Spark tables."""
    s = s or settings()
    specs = specs or load_specs()
    root = spark_raw_root(s)
    root.mkdir(parents=True, exist_ok=True)
    scratch_dir = Path(tempfile.mkdtemp(prefix="ingest-", dir=root))
    scratch = scratch_dir / "scratch.duckdb"
    try:
        with connect(scratch) as con:
            _hydrate(con, specs, s)
        summary = load_landing(landing_dir or s.landing_dir, until, warehouse=scratch, specs=specs,
                               storage_options=storage_options, since=since, webhooks=webhooks)
        run = uuid.uuid4().hex[:12]
        with connect(scratch) as con:
            _write_units(con, summary.files, s)
            if con.execute(f"SELECT count(*) FROM raw.{QUARANTINE}").fetchone()[0]:
                _copy(con, f"SELECT {_select(con, QUARANTINE)} FROM raw.{QUARANTINE}", [],
                      parquet_dir("raw", QUARANTINE, s) / f"run-{run}.parquet")
            if con.execute(f"SELECT count(*) FROM raw.{LEDGER} WHERE {HYDRATED} IS NULL").fetchone()[0]:
                _copy(con, f"SELECT {_select(con, LEDGER)} FROM raw.{LEDGER} WHERE {HYDRATED} IS NULL", [],
                      parquet_dir("raw", LEDGER, s) / f"run-{run}.parquet")
    finally:
        shutil.rmtree(scratch_dir, ignore_errors=True)
    return summary


def spark_raw_root(s: Settings | None = None) -> Path:
    """The folder of the Parquet raw layer (<data>/spark/raw/raw)."""
    return spark_dir(s) / "raw" / "raw"


def _declare(spark: Any, name: str, columns: str, location: Path, partitioned: bool) -> int:
    spark.sql(f"DROP TABLE IF EXISTS {name}")
    location.mkdir(parents=True, exist_ok=True)
    if partitioned:  # the partition column from the folders
        spark.sql(f"CREATE TABLE {name} ({columns}, {PARTITION} date) USING parquet PARTITIONED BY ({PARTITION}) "
                  f"LOCATION '{location}'")
        spark.sql(f"MSCK REPAIR TABLE {name}")
    else:
        spark.sql(f"CREATE TABLE {name} ({columns}) USING parquet LOCATION '{location}'")
    return spark.table(name).count()


def declare_raw(spark: Any, s: Settings | None = None, specs: dict[str, SourceSpec] | None = None) -> dict[str, int]:
    """Declare the Parquet raw layer in Spark's catalog: `raw.<source>` partitioned by load day (the columns of
    DuckDB's raw table for that source, then the columns drift added), `raw._quarantine` and `raw._load_ledger`;
    returns the rows of each."""
    s = s or settings()
    specs = specs or load_specs()
    ddl: dict[str, str] = {}
    with duckdb.connect() as con:  # the raw schema as the ingest makes it, to read its columns and types
        ensure_raw_schema(con, specs)
        for table in [*specs, QUARANTINE, LEDGER]:
            columns = _describe(con, f"raw.{quote_ident(table)}")
            have = {c for c, _ in columns}
            drift = [(c, "VARCHAR") for c, _ in _parquet_columns(con, parquet_dir("raw", table, s)) if c not in have]
            ddl[table] = spark_ddl([*columns, *drift], f"raw.{table}")
    spark.sql("CREATE DATABASE IF NOT EXISTS raw")
    return {f"raw.{t}": _declare(spark, f"raw.{t}", cols, parquet_dir("raw", t, s), t in specs)
            for t, cols in ddl.items()}
