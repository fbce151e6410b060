"""JSON-lines files as Arrow batches: bytes split on newlines with numpy, every line checked before DuckDB.

A batch gathers several 16 MB chunks (so DuckDB scans it on all cores), numbered by physical line. A
UTF-8 mark is dropped; a UTF-16 file or a source with another `encoding` is transcoded to UTF-8 on the
fly. Lines too long, nested too deep or not UTF-8 are marked with their reason, message and payload.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (imported once here, not inside the first timed load)

from beacon.ingest.batches import Batches, batch_rows
from beacon.ingest.decode import PAYLOAD_HEAD, Transcoded, json_depth_exceeds, text_encoding
from beacon.ingest.errors import IngestError, safe_text
from beacon.ingest.files import compression, head, is_local
from beacon.ingest.spec import Limits, SourceSpec

CHUNK_BYTES = 16 << 20  # bytes read at a time; a batch gathers several chunks
DRIFT_SAMPLE_LINES = 10_000
JSONL_SCHEMA = pa.schema([("_line", pa.int64()), ("line", pa.string()), ("_bad", pa.string()),
                          ("_bad_msg", pa.string()), ("_bad_payload", pa.string())])


def _null_strings(n: int) -> pa.Array:
    return pa.nulls(n, pa.string())


class JsonLineReader:
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
                                          schema=JSONL_SCHEMA)

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
                      f"({m} bytes)", safe_text(data[offs[i]: offs[i] + PAYLOAD_HEAD]) + f"\u2026 ({m} bytes)")
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
                                          schema=JSONL_SCHEMA)

    def blocks(self) -> Iterator[pa.RecordBatch]:
        """Blocks of whole lines. A chunk is used in place (a memoryview, no copy); only the line that
        straddles two chunks is copied, as a small block of its own."""
        lim = self.limits
        carry = b""
        skipping: list | None = None  # [line, head, bytes so far] of an over-long line being skipped
        while True:
            chunk = self.stream.read(CHUNK_BYTES)
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
                skipping = [self.next_line, carry[:PAYLOAD_HEAD], len(carry)]
                carry = b""


def jsonl_batches(spec: SourceSpec, path: str, fs: fsspec.AbstractFileSystem, location: str) -> Batches:
    """JSON lines as batches of several 16 MB chunks (a batch of many chunks lets DuckDB scan it on all
    cores), numbered by physical line. A UTF-8 mark is dropped; a UTF-16 file or a source with another
    `encoding` is transcoded to UTF-8 on the fly."""
    codec = text_encoding(head(fs, path), spec.encoding, location)
    comp = compression(path)
    raw = open(path, "rb") if is_local(fs) and comp is None else fs.open(path, "rb", compression=comp)  # noqa: SIM115
    try:
        if codec == "utf-8-sig":
            raw.read(3)
        stream = raw if codec in ("utf-8", "utf-8-sig") else Transcoded(raw, codec)
        reader = JsonLineReader(stream, spec.limits, location)
        blocks = reader.blocks()
        first = next(blocks, None)
    except BaseException:
        raw.close()
        raise
    extras = json_extras(spec, first) if first is not None else []

    def table(parts: list[pa.RecordBatch]) -> pa.Table:
        t = pa.Table.from_batches(parts)
        if t.column("_bad").null_count == t.num_rows:  # nothing marked: DuckDB gets the plain query
            t = t.drop_columns(["_bad", "_bad_msg", "_bad_payload"])
        return t

    def batches() -> Iterator[pa.Table]:
        size = batch_rows()
        with raw:
            parts, n = [], 0
            for rb in ([first] if first is not None else []):
                parts.append(rb)
                n += rb.num_rows
            for rb in blocks:
                if n >= size:
                    yield table(parts)
                    parts, n = [], 0
                parts.append(rb)
                n += rb.num_rows
            if parts:
                yield table(parts)

    return Batches("json", extras, batches(), encoding=codec)


def json_extras(spec: SourceSpec, block: pa.RecordBatch) -> list[str]:
    """New top-level fields in the first lines of a JSON-lines file (a sample: scanning every line's keys
    would cost as much as the load itself); they become new raw columns for the whole file. Lines the
    reader marked bad (too long, too deep, not UTF-8) are not parsed here either. A key that no JSON path can
    name (empty, or with a NUL character) is not drift: its value stays in the quarantine payload if ever needed."""
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
            found.update(dict.fromkeys(k for k in doc if k not in known and k and "\x00" not in k))
    return list(found)

