"""DuckDB access: one function to open the warehouse file with the house settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from beacon.config import settings


@contextmanager
def connect(path: Path | str | None = None, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (DuckDB allows one writer: keep connections short and close them).

    Inside one process, open read-write even to read: dbt-duckdb keeps its own read-write handle open
    and DuckDB refuses a second handle to the same file with another configuration."""
    p = Path(path) if path else settings().warehouse_path
    if not read_only:
        p.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(p), read_only=read_only)
    try:
        con.execute("SET enable_progress_bar = false")
        # Bounded memory: big loads spill to disk instead of taking the machine (override per deployment).
        con.execute(f"SET memory_limit = '{settings().duckdb_memory_limit}'")
        con.execute("SET preserve_insertion_order = true")
        yield con
    finally:
        con.close()


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """True when schema.table exists."""
    q = "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
    return con.execute(q, [schema, table]).fetchone()[0] > 0


def table_sizes(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...]) -> dict[str, int]:
    """Row counts of every table in `schemas` (small values for XCom and summaries)."""
    names = con.execute(
        f"SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE schema_name IN "
        f"({', '.join('?' for _ in schemas)}) ORDER BY 1", list(schemas)).fetchall()
    return {n: con.execute(f"SELECT count(*) FROM {n}").fetchall()[0][0] for (n,) in names}


def ensure_scores_table(con: duckdb.DuckDBPyConnection) -> None:
    """ml.scores exists from the first load on (empty until the ML DAG scores), so segments can read it."""
    con.execute("CREATE SCHEMA IF NOT EXISTS ml")
    con.execute("""CREATE TABLE IF NOT EXISTS ml.scores (customer_id VARCHAR, model VARCHAR, version VARCHAR,
                   score DOUBLE, decile INTEGER, scored_at TIMESTAMP, reason_1 VARCHAR, reason_2 VARCHAR,
                   reason_3 VARCHAR)""")
    for c in ("reason_1", "reason_2", "reason_3"):  # tables created before the reason codes existed
        con.execute(f"ALTER TABLE ml.scores ADD COLUMN IF NOT EXISTS {c} VARCHAR")


def clock(con: duckdb.DuckDBPyConnection):
    """The warehouse clock: the latest event time, from the dbt mart `warehouse_as_of` that the segment
    windows also count back from (one clock for segments, ML and exports; never the wall clock)."""
    if not table_exists(con, "marts", "warehouse_as_of"):
        raise ValueError("the warehouse has no marts yet: run ingest and the warehouse DAG first")
    value = con.execute("SELECT as_of_at FROM marts.warehouse_as_of").fetchall()[0][0]
    if value is None:
        raise ValueError("the warehouse has no events yet: run ingest and the warehouse DAG first")
    return value
