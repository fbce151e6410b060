"""Landing-zone connector: CSV, JSON lines and Parquet files (gzip too) from a local folder or any fsspec URL.

Files sit in dated folders (<root>/<YYYY-MM-DD>/); each file is one unit of the load engine, known by
its content hash, so a re-delivered file loads nothing and a changed file under the same name loads
as a new version. S3 and other object stores go through fsspec (s3fs) with the same code.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (imported once here, not inside the first timed load)
import pyarrow.parquet as pq

from beacon.ingest.core import (
    BATCH_ROWS,
    Batches,
    FileLoad,
    IngestError,
    Limits,
    LoadSummary,
    SourceSpec,
    column_name,
    ensure_raw_schema,
    json_depth_exceeds,
    load_specs,
    load_unit,
    record_failure,
    regular_file_size,
    safe_text,
)
from beacon.warehouse import connect, ensure_scores_table

log = logging.getLogger(__name__)

csv.field_size_limit(64 << 20)  # a 1 MB free-text field is data, not an error (lines are capped before csv)


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


_CHUNK = 16 << 20  # bytes read at a time (JSON lines); a batch gathers several chunks
_SNIFF = 64 << 10  # bytes looked at for a byte-order mark and binary content
_PAYLOAD_HEAD = 1024  # characters of an over-long line kept as its quarantine payload
# Magic numbers, to say what a binary file under a data file's name probably is.
_MAGIC = {b"\x1f\x8b": "gzip data (name it .gz)", b"PK\x03\x04": "a ZIP archive", b"PAR1": "Parquet",
          b"%PDF": "a PDF document", b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image",
          b"SQLite format 3": "an SQLite database", b"\x7fELF": "an executable", b"BZh": "bzip2 data",
          b"\xfd7zXZ": "xz data", b"\x28\xb5\x2f\xfd": "zstd data"}


def _text_encoding(head: bytes, declared: str, location: str) -> str:
    """The codec to read a text file with: its byte-order mark when it has one, else the source's `encoding`.

    Raises IngestError (encoding / binary_content) for UTF-32 and for NUL bytes in a file that is not
    declared or marked UTF-16/32: that is binary content (or UTF-16 without a mark), not text."""
    declared = codecs.lookup(declared).name
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")) and not declared.startswith("utf-32"):
        raise IngestError(f"{location}: UTF-32 byte-order mark: UTF-32 is not read; deliver UTF-8 or UTF-16, or "
                          "set the source's encoding", "encoding")
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # Python's utf-16 reads the mark, picks the byte order and drops it
    if b"\x00" in head and not declared.startswith(("utf-16", "utf-32")):
        what = next((v for k, v in _MAGIC.items() if head.startswith(k)), None)
        if what is None and head[1::2].count(0) > len(head) // 4:
            what = "UTF-16 text without a byte-order mark (set the source's encoding to utf-16-le or utf-16-be)"
        at = head.index(b"\x00")
        raise IngestError(f"{location}: binary content, not text: NUL byte at offset {at}"
                          + (f"; looks like {what}" if what else ""), "binary_content")
    return declared


def _head(fs: fsspec.AbstractFileSystem, path: str, n: int = _SNIFF) -> bytes:
    with fs.open(path, "rb", compression=_compression(path)) as fh:
        return fh.read(n)


class _LineProblem(Exception):
    """One physical line that cannot be read as a row (too long, too many fields): the row is quarantined."""

    def __init__(self, reason: str, message: str, line: int, payload: str):
        super().__init__(message)
        self.reason, self.message, self.line, self.payload = reason, message, line, payload


class _BoundedLines:
    """Decoded lines of a text file for `csv.reader`, each read with a bounded readline.

    A line longer than `max_line` characters is skipped in bounded pieces and raised as a _LineProblem
    (csv.reader passes it through and starts afresh at the next line), so one huge line never sits in
    memory; a line with more delimiters than `max_columns` is raised the same way before csv splits it."""

    def __init__(self, fh: io.TextIOBase, limits: Limits, location: str, delimiter: str = ","):
        self.fh, self.limits, self.location, self.delimiter = fh, limits, location, delimiter
        self.n = 0  # physical lines read so far
        self.chars = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        lim = self.limits
        line = self.fh.readline(lim.max_line_bytes + 1)
        if not line:
            raise StopIteration
        self.n += 1
        self.chars += len(line)
        if len(line) > lim.max_line_bytes and line[-1] not in "\r\n":
            skipped = len(line)
            while True:
                rest = self.fh.readline(1 << 20)
                skipped += len(rest)
                self.chars += len(rest)
                self._check_total()  # also while skipping: a bomb may be one endless line
                if not rest or rest[-1] in "\r\n":
                    break
            raise _LineProblem("line_too_long", f"line {self.n} is longer than max_line_bytes "
                               f"{lim.max_line_bytes} ({skipped} characters); skipped", self.n,
                               safe_text(line[:_PAYLOAD_HEAD]) + f"\u2026 ({skipped} characters)")
        self._check_total()
        if (d := line.count(self.delimiter)) >= lim.max_columns:  # before csv splits it into d + 1 fields
            raise _LineProblem("too_many_columns", f"line {self.n} has {d + 1} fields (by delimiters), more than "
                               f"max_columns {lim.max_columns}", self.n, safe_text(line[:_PAYLOAD_HEAD]))
        return line

    def _check_total(self) -> None:
        if self.chars > self.limits.max_file_bytes:  # a decompression bomb, or a huge file behind a small .gz
            raise IngestError(f"{self.location}: more than max_file_bytes {self.limits.max_file_bytes} after "
                              "decompression", "file_too_large", line=self.n)


def _map_header(spec: SourceSpec, header: list[str], location: str) -> tuple[list[str | None], dict[str, str]]:
    """Each header field's target column: declared columns matched after trimming and case-folding, other
    fields by their safe column name (schema drift). Two fields with one target reject the file."""
    declared = {c.name.casefold(): c.name for c in spec.columns}
    targets: list[str | None] = []
    seen: dict[str, int] = {}
    mapping: dict[str, str] = {}
    for i, h in enumerate(header):
        norm = h.strip().casefold()
        t = declared.get(norm) or (column_name(h) if norm else None)
        targets.append(t)
        if t is None:
            continue
        if t in seen:
            j = seen[t]
            raise IngestError(f"{location}: ambiguous header: column {j + 1} {safe_text(header[j])!r} and column "
                              f"{i + 1} {safe_text(h)!r} both map to {t!r}", "ambiguous_header", line=1, field=t)
        seen[t] = i
        if h != t:
            mapping[safe_text(h)] = t
    return targets, mapping


def _csv_batches(spec: SourceSpec, path: str, fs: fsspec.AbstractFileSystem, location: str) -> Batches:
    """CSV as text batches with exact physical line numbers (Python's csv handles quoting).

    The encoding comes from a byte-order mark (UTF-8, UTF-16) or the source's `encoding`; undecodable bytes
    are kept (surrogateescape) so such a row is quarantined, not silently altered. Lines are read with a
    bounded readline (see _BoundedLines); the header is matched after trimming and case-folding."""
    lim = spec.limits
    codec = _text_encoding(_head(fs, path), spec.encoding, location)
    raw = fs.open(path, "rb", compression=_compression(path))
    fh = io.TextIOWrapper(raw, encoding=codec, errors="surrogateescape", newline="")
    src = _BoundedLines(fh, lim, location)
    reader = csv.reader(src)
    try:
        try:
            header = next(reader, None)
        except _LineProblem as p:
            raise IngestError(f"{location}: header: {p.message}", p.reason, line=1) from None
        except UnicodeDecodeError as exc:
            raise IngestError(f"{location}: header is not {codec} text ({exc.reason} at byte {exc.start})",
                              "encoding", line=1) from None
        if header is None:
            raise IngestError(f"{location}: empty file, no header", "empty_file")
        if len(header) > lim.max_columns:
            raise IngestError(f"{location}: header has {len(header)} columns, more than max_columns "
                              f"{lim.max_columns}", "too_many_columns", line=1)
        targets, mapping = _map_header(spec, header, location)
        missing = [k for k in spec.key if k not in targets]
        if missing:
            shown = safe_text(", ".join(h.strip() for h in header), 200)
            raise IngestError(f"{location}: missing required column(s) {', '.join(missing)} in header "
                              f"(found {len(header)} column(s): {shown})", "missing_column", line=1,
                              field=missing[0])
    except BaseException:
        fh.close()
        raise
    names = [c.name for c in spec.columns]
    pos = {t: i for i, t in enumerate(targets) if t is not None}
    extras = [t for t in targets if t is not None and t not in set(names)]
    width = len(header)

    def batches() -> Iterator[pa.Table]:
        with fh:
            while True:
                # One tuple per row: (line, message of a bad row, payload, named reason, fields of a good row).
                recs: list[tuple[int, str | None, str | None, str | None, list[str] | None]] = []
                while len(recs) < BATCH_ROWS:
                    try:
                        row = next(reader)
                    except StopIteration:
                        break
                    except _LineProblem as p:
                        recs.append((p.line, p.message, p.payload, p.reason, None))
                        continue
                    except csv.Error as exc:  # e.g. a field over the limit: that record only
                        recs.append((src.n, f"CSV error: {safe_text(exc, 200)}", None, None, None))
                        continue
                    except UnicodeDecodeError as exc:  # e.g. a UTF-16 file cut in the middle of a character
                        raise IngestError(f"{location}: not {codec} text near line {src.n + 1} ({exc.reason})",
                                          "encoding", line=src.n + 1) from None
                    bad_msg = None
                    if len(row) != width:
                        bad_msg = f"expected {width} fields, got {len(row)}"
                    else:
                        joined = "".join(row)
                        if not joined.isascii():
                            try:
                                joined.encode("utf-8")
                            except UnicodeEncodeError:
                                bad_msg = "invalid UTF-8 bytes (not UTF-8 encoded)" if codec.startswith(
                                    "utf-8") else f"bytes that are not {codec} text"
                    if bad_msg:
                        # Undecodable bytes are kept as latin-1 text in the payload: nothing is lost.
                        text = ",".join(row)[: lim.max_line_bytes]
                        recs.append((src.n, bad_msg, text.encode("utf-8", "surrogateescape").decode("latin-1"),
                                     None, None))
                    else:
                        recs.append((src.n, None, None, None, row))
                if not recs:
                    return
                cols = {n: pa.array([r[4][pos[n]] if r[4] is not None and n in pos else None for r in recs],
                                    pa.string()) for n in [*names, *extras]}
                yield pa.table({"_line": pa.array([r[0] for r in recs], pa.int64()),
                                "_malformed": pa.array([r[1] for r in recs], pa.string()),
                                "_payload": pa.array([r[2] for r in recs], pa.string()),
                                "_bad_reason": pa.array([r[3] for r in recs], pa.string()), **cols})

    return Batches("text", extras, batches(), header_mapping=mapping, encoding=codec)


class _Transcoded(io.RawIOBase):
    """A byte stream in another encoding, read as UTF-8 bytes (undecodable bytes kept as they were)."""

    def __init__(self, raw, codec: str):
        self.reader = codecs.getreader(codec)(raw, errors="surrogateescape")

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self.reader.read(n // 2 if n > 0 else -1).encode("utf-8", "surrogateescape")


def _null_strings(n: int) -> pa.Array:
    return pa.nulls(n, pa.string())


class _JsonLineReader:
    """JSON lines as Arrow batches: bytes split on newlines with numpy into a zero-copy Arrow array.

    Before DuckDB parses anything, every line is checked: longer than max_line_bytes (an over-long line
    that does not fit a chunk is skipped in bounded pieces, never held whole), nested deeper than
    max_json_depth (a bracket count per line picks candidates, the exact scanner confirms), and valid
    UTF-8 (checked per chunk by Arrow; only a chunk that fails is decoded line by line). Such lines carry
    their reason, message and payload; DuckDB leaves them unparsed."""

    def __init__(self, stream, limits: Limits, location: str):
        self.stream, self.limits, self.location = stream, limits, location
        self.next_line = 1
        self.total = 0
        self._bool, self._u8 = np.empty(0, bool), np.empty(0, np.uint8)

    def _bad_row(self, line: int, reason: str, message: str, payload: str) -> pa.RecordBatch:
        return pa.RecordBatch.from_pydict({"_line": [line], "line": [None], "_bad": [reason], "_bad_msg": [message],
                                           "_bad_payload": [payload]},
                                          schema=_JSONL_SCHEMA)

    def _block(self, data: bytes | memoryview) -> pa.RecordBatch:
        lim = self.limits
        a = np.frombuffer(data, np.uint8)
        n = len(a)
        if len(self._bool) < n:  # scratch buffers, reused: fresh 16 MB arrays per chunk cost page faults
            self._bool, self._u8 = np.empty(n, bool), np.empty(n, np.uint8)
        b, u = self._bool[:n], self._u8[:n]
        ends = np.flatnonzero(np.equal(a, 10, out=b)) + 1
        if n and a[-1] != 10:
            ends = np.append(ends, n)
        k = len(ends)
        wide = n >= 2**31
        offs = np.zeros(k + 1, np.int64 if wide else np.int32)
        offs[1:] = ends
        buf = pa.py_buffer(data)
        arr = pa.Array.from_buffers(pa.large_binary() if wide else pa.binary(), k, [None, pa.py_buffer(offs), buf])
        first = self.next_line
        self.next_line += k
        bad: dict[int, tuple[str, str, str]] = {}
        lengths = np.diff(offs)
        for i in np.flatnonzero(lengths > lim.max_line_bytes + 2).tolist():  # + the \r\n
            m = int(lengths[i])
            bad[i] = ("line_too_long", f"line {first + i} is longer than max_line_bytes {lim.max_line_bytes} "
                      f"({m} bytes)", safe_text(data[offs[i]: offs[i] + _PAYLOAD_HEAD]) + f"\u2026 ({m} bytes)")
        np.bitwise_or(a, 32, out=u)
        opens = np.flatnonzero(np.equal(u, 123, out=b))  # '{' or '[' (0x7B, 0x5B)
        if len(opens) > lim.max_json_depth:
            per_line = np.bincount(np.searchsorted(ends, opens, side="right"), minlength=k)
            for i in np.flatnonzero(per_line > lim.max_json_depth).tolist():
                if i not in bad and json_depth_exceeds(data[offs[i]: offs[i + 1]], lim.max_json_depth):
                    bad[i] = ("json_too_deep", f"line {first + i} nests deeper than max_json_depth "
                              f"{lim.max_json_depth}", safe_text(data[offs[i]: offs[i + 1]], lim.max_line_bytes))
        lines = arr.view(pa.large_string() if wide else pa.string())
        try:
            lines.validate(full=True)  # UTF-8 of the whole chunk, in C++
        except pa.ArrowInvalid:  # invalid UTF-8 somewhere in this chunk: decode its lines one by one
            vals: list[str | None] = []
            for i in range(k):
                line = bytes(data[offs[i]: offs[i + 1]])
                try:
                    vals.append(line.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    vals.append(None)
                    bad.setdefault(i, ("malformed", f"invalid UTF-8 bytes at byte {exc.start} (not UTF-8 encoded)",
                                       safe_text(line.rstrip(b"\r\n"), lim.max_line_bytes)))
            lines = pa.array(vals, pa.string())
        if bad:
            reason, msg, payload = ([None] * k for _ in range(3))
            for i, (r, m, p) in bad.items():
                reason[i], msg[i], payload[i] = r, m, p
            extra = [pa.array(reason, pa.string()), pa.array(msg, pa.string()), pa.array(payload, pa.string())]
        else:
            extra = [_null_strings(k)] * 3
        line_no = pa.array(np.arange(first, first + k, dtype=np.int64))
        return pa.RecordBatch.from_arrays([line_no, lines.cast(pa.string()) if wide else lines, *extra],
                                          schema=_JSONL_SCHEMA)

    def blocks(self) -> Iterator[pa.RecordBatch]:
        """Blocks of whole lines. A chunk is used in place (a memoryview, no copy); only the line that
        straddles two chunks is copied, as a small block of its own."""
        lim = self.limits
        carry = b""
        skipping: list | None = None  # [line, head, bytes so far] of an over-long line being skipped
        while True:
            chunk = self.stream.read(_CHUNK)
            self.total += len(chunk)
            if self.total > lim.max_file_bytes:
                raise IngestError(f"{self.location}: more than max_file_bytes {lim.max_file_bytes} after "
                                  "decompression", "file_too_large", line=self.next_line)
            if not chunk:
                if carry:
                    yield self._block(carry)
                return
            start = 0
            if skipping is not None:
                i = chunk.find(b"\n")
                if i < 0:
                    skipping[2] += len(chunk)
                    continue
                m = skipping[2] + i + 1
                yield self._bad_row(skipping[0], "line_too_long",
                                    f"line {skipping[0]} is longer than max_line_bytes {lim.max_line_bytes} "
                                    f"({m} bytes); skipped", safe_text(skipping[1]) + f"\u2026 ({m} bytes)")
                self.next_line += 1
                skipping, start = None, i + 1
            first_nl = chunk.find(b"\n", start)
            if first_nl < 0:  # no line ends in this chunk
                carry += chunk[start:]
            else:
                if carry:  # the line begun in the previous chunk ends here
                    yield self._block(carry + chunk[start: first_nl + 1])
                    start = first_nl + 1
                cut = chunk.rfind(b"\n") + 1
                if cut > start:
                    yield self._block(memoryview(chunk)[start:cut])
                carry = chunk[max(cut, start):]
            if len(carry) > lim.max_line_bytes + 2:  # the line goes on past the cap: skip it, keep its head
                skipping = [self.next_line, carry[:_PAYLOAD_HEAD], len(carry)]
                carry = b""


_JSONL_SCHEMA = pa.schema([("_line", pa.int64()), ("line", pa.string()), ("_bad", pa.string()),
                           ("_bad_msg", pa.string()), ("_bad_payload", pa.string())])


def _jsonl_batches(spec: SourceSpec, path: str, fs: fsspec.AbstractFileSystem, location: str) -> Batches:
    """JSON lines as batches of several 16 MB chunks (a batch of many chunks lets DuckDB scan it on all
    cores), numbered by physical line. A UTF-8 mark is dropped; a UTF-16 file or a source with another
    `encoding` is transcoded to UTF-8 on the fly."""
    codec = _text_encoding(_head(fs, path), spec.encoding, location)
    comp = _compression(path)
    raw = open(path, "rb") if _is_local(fs) and comp is None else fs.open(path, "rb", compression=comp)  # noqa: SIM115
    try:
        if codec == "utf-8-sig":
            raw.read(3)
        stream = raw if codec in ("utf-8", "utf-8-sig") else _Transcoded(raw, codec)
        reader = _JsonLineReader(stream, spec.limits, location)
        blocks = reader.blocks()
        first = next(blocks, None)
    except BaseException:
        raw.close()
        raise
    extras = _json_extras(spec, first) if first is not None else []

    def table(parts: list[pa.RecordBatch]) -> pa.Table:
        t = pa.Table.from_batches(parts)
        if t.column("_bad").null_count == t.num_rows:  # nothing marked: DuckDB gets the plain query
            t = t.drop_columns(["_bad", "_bad_msg", "_bad_payload"])
        return t

    def batches() -> Iterator[pa.Table]:
        with raw:
            parts, n = [], 0
            for rb in ([first] if first is not None else []):
                parts.append(rb)
                n += rb.num_rows
            for rb in blocks:
                if n >= BATCH_ROWS:
                    yield table(parts)
                    parts, n = [], 0
                parts.append(rb)
                n += rb.num_rows
            if parts:
                yield table(parts)

    return Batches("json", extras, batches(), encoding=codec)


DRIFT_SAMPLE_LINES = 10_000


def _json_extras(spec: SourceSpec, block: pa.RecordBatch) -> list[str]:
    """New top-level fields in the first lines of a JSON-lines file (a sample: scanning every line's keys
    would cost as much as the load itself); they become new raw columns for the whole file. Lines the
    reader marked bad (too long, too deep, not UTF-8) are not parsed here either."""
    known = {c.path[2:].split(".")[0] for c in spec.columns if c.path} | set(spec.ignore)
    found: dict[str, None] = {}
    sample = block.slice(0, DRIFT_SAMPLE_LINES)
    for line, bad in zip(sample.column(1).to_pylist(), sample.column(2).to_pylist(), strict=True):
        if bad is not None or line is None:
            continue
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(doc, dict):
            found.update(dict.fromkeys(k for k in doc if k not in known))
    return list(found)


_PARQUET_MAGIC = b"PAR1"


def _parquet_batches(spec: SourceSpec, path: str, fs: fsspec.AbstractFileSystem, location: str) -> Batches:
    with fs.open(path, "rb") as fh:
        head = fh.read(4)
        fh.seek(-4, os.SEEK_END)
        tail = fh.read(4)
        if head != _PARQUET_MAGIC or tail != _PARQUET_MAGIC:
            what = next((v for k, v in _MAGIC.items() if head.startswith(k[:4])), None)
            raise IngestError(f"{location}: not a Parquet file (no PAR1 magic at both ends"
                              + (f"; looks like {what}" if what and what != "Parquet" else "") + ")",
                              "binary_content")
        fh.seek(0)
        schema = pq.ParquetFile(fh).schema_arrow
    if len(schema.names) > spec.limits.max_columns:
        raise IngestError(f"{location}: {len(schema.names)} columns, more than max_columns "
                          f"{spec.limits.max_columns}", "too_many_columns")
    targets, mapping = _map_header(spec, schema.names, location)
    missing = [k for k in spec.key if k not in targets]
    if missing:
        raise IngestError(f"{location}: missing required column(s) {', '.join(missing)}", "missing_column",
                          field=missing[0])
    declared = {c.name for c in spec.columns}
    extras = [t for t in targets if t is not None and t not in declared]
    names = list(schema.names)

    def batches() -> Iterator[pa.Table]:
        first = 1
        with fs.open(path, "rb") as fh:
            for rb in pq.ParquetFile(fh).iter_batches(batch_size=BATCH_ROWS, columns=names):
                _check_utf8(rb, location, first)
                t = pa.Table.from_batches([rb]).rename_columns([t or f"_ignored_{i}" for i, t in enumerate(targets)])
                yield t.append_column("_line", pa.array(range(first, first + t.num_rows), pa.int64()))
                first += t.num_rows

    return Batches("arrow", extras, batches(), header_mapping=mapping)


def _check_utf8(rb: pa.RecordBatch, location: str, first: int) -> None:
    """Parquet strings are not checked by Arrow on read; invalid UTF-8 would be a fatal error inside
    DuckDB (it invalidates the database). Checked here, naming the column."""
    for name, col in zip(rb.schema.names, rb.columns, strict=True):
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            try:
                col.validate(full=True)
            except pa.ArrowInvalid as exc:
                raise IngestError(f"{location}: column {safe_text(name)!r} holds invalid UTF-8 (rows {first}.."
                                  f"{first + rb.num_rows - 1}): {safe_text(exc, 200)}", "encoding",
                                  field=safe_text(name)) from None


_READERS = {"csv": _csv_batches, "jsonl": _jsonl_batches, "parquet": _parquet_batches}


def load_file(con: duckdb.DuckDBPyConnection, spec: SourceSpec, path: str | Path, max_event_time: datetime,
              fs: fsspec.AbstractFileSystem | None = None) -> FileLoad:
    """Load one landing file idempotently (skip when the same content was loaded before).

    Never raises for a bad file: what is wrong is recorded (ledger, quarantine) and returned as a failed
    FileLoad. A path that is not a regular file, or larger than max_file_bytes, is rejected before it is
    opened (a FIFO would block, a device never ends)."""
    t0 = time.perf_counter()
    fs = fs or fsspec.filesystem("file")
    path = str(path)
    location = path if _is_local(fs) else fs.unstrip_protocol(path)
    day = Path(path).parent.name
    size = None
    try:
        size = regular_file_size(fs, path)
        if size > spec.limits.max_file_bytes:
            raise IngestError(f"{location}: {size} bytes, more than max_file_bytes {spec.limits.max_file_bytes}",
                              "file_too_large")
        sha = file_sha256(path, fs)
    except Exception as exc:
        return record_failure(con, spec, location=location, sha="", size=size, exc=exc,
                              batch_id=f"{spec.name}:{day}:", t0=t0)

    def open_batches() -> Batches:
        if size == 0:
            raise IngestError(f"{location}: empty file (0 bytes)", "empty_file")
        return _READERS[spec.format](spec, path, fs, location)

    return load_unit(con, spec, location=location, sha=sha, size=size, open_batches=open_batches,
                     max_event_time=max_event_time, origin="landing", batch_label=day)


def landing_days(landing_dir: str | Path, until: date | None = None,
                 fs: fsspec.AbstractFileSystem | None = None, since: date | None = None) -> list[str]:
    """Dated landing folders (YYYY-MM-DD), oldest first, from `since` up to and including `until`."""
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
        if fs.isdir(p) and (until is None or d <= until) and (since is None or d >= since):
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
                 specs: dict[str, SourceSpec] | None = None, storage_options: dict | None = None,
                 lock_wait: float | None = None, since: date | None = None,
                 webhooks: bool = True) -> LoadSummary:
    """Load every not-yet-loaded file of every landing day up to `until` (the run's data interval).

    One bad file never stops the run: each is loaded (or rejected) on its own, in its own transaction.
    The warehouse lock is waited for with a bounded back-off (`lock_wait` seconds; 0 = refuse at once)."""
    from beacon.ingest.webhooks import load_webhook_files

    specs = specs or load_specs()
    fs, root = _fs(landing_dir, storage_options)
    loads: list[FileLoad] = []
    wh = _Warehouse(warehouse, lock_wait)
    try:
        con = wh.con
        ensure_raw_schema(con, specs)
        ensure_scores_table(con)
        for day_dir in landing_days(root, until, fs, since):
            day = day_dir.rstrip("/").rsplit("/", 1)[-1]
            max_ts = max_event_time_for(day)
            for spec in specs.values():
                try:
                    paths = sorted(fs.glob(f"{day_dir}/{spec.file}*"))  # also .gz
                except Exception as exc:  # an unreadable day folder: reported, the other days still load
                    loads.append(record_failure(con, spec, location=f"{day_dir}/{spec.file}", sha="", size=None,
                                                exc=exc, batch_id=f"{spec.name}:{day}:"))
                    continue
                for path in paths:
                    fl = load_file(wh.con, spec, path, max_ts, fs)
                    if fl.status == "failed" and wh.reopen_if_broken():  # a fatal DuckDB error: go on anew
                        fl = record_failure(wh.con, spec, location=fl.file, sha=fl.sha256, size=None,
                                            exc=IngestError(fl.error.split(_NOT_RECORDED)[0], fl.reason),
                                            batch_id=fl.batch_id)
                    loads.append(fl)
                con = wh.con
            if not webhooks or "email_events" not in specs:
                continue
            try:
                loads.extend(load_webhook_files(con, specs["email_events"], f"{day_dir}/webhooks", max_ts, fs))
            except Exception as exc:
                loads.append(record_failure(con, specs["email_events"], location=f"{day_dir}/webhooks", sha="",
                                            size=None, exc=exc, batch_id=f"email_events:{day}:"))
    finally:
        wh.close()
    return LoadSummary(loads)


_NOT_RECORDED = " (and the failure could not be recorded"


class _Warehouse:
    """The run's warehouse connection, reopened when a fatal DuckDB error has invalidated it (DuckDB then
    refuses every statement until the database is opened again): one bad file must not stop the run."""

    def __init__(self, path: Path | None, lock_wait: float | None):
        self.path, self.lock_wait = path, lock_wait
        self._open()

    def _open(self) -> None:
        self._cm = connect(self.path, lock_wait=self.lock_wait)
        self.con = self._cm.__enter__()

    def close(self) -> None:
        self._cm.__exit__(None, None, None)

    def reopen_if_broken(self) -> bool:
        try:
            self.con.execute("SELECT 1").fetchall()
            return False
        except Exception:
            log.warning("ingest: the warehouse connection was invalidated by a fatal error; reopening it")
            try:
                self.close()
            except Exception:
                pass
            self._open()
            return True
