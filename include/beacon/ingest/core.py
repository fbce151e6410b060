"""The load engine every connector shares: raw tables, ledger, quarantine, one transaction per unit.

A unit is one file or one API page. Its rows arrive as Arrow batches in one of three shapes (text
columns, JSON lines, typed Arrow); each batch is classified in one DuckDB query (malformed, missing
key, wrong type, future timestamp); the good rows, the quarantined rows and the ledger row commit
together, so a unit is loaded once (by content hash) and rows read = rows loaded + rows quarantined.
"""

from __future__ import annotations

import csv
import json
import queue
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import yaml

SPEC_FILE = Path(__file__).with_name("sources.yml")
_SQL_TYPES = {"varchar": "VARCHAR", "integer": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE",
              "date": "DATE", "timestamp": "TIMESTAMP", "epoch": "TIMESTAMP"}
# Load metadata on every raw row: where it came from (file or page, line), which load, when, which content.
META_COLUMNS = {"_source_file": "VARCHAR", "_line": "BIGINT", "_batch_id": "VARCHAR", "_loaded_at": "TIMESTAMP",
                "_file_sha256": "VARCHAR", "_source": "VARCHAR"}
BATCH_ROWS = 500_000
# Errors that fail one unit (file or page) alone; anything else is a bug and propagates.
UNIT_ERRORS = (ValueError, csv.Error, duckdb.Error, OSError, EOFError, UnicodeDecodeError, zlib.error, pa.ArrowException)


class IngestError(ValueError):
    """A file or page that cannot be loaded at all (named, with the reason)."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    path: str | None = None


@dataclass(frozen=True)
class SourceSpec:
    """How one landing file (or API resource) maps onto one raw table."""

    name: str
    file: str
    format: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    event_time: str | None = None
    ignore: tuple[str, ...] = ()  # fields known and deliberately not loaded (not reported as drift)


@dataclass
class FileLoad:
    """The outcome of loading one unit (a file, or an API page)."""

    source: str
    file: str
    status: str  # loaded | skipped | failed
    batch_id: str = ""
    sha256: str = ""
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    extra_columns: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0


@dataclass
class LoadSummary:
    """All unit loads of one ingest run."""

    files: list[FileLoad]

    def totals(self) -> dict[str, int]:
        t = {"files_loaded": 0, "files_skipped": 0, "files_failed": 0, "rows_read": 0, "rows_loaded": 0,
             "rows_quarantined": 0}
        for f in self.files:
            t[f"files_{f.status}"] += 1
            t["rows_read"] += f.rows_read
            t["rows_loaded"] += f.rows_loaded
            t["rows_quarantined"] += f.rows_quarantined
        return t

    def reasons(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            for k, v in f.reasons.items():
                out[k] = out.get(k, 0) + v
        return dict(sorted(out.items()))

    def schema_changes(self) -> dict[str, list[str]]:
        """New columns added to raw tables in this run, per source."""
        out: dict[str, list[str]] = {}
        for f in self.files:
            for c in f.added_columns:
                out.setdefault(f.source, []).append(c)
        return out

    def to_dict(self) -> dict:
        return {"totals": self.totals(), "reasons": self.reasons(), "schema_changes": self.schema_changes(),
                "files": [asdict(f) for f in self.files]}


def load_specs(path: Path = SPEC_FILE) -> dict[str, SourceSpec]:
    """Read and validate the sources YAML."""
    doc = yaml.safe_load(Path(path).read_text())
    specs: dict[str, SourceSpec] = {}
    for name, s in doc["sources"].items():
        cols = []
        for cname, c in s["columns"].items():
            c = {"type": c} if isinstance(c, str) else c
            if c["type"] not in _SQL_TYPES:
                raise IngestError(f"{path}: source {name}, column {cname}: unknown type {c['type']!r}")
            cols.append(Column(cname, c["type"], c.get("path")))
        if s["format"] not in ("csv", "jsonl", "parquet"):
            raise IngestError(f"{path}: source {name}: unknown format {s['format']!r}")
        names = {c.name for c in cols}
        for k in [*s["key"], *([s["event_time"]] if s.get("event_time") else [])]:
            if k not in names:
                raise IngestError(f"{path}: source {name}: key/event_time column {k!r} is not declared")
        specs[name] = SourceSpec(name, s["file"], s["format"], tuple(s["key"]), tuple(cols), s.get("event_time"),
                                 tuple(s.get("ignore", [])))
    return specs


def ensure_raw_schema(con: duckdb.DuckDBPyConnection, specs: dict[str, SourceSpec]) -> None:
    """Create the raw tables, the quarantine, the load ledger and the cursor store if missing."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for s in specs.values():
        cols = ", ".join(f'"{c.name}" {_SQL_TYPES[c.type]}' for c in s.columns)
        meta = ", ".join(f"{k} {v}" for k, v in META_COLUMNS.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS raw.{s.name} ({cols}, {meta})")
        for k, v in META_COLUMNS.items():  # tables made by an older version gain the new metadata
            con.execute(f"ALTER TABLE raw.{s.name} ADD COLUMN IF NOT EXISTS {k} {v}")
    con.execute("""CREATE TABLE IF NOT EXISTS raw._quarantine (
        source VARCHAR, file VARCHAR, line BIGINT, reason VARCHAR, message VARCHAR, payload VARCHAR,
        batch_id VARCHAR, quarantined_at TIMESTAMP)""")
    con.execute("""CREATE TABLE IF NOT EXISTS raw._load_ledger (
        batch_id VARCHAR, source VARCHAR, file VARCHAR, file_sha256 VARCHAR, file_bytes BIGINT,
        rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, status VARCHAR, error VARCHAR,
        loaded_at TIMESTAMP)""")
    con.execute("CREATE TABLE IF NOT EXISTS raw._cursors (source VARCHAR PRIMARY KEY, cursor VARCHAR, updated_at TIMESTAMP)")


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """First value of a query (results are fetched fully: DuckDB 2 refuses new work on a pending result)."""
    return con.execute(sql, params or []).fetchall()[0][0]


def _typed(col: str, type_: str) -> str:
    v = f"nullif(trim(\"{col}\"), '')"
    if type_ == "epoch":
        return f"make_timestamp(try_cast({v} AS BIGINT) * 1000000)"
    return f"try_cast({v} AS {_SQL_TYPES[type_]})"


def column_name(raw: str) -> str:
    """A safe raw-table column name for a new (drifted) field: lower snake case."""
    return re.sub(r"[^a-z0-9_]+", "_", raw.strip().lower()).strip("_")[:60] or "unnamed"


@dataclass
class Batches:
    """A unit's rows: their shape ('text' | 'json' | 'arrow'), the extra fields found, and the batches."""

    shape: str
    extra_columns: list[str]
    batches: Iterator[pa.Table]


_SIMPLE_PATH = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _json_columns(spec: SourceSpec) -> tuple[str, str]:
    """JSON parsing for the declared paths: one `json_transform` into a struct (fast) when every path is a
    plain dotted path, else one `json_extract_string` with the list of paths. Returns (expression, columns)."""
    if all(c.path and _SIMPLE_PATH.match(c.path) for c in spec.columns):
        tree: dict = {}
        for c in spec.columns:
            node = tree
            *parents, leaf = c.path[2:].split(".")
            for k in parents:
                node = node.setdefault(k, {})
            node[leaf] = "VARCHAR"
        refs = ", ".join("v" + "".join(f'."{k}"' for k in c.path[2:].split(".")) + f' AS "{c.name}"'
                         for c in spec.columns)
        return f"json_transform(line, '{json.dumps(tree)}')", refs
    paths = ", ".join(f"'{c.path}'" for c in spec.columns)
    refs = ", ".join(f'v[{i + 1}] AS "{c.name}"' for i, c in enumerate(spec.columns))
    return f"json_extract_string(line, [{paths}])", refs


def _stage_select(spec: SourceSpec, shape: str, present: set[str], extras: list[str]) -> str:
    """SQL turning one registered batch `_batch` into text columns plus _line, _malformed, _payload, extras."""
    if shape == "text":
        return "SELECT * FROM _batch"
    if shape == "json":
        parse, cols = _json_columns(spec)
        ex = "".join(f", CASE WHEN ok THEN json_extract_string(line, '$.\"{e}\"') END AS \"{column_name(e)}\""
                     for e in extras)
        # One JSON parse per line: try() turns invalid JSON into NULL (cheaper than json_valid first);
        # the raw line is kept only for quarantined rows.
        return f"""SELECT _line, CASE WHEN NOT ok THEN 'line is not a valid JSON object' END AS _malformed, line AS _payload,
                          {cols}{ex}
                   FROM (SELECT _line, line, v, v IS NOT NULL AND starts_with(ltrim(line), '{{') AS ok
                         FROM (SELECT _line, line, try({parse}) AS v FROM _batch))"""
    cols = ", ".join((f'CAST("{c.name}" AS VARCHAR)' if c.name in present else "NULL::VARCHAR") + f' AS "{c.name}"'
                     for c in spec.columns)
    ex = "".join(f', CAST("{e}" AS VARCHAR) AS "{column_name(e)}"' for e in extras)
    return f"SELECT _line, NULL::VARCHAR AS _malformed, NULL::VARCHAR AS _payload, {cols}{ex} FROM _batch"


def _t(col: str) -> str:
    return f'"__t_{col}"'


def _classify_sql(spec: SourceSpec, stage: str, max_event_time: datetime) -> str:
    """SQL typing every staged row once (columns __t_<name>) and giving it a reason (NULL = good).

    The raw payload is carried only for quarantined rows (EXCLUDE keeps good rows' text out of memory)."""
    missing = " OR ".join(f"{_t(k)} IS NULL" for k in spec.key)
    typed = [c for c in spec.columns if c.type != "varchar"]
    bad_type = " OR ".join(f"({_t(c.name)} IS NULL AND nullif(trim(\"{c.name}\"), '') IS NOT NULL)"
                           for c in typed) or "false"
    et = spec.event_time
    future = f"{_t(et)} > TIMESTAMP '{max_event_time:%Y-%m-%d %H:%M:%S}'" if et else "false"
    payload = "to_json({" + ", ".join(f"'{c.name}': \"{c.name}\"" for c in spec.columns) + "})::VARCHAR"
    casts = ", ".join(f"{_typed(c.name, c.type)} AS {_t(c.name)}" for c in spec.columns)
    # Text of varchar columns equals their typed value: only the typed copy is kept (less to materialize).
    drop = ", ".join(["_payload", *(f'"{c.name}"' for c in spec.columns if c.type == "varchar")])
    return f"""
      SELECT * EXCLUDE ({drop}),
        CASE WHEN _reason IS NOT NULL THEN coalesce(_payload, {payload}) END AS _bad_payload
      FROM (
        SELECT *,
          CASE WHEN _malformed IS NOT NULL THEN 'malformed'
               WHEN {missing} THEN 'missing_key'
               WHEN {bad_type} THEN 'wrong_type'
               WHEN {future} THEN 'future_timestamp' END AS _reason
        FROM (SELECT *, {casts} FROM ({stage}))
      )"""


def _message_sql(spec: SourceSpec, max_event_time: datetime) -> str:
    """The quarantine message of a classified row, naming the field and what was wrong with it."""
    missing_msg = "concat_ws(', ', " + ", ".join(
        f"CASE WHEN {_t(k)} IS NULL THEN '{k} is empty' END" for k in spec.key) + ")"
    typed = [c for c in spec.columns if c.type != "varchar"]
    type_msg = "concat_ws(', ', " + ", ".join(
        f"CASE WHEN {_t(c.name)} IS NULL AND nullif(trim(\"{c.name}\"), '') IS NOT NULL "
        f"THEN '{c.name}: ' || \"{c.name}\" || ' is not a {c.type}' END" for c in typed) + ")" if typed else "''"
    et = spec.event_time
    future_msg = f"'{et}: ' || {_t(et)} || ' is after {max_event_time:%Y-%m-%d %H:%M}'" if et else "''"
    return (f"CASE _reason WHEN 'malformed' THEN _malformed WHEN 'missing_key' THEN {missing_msg} "
            f"WHEN 'wrong_type' THEN {type_msg} WHEN 'future_timestamp' THEN {future_msg} END")


def _prefetch(batches: Iterator[pa.Table], depth: int = 2) -> Iterator[pa.Table]:
    """Read the next batches in a thread while DuckDB classifies the current one (Arrow releases the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done, stop = object(), threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for b in batches:
                if not put(b):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it in the loading thread
            put(exc)

    threading.Thread(target=work, daemon=True).start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()  # the consumer stopped (done or failed): let the reader thread end


def already_loaded(con: duckdb.DuckDBPyConnection, source: str, sha: str) -> bool:
    """True when the same content was loaded into this source before (the ledger makes loads idempotent)."""
    return bool(_scalar(con, "SELECT count(*) FROM raw._load_ledger WHERE source = ? AND file_sha256 = ? "
                             "AND status = 'loaded'", [source, sha]))


def _add_columns(con: duckdb.DuckDBPyConnection, spec: SourceSpec, extras: list[str]) -> list[str]:
    """Schema drift: add new fields as VARCHAR columns of the raw table; return the ones really added."""
    have = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                      "WHERE table_schema = 'raw' AND table_name = ?", [spec.name]).fetchall()}
    added = []
    for e in extras:
        c = column_name(e)
        if c not in have:
            con.execute(f'ALTER TABLE raw.{spec.name} ADD COLUMN "{c}" VARCHAR')
            have.add(c)
            added.append(c)
    return added


def load_unit(con: duckdb.DuckDBPyConnection, spec: SourceSpec, *, location: str, sha: str, size: int,
              open_batches: Callable[[], Batches], max_event_time: datetime, origin: str = "landing",
              batch_label: str = "") -> FileLoad:
    """Load one unit idempotently: skip known content, else stream its batches in one transaction.

    `open_batches` may raise IngestError (e.g. a missing required column): the unit fails alone, the
    ledger records why, and nothing of it is kept."""
    t0 = time.perf_counter()
    fl = FileLoad(source=spec.name, file=location, status="loaded", sha256=sha,
                  batch_id=f"{spec.name}:{batch_label}:{sha[:12]}")
    if already_loaded(con, spec.name, sha):
        fl.status = "skipped"
        return fl
    now = datetime.now().replace(microsecond=0)  # audit metadata only, never used in logic
    names = [c.name for c in spec.columns]
    typed_cols = ", ".join(_t(n) for n in names)
    message = _message_sql(spec, max_event_time)
    reasons: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        b = open_batches()
        fl.extra_columns = list(b.extra_columns)
        known = set(names) | set(META_COLUMNS)
        extras = [e for e in b.extra_columns if column_name(e) not in known]
        fl.added_columns = _add_columns(con, spec, extras)
        ins_cols = ", ".join(f'"{n}"' for n in [*names, *META_COLUMNS, *(column_name(e) for e in extras)])
        ex_sel = "".join(f', "{column_name(e)}"' for e in extras)
        for batch in _prefetch(b.batches):
            con.register("_batch", batch)
            stage = _stage_select(spec, b.shape, set(batch.column_names), extras)
            con.execute("CREATE OR REPLACE TEMP TABLE _classified AS " + _classify_sql(spec, stage, max_event_time))
            con.unregister("_batch")
            # Insertion order is kept without a sort (DuckDB preserves it); _line records the position anyway.
            con.execute(f"""INSERT INTO raw.{spec.name} ({ins_cols})
                SELECT {typed_cols}, ?, _line, ?, ?, ?, ?{ex_sel} FROM _classified WHERE _reason IS NULL""",
                        [location, fl.batch_id, now, sha, origin])
            con.execute(f"""INSERT INTO raw._quarantine
                SELECT ?, ?, _line, _reason, {message}, _bad_payload, ?, ? FROM _classified
                WHERE _reason IS NOT NULL ORDER BY _line""", [spec.name, location, fl.batch_id, now])
            fl.rows_read += batch.num_rows
            for r, n in con.execute("SELECT _reason, count(*) FROM _classified GROUP BY 1").fetchall():
                if r is None:
                    fl.rows_loaded += n
                else:
                    reasons[r] = reasons.get(r, 0) + n
        fl.reasons = dict(sorted(reasons.items()))
        fl.rows_quarantined = sum(reasons.values())
        if fl.rows_read != fl.rows_loaded + fl.rows_quarantined:  # nothing may be lost silently
            raise IngestError(f"{location}: {fl.rows_read} read != {fl.rows_loaded} loaded + {fl.rows_quarantined} quarantined")
        con.execute("INSERT INTO raw._load_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'loaded', NULL, ?)",
                    [fl.batch_id, spec.name, location, sha, size, fl.rows_read, fl.rows_loaded,
                     fl.rows_quarantined, now])
        con.execute("COMMIT")
    except UNIT_ERRORS as exc:
        # The whole unit fails alone: nothing of it is kept, the ledger says why, other units go on.
        con.execute("ROLLBACK")
        msg = str(exc) if location in str(exc) else f"{location}: {type(exc).__name__}: {exc}"
        fl = FileLoad(source=spec.name, file=location, status="failed", batch_id=fl.batch_id, sha256=sha, error=msg)
        con.execute("INSERT INTO raw._load_ledger VALUES (?, ?, ?, ?, ?, 0, 0, 0, 'failed', ?, ?)",
                    [fl.batch_id, spec.name, location, sha, size, fl.error, now])
    finally:
        con.execute("DROP TABLE IF EXISTS _classified")
    fl.seconds = round(time.perf_counter() - t0, 3)
    return fl
