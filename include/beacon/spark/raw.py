"""The raw layer on Spark: the tables the ingest task loaded, published as Parquet and declared as Spark tables.

The ingest contract (sources.yml: types, keys, dedupe, quarantine, the ledger) stays one implementation
(beacon.ingest): it loads into the DuckDB raw schema as always, and this step writes each dbt source table as Parquet
under <data>/spark/raw/<schema>/<table>, the raw tables partitioned by load day (`_load_date`, the UTC day of
`_loaded_at`), then declares them in Spark's catalog (`<schema>.<table> USING parquet`). Each publish writes every
day again (an erasure or a retention run changes old days; the copy must not keep what they removed): the cost of a
copy, which a raw layer that Spark itself loads (docs/scale.md, "What remains") will not have.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import duckdb

from beacon.config import Settings, settings
from beacon.spark.session import spark_dir
from beacon.warehouse import connect, quote_ident, relations, sql_literal

PARTITION = "_load_date"
# The dbt sources besides raw (staging reads them; absent ones are skipped, as select_or_empty does on DuckDB), and
# the privacy tombstones staging's not_erased filter matches (keyed hashes only; absent until a first request).
OTHER_SOURCES = (("ml", "scores"), ("activation", "sync_log"), ("journeys", "transitions"), ("journeys", "finished"),
                 ("privacy", "tombstones"))


def parquet_dir(schema: str, table: str, s: Settings | None = None) -> Path:
    return spark_dir(s) / "raw" / schema / table


def _tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """The raw tables (not the ledger, quarantine or cursors: `_…`) and the other dbt sources that exist."""
    have = relations(con)
    raw = sorted(tuple(name.split(".", 1)) for name in have
                 if name.startswith("raw.") and not name.split(".", 1)[1].startswith("_"))
    return [*raw, *(t for t in OTHER_SOURCES if f"{t[0]}.{t[1]}" in have)]


# DuckDB's types of the source tables -> Spark's (a `timestamp` is one without a zone on both: TIMESTAMP_NTZ).
SPARK_TYPES = {"VARCHAR": "string", "JSON": "string", "BIGINT": "bigint", "INTEGER": "int", "DOUBLE": "double",
               "FLOAT": "float", "BOOLEAN": "boolean", "DATE": "date", "TIMESTAMP": "timestamp_ntz"}


def _duckdb_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[tuple[str, str]]:
    return con.execute("""SELECT column_name, data_type FROM information_schema.columns
                          WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position""",
                       [schema, table]).fetchall()


def spark_ddl(columns: list[tuple[str, str]], where: str) -> str:
    """The Spark column list of a table with these DuckDB columns; a type Spark cannot take is refused, named."""
    unknown = [f"{c} {t}" for c, t in columns if t not in SPARK_TYPES]
    if unknown:
        raise ValueError(f"{where}: no Spark type for column(s) {', '.join(unknown)}")
    return ", ".join(f"`{c}` {SPARK_TYPES[t]}" for c, t in columns)


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> str:
    """The table's columns, JSON as text (Parquet and Spark have no JSON type: staging reads it as a string)."""
    rows = _duckdb_columns(con, schema, table)
    return ", ".join(f"cast({quote_ident(c)} as varchar) as {quote_ident(c)}" if t == "JSON" else quote_ident(c)
                     for c, t in rows)


def _write_days(con: duckdb.DuckDBPyConnection, schema: str, table: str, out: Path) -> list[str]:
    """Write the table again, one Parquet file per load-day folder; return the days written. Every day is written
    each time: a privacy erasure or a retention run changes old days in DuckDB's raw schema, and the copy must not
    keep what they removed."""
    rel = f"{quote_ident(schema)}.{quote_ident(table)}"
    days = [str(d) for (d,) in con.execute(
        f"SELECT DISTINCT cast(_loaded_at as date) FROM {rel} ORDER BY 1").fetchall()]
    cols = _columns(con, schema, table)
    shutil.rmtree(out, ignore_errors=True)
    for day in days:
        folder = out / f"{PARTITION}={day}"
        folder.mkdir(parents=True)
        con.execute(f"COPY (SELECT {cols} FROM {rel} WHERE cast(_loaded_at as date) = {sql_literal(day)}::date "
                    f"ORDER BY _loaded_at, _line) TO {sql_literal(str(folder / 'part-0.parquet'))} (FORMAT parquet)")
    return days


def _write_whole(con: duckdb.DuckDBPyConnection, schema: str, table: str, out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    con.execute(f"COPY (SELECT {_columns(con, schema, table)} FROM {quote_ident(schema)}.{quote_ident(table)}) "
                f"TO {sql_literal(str(out / 'part-0.parquet'))} (FORMAT parquet)")


def publish_raw(spark: Any, s: Settings | None = None,
                only: tuple[tuple[str, str], ...] | None = None) -> dict[str, int]:
    """Publish the dbt source tables of the DuckDB warehouse to Spark (with `only`, those of them that exist);
    returns rows per Spark table."""
    s = s or settings()
    with connect(s.warehouse_path, read_only=True) as con:
        tables = [t for t in _tables(con) if only is None or t in only]
        ddl = {t: spark_ddl(_duckdb_columns(con, *t), f"{t[0]}.{t[1]}") for t in tables}
        for schema, table in tables:
            out = parquet_dir(schema, table, s)
            if schema == "raw":
                _write_days(con, schema, table, out)
            else:
                _write_whole(con, schema, table, out)
    counts = {}
    for schema, table in tables:
        name = f"{schema}.{table}"
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {schema}")
        spark.sql(f"DROP TABLE IF EXISTS {name}")
        location = parquet_dir(schema, table, s)
        location.mkdir(parents=True, exist_ok=True)
        if schema == "raw":  # the partition column from the folders
            spark.sql(f"CREATE TABLE {name} ({ddl[(schema, table)]}, {PARTITION} date) USING parquet "
                      f"PARTITIONED BY ({PARTITION}) LOCATION '{location}'")
            spark.sql(f"MSCK REPAIR TABLE {name}")
        else:
            spark.sql(f"CREATE TABLE {name} ({ddl[(schema, table)]}) USING parquet LOCATION '{location}'")
        counts[name] = spark.table(name).count()
    return counts
