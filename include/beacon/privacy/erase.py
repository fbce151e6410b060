"""Erase a person everywhere Beacon keeps them, found by the PII tags (docs/privacy.md "What is erased, what is
kept and why").

Stores, each cleaned in one transaction where it has them:
- the warehouse: every base table of every schema with a tagged column (`beacon.privacy.catalog`): the rows that
  hold one of the person's keys (`beacon.privacy.match`) are deleted, or, in the logs whose counts reports read
  (`PSEUDONYMIZE`), kept with the person's id replaced by a random token and their other tagged values blanked.
  Tables are cleaned in place whatever built them (dbt tables and incremental models, Python-written tables, raw);
  views hold nothing of their own and show the cleaned tables.
- files under the data folder and Airflow's task logs (`beacon.privacy.files`), rewritten atomically without the
  person's rows and lines; Airflow's XComs (`beacon.privacy.airflow_meta`).

Anything that cannot be cleaned is listed in the report with the reason, never skipped silently. The report holds
counts and places, never the person's values (it goes into the request's audit trail).

Destinations are told first (`beacon.activation.erasure.remove_subject`: it reads the last payload each destination
received from `activation.sync_state`, which erasure deletes).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from beacon.config import Settings
from beacon.privacy.airflow_meta import erase_xcoms
from beacon.privacy.catalog import PiiColumn, catalog
from beacon.privacy.files import erase_files, record_rewrites
from beacon.privacy.match import Keys, sql_key_condition, sql_rowids_hit
from beacon.privacy.retention import keep_consent_proof
from beacon.privacy.subject import Subject
from beacon.warehouse import (
    compact_file,
    connect,
    open_with_lock_wait,
    quote_ident,
    relations,
    transaction,
    warehouse_key,
)

# Logs kept for their counts (what was sent per audience and destination, per run): the person's rows stay, with
# their customer id replaced by a token that nothing maps back, and their other tagged values blanked.
PSEUDONYMIZE = {"activation.sync_log": "customer_id"}
# Relations left behind by an older version that hold rows copied from elsewhere: dropped (recreated on demand).
LEFTOVERS = ("main._records_in",)
KEYS, PHONES, PSEUDONYMS = "_erase_keys", "_erase_phones", "_erase_pseudonyms"


@dataclass
class EraseReport:
    """What an erasure did, per store; no personal data (it is kept in the request's audit trail)."""

    request_id: str
    subjects: int = 1
    stores: dict[str, dict[str, int]] = field(default_factory=dict)  # store -> {table or file: rows or lines}
    pseudonymized: dict[str, int] = field(default_factory=dict)  # table -> rows kept with a token
    blanked: dict[str, int] = field(default_factory=dict)  # table -> another person's rows with a shared value nulled
    unclean: list[dict[str, str]] = field(default_factory=list)  # {"store", "place", "reason"}
    seconds: dict[str, float] = field(default_factory=dict)  # per phase; "total" is the erasure, "compact" apart
    table_seconds: dict[str, float] = field(default_factory=dict)  # warehouse table -> seconds to clean it
    compaction: dict = field(default_factory=dict)  # {"done", and "bytes_before"/"bytes_after" or "reason"}

    @property
    def complete(self) -> bool:
        return not self.unclean

    def touched(self, store: str) -> int:
        return sum(self.stores.get(store, {}).values())

    def add(self, store: str, place: str, n: int) -> None:
        if n:
            self.stores.setdefault(store, {})[place] = self.stores.get(store, {}).get(place, 0) + int(n)

    def fail(self, store: str, place: str, reason: str) -> None:
        self.unclean.append({"store": store, "place": place, "reason": reason})

    def to_dict(self) -> dict:
        return {**asdict(self), "complete": self.complete,
                "totals": {s: self.touched(s) for s in sorted(self.stores)}}


def _load_keys(con: duckdb.DuckDBPyConnection, keys: Keys, subjects: list[Subject]) -> None:
    """Temp tables of the keys, the phones' last 10 digits and a random token per customer id."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {KEYS} (v VARCHAR)")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {PHONES} (d VARCHAR)")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {PSEUDONYMS} (k VARCHAR, token VARCHAR)")
    con.execute(f"INSERT INTO {KEYS} SELECT unnest($v)", {"v": sorted(keys.values)})
    con.execute(f"INSERT INTO {PHONES} SELECT unnest($p)", {"p": sorted(keys.phones)})
    cids = sorted({c.lower() for s in subjects for c in s.customer_ids})
    con.execute(f"INSERT INTO {PSEUDONYMS} SELECT unnest($k), unnest($t)",
                {"k": cids, "t": [f"erased_{secrets.token_hex(8)}" for _ in cids]})


def _condition(rel_sql: str, col: PiiColumn) -> str | None:
    """SQL condition on one tagged column: the row holds one of the keys. Names, addresses, birth dates and IPs
    never find rows (they are erased with the row found through an id, an e-mail or a phone)."""
    text = f"CAST({quote_ident(col.column)} AS VARCHAR)"
    if col.kind in ("identifier", "email", "phone"):
        return sql_key_condition(col.kind, text, KEYS, PHONES)
    if col.kind == "free_text":
        return f"rowid IN ({sql_rowids_hit(rel_sql, text, KEYS, PHONES)})"
    return None


def tagged_tables(con: duckdb.DuckDBPyConnection, cat: list[PiiColumn]) -> dict[str, list[PiiColumn]]:
    """Base tables of the warehouse with their tagged columns that exist (views and absent relations left out)."""
    present = relations(con)
    out: dict[str, list[PiiColumn]] = {}
    for col in cat:
        rel = present.get(col.relation)
        if rel and rel[0] == "BASE TABLE" and col.column in rel[1]:
            out.setdefault(col.relation, []).append(col)
    return out


def where_held(rel_sql: str, cols: list[PiiColumn]) -> str | None:
    """The condition true on the rows of a table that hold one of the keys (None: no column can find rows)."""
    conds = [c for c in (_condition(rel_sql, col) for col in cols) if c]
    return " OR ".join(f"({c})" for c in conds) or None


def _pseudonymize(con, rel_sql: str, cols: list[PiiColumn], id_col: str, where: str) -> int:
    """Keep the rows (their counts), with the id replaced by the person's random token and the other tagged values
    nulled."""
    blank = [c.column for c in cols if c.column != id_col]
    sets = ", ".join([f"{quote_ident(id_col)} = coalesce((SELECT token FROM {PSEUDONYMS} p "
                      f"WHERE p.k = lower(CAST(t.{quote_ident(id_col)} AS VARCHAR))), 'erased')",
                      *(f"{quote_ident(c)} = NULL" for c in blank)])
    return int(con.execute(f"UPDATE {rel_sql} AS t SET {sets} WHERE {where}").fetchall()[0][0])


def _blank(con, rel_sql: str, cols: list[PiiColumn]) -> int:
    """In rows that belong to someone else (another id), null the values that are the person's (a shared household
    phone or mailbox): that row's owner keeps it, the erased person's value goes. A column that refuses NULL makes
    the row go instead."""
    contact = [(c, _condition(rel_sql, c)) for c in cols if c.kind in ("email", "phone", "free_text")]
    contact = [(c, cond) for c, cond in contact if cond]
    if not contact:
        return 0
    where = " OR ".join(f"({cond})" for _, cond in contact)
    sets = ", ".join(f"{quote_ident(c.column)} = CASE WHEN {cond} THEN NULL ELSE {quote_ident(c.column)} END"
                     for c, cond in contact)
    try:
        return int(con.execute(f"UPDATE {rel_sql} SET {sets} WHERE {where}").fetchall()[0][0])
    except duckdb.ConstraintException:
        return int(con.execute(f"DELETE FROM {rel_sql} WHERE {where}").fetchall()[0][0])


def _erase_table(con, relation: str, cols: list[PiiColumn], report: EraseReport) -> None:
    """Delete the person's rows of one table (or pseudonymize them, `PSEUDONYMIZE`), then blank their values in rows
    that carry another person's id."""
    schema, _, name = relation.partition(".")
    rel_sql = f"{quote_ident(schema)}.{quote_ident(name)}"
    where = where_held(rel_sql, cols)
    if where is None:
        report.fail("warehouse", relation, "no identifier, e-mail, phone or free-text column to find rows by")
        return
    ids = [c for c in cols if c.kind == "identifier"]
    id_col = PSEUDONYMIZE.get(relation)
    if ids:
        # A row found only through a contact value but carrying another id belongs to someone else.
        id_match = where_held(rel_sql, ids)
        no_other_id = " AND ".join(f"{quote_ident(c.column)} IS NULL" for c in ids)
        where = f"({id_match}) OR (({where}) AND {no_other_id})"
    if id_col and any(c.column == id_col for c in cols):
        n = _pseudonymize(con, rel_sql, cols, id_col, where)
        report.pseudonymized[relation] = report.pseudonymized.get(relation, 0) + n
    else:
        n = con.execute(f"DELETE FROM {rel_sql} WHERE {where}").fetchall()[0][0]
    report.add("warehouse", relation, n)
    if ids:
        blanked = _blank(con, rel_sql, cols)
        if blanked:
            report.blanked[relation] = report.blanked.get(relation, 0) + blanked


def erase_warehouse(con: duckdb.DuckDBPyConnection, subjects: list[Subject], report: EraseReport,
                    cat: list[PiiColumn] | None = None) -> None:
    """Delete (or pseudonymize) the people's rows in every tagged table, in one transaction."""
    keys = Keys.of(subjects)
    if not keys:
        return
    cat = catalog() if cat is None else cat
    _load_keys(con, keys, subjects)
    tables = tagged_tables(con, cat)
    present = relations(con)
    with transaction(con):
        for leftover in LEFTOVERS:
            if leftover in present:
                schema, _, name = leftover.partition(".")
                kind = "VIEW" if present[leftover][0] == "VIEW" else "TABLE"
                con.execute(f"DROP {kind} {quote_ident(schema)}.{quote_ident(name)}")
                report.add("warehouse", f"{leftover} (dropped)", 1)
        for relation, cols in sorted(tables.items()):
            t0 = time.perf_counter()
            _erase_table(con, relation, cols, report)
            report.table_seconds[relation] = round(time.perf_counter() - t0, 3)
    con.execute("CHECKPOINT")


@contextmanager
def _connection(con: duckdb.DuckDBPyConnection | None) -> Iterator[duckdb.DuckDBPyConnection]:
    if con is not None:
        yield con
        return
    with connect() as c:
        yield c


def _timed(report: EraseReport, phase: str, t0: float) -> None:
    report.seconds[phase] = round(time.perf_counter() - t0, 3)


def erase_files_and_ledger(s: Settings, con: duckdb.DuckDBPyConnection, keys: Keys, report: EraseReport) -> None:
    """Every file under the data folder and the Airflow logs, read once for all the people; the rewritten landing
    files recorded in the load ledger."""
    t0 = time.perf_counter()
    rewritten = erase_files(s, keys, report)
    with transaction(con):
        report.add("warehouse", "raw._load_ledger (rewritten landing files)", record_rewrites(con, rewritten))
    _timed(report, "files", t0)


def compact(s: Settings, report: EraseReport, mode: bool | None = None) -> None:
    """Deleted rows' bytes stay in the DuckDB file's free blocks until DuckDB reuses them. `mode` None (the default):
    a plain warehouse is rewritten into a fresh file (`beacon.warehouse.compact_file`), an encrypted one is not
    (its free blocks hold ciphertext only); True or False: always, never. Recorded in `report.compaction`."""
    key = warehouse_key(s)
    if mode is False or (mode is None and key):
        report.compaction = {"done": False, "reason": "encrypted at rest" if key and mode is None else "not asked"}
        return
    p = Path(s.warehouse_path)
    t0, before = time.perf_counter(), p.stat().st_size
    try:  # the file is held read-write from the copy to the swap: wait for another writer as a connection would
        open_with_lock_wait(lambda: compact_file(p, key, s), f"warehouse {p}")
    except Exception as exc:  # noqa: BLE001 - the rows are gone; the file's free blocks are reported, not hidden
        report.fail("warehouse_file", str(p), f"not compacted ({type(exc).__name__}: {str(exc)[:200]}): deleted "
                    "rows' bytes may remain in its free blocks")
        report.compaction = {"done": False, "reason": type(exc).__name__}
        return
    _timed(report, "compact", t0)
    report.compaction = {"done": True, "bytes_before": before, "bytes_after": p.stat().st_size}


def erase_subjects(s: Settings, subjects: Iterable[Subject], request_id: str, files: bool = True,
                   con: duckdb.DuckDBPyConnection | None = None, compaction: bool | None = None) -> EraseReport:
    """Erase several people at once (set-based: one statement per table for all of them, one pass over the files),
    then compact the warehouse file (`compact`; not when the caller passes its own connection `con`: the file is
    open)."""
    people = list(subjects)
    report = EraseReport(request_id=request_id, subjects=len(people))
    keys = Keys.of(people)
    t0 = time.perf_counter()
    with _connection(con) as c:
        keep_consent_proof(s, c, people, report)  # consent records kept as proof, pseudonymized (retention.py)
        erase_warehouse(c, people, report)
        _timed(report, "warehouse", t0)
        if files:
            erase_files_and_ledger(s, c, keys, report)
    if files:
        t2 = time.perf_counter()
        erase_xcoms(s, keys, report)
        _timed(report, "airflow_xcom", t2)
    _timed(report, "total", t0)
    if con is None and keys:
        compact(s, report, compaction)
    elif not report.compaction:
        report.compaction = {"done": False, "reason": "the caller holds the warehouse open"}
    return report


def erase_subject(settings: Settings, subject: Subject, request_id: str) -> EraseReport:
    """Erase one person from the warehouse, the files under the data folder, Airflow's logs and XComs."""
    return erase_subjects(settings, [subject], request_id)
