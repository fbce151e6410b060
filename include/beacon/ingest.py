"""Load landing-zone files into the append-only `raw` schema; rejected rows go to `raw._quarantine`.

Every file streams through in batches staged as text, each classified in one DuckDB query (malformed,
missing key, wrong type, future timestamp); the whole file commits in one transaction with a ledger
row, so a file is loaded once (by content hash) and rows read = rows loaded + rows quarantined holds.
"""

from __future__ import annotations

import csv
import hashlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from beacon.warehouse import connect, ensure_scores_table

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


BATCH_ROWS = 500_000


def _csv_batches(spec: SourceSpec, path: Path) -> tuple[list[str], Iterator[pa.Table]]:
    """CSV as text batches with exact physical line numbers (Python's csv handles quoting)."""
    names = [c.name for c in spec.columns]
    # fsspec: gzip (and other codecs) by file suffix, and remote URLs through the same call.
    fh = fsspec.open(str(path), "rt", newline="", encoding="utf-8", errors="replace", compression="infer").open()
    reader = csv.reader(fh)
    header = next(reader, None)
    if header is None:
        fh.close()
        raise IngestError(f"{path}: empty file, no header")
    header = [h.strip() for h in header]
    missing = [k for k in spec.key if k not in header]
    if missing:
        fh.close()
        raise IngestError(f"{path}: missing required column(s) {', '.join(missing)} in header")
    pos = {h: i for i, h in enumerate(header)}
    width = len(header)

    def batches() -> Iterator[pa.Table]:
        with fh:
            while True:
                cols: dict[str, list] = {n: [] for n in names}
                lines, malformed, payloads = [], [], []
                for row in reader:
                    lines.append(reader.line_num)
                    if len(row) != width:
                        malformed.append(f"expected {width} fields, got {len(row)}")
                        payloads.append(",".join(row))
                        for n in names:
                            cols[n].append(None)
                    else:
                        malformed.append(None)
                        payloads.append(None)
                        for n in names:
                            cols[n].append(row[pos[n]] if n in pos else None)
                    if len(lines) >= BATCH_ROWS:
                        break
                if not lines:
                    return
                yield pa.table({"_line": pa.array(lines, pa.int64()), "_malformed": pa.array(malformed, pa.string()),
                                "_payload": pa.array(payloads, pa.string()),
                                **{n: pa.array(v, pa.string()) for n, v in cols.items()}})

    return [h for h in header if h not in names], batches()


def _jsonl_batches(spec: SourceSpec, path: Path) -> tuple[list[str], Iterator[pa.Table]]:
    """JSON lines as text batches, streamed by Arrow (one column, no quoting), numbered by position."""
    reader = pacsv.open_csv(
        str(path),  # Arrow detects .gz etc. from the suffix
        read_options=pacsv.ReadOptions(column_names=["line"], block_size=64 << 20),
        parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False,
                                         newlines_in_values=False, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False),
    )

    def batches() -> Iterator[pa.Table]:
        first = 1
        for rb in reader:
            n = rb.num_rows
            yield pa.table({"_line": pa.array(range(first, first + n), pa.int64()), "line": rb.column(0)})
            first += n

    return [], batches()


def _parquet_batches(spec: SourceSpec, path: Path) -> tuple[list[str], Iterator[pa.Table]]:
    with fsspec.open(str(path), "rb") as fh:
        present = pq.ParquetFile(fh).schema_arrow.names
    missing = [k for k in spec.key if k not in present]
    if missing:
        raise IngestError(f"{path}: missing required column(s) {', '.join(missing)}")
    wanted = [c.name for c in spec.columns if c.name in present]

    def batches() -> Iterator[pa.Table]:
        first = 1
        with fsspec.open(str(path), "rb") as fh:
            for rb in pq.ParquetFile(fh).iter_batches(batch_size=BATCH_ROWS, columns=wanted):
                t = pa.Table.from_batches([rb])
                yield t.append_column("_line", pa.array(range(first, first + t.num_rows), pa.int64()))
                first += t.num_rows

    return [p for p in present if p not in {c.name for c in spec.columns}], batches()


_BATCHES = {"csv": _csv_batches, "jsonl": _jsonl_batches, "parquet": _parquet_batches}


def _stage_select(spec: SourceSpec, batch: pa.Table) -> str:
    """SQL turning one registered batch `_batch` into text columns plus _line, _malformed, _payload."""
    if spec.format == "csv":
        return "SELECT * FROM _batch"
    if spec.format == "jsonl":
        paths = ", ".join(f"'{c.path}'" for c in spec.columns)
        cols = ", ".join(f'v[{i + 1}] AS "{c.name}"' for i, c in enumerate(spec.columns))
        # One JSON parse per valid line; the raw line is kept only where the row may be quarantined.
        return f"""SELECT _line, CASE WHEN NOT ok THEN 'line is not valid JSON' END AS _malformed, line AS _payload, {cols}
                   FROM (SELECT _line, line, json_valid(line) AS ok,
                                CASE WHEN json_valid(line) THEN json_extract_string(line, [{paths}]) END AS v
                         FROM _batch)"""
    present = set(batch.column_names)
    cols = ", ".join((f'CAST("{c.name}" AS VARCHAR)' if c.name in present else "NULL::VARCHAR") + f' AS "{c.name}"'
                     for c in spec.columns)
    return f"SELECT _line, NULL::VARCHAR AS _malformed, NULL::VARCHAR AS _payload, {cols} FROM _batch"


def _classify_sql(spec: SourceSpec, stage: str, max_event_time: datetime) -> str:
    """SQL giving every staged row a reason (NULL = good) and a message naming the field."""
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
    # The raw payload is carried only for quarantined rows (EXCLUDE keeps good rows' text out of memory).
    return f"""
      SELECT * EXCLUDE (_payload),
        CASE _reason WHEN 'malformed' THEN _malformed WHEN 'missing_key' THEN {missing_msg}
                     WHEN 'wrong_type' THEN {type_msg} WHEN 'future_timestamp' THEN {future_msg} END AS _message,
        CASE WHEN _reason IS NOT NULL THEN coalesce(_payload, {payload}) END AS _bad_payload
      FROM (
        SELECT *,
          CASE WHEN _malformed IS NOT NULL THEN 'malformed'
               WHEN {missing} THEN 'missing_key'
               WHEN {bad_type} THEN 'wrong_type'
               WHEN {future} THEN 'future_timestamp' END AS _reason
        FROM ({stage})
      )"""


def load_file(con: duckdb.DuckDBPyConnection, spec: SourceSpec, path: Path, max_event_time: datetime) -> FileLoad:
    """Load one landing file idempotently (skip when the same content was loaded before).

    The file streams through in batches (memory stays bounded for multi-GB files); all batches,
    the quarantine rows and the ledger row commit in one transaction, or none do."""
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
    typed_cols = ", ".join(f"{_typed(c.name, c.type)} AS \"{c.name}\"" for c in spec.columns)
    reasons: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        fl.extra_columns, batches = _BATCHES[spec.format](spec, path)
        for batch in batches:
            con.register("_batch", batch)
            con.execute("CREATE OR REPLACE TEMP TABLE _classified AS "
                        + _classify_sql(spec, _stage_select(spec, batch), max_event_time))
            con.unregister("_batch")
            con.execute(f"""INSERT INTO raw.{spec.name}
                SELECT {typed_cols}, ?, _line, ?, ?, ? FROM _classified WHERE _reason IS NULL ORDER BY _line""",
                        [str(path), fl.batch_id, now, sha])
            con.execute("""INSERT INTO raw._quarantine
                SELECT ?, ?, _line, _reason, _message, _bad_payload, ?, ? FROM _classified
                WHERE _reason IS NOT NULL ORDER BY _line""", [spec.name, str(path), fl.batch_id, now])
            fl.rows_read += batch.num_rows
            fl.rows_loaded += _scalar(con, "SELECT count(*) FROM _classified WHERE _reason IS NULL")
            for r, n in con.execute("SELECT _reason, count(*) FROM _classified WHERE _reason IS NOT NULL GROUP BY 1").fetchall():
                reasons[r] = reasons.get(r, 0) + n
        fl.reasons = dict(sorted(reasons.items()))
        fl.rows_quarantined = sum(reasons.values())
        if fl.rows_read != fl.rows_loaded + fl.rows_quarantined:  # nothing may be lost silently
            raise IngestError(f"{path}: {fl.rows_read} read != {fl.rows_loaded} loaded + {fl.rows_quarantined} quarantined")
        con.execute("INSERT INTO raw._load_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'loaded', NULL, ?)",
                    [fl.batch_id, spec.name, str(path), sha, path.stat().st_size, fl.rows_read, fl.rows_loaded,
                     fl.rows_quarantined, now])
        con.execute("COMMIT")
    except (IngestError, duckdb.Error, OSError, UnicodeDecodeError, pa.ArrowException) as exc:
        # The whole file fails alone: nothing of it is kept, the ledger says why, other files go on.
        con.execute("ROLLBACK")
        fl = FileLoad(source=spec.name, file=str(path), status="failed", batch_id=fl.batch_id, sha256=sha, error=str(exc))
        con.execute("INSERT INTO raw._load_ledger VALUES (?, ?, ?, ?, ?, 0, 0, 0, 'failed', ?, ?)",
                    [fl.batch_id, spec.name, str(path), sha, path.stat().st_size, fl.error, now])
    finally:
        con.execute("DROP TABLE IF EXISTS _classified")
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
        ensure_scores_table(con)
        for day_dir in landing_days(landing_dir, until):
            # A file's events may not be later than the end of its day plus one day of clock skew.
            max_ts = datetime.combine(date.fromisoformat(day_dir.name), datetime.min.time()) + timedelta(days=2)
            for spec in specs.values():
                for path in sorted(day_dir.glob(spec.file + "*")):  # also .gz
                    loads.append(load_file(con, spec, path, max_ts))
    return LoadSummary(loads)
