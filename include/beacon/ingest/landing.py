"""Landing-zone connector: CSV, JSON lines and Parquet files (gzip too) from a local folder or any fsspec URL.

Files sit in dated folders (<root>/<YYYY-MM-DD>/); each file is one unit of the load engine, known by
its content hash, so a re-delivered file loads nothing and a changed file under the same name loads
as a new version. S3 and other object stores go through fsspec (s3fs) with the same code.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from beacon.ingest.core import (
    BATCH_ROWS,
    Batches,
    FileLoad,
    IngestError,
    LoadSummary,
    SourceSpec,
    ensure_raw_schema,
    load_specs,
    load_unit,
)
from beacon.warehouse import connect, ensure_scores_table

csv.field_size_limit(64 << 20)  # a 1 MB free-text field is data, not an error


def _fs(root: str | Path, storage_options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and path of a landing root (a local folder or a URL such as s3://bucket/landing)."""
    fs, path = fsspec.core.url_to_fs(str(root), **(storage_options or {}))
    return fs, path


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def file_sha256(path: str | Path, fs: fsspec.AbstractFileSystem | None = None) -> str:
    """SHA-256 of a file's bytes, streamed (the ledger's identity of a delivery)."""
    fs = fs or fsspec.filesystem("file")
    h = hashlib.sha256()
    with fs.open(str(path), "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _compression(path: str) -> str | None:
    return fsspec.utils.infer_compression(path)


def _csv_batches(spec: SourceSpec, path: str, fs: fsspec.AbstractFileSystem) -> Batches:
    """CSV as text batches with exact physical line numbers (Python's csv handles quoting).

    Decoding keeps undecodable bytes (surrogateescape) so such a row is quarantined, not silently altered;
    utf-8-sig drops a byte-order mark."""
    names = [c.name for c in spec.columns]
    raw = fs.open(path, "rb", compression=_compression(path))
    fh = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(fh)
    try:
        header = next(reader, None)
    except Exception:
        fh.close()
        raise
    if header is None:
        fh.close()
        raise IngestError(f"{path}: empty file, no header")
    header = [h.strip() for h in header]
    missing = [k for k in spec.key if k not in header]
    if missing:
        fh.close()
        raise IngestError(f"{path}: missing required column(s) {', '.join(missing)} in header "
                          f"(found {len(header)} column(s): {', '.join(header)[:200]})")
    pos = {h: i for i, h in enumerate(header)}
    width = len(header)
    extras = [h for h in header if h not in set(names) and h]

    def batches() -> Iterator[pa.Table]:
        with fh:
            while True:
                cols: dict[str, list] = {n: [] for n in [*names, *extras]}
                lines, malformed, payloads = [], [], []
                for row in reader:
                    lines.append(reader.line_num)
                    bad = None
                    if len(row) != width:
                        bad = f"expected {width} fields, got {len(row)}"
                    else:
                        joined = "".join(row)
                        if not joined.isascii():
                            try:
                                joined.encode("utf-8")
                            except UnicodeEncodeError:
                                bad = "invalid UTF-8 bytes (not UTF-8 encoded)"
                    if bad:
                        malformed.append(bad)
                        # Undecodable bytes are kept as latin-1 text in the payload: nothing is lost.
                        payloads.append(",".join(row).encode("utf-8", "surrogateescape").decode("latin-1"))
                        for n in cols:
                            cols[n].append(None)
                    else:
                        malformed.append(None)
                        payloads.append(None)
                        for n in cols:
                            cols[n].append(row[pos[n]] if n in pos else None)
                    if len(lines) >= BATCH_ROWS:
                        break
                if not lines:
                    return
                yield pa.table({"_line": pa.array(lines, pa.int64()), "_malformed": pa.array(malformed, pa.string()),
                                "_payload": pa.array(payloads, pa.string()),
                                **{n: pa.array(v, pa.string()) for n, v in cols.items()}})

    return Batches("text", extras, batches())


def _jsonl_batches(spec: SourceSpec, path: str, fs: fsspec.AbstractFileSystem) -> Batches:
    """JSON lines as text batches, streamed by Arrow (one column, no quoting), numbered by position."""
    # Local files go to Arrow by name (it reads and decompresses natively); others through fsspec.
    src = path if _is_local(fs) else fs.open(path, "rb", compression=_compression(path))
    reader = pacsv.open_csv(
        src,
        read_options=pacsv.ReadOptions(column_names=["line"], block_size=16 << 20),
        parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False, escape_char=False,
                                         newlines_in_values=False, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}, strings_can_be_null=False),
    )

    first_rb = next(iter(reader), None)
    extras = _json_extras(spec, first_rb.column(0) if first_rb is not None else pa.array([], pa.string()))

    def blocks() -> Iterator[pa.RecordBatch]:
        if first_rb is not None:
            yield first_rb
            yield from reader

    def batches() -> Iterator[pa.Table]:
        # Several 16 MB blocks per batch: a batch of many chunks lets DuckDB scan it on all cores.
        first, parts, n = 1, [], 0
        for rb in blocks():
            parts.append(pa.RecordBatch.from_arrays(
                [pa.array(range(first + n, first + n + rb.num_rows), pa.int64()), rb.column(0)], ["_line", "line"]))
            n += rb.num_rows
            if n >= BATCH_ROWS:
                yield pa.Table.from_batches(parts)
                first, parts, n = first + n, [], 0
        if parts:
            yield pa.Table.from_batches(parts)

    return Batches("json", extras, batches())


DRIFT_SAMPLE_LINES = 10_000


def _json_extras(spec: SourceSpec, lines: pa.Array) -> list[str]:
    """New top-level fields in the first lines of a JSON-lines file (a sample: scanning every line's keys
    would cost as much as the load itself); they become new raw columns for the whole file."""
    known = {c.path[2:].split(".")[0] for c in spec.columns if c.path} | set(spec.ignore)
    found: dict[str, None] = {}
    for line in lines.slice(0, DRIFT_SAMPLE_LINES).to_pylist():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            found.update(dict.fromkeys(k for k in doc if k not in known))
    return list(found)


def _parquet_batches(spec: SourceSpec, path: str, fs: fsspec.AbstractFileSystem) -> Batches:
    with fs.open(path, "rb") as fh:
        present = pq.ParquetFile(fh).schema_arrow.names
    missing = [k for k in spec.key if k not in present]
    if missing:
        raise IngestError(f"{path}: missing required column(s) {', '.join(missing)}")
    declared = {c.name for c in spec.columns}
    extras = [p for p in present if p not in declared]

    def batches() -> Iterator[pa.Table]:
        first = 1
        with fs.open(path, "rb") as fh:
            for rb in pq.ParquetFile(fh).iter_batches(batch_size=BATCH_ROWS, columns=present):
                t = pa.Table.from_batches([rb])
                yield t.append_column("_line", pa.array(range(first, first + t.num_rows), pa.int64()))
                first += t.num_rows

    return Batches("arrow", extras, batches())


_READERS = {"csv": _csv_batches, "jsonl": _jsonl_batches, "parquet": _parquet_batches}


def load_file(con: duckdb.DuckDBPyConnection, spec: SourceSpec, path: str | Path, max_event_time: datetime,
              fs: fsspec.AbstractFileSystem | None = None) -> FileLoad:
    """Load one landing file idempotently (skip when the same content was loaded before)."""
    fs = fs or fsspec.filesystem("file")
    path = str(path)
    location = path if _is_local(fs) else fs.unstrip_protocol(path)
    size = fs.size(path)
    sha = file_sha256(path, fs)
    day = Path(path).parent.name

    def open_batches() -> Batches:
        if size == 0:
            raise IngestError(f"{location}: empty file (0 bytes)")
        return _READERS[spec.format](spec, path, fs)

    return load_unit(con, spec, location=location, sha=sha, size=size, open_batches=open_batches,
                     max_event_time=max_event_time, origin="landing", batch_label=day)


def landing_days(landing_dir: str | Path, until: date | None = None,
                 fs: fsspec.AbstractFileSystem | None = None) -> list[str]:
    """Dated landing folders (YYYY-MM-DD), oldest first, up to and including `until`."""
    if fs is None:
        fs, root = _fs(landing_dir)
    else:
        root = str(landing_dir)
    if not fs.exists(root):
        return []
    out = []
    for p in sorted(fs.ls(root, detail=False)):
        name = p.rstrip("/").rsplit("/", 1)[-1]
        try:
            d = date.fromisoformat(name)
        except ValueError:
            continue
        if fs.isdir(p) and (until is None or d <= until):
            out.append(p)
    return out


def max_event_time_for(day: str) -> datetime:
    """A file's events may not be later than the end of its day plus one day of clock skew."""
    return datetime.combine(date.fromisoformat(day), datetime.min.time()) + timedelta(days=2)


LANDING_CONN_ID = "beacon_landing"


def landing_from_connection(conn_id: str = LANDING_CONN_ID) -> tuple[str, dict] | None:
    """The landing root and fsspec options from an Airflow connection, or None when it is not defined.

    Extra `url` is the root (e.g. s3://bucket/landing); login/password are the access key and secret;
    other extras (endpoint_url, ...) are passed to the filesystem. Secrets stay in the connection."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        c = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    extra = dict(c.extra_dejson or {})
    url = extra.pop("url", None) or c.host
    if not url:
        raise ValueError(f"connection {conn_id}: set extra 'url' (or host) to the landing root")
    opts = {**({"key": c.login} if c.login else {}), **({"secret": c.password} if c.password else {}), **extra}
    return url, opts


def load_landing(landing_dir: str | Path, until: date | None = None, warehouse: Path | None = None,
                 specs: dict[str, SourceSpec] | None = None, storage_options: dict | None = None) -> LoadSummary:
    """Load every not-yet-loaded file of every landing day up to `until` (the run's data interval)."""
    from beacon.ingest.webhooks import load_webhook_files

    specs = specs or load_specs()
    fs, root = _fs(landing_dir, storage_options)
    loads: list[FileLoad] = []
    with connect(warehouse) as con:
        ensure_raw_schema(con, specs)
        ensure_scores_table(con)
        for day_dir in landing_days(root, until, fs):
            day = day_dir.rstrip("/").rsplit("/", 1)[-1]
            max_ts = max_event_time_for(day)
            for spec in specs.values():
                for path in sorted(fs.glob(f"{day_dir}/{spec.file}*")):  # also .gz
                    loads.append(load_file(con, spec, path, max_ts, fs))
            loads.extend(load_webhook_files(con, specs["email_events"], f"{day_dir}/webhooks", max_ts, fs))
    return LoadSummary(loads)
