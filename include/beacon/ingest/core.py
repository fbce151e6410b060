"""The load engine every connector shares: raw tables, ledger, quarantine, one transaction per unit.

A unit is one file or one API page. Its rows arrive as Arrow batches in one of three shapes (text
columns, JSON lines, typed Arrow); each batch is classified in one DuckDB query (malformed, missing
key, wrong type, future timestamp); the good rows, the quarantined rows and the ledger row commit
together, so a unit is loaded once (by content hash) and rows read = rows loaded + rows quarantined.

Nothing that goes wrong with one unit stops the run: any exception while loading it rolls the unit back
and is recorded (ledger and quarantine, as valid UTF-8 text) with a named reason; the next unit loads.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import queue
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import fsspec
import pyarrow as pa
import yaml

SPEC_FILE = Path(__file__).with_name("sources.yml")
_SQL_TYPES = {"varchar": "VARCHAR", "integer": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE",
              "date": "DATE", "timestamp": "TIMESTAMP", "epoch": "TIMESTAMP", "epoch_ms": "TIMESTAMP"}
# Load metadata on every raw row: where it came from (file or page, line), which load, when, which content.
META_COLUMNS = {"_source_file": "VARCHAR", "_line": "BIGINT", "_batch_id": "VARCHAR", "_loaded_at": "TIMESTAMP",
                "_file_sha256": "VARCHAR", "_source": "VARCHAR"}
BATCH_ROWS = 500_000
MAX_MESSAGE_CHARS = 2_000  # ledger/quarantine messages are cut here (a message may quote input)
log = logging.getLogger(__name__)


class IngestError(ValueError):
    """A file or page that cannot be loaded at all, with a named reason and, where known, line and field."""

    def __init__(self, message: str, reason: str = "rejected", line: int | None = None, field: str | None = None,
                 payload: str | None = None):
        super().__init__(message)
        self.reason, self.line, self.field, self.payload = reason, line, field, payload


def safe_text(value: object, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Any text (also with undecodable bytes kept as surrogates) as valid UTF-8, bytes escaped, cut to `limit`."""
    if isinstance(value, bytes | bytearray | memoryview):
        text = bytes(value[: limit * 4]).decode("utf-8", "backslashreplace")
    else:
        try:
            text = str(value)
        except Exception as exc:  # a str() that fails must not fail the failure path
            text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    text = text[: limit * 2].encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _error_reason(exc: BaseException) -> str:
    """The named reason of an exception that failed a unit."""
    if isinstance(exc, IngestError):
        return exc.reason
    if isinstance(exc, MemoryError):
        return "resource_limit"
    if isinstance(exc, UnicodeError):
        return "encoding"
    if isinstance(exc, OSError | EOFError) or type(exc).__module__.startswith(("zlib", "gzip", "bz2", "lzma")):
        return "unreadable"
    if isinstance(exc, duckdb.Error):
        return "warehouse_error"
    if isinstance(exc, pa.ArrowException):
        return "unreadable"
    return "unexpected_error"


# A JSON string (skipped whole, possessive: no backtracking) or one bracket.
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')


def json_depth_exceeds(data: bytes | str, max_depth: int) -> bool:
    """True when a JSON text nests deeper than `max_depth` (brackets inside strings do not count).

    A cheap scanner run before json.loads, whose recursion a deep document would exhaust: texts with at
    most `max_depth` brackets in all are passed at once; otherwise it counts, and stops at the first level
    over the cap. Invalid JSON is counted as far as it goes (the parser then rejects it)."""
    b = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)
    if b.count(b"{") + b.count(b"[") <= max_depth:
        return False
    depth = 0
    for m in _JSON_TOKENS.finditer(b):
        c = m.group()
        if c in (b"{", b"["):
            depth += 1
            if depth > max_depth:
                return True
        elif c in (b"}", b"]"):
            depth -= 1
    return False


@dataclass(frozen=True)
class Limits:
    """Caps that keep memory bounded whatever a file holds; each is checked before the work it protects."""

    max_file_bytes: int = 64 << 30  # a file (after decompression) larger than this is rejected
    max_line_bytes: int = 16 << 20  # a longer line (record) is quarantined: line_too_long
    max_json_depth: int = 64  # deeper nesting is quarantined (JSON lines) or rejects the document
    max_columns: int = 1_000  # a header (or Parquet schema) with more columns is rejected

    @classmethod
    def from_dict(cls, d: dict | None, base: Limits | None = None) -> Limits:
        base = base or cls()
        d = dict(d or {})
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise IngestError(f"unknown limit(s) {', '.join(sorted(unknown))}", "config")
        bad = [k for k, v in d.items() if not isinstance(v, int) or isinstance(v, bool) or v <= 0]
        if bad:
            raise IngestError(f"limit(s) {', '.join(bad)} must be positive integers", "config")
        return replace(base, **d)


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
    encoding: str = "utf-8"  # used when the file has no byte-order mark
    time_zone: str = "UTC"  # naive timestamps are read in this zone; all are stored in UTC
    limits: Limits = field(default_factory=Limits)
    # varchar columns whose value loads once: a row whose value is already in the raw table (or earlier in
    # the file) is quarantined as `duplicate` (collected events: a client retry re-sends the same messageId)
    dedupe: tuple[str, ...] = ()


@dataclass
class FileLoad:
    """The outcome of loading one unit (a file, or an API page)."""

    source: str
    file: str
    status: str  # loaded | skipped | failed
    reason: str = ""  # why a failed unit failed (named reason, see docs/ingestion.md)
    batch_id: str = ""
    sha256: str = ""
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    extra_columns: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    error: str = ""
    header_mapping: dict[str, str] = field(default_factory=dict)  # CSV header -> column, where not identical
    encoding: str = ""  # the encoding the file was read in (BOM or the source's `encoding`)
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

    def failures(self) -> list[dict[str, str]]:
        """The failed units: file, reason and message."""
        return [{"file": f.file, "reason": f.reason, "error": f.error} for f in self.files if f.status == "failed"]

    def to_dict(self) -> dict:
        return {"totals": self.totals(), "reasons": self.reasons(), "schema_changes": self.schema_changes(),
                "failures": self.failures(), "files": [asdict(f) for f in self.files]}


def _check_encoding(where: str, enc: str) -> str:
    try:
        return codecs.lookup(enc).name
    except LookupError:
        raise IngestError(f"{where}: unknown encoding {enc!r}", "config") from None


def _check_zone(where: str, tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise IngestError(f"{where}: unknown time zone {tz!r} (use an IANA name such as UTC or Europe/Paris)",
                          "config") from None
    return tz


def load_specs(path: Path = SPEC_FILE) -> dict[str, SourceSpec]:
    """Read and validate the sources YAML (`defaults:` give encoding, time zone and limits to every source)."""
    doc = yaml.safe_load(Path(path).read_text())
    defaults = doc.get("defaults") or {}
    base_limits = Limits.from_dict(defaults.get("limits"))
    base_enc = _check_encoding(f"{path}: defaults", defaults.get("encoding", "utf-8"))
    base_tz = _check_zone(f"{path}: defaults", defaults.get("time_zone", "UTC"))
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
        where = f"{path}: source {name}"
        enc = _check_encoding(where, s["encoding"]) if "encoding" in s else base_enc
        if s["format"] == "parquet" and "encoding" in s:
            raise IngestError(f"{where}: `encoding` applies to text formats, not parquet", "config")
        specs[name] = SourceSpec(name, s["file"], s["format"], tuple(s["key"]), tuple(cols), s.get("event_time"),
                                 tuple(s.get("ignore", [])), encoding=enc,
                                 time_zone=_check_zone(where, s["time_zone"]) if "time_zone" in s else base_tz,
                                 limits=Limits.from_dict(s.get("limits"), base_limits),
                                 dedupe=tuple(s.get("dedupe", [])))
        bad = [d for d in specs[name].dedupe if d not in names or next(c for c in cols if c.name == d).type != "varchar"]
        if bad:
            raise IngestError(f"{where}: dedupe column(s) {', '.join(bad)} must be declared varchar columns", "config")
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
        for c in s.columns:  # ... and the columns declared since
            con.execute(f'ALTER TABLE raw.{s.name} ADD COLUMN IF NOT EXISTS "{c.name}" {_SQL_TYPES[c.type]}')
    con.execute("""CREATE TABLE IF NOT EXISTS raw._quarantine (
        source VARCHAR, file VARCHAR, line BIGINT, reason VARCHAR, message VARCHAR, payload VARCHAR,
        batch_id VARCHAR, quarantined_at TIMESTAMP)""")
    con.execute("""CREATE TABLE IF NOT EXISTS raw._load_ledger (
        batch_id VARCHAR, source VARCHAR, file VARCHAR, file_sha256 VARCHAR, file_bytes BIGINT,
        rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, status VARCHAR, error VARCHAR,
        loaded_at TIMESTAMP)""")
    con.execute("ALTER TABLE raw._load_ledger ADD COLUMN IF NOT EXISTS reason VARCHAR")  # older warehouses
    con.execute("CREATE TABLE IF NOT EXISTS raw._cursors (source VARCHAR PRIMARY KEY, cursor VARCHAR, updated_at TIMESTAMP)")


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """First value of a query (results are fetched fully: DuckDB 2 refuses new work on a pending result)."""
    return con.execute(sql, params or []).fetchall()[0][0]


# Epochs beyond this (year ~2286 in seconds) are not times: NULL, hence wrong_type (and no overflow error).
_EPOCH_MAX = {"epoch": 10**10, "epoch_ms": 10**13}
_EPOCH_MICROS = {"epoch": 1_000_000, "epoch_ms": 1_000}


def _typed(col: str, type_: str) -> str:
    """SQL casting one text column to its declared type (NULL when it does not cast).

    Timestamps go through TIMESTAMPTZ: an offset or `Z` is honoured, a naive value is read in the session
    time zone (set to the source's `time_zone` by load_unit); the result is the UTC wall clock. Epochs are
    seconds or milliseconds by their declared type (never guessed), always UTC."""
    v = f"nullif(trim(\"{col}\"), '')"
    if type_ in _EPOCH_MAX:
        n = f"try_cast({v} AS BIGINT)"
        return (f"CASE WHEN abs({n}) < {_EPOCH_MAX[type_]} "
                f"THEN make_timestamp({n} * {_EPOCH_MICROS[type_]}) END")
    if type_ == "timestamp":  # the instant's UTC micros, without ICU's per-row zone conversion
        return f"make_timestamp(epoch_us(try_cast({v} AS TIMESTAMPTZ)))"
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
    header_mapping: dict[str, str] = field(default_factory=dict)
    encoding: str = ""


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
    """SQL turning one registered batch `_batch` into text columns plus _line, _malformed, _payload, extras
    and _bad_reason (the named reason of a row the reader already found bad; NULL = 'malformed')."""
    if shape == "text":
        return "SELECT *" + ("" if "_bad_reason" in present else ", NULL::VARCHAR AS _bad_reason") + " FROM _batch"
    if shape == "json":
        parse, cols = _json_columns(spec)
        ex = "".join(f", CASE WHEN ok THEN json_extract_string(line, '$.\"{e}\"') END AS \"{column_name(e)}\""
                     for e in extras)
        if "_bad" not in present:  # no line of this batch was marked by the reader: the plain, fastest query
            return f"""SELECT _line, CASE WHEN NOT ok THEN 'line is not a valid JSON object' END AS _malformed,
                              line AS _payload, NULL::VARCHAR AS _bad_reason, {cols}{ex}
                       FROM (SELECT _line, line, v, v IS NOT NULL AND starts_with(ltrim(line), '{{') AS ok
                             FROM (SELECT _line, line, try({parse}) AS v FROM _batch))"""
        # One JSON parse per line: try() turns invalid JSON into NULL (cheaper than json_valid first);
        # the raw line is kept only for quarantined rows. Lines the reader marked bad (too long, too deep,
        # invalid UTF-8) come with their reason, message and payload, and are not parsed.
        return f"""SELECT _line, CASE WHEN _bad IS NOT NULL THEN _bad_msg
                                      WHEN NOT ok THEN 'line is not a valid JSON object' END AS _malformed,
                          CASE WHEN _bad IS NOT NULL THEN _bad_payload ELSE line END
                            AS _payload, _bad AS _bad_reason,
                          {cols}{ex}
                   FROM (SELECT _line, line, _bad, _bad_msg, _bad_payload, v,
                                v IS NOT NULL AND starts_with(ltrim(line), '{{') AS ok
                         FROM (SELECT _line, line, _bad, _bad_msg, _bad_payload,
                                      CASE WHEN _bad IS NULL THEN try({parse}) END AS v FROM _batch))"""
    cols = ", ".join((f'CAST("{c.name}" AS VARCHAR)' if c.name in present else "NULL::VARCHAR") + f' AS "{c.name}"'
                     for c in spec.columns)
    ex = "".join(f', CAST("{e}" AS VARCHAR) AS "{column_name(e)}"' for e in extras)
    return (f"SELECT _line, NULL::VARCHAR AS _malformed, NULL::VARCHAR AS _payload, NULL::VARCHAR AS _bad_reason, "
            f"{cols}{ex} FROM _batch")


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
    if spec.dedupe:  # loaded before (an earlier file, or an earlier batch of this one) or earlier in this batch
        on = " AND ".join(f'r."{d}" = _src."{d}"' for d in spec.dedupe)
        part = ", ".join(f'"{d}"' for d in spec.dedupe)
        dup = (f"(EXISTS (SELECT 1 FROM raw.{spec.name} r WHERE {on}) OR "
               f"row_number() OVER (PARTITION BY {part} ORDER BY _line) > 1)")
        casts += f", {dup} AS _dup"
    else:
        casts += ", false AS _dup"
    # Text of varchar columns equals their typed value: only the typed copy is kept (less to materialize).
    drop = ", ".join(["_payload", "_bad_reason", "_dup", *(f'"{c.name}"' for c in spec.columns if c.type == "varchar")])
    return f"""
      SELECT * EXCLUDE ({drop}),
        CASE WHEN _reason IS NOT NULL THEN rtrim(coalesce(_payload, {payload}), chr(10) || chr(13)) END
          AS _bad_payload
      FROM (
        SELECT *,
          CASE WHEN _malformed IS NOT NULL THEN coalesce(_bad_reason, 'malformed')
               WHEN {missing} THEN 'missing_key'
               WHEN {bad_type} THEN 'wrong_type'
               WHEN {future} THEN 'future_timestamp'
               WHEN _dup THEN 'duplicate' END AS _reason
        FROM (SELECT *, {casts} FROM ({stage}) _src)
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
    dup_msg = ("'already loaded: ' || " + " || ', ' || ".join(f"'{d} ' || coalesce({_t(d)}, '')" for d in spec.dedupe)
               if spec.dedupe else "''")
    return (f"CASE _reason WHEN 'duplicate' THEN {dup_msg} WHEN 'missing_key' THEN {missing_msg} "
            f"WHEN 'wrong_type' THEN {type_msg} WHEN 'future_timestamp' THEN {future_msg} ELSE _malformed END")


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


def failure_message(location: str, exc: BaseException) -> str:
    """`<file>: line N: field F: <what>`, the parts that are known, as valid UTF-8 text."""
    text = safe_text(exc) or type(exc).__name__
    if not isinstance(exc, IngestError):
        text = f"{type(exc).__name__}: {text}"
    if text.startswith(location + ": "):
        text = text[len(location) + 2:]
    where = [location]
    line, fld = getattr(exc, "line", None), getattr(exc, "field", None)
    if line is not None and f"line {line}" not in text:
        where.append(f"line {line}")
    if fld and f"field {fld}" not in text and f"column {fld!r}" not in text:
        where.append(f"field {fld}")
    return safe_text(": ".join([*where, text]))


def record_failure(con: duckdb.DuckDBPyConnection, spec: SourceSpec, *, location: str, sha: str, size: int | None,
                   exc: BaseException, batch_id: str, t0: float | None = None) -> FileLoad:
    """Record a unit that failed: a `failed` ledger row and one quarantine row (line 0 unless known).

    This path must not fail: every value is made valid UTF-8 text first, and when the warehouse itself
    refuses the write, the failure is still returned (and logged) so the run goes on."""
    reason = _error_reason(exc)
    msg = failure_message(location, exc)
    fl = FileLoad(source=spec.name, file=safe_text(location), status="failed", reason=reason, batch_id=batch_id,
                  sha256=sha, error=msg)
    payload = getattr(exc, "payload", None)
    now = datetime.now().replace(microsecond=0)
    try:
        con.execute("""INSERT INTO raw._load_ledger (batch_id, source, file, file_sha256, file_bytes, rows_read,
                       rows_loaded, rows_quarantined, status, error, loaded_at, reason)
                       VALUES (?, ?, ?, ?, ?, 0, 0, 0, 'failed', ?, ?, ?)""",
                    [batch_id, spec.name, fl.file, sha or None, size, msg, now, reason])
        con.execute("INSERT INTO raw._quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [spec.name, fl.file, getattr(exc, "line", None) or 0, reason, msg,
                     None if payload is None else safe_text(payload), batch_id, now])
    except Exception as write_exc:  # the warehouse is broken: say so, keep going
        fl.error = safe_text(f"{msg} (and the failure could not be recorded: {type(write_exc).__name__}: "
                             f"{safe_text(write_exc, 300)})")
        log.error("%s", fl.error)
    if t0 is not None:
        fl.seconds = round(time.perf_counter() - t0, 3)
    return fl


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("ROLLBACK")
    except Exception:  # no transaction open (it failed before BEGIN) or already rolled back
        pass


def load_unit(con: duckdb.DuckDBPyConnection, spec: SourceSpec, *, location: str, sha: str, size: int,
              open_batches: Callable[[], Batches], max_event_time: datetime, origin: str = "landing",
              batch_label: str = "", header_mapping: dict[str, str] | None = None) -> FileLoad:
    """Load one unit idempotently: skip known content, else stream its batches in one transaction.

    Whatever goes wrong (IngestError from a reader, a decode error, I/O, DuckDB, MemoryError) fails this
    unit alone: the transaction is rolled back so nothing of it is kept, the ledger and the quarantine
    record why, and the caller goes on with the next unit. Only KeyboardInterrupt/SystemExit propagate."""
    t0 = time.perf_counter()
    fl = FileLoad(source=spec.name, file=location, status="loaded", sha256=sha,
                  batch_id=f"{spec.name}:{batch_label}:{sha[:12]}")
    reasons: dict[str, int] = {}
    began = False
    try:
        if already_loaded(con, spec.name, sha):
            fl.status = "skipped"
            return fl
        now = datetime.now().replace(microsecond=0)  # audit metadata only, never used in logic
        names = [c.name for c in spec.columns]
        typed_cols = ", ".join(_t(n) for n in names)
        message = _message_sql(spec, max_event_time)
        # Naive timestamps are read in the source's zone; values with an offset keep theirs (see _typed).
        con.execute(f"SET TimeZone = '{spec.time_zone.replace(chr(39), '')}'")  # an IANA name (load_specs checks)
        con.execute("BEGIN TRANSACTION")
        began = True
        b = open_batches()
        fl.extra_columns = list(b.extra_columns)
        fl.header_mapping = dict(b.header_mapping)
        fl.encoding = b.encoding
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
            raise IngestError(f"{location}: {fl.rows_read} read != {fl.rows_loaded} loaded + "
                              f"{fl.rows_quarantined} quarantined", "count_mismatch")
        con.execute("""INSERT INTO raw._load_ledger (batch_id, source, file, file_sha256, file_bytes, rows_read,
                       rows_loaded, rows_quarantined, status, error, loaded_at, reason)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'loaded', NULL, ?, NULL)""",
                    [fl.batch_id, spec.name, location, sha, size, fl.rows_read, fl.rows_loaded,
                     fl.rows_quarantined, now])
        con.execute("COMMIT")
    except Exception as exc:
        # The whole unit fails alone: nothing of it is kept, the ledger says why, other units go on.
        if began:
            _rollback(con)
        fl = record_failure(con, spec, location=location, sha=sha, size=size, exc=exc, batch_id=fl.batch_id)
        log.warning("ingest: %s", fl.error)
    finally:
        try:
            con.execute("DROP TABLE IF EXISTS _classified")
            con.execute("SET TimeZone = 'UTC'")
        except Exception:  # a broken connection: the failure is recorded above (or the next unit reports it)
            pass
    fl.seconds = round(time.perf_counter() - t0, 3)
    return fl


def regular_file_size(fs: fsspec.AbstractFileSystem, path: str) -> int:
    """The size of a regular file, found without opening it (a FIFO would block an open; a device never ends).

    Symlinks are followed, so a link to a regular file loads and a link to a device is rejected."""
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):  # local: stat, never open
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise IngestError(f"{path}: does not exist (a dangling symlink?)", "not_regular_file") from None
        if not stat.S_ISREG(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                    else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device" if
                    stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
            raise IngestError(f"{path}: is {kind}, not a regular file; not opened", "not_regular_file")
        return st.st_size
    info = fs.info(path)
    if info.get("type") != "file":
        raise IngestError(f"{path}: is a {info.get('type')}, not a file; not opened", "not_regular_file")
    return int(info.get("size") or 0)
