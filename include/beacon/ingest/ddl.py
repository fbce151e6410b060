"""The raw schema: one table per source, the quarantine, the load ledger and the cursor store."""

from __future__ import annotations

import duckdb

from beacon.ingest.spec import META_COLUMNS, SQL_TYPES, SourceSpec, column_name
from beacon.warehouse import quote_ident


def ensure_raw_schema(con: duckdb.DuckDBPyConnection, specs: dict[str, SourceSpec]) -> None:
    """Create the raw tables, the quarantine, the load ledger and the cursor store if missing."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for s in specs.values():
        table = f"raw.{quote_ident(s.name)}"
        cols = ", ".join(f"{quote_ident(c.name)} {SQL_TYPES[c.type]}" for c in s.columns)
        meta = ", ".join(f"{k} {v}" for k, v in META_COLUMNS.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols}, {meta})")
        for k, v in META_COLUMNS.items():  # tables made by an older version gain the new metadata
            con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {k} {v}")
        for c in s.columns:  # ... and the columns declared since
            con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {quote_ident(c.name)} {SQL_TYPES[c.type]}")
    con.execute("""CREATE TABLE IF NOT EXISTS raw._quarantine (
        source VARCHAR, file VARCHAR, line BIGINT, reason VARCHAR, message VARCHAR, payload VARCHAR,
        batch_id VARCHAR, quarantined_at TIMESTAMP)""")
    con.execute("""CREATE TABLE IF NOT EXISTS raw._load_ledger (
        batch_id VARCHAR, source VARCHAR, file VARCHAR, file_sha256 VARCHAR, file_bytes BIGINT,
        rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, status VARCHAR, error VARCHAR,
        loaded_at TIMESTAMP)""")
    con.execute("ALTER TABLE raw._load_ledger ADD COLUMN IF NOT EXISTS reason VARCHAR")  # older warehouses
    con.execute("CREATE TABLE IF NOT EXISTS raw._cursors (source VARCHAR PRIMARY KEY, cursor VARCHAR, updated_at TIMESTAMP)")


def add_drift_columns(con: duckdb.DuckDBPyConnection, spec: SourceSpec, extras: list[str]) -> list[str]:
    """Schema drift: add new fields as VARCHAR columns of the raw table; return the ones really added."""
    have = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                      "WHERE table_schema = 'raw' AND table_name = ?", [spec.name]).fetchall()}
    added = []
    for e in extras:
        c = column_name(e)
        if c not in have:
            con.execute(f"ALTER TABLE raw.{quote_ident(spec.name)} ADD COLUMN {quote_ident(c)} VARCHAR")
            have.add(c)
            added.append(c)
    return added
