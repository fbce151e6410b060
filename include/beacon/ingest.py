"""Load landing-zone files into the append-only `raw` schema; rejected rows go to `raw._quarantine`.

Every file is staged as text, classified in one DuckDB query (malformed, missing key, wrong type,
future timestamp), and loaded in a single transaction with a ledger row, so a file is loaded once
(by content hash) and rows read = rows loaded + rows quarantined always holds.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import fsspec
import pyarrow as pa
import yaml

from beacon.warehouse import connect

SPEC_FILE = Path(__file__).with_name("sources.yml")
_SQL_TYPES = {"varchar": "VARCHAR", "integer": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE",
              "date": "DATE", "timestamp": "TIMESTAMP", "epoch": "TIMESTAMP"}
_META_COLUMNS = "_source_file VARCHAR, _line BIGINT, _batch_id VARCHAR, _loaded_at TIMESTAMP, _file_sha256 VARCHAR"


class IngestError(ValueError):
    """A file that cannot be loaded at all (named, with the reason)."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    path: str | None = None


@dataclass(frozen=True)
class SourceSpec:
    """How one landing file maps onto one raw table."""

    name: str
    file: str
    format: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    event_time: str | None = None


@dataclass
class FileLoad:
    """The outcome of loading one file."""

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
    error: str = ""
    seconds: float = 0.0


def load_specs(path: Path = SPEC_FILE) -> dict[str, SourceSpec]:
    """Read and validate the sources YAML."""
    doc = yaml.safe_load(path.read_text())
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
        specs[name] = SourceSpec(name, s["file"], s["format"], tuple(s["key"]), tuple(cols), s.get("event_time"))
    return specs


def ensure_raw_schema(con: duckdb.DuckDBPyConnection, specs: dict[str, SourceSpec]) -> None:
    """Create the raw tables, the quarantine and the load ledger if missing."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    for s in specs.values():
        cols = ", ".join(f'"{c.name}" {_SQL_TYPES[c.type]}' for c in s.columns)
        con.execute(f"CREATE TABLE IF NOT EXISTS raw.{s.name} ({cols}, {_META_COLUMNS})")
    con.execute("""CREATE TABLE IF NOT EXISTS raw._quarantine (
        source VARCHAR, file VARCHAR, line BIGINT, reason VARCHAR, message VARCHAR, payload VARCHAR,
        batch_id VARCHAR, quarantined_at TIMESTAMP)""")
    con.execute("""CREATE TABLE IF NOT EXISTS raw._load_ledger (
        batch_id VARCHAR, source VARCHAR, file VARCHAR, file_sha256 VARCHAR, file_bytes BIGINT,
        rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, status VARCHAR, error VARCHAR,
        loaded_at TIMESTAMP)""")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """First value of a query (results are fetched fully: DuckDB 2 refuses new work on a pending result)."""
    return con.execute(sql, params or []).fetchall()[0][0]


def _typed(col: str, type_: str) -> str:
    v = f"nullif(trim(\"{col}\"), '')"
    if type_ == "epoch":
        return f"make_timestamp(try_cast({v} AS BIGINT) * 1000000)"
    return f"try_cast({v} AS {_SQL_TYPES[type_]})"


def _stage_csv(con, spec: SourceSpec, path: Path) -> list[str]:
    """Stage a CSV as text with exact physical line numbers (Python's csv handles quoting)."""
    names = [c.name for c in spec.columns]
    # fsspec: gzip (and other codecs) by file suffix, and remote URLs through the same call.
    with fsspec.open(str(path), "rt", newline="", encoding="utf-8", errors="replace", compression="infer") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise IngestError(f"{path}: empty file, no header")
        header = [h.strip() for h in header]
        missing = [k for k in spec.key if k not in header]
        if missing:
            raise IngestError(f"{path}: missing required column(s) {', '.join(missing)} in header")
        pos = {h: i for i, h in enumerate(header)}
        cols: dict[str, list] = {n: [] for n in names}
        lines, malformed, payloads = [], [], []
        width = len(header)
        for row in reader:
            lines.append(reader.line_num)
            if len(row) != width:
                malformed.append(f"expected {width} fields, got {len(row)}")
                payloads.append(",".join(row))
                for n in names:
                    cols[n].append(None)
                continue
            malformed.append(None)
            payloads.append(None)
            for n in names:
                cols[n].append(row[pos[n]] if n in pos else None)
    table = pa.table({"_line": pa.array(lines, pa.int64()), "_malformed": pa.array(malformed, pa.string()),
                      "_payload": pa.array(payloads, pa.string()),
                      **{n: pa.array(v, pa.string()) for n, v in cols.items()}})
    con.register("_arrow_stage", table)
    con.execute("CREATE OR REPLACE TEMP TABLE _stage AS SELECT * FROM _arrow_stage")
    con.unregister("_arrow_stage")
    return [h for h in header if h not in pos or h not in names]


def _stage_jsonl(con, spec: SourceSpec, path: Path) -> list[str]:
    """Stage JSON lines: one text column per line, then one JSON parse per valid line."""
    paths = ", ".join(f"'{c.path}'" for c in spec.columns)
    extract = ", ".join(f'v[{i + 1}] AS "{c.name}"' for i, c in enumerate(spec.columns))
    con.execute(f"""
      CREATE OR REPLACE TEMP TABLE _stage AS
      WITH lines AS (
        SELECT row_number() OVER () AS _line, line
        FROM read_csv('{path}', columns = {{'line': 'VARCHAR'}}, header = false, delim = '\x1f', quote = '',
                      escape = '', auto_detect = false, max_line_size = 10000000, compression = 'auto')
      ), parsed AS (
        SELECT _line, line, json_valid(line) AS ok,
               CASE WHEN json_valid(line) THEN json_extract_string(line, [{paths}]) END AS v
        FROM lines
      )
      SELECT _line, CASE WHEN NOT ok THEN 'line is not valid JSON' END AS _malformed, line AS _payload, {extract}
      FROM parsed""")
    return []


def _stage_parquet(con, spec: SourceSpec, path: Path) -> list[str]:
    present = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()]
    missing = [k for k in spec.key if k not in present]
    if missing:
        raise IngestError(f"{path}: missing required column(s) {', '.join(missing)}")
    sel = ", ".join(
        (f'CAST("{c.name}" AS VARCHAR)' if c.name in present else "NULL::VARCHAR") + f' AS "{c.name}"'
        for c in spec.columns)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _stage AS
        SELECT file_row_number + 1 AS _line, NULL::VARCHAR AS _malformed, NULL::VARCHAR AS _payload, {sel}
        FROM read_parquet('{path}', file_row_number = true)""")
    return [p for p in present if p not in {c.name for c in spec.columns}]


_STAGERS = {"csv": _stage_csv, "jsonl": _stage_jsonl, "parquet": _stage_parquet}


def _classify(con, spec: SourceSpec, max_event_time: datetime) -> None:
    """Give every staged row a reason (NULL = good) and a message naming the field."""
    missing = " OR ".join(f"nullif(trim(\"{k}\"), '') IS NULL" for k in spec.key)
    missing_msg = "concat_ws(', ', " + ", ".join(
        f"CASE WHEN nullif(trim(\"{k}\"), '') IS NULL THEN '{k} is empty' END" for k in spec.key) + ")"
    typed = [c for c in spec.columns if c.type != "varchar"]
    bad_type = " OR ".join(f"(nullif(trim(\"{c.name}\"), '') IS NOT NULL AND {_typed(c.name, c.type)} IS NULL)"
                           for c in typed) or "false"
    type_msg = "concat_ws(', ', " + ", ".join(
        f"CASE WHEN nullif(trim(\"{c.name}\"), '') IS NOT NULL AND {_typed(c.name, c.type)} IS NULL "
        f"THEN '{c.name}: ' || \"{c.name}\" || ' is not a {c.type}' END" for c in typed) + ")" if typed else "''"
    et = spec.event_time
    et_type = next((c.type for c in spec.columns if c.name == et), None)
    future = f"{_typed(et, et_type)} > TIMESTAMP '{max_event_time:%Y-%m-%d %H:%M:%S}'" if et else "false"
    future_msg = f"'{et}: ' || {_typed(et, et_type)} || ' is after {max_event_time:%Y-%m-%d %H:%M}'" if et else "''"
    payload = "to_json({" + ", ".join(f"'{c.name}': \"{c.name}\"" for c in spec.columns) + "})::VARCHAR"
    con.execute(f"""
      CREATE OR REPLACE TEMP TABLE _classified AS
      SELECT *,
        CASE WHEN _malformed IS NOT NULL THEN 'malformed'
             WHEN {missing} THEN 'missing_key'
             WHEN {bad_type} THEN 'wrong_type'
             WHEN {future} THEN 'future_timestamp' END AS _reason
      FROM _stage""")
    con.execute(f"""
      CREATE OR REPLACE TEMP TABLE _bad AS
      SELECT _line, _reason,
        CASE _reason WHEN 'malformed' THEN _malformed WHEN 'missing_key' THEN {missing_msg}
                     WHEN 'wrong_type' THEN {type_msg} ELSE {future_msg} END AS _message,
        coalesce(_payload, {payload}) AS _payload
      FROM _classified WHERE _reason IS NOT NULL""")


def load_file(con: duckdb.DuckDBPyConnection, spec: SourceSpec, path: Path, max_event_time: datetime) -> FileLoad:
    """Load one landing file idempotently (skip when the same content was loaded before)."""
    t0 = time.perf_counter()
    path = Path(path)
    sha = file_sha256(path)
    fl = FileLoad(source=spec.name, file=str(path), status="loaded", sha256=sha,
                  batch_id=f"{spec.name}:{path.parent.name}:{sha[:12]}")
    done = _scalar(con, "SELECT count(*) FROM raw._load_ledger WHERE source = ? AND file_sha256 = ? AND status = 'loaded'",
                   [spec.name, sha])
    if done:
        fl.status = "skipped"
        return fl
    now = datetime.now().replace(microsecond=0)  # audit metadata only, never used in logic
    try:
        fl.extra_columns = _STAGERS[spec.format](con, spec, path)
        _classify(con, spec, max_event_time)
    except (IngestError, duckdb.Error, OSError, UnicodeDecodeError) as exc:
        fl.status, fl.error = "failed", str(exc)
        con.execute("INSERT INTO raw._load_ledger VALUES (?, ?, ?, ?, ?, 0, 0, 0, 'failed', ?, ?)",
                    [fl.batch_id, spec.name, str(path), sha, path.stat().st_size, fl.error, now])
        return fl
    cols = ", ".join(f"{_typed(c.name, c.type)} AS \"{c.name}\"" for c in spec.columns)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"""INSERT INTO raw.{spec.name}
            SELECT {cols}, ?, _line, ?, ?, ? FROM _classified WHERE _reason IS NULL ORDER BY _line""",
                    [str(path), fl.batch_id, now, sha])
        con.execute("""INSERT INTO raw._quarantine
            SELECT ?, ?, _line, _reason, _message, _payload, ?, ? FROM _bad ORDER BY _line""",
                    [spec.name, str(path), fl.batch_id, now])
        fl.rows_read = _scalar(con, "SELECT count(*) FROM _stage")
        fl.rows_loaded = _scalar(con, "SELECT count(*) FROM _classified WHERE _reason IS NULL")
        fl.reasons = dict(con.execute("SELECT _reason, count(*) FROM _bad GROUP BY 1 ORDER BY 1").fetchall())
        fl.rows_quarantined = sum(fl.reasons.values())
        if fl.rows_read != fl.rows_loaded + fl.rows_quarantined:  # nothing may be lost silently
            raise IngestError(f"{path}: {fl.rows_read} read != {fl.rows_loaded} loaded + {fl.rows_quarantined} quarantined")
        con.execute("INSERT INTO raw._load_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'loaded', NULL, ?)",
                    [fl.batch_id, spec.name, str(path), sha, path.stat().st_size, fl.rows_read, fl.rows_loaded,
                     fl.rows_quarantined, now])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS _stage; DROP TABLE IF EXISTS _classified; DROP TABLE IF EXISTS _bad")
    fl.seconds = round(time.perf_counter() - t0, 3)
    return fl


@dataclass
class LoadSummary:
    """All file loads of one ingest run."""

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

    def to_dict(self) -> dict:
        return {"totals": self.totals(), "reasons": self.reasons(), "files": [asdict(f) for f in self.files]}


def landing_days(landing_dir: Path, until: date | None = None) -> list[Path]:
    """Dated landing folders (YYYY-MM-DD), oldest first, up to and including `until`."""
    out = []
    for p in sorted(Path(landing_dir).glob("*")):
        try:
            d = date.fromisoformat(p.name)
        except ValueError:
            continue
        if p.is_dir() and (until is None or d <= until):
            out.append(p)
    return out


def load_landing(landing_dir: Path, until: date | None = None, warehouse: Path | None = None,
                 specs: dict[str, SourceSpec] | None = None) -> LoadSummary:
    """Load every not-yet-loaded file of every landing day up to `until` (the run's data interval)."""
    specs = specs or load_specs()
    loads: list[FileLoad] = []
    with connect(warehouse) as con:
        ensure_raw_schema(con, specs)
        for day_dir in landing_days(landing_dir, until):
            # A file's events may not be later than the end of its day plus one day of clock skew.
            max_ts = datetime.combine(date.fromisoformat(day_dir.name), datetime.min.time()) + timedelta(days=2)
            for spec in specs.values():
                for path in sorted(day_dir.glob(spec.file + "*")):  # also .gz
                    loads.append(load_file(con, spec, path, max_ts))
    return LoadSummary(loads)


def summary_json(summary: LoadSummary) -> str:
    return json.dumps(summary.to_dict(), indent=2, default=str)
