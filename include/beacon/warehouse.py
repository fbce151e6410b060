"""DuckDB access: open the warehouse with the house settings, and the one SQL toolkit every module uses.

The toolkit (`table_exists`, `quote_ident`, `sql_literal`, `transaction`) lives here and nowhere else;
`tests/config/test_toolkit_single.py` fails when a copy appears in `include/` or `ml/`."""

from __future__ import annotations

import logging
import math
import numbers
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from beacon.config import Settings, settings
from beacon.fsio import fsync_dir

if TYPE_CHECKING:  # duckdb is imported where a connection is used: the pure SQL toolkit (quote_ident,
    import duckdb  # sql_literal) stays importable at DAG-parse time without it

log = logging.getLogger(__name__)


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse's write lock (and we would not, or no longer, wait)."""


def _is_lock_error(exc: BaseException) -> bool:
    # DuckDB: 'IO Error: Could not set lock on file "…": Conflicting lock is held in … (PID n) …'
    import duckdb

    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def lock_wait_default() -> float:
    """Seconds to wait for the warehouse lock: $BEACON_LOCK_WAIT_SECONDS, else 300 (Settings.lock_wait_seconds)."""
    from beacon.config import settings

    return settings().lock_wait_seconds


def open_with_lock_wait(open_: Callable[[], duckdb.DuckDBPyConnection], what: str, wait: float | None = None,
                        first_delay: float = 0.5, max_delay: float = 10.0,
                        sleep: Callable[[float], None] = time.sleep) -> duckdb.DuckDBPyConnection:
    """Call `open_` (a DuckDB connect) until the file's lock is free, with a bounded, logged back-off.

    DuckDB lets one process write a file: a second writer gets a lock error at once. Here it waits,
    doubling the pause from `first_delay` up to `max_delay`, for at most `wait` seconds in all (default
    lock_wait_default(); 0 = refuse at once), then raises WarehouseBusy with one line naming the file and
    the holder. Nothing has been written when it gives up, so there is never a partial load."""
    import duckdb

    budget = lock_wait_default() if wait is None else max(0.0, wait)
    deadline = time.monotonic() + budget
    delay, tries = first_delay, 0
    while True:
        try:
            return open_()
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise
            m = re.search(r"held in (.*?\(PID \d+\))", str(exc))
            holder = f" (held by {m.group(1)})" if m else ""
            left = deadline - time.monotonic()
            if left <= 0:
                raise WarehouseBusy(f"{what} is locked by another writer{holder}; "
                                    + (f"gave up after {budget:.0f} s of waiting" if budget else "not waiting")
                                    ) from None
            tries += 1
            pause = min(delay, left)
            log.warning("%s is locked by another writer%s; waiting %.1f s (try %d, %.0f s left)",
                        what, holder, pause, tries, left)
            sleep(pause)
            delay = min(delay * 2, max_delay)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT; on any error (a failed COMMIT included) ROLLBACK and re-raise, so nothing is
    half-written. The original error is the one raised, even when DuckDB had already ended the transaction."""
    import duckdb

    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error as exc:  # no transaction left to roll back (DuckDB ended it on the failure)
            log.debug("rollback after a failed transaction: %s", exc)
        raise


class WarehouseKeyError(RuntimeError):
    """The warehouse file and the key disagree: encrypted without a key, a wrong key, or a key for a plain file."""


KEY_VARS = "BEACON_WAREHOUSE_KEY (or BEACON_WAREHOUSE_KEY_FILE, or BEACON_WAREHOUSE_KEY_CONN)"


@lru_cache(maxsize=4)
def _key_from_connection(conn_id: str) -> str:
    from airflow.sdk import BaseHook  # only where a connection is really read

    password = BaseHook.get_connection(conn_id).password
    if not password:
        raise WarehouseKeyError(f"Airflow connection {conn_id} (BEACON_WAREHOUSE_KEY_CONN) has no password: "
                                "set the warehouse key as its password")
    return password


def warehouse_key(s: Settings | None = None) -> str | None:
    """The key of the encrypted warehouse: $BEACON_WAREHOUSE_KEY, the file $BEACON_WAREHOUSE_KEY_FILE, or the password
    of the Airflow connection $BEACON_WAREHOUSE_KEY_CONN (read once per process); None: the file is not encrypted."""
    s = s or settings()
    if s.warehouse_key:
        return s.warehouse_key
    return _key_from_connection(s.warehouse_key_conn) if s.warehouse_key_conn else None


_CRYPTO_WARNED: list[bool] = []


def prepare_crypto(con: duckdb.DuckDBPyConnection, mode: str | None = None) -> str:
    """Make a DuckDB database instance able to write encrypted files; return the library used.

    DuckDB 2.0 writes encrypted files with OpenSSL, which its httpfs extension brings (`LOAD httpfs`; installed once
    with `INSTALL httpfs`: the Dockerfile does, never a connection). Without it DuckDB only writes with its built-in
    mbedtls after `SET force_mbedtls_unsafe`, which DuckDB calls not securely encrypted: its random nonces do not come
    from a cryptographic generator. BEACON_WAREHOUSE_CRYPTO picks: auto (OpenSSL when httpfs loads, else mbedtls with
    one warning per process), openssl (an error without httpfs), mbedtls."""
    import duckdb

    mode = mode or settings().warehouse_crypto
    if mode in ("auto", "openssl"):
        try:
            con.execute("LOAD httpfs")
            return "openssl"
        except duckdb.Error as exc:
            if mode == "openssl":
                raise WarehouseKeyError(
                    "BEACON_WAREHOUSE_CRYPTO=openssl, but DuckDB's httpfs extension (OpenSSL) does not load: install it "
                    f"once with `python -c \"import duckdb; duckdb.connect().install_extension('httpfs')\"` ({exc})"
                ) from None
    if mode == "auto" and not _CRYPTO_WARNED:
        _CRYPTO_WARNED.append(True)
        log.warning("the warehouse is encrypted with DuckDB's built-in mbedtls (httpfs/OpenSSL is not installed), "
                    "which DuckDB does not consider secure for writing: install httpfs (docs/privacy.md)")
    con.execute("SET force_mbedtls_unsafe = true")
    return "mbedtls"


def _key_problem(exc: BaseException, p: Path, encrypted: bool) -> WarehouseKeyError | None:
    """A clear error for DuckDB's answer to a key that does not fit the file (None: some other error)."""
    text = str(exc)
    if "without a key" in text:
        return WarehouseKeyError(f"warehouse {p} is encrypted: set {KEY_VARS} to its key")
    if "Wrong encryption key" in text:
        return WarehouseKeyError(f"warehouse {p}: BEACON_WAREHOUSE_KEY is not the key this file was encrypted with")
    if encrypted and "is not encrypted" in text:
        return WarehouseKeyError(f"warehouse {p} is not encrypted, but BEACON_WAREHOUSE_KEY is set: encrypt it once "
                                 "with `beacon warehouse encrypt`, or unset the key")
    return None


# Encrypted warehouses open in this process: (path, read_only) -> [the root connection, open cursors]. DuckDB caches
# one database instance per file for duckdb.connect(path), so nested connections share it; an ATTACHed file cannot be
# attached twice in a process, so connect() hands out cursors of one root connection and closes it with the last.
_ROOTS: dict[tuple[str, bool], list] = {}
_ROOTS_LOCK = threading.Lock()


def attach_encrypted(con: duckdb.DuckDBPyConnection, p: Path, alias: str, key: str, read_only: bool = False,
                     s: Settings | None = None) -> None:
    """ATTACH the encrypted warehouse file `p` as `alias` on `con` (a fresh in-memory database: the crypto library and
    the temp settings are the instance's). Used by connect() and by dbt's connections (the dbt-duckdb plugin in
    beacon.identity.normalize, for the profile's `encrypted` target)."""
    import duckdb

    s = s or settings()
    prepare_crypto(con, s.warehouse_crypto)
    # Spilled intermediate results are personal data too: encrypted, beside the file as DuckDB would put them.
    con.execute(f"SET temp_directory = {sql_literal(str(p) + '.tmp')}")
    con.execute("SET temp_file_encryption = true")
    try:
        con.execute(f"ATTACH IF NOT EXISTS {sql_literal(str(p))} AS {quote_ident(alias)} "
                    f"(ENCRYPTION_KEY {sql_literal(key)}{', READ_ONLY' if read_only else ''})")
    except duckdb.Error as exc:
        problem = _key_problem(exc, p, True)
        if problem is not None:
            raise problem from None
        raise


def _open_encrypted(p: Path, key: str, read_only: bool, s: Settings) -> duckdb.DuckDBPyConnection:
    import duckdb

    with _ROOTS_LOCK:
        entry = _ROOTS.get((str(p), read_only))
        if entry is None:
            root = duckdb.connect(":memory:")
            try:
                attach_encrypted(root, p, p.stem, key, read_only, s)
            except BaseException:
                root.close()
                raise
            entry = _ROOTS[(str(p), read_only)] = [root, 0]
        con = entry[0].cursor()
        entry[1] += 1
    con.execute(f"USE {quote_ident(p.stem)}")
    return con


def _close_encrypted(p: Path, read_only: bool, con: duckdb.DuckDBPyConnection) -> None:
    con.close()
    with _ROOTS_LOCK:
        entry = _ROOTS.get((str(p), read_only))
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del _ROOTS[(str(p), read_only)]
                entry[0].close()  # detaches the file: checkpoint, release the lock


def open_warehouse(p: Path, read_only: bool = False, key: str | None = None,
                   s: Settings | None = None) -> duckdb.DuckDBPyConnection:
    """One DuckDB connection to the file `p`: plain, or the encrypted file ATTACHed under its stem (the catalog name a
    plain open gives, so the views dbt wrote resolve) and made the default with USE. Close it with close_warehouse."""
    import duckdb

    s = s or settings()
    try:
        if key:
            return _open_encrypted(p, key, read_only, s)
        return duckdb.connect(str(p), read_only=read_only)
    except duckdb.Error as exc:
        problem = _key_problem(exc, p, bool(key))
        if problem is not None:
            raise problem from None
        raise


def close_warehouse(p: Path, con: duckdb.DuckDBPyConnection, read_only: bool = False, key: str | None = None) -> None:
    if key:
        _close_encrypted(p, read_only, con)
    else:
        con.close()


@contextmanager
def connect(path: Path | str | None = None, read_only: bool = False,
            lock_wait: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (DuckDB allows one writer: keep connections short and close them).

    Inside one process, open read-write even to read: dbt-duckdb keeps its own read-write handle open
    and DuckDB refuses a second handle to the same file with another configuration. When another process
    holds the file, wait for it (see open_with_lock_wait; `lock_wait` seconds, 0 = refuse at once).
    With a warehouse key (warehouse_key) the file is encrypted at rest (docs/privacy.md)."""
    s = settings()
    p = Path(path) if path else s.warehouse_path
    key = warehouse_key(s)
    if not read_only:
        p.parent.mkdir(parents=True, exist_ok=True)
    con = open_with_lock_wait(lambda: open_warehouse(p, read_only, key, s), f"warehouse {p}", lock_wait)
    try:
        con.execute("SET enable_progress_bar = false")
        # Bounded memory: big loads spill to disk instead of taking the machine (override per deployment).
        con.execute(f"SET memory_limit = '{s.duckdb_memory_limit}'")
        con.execute("SET preserve_insertion_order = true")
        yield con
    finally:
        close_warehouse(p, con, read_only, key)


def release_memory(con: duckdb.DuckDBPyConnection, limit: str | None = None) -> None:
    """Give back the memory DuckDB keeps after its queries: its buffer pool and allocator hold on to what a big
    build used (up to memory_limit) after the build is done, and a stage that then builds pandas frames in the same
    process adds those on top. Lowering the limit evicts and flushes that memory (measured: 2.25 GB resident to
    0.28 GB after a group-by); the limit is then set to `limit` (default: the configured one, as `connect` sets
    it). Best effort: pinned buffers that cannot go stay."""
    import duckdb

    try:
        con.execute("SET memory_limit = '32MB'")
    except duckdb.Error:  # more is pinned than that: what could be evicted was
        pass
    finally:
        con.execute(f"SET memory_limit = {sql_literal(limit or settings().duckdb_memory_limit)}")


def set_memory_limit(con: duckdb.DuckDBPyConnection, limit: str) -> None:
    """DuckDB's memory limit for the database of `con` (the whole instance: every cursor of it). The ingest run and
    dbt's connections set a stage's own limit (Settings.ingest_memory_limit, dbt_memory_limit; docs/scale.md)."""
    con.execute(f"SET memory_limit = {sql_literal(limit)}")


def _copy_counted(con: duckdb.DuckDBPyConnection, src: str, dst: str, p: Path, what: str) -> dict[str, int]:
    """COPY FROM DATABASE `src` TO `dst` (schemas, tables, views, sequences, comments) and compare every table's row
    count; a RuntimeError naming the table when one differs. The row counts."""
    con.execute(f"COPY FROM DATABASE {quote_ident(src)} TO {quote_ident(dst)}")
    counts = {}
    for schema, table in con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                                     "WHERE database_name = ? ORDER BY 1, 2", [src]).fetchall():
        name = f"{quote_ident(schema)}.{quote_ident(table)}"
        before = con.execute(f"SELECT count(*) FROM {quote_ident(src)}.{name}").fetchall()[0][0]
        after = con.execute(f"SELECT count(*) FROM {quote_ident(dst)}.{name}").fetchall()[0][0]
        if before != after:
            raise RuntimeError(f"{what} {p}: {schema}.{table} has {after} rows in the copy, {before} in the "
                               "file; the file is left as it was")
        counts[f"{schema}.{table}"] = before
    return counts


def encrypt_file(p: Path, key: str, s: Settings | None = None) -> dict[str, int]:
    """Encrypt the plain warehouse file `p` with `key`, in place: COPY FROM DATABASE into a new encrypted file beside
    it, compare every table's row count, then replace `p` (and drop its WAL). No plain copy is kept. Returns the row
    counts. Refuses a file that is already encrypted, or that another process holds."""
    import duckdb

    s = s or settings()
    tmp = p.with_name(p.name + ".encrypting")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(":memory:")
    try:
        try:
            con.execute(f"ATTACH {sql_literal(str(p))} AS beacon_plain (READ_ONLY)")
        except duckdb.Error as exc:
            problem = _key_problem(exc, p, False)
            raise (WarehouseKeyError(f"warehouse {p} is already encrypted") if problem else exc) from None
        attach_encrypted(con, tmp, p.stem, key, s=s)
        counts = _copy_counted(con, "beacon_plain", p.stem, p, "encrypting")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.close()
    Path(str(p) + ".wal").unlink(missing_ok=True)
    tmp.replace(p)
    return counts


def compact_file(p: Path, key: str | None = None, s: Settings | None = None) -> dict[str, int]:
    """Rewrite the warehouse file `p` into a fresh file and put it in its place: DuckDB keeps the bytes of deleted
    rows in the file's free blocks until it reuses them; the fresh file holds only live rows. Plain or encrypted
    (`key`) alike. The file is held read-write (checkpointed, other processes wait) from the copy to the swap;
    every table's row count is compared before the swap. Returns the row counts."""
    import duckdb

    s = s or settings()
    tmp = p.with_name(p.name + ".compacting")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(":memory:")
    old = "beacon_before_compaction"
    try:
        if key:
            attach_encrypted(con, p, old, key, s=s)
            attach_encrypted(con, tmp, p.stem, key, s=s)
        else:
            con.execute(f"ATTACH {sql_literal(str(p))} AS {old}")
            con.execute(f"ATTACH {sql_literal(str(tmp))} AS {quote_ident(p.stem)}")
        con.execute(f"CHECKPOINT {old}")  # the WAL folded in: nothing of the file lives outside it
        counts = _copy_counted(con, old, p.stem, p, "compacting")
        con.execute(f"DETACH {quote_ident(p.stem)}")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        tmp.replace(p)  # while the old file is still held: no writer can slip in between the copy and the swap
        fsync_dir(p.parent)
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)
        raise
    con.close()
    return counts


def table_type(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> str | None:
    """'BASE TABLE', 'VIEW' (or another catalog type) for schema.table; None when it does not exist."""
    q = "SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
    # fetchall, not fetchone: DuckDB 2 keeps a half-read result open, and the connection then refuses
    # register()/unregister() ("unfinished result from execute()").
    rows = con.execute(q, [schema, table]).fetchall()
    return rows[0][0] if rows else None


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """True when schema.table exists as a table or a view."""
    return table_type(con, schema, table) is not None


def relations(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, set[str]]]:
    """"schema.table" -> (table type, its column names), for every relation of the warehouse (one catalog read)."""
    types = {(s, t): ty for s, t, ty in con.execute(
        "SELECT table_schema, table_name, table_type FROM information_schema.tables").fetchall()}
    out: dict[str, tuple[str, set[str]]] = {}
    for s, t, c in con.execute("SELECT table_schema, table_name, column_name FROM information_schema.columns").fetchall():
        out.setdefault(f"{s}.{t}", (types.get((s, t), "BASE TABLE"), set()))[1].add(c)
    return out


def relation_kind(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> tuple[str, str | None] | None:
    """(kind, comment) of schema.name: kind 'BASE TABLE' or 'VIEW', the COMMENT ON it; None when it does not exist."""
    q = "SELECT table_type, TABLE_COMMENT FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
    rows = con.execute(q, [schema, name]).fetchall()
    return (rows[0][0], rows[0][1]) if rows else None


def quote_ident(name: str) -> str:
    """`name` as a quoted SQL identifier (a column or table name that may hold spaces, quotes or keywords)."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"not an identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: object) -> str:
    """`value` as a SQL literal, for the few places a value must be spelled into SQL text (prefer parameters).

    None, bool, integers, finite floats (as DOUBLE) and Decimal, str (quotes doubled), datetime (an aware one is
    converted to UTC, as the warehouse stores UTC without a zone), date, time and timedelta. Anything
    else, or NaN/infinity, raises ValueError naming the value: never a silent str()."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, Decimal | numbers.Real):
        if isinstance(value, Decimal) and not value.is_finite() or not math.isfinite(float(value)):
            raise ValueError(f"no SQL literal for a non-finite number: {value!r}")
        return str(value) if isinstance(value, Decimal) else f"{float(value)!r}::DOUBLE"
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"no SQL literal for a string with a NUL character: {value!r}")
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, time_of_day):
        if value.tzinfo is not None:
            raise ValueError(f"no SQL literal for a time of day with a zone: {value!r}")
        return f"TIME '{value.isoformat()}'"
    if isinstance(value, timedelta):
        us = value // timedelta(microseconds=1)
        return f"INTERVAL '{us // 1_000_000} seconds'" if us % 1_000_000 == 0 else f"INTERVAL '{us} microseconds'"
    raise ValueError(f"no SQL literal for {type(value).__name__} {value!r}")


def table_sizes(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...]) -> dict[str, int]:
    """Row counts of every table in `schemas` (small values for XCom and summaries)."""
    names = con.execute(
        f"SELECT schema_name || '.' || table_name FROM duckdb_tables() WHERE schema_name IN "
        f"({', '.join('?' for _ in schemas)}) ORDER BY 1", list(schemas)).fetchall()
    return {n: con.execute(f"SELECT count(*) FROM {n}").fetchall()[0][0] for (n,) in names}


def ensure_scores_table(con: duckdb.DuckDBPyConnection) -> None:
    """ml.scores exists from the first load on (empty until the ML DAG scores), so segments can read it. On the spark
    engine, once Spark has scored, it is a view over Spark's published scores (beacon.spark.chain), kept as it is."""
    if table_type(con, "ml", "scores") == "VIEW":
        return
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
