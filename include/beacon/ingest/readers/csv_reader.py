"""CSV files as text batches with exact physical line numbers (Python's csv handles quoting).

The encoding comes from a byte-order mark (UTF-8, UTF-16) or the source's `encoding`; undecodable bytes
are kept (surrogateescape) so such a row is quarantined, not silently altered. Lines are read with a
bounded readline (see BoundedLines); the header is matched after trimming and case-folding.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import NamedTuple

import fsspec
import pyarrow as pa

from beacon.ingest.batches import Batches, batch_rows
from beacon.ingest.decode import PAYLOAD_HEAD, text_encoding
from beacon.ingest.errors import IngestError, safe_text
from beacon.ingest.files import compression, head
from beacon.ingest.readers.header import map_header, missing_keys
from beacon.ingest.spec import Limits, SourceSpec

csv.field_size_limit(64 << 20)  # a 1 MB free-text field is data, not an error (lines are capped before csv)


class LineProblem(Exception):
    """One physical line that cannot be read as a row (too long, too many fields): the row is quarantined."""

    def __init__(self, reason: str, message: str, line: int, payload: str):
        super().__init__(message)
        self.reason, self.message, self.line, self.payload = reason, message, line, payload


class CsvRecord(NamedTuple):
    """One row read: its physical line, and either its fields (a good row) or what is wrong with it."""

    line: int
    message: str | None = None  # what is wrong with a bad row
    payload: str | None = None  # a bad row's text, for the quarantine
    reason: str | None = None  # a bad row's named reason (None: 'malformed')
    fields: list[str] | None = None  # a good row's fields, in header order


class BoundedLines:
    """Decoded lines of a text file for `csv.reader`, each read with a bounded readline.

    A line longer than `max_line` characters is skipped in bounded pieces and raised as a LineProblem
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
            raise LineProblem("line_too_long", f"line {self.n} is longer than max_line_bytes "
                              f"{lim.max_line_bytes} ({skipped} characters); skipped", self.n,
                              safe_text(line[:PAYLOAD_HEAD]) + f"\u2026 ({skipped} characters)")
        self._check_total()
        if (d := line.count(self.delimiter)) >= lim.max_columns:  # before csv splits it into d + 1 fields
            raise LineProblem("too_many_columns", f"line {self.n} has {d + 1} fields (by delimiters), more than "
                              f"max_columns {lim.max_columns}", self.n, safe_text(line[:PAYLOAD_HEAD]))
        return line

    def _check_total(self) -> None:
        if self.chars > self.limits.max_file_bytes:  # a decompression bomb, or a huge file behind a small .gz
            raise IngestError(f"{self.location}: more than max_file_bytes {self.limits.max_file_bytes} after "
                              "decompression", "file_too_large", line=self.n)


def _read_header(reader, spec: SourceSpec, codec: str, location: str) -> list[str]:
    """The header row, checked: present, decodable, within max_columns, with every key column."""
    lim = spec.limits
    try:
        header = next(reader, None)
    except LineProblem as p:
        raise IngestError(f"{location}: header: {p.message}", p.reason, line=1) from None
    except UnicodeDecodeError as exc:
        raise IngestError(f"{location}: header is not {codec} text ({exc.reason} at byte {exc.start})",
                          "encoding", line=1) from None
    if header is None:
        raise IngestError(f"{location}: empty file, no header", "empty_file")
    if len(header) > lim.max_columns:
        raise IngestError(f"{location}: header has {len(header)} columns, more than max_columns "
                          f"{lim.max_columns}", "too_many_columns", line=1)
    return header


def _row_problem(row: list[str], width: int, codec: str) -> str | None:
    """What is wrong with a parsed row (field count, undecodable bytes), or None."""
    if len(row) != width:
        return f"expected {width} fields, got {len(row)}"
    joined = "".join(row)
    if not joined.isascii():
        try:
            joined.encode("utf-8")
        except UnicodeEncodeError:
            return "invalid UTF-8 bytes (not UTF-8 encoded)" if codec.startswith("utf-8") \
                else f"bytes that are not {codec} text"
    return None


def _records(reader, src: BoundedLines, width: int, codec: str, location: str,
             max_line_bytes: int) -> Iterator[CsvRecord]:
    """Every row after the header as a CsvRecord; a bad row is marked, never dropped."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except LineProblem as p:
            yield CsvRecord(p.line, p.message, p.payload, p.reason)
            continue
        except csv.Error as exc:  # e.g. a field over the limit: that record only
            yield CsvRecord(src.n, f"CSV error: {safe_text(exc, 200)}")
            continue
        except UnicodeDecodeError as exc:  # e.g. a UTF-16 file cut in the middle of a character
            raise IngestError(f"{location}: not {codec} text near line {src.n + 1} ({exc.reason})",
                              "encoding", line=src.n + 1) from None
        problem = _row_problem(row, width, codec)
        if problem:
            # Undecodable bytes are kept as latin-1 text in the payload: nothing is lost.
            text = ",".join(row)[:max_line_bytes]
            yield CsvRecord(src.n, problem, text.encode("utf-8", "surrogateescape").decode("latin-1"))
        else:
            yield CsvRecord(src.n, fields=row)


def _table(recs: list[CsvRecord], pos: dict[str, int], columns: list[str]) -> pa.Table:
    """One text batch: _line, _malformed, _payload, _bad_reason and one string column per target."""
    cols = {n: pa.array([r.fields[pos[n]] if r.fields is not None and n in pos else None for r in recs],
                        pa.string()) for n in columns}
    return pa.table({"_line": pa.array([r.line for r in recs], pa.int64()),
                     "_malformed": pa.array([r.message for r in recs], pa.string()),
                     "_payload": pa.array([r.payload for r in recs], pa.string()),
                     "_bad_reason": pa.array([r.reason for r in recs], pa.string()), **cols})


def csv_batches(spec: SourceSpec, path: str, fs: fsspec.AbstractFileSystem, location: str) -> Batches:
    """CSV as text batches of batch_rows() rows (see the module's docstring)."""
    codec = text_encoding(head(fs, path), spec.encoding, location)
    raw = fs.open(path, "rb", compression=compression(path))
    fh = io.TextIOWrapper(raw, encoding=codec, errors="surrogateescape", newline="")
    src = BoundedLines(fh, spec.limits, location)
    reader = csv.reader(src)
    try:
        header = _read_header(reader, spec, codec, location)
        targets, mapping = map_header(spec, header, location)
        missing = missing_keys(spec, targets)
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
    records = _records(reader, src, len(header), codec, location, spec.limits.max_line_bytes)

    def batches() -> Iterator[pa.Table]:
        size = batch_rows()
        with fh:
            while True:
                recs = [r for _, r in zip(range(size), records, strict=False)]
                if not recs:
                    return
                yield _table(recs, pos, [*names, *extras])

    return Batches("text", extras, batches(), header_mapping=mapping, encoding=codec)
