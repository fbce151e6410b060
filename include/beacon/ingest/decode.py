"""Decoding landing bytes: which codec a text file is in, binary content named, JSON nesting measured.

Shared by the readers: a byte-order mark wins over the source's declared `encoding`; NUL bytes in a
file not declared UTF-16/32 are binary content (with a guess at what it is, from its magic number).
"""

from __future__ import annotations

import codecs
import io
import re

from beacon.ingest.errors import IngestError

PAYLOAD_HEAD = 1024  # characters of an over-long line kept as its quarantine payload
# Magic numbers, to say what a binary file under a data file's name probably is.
MAGIC = {b"\x1f\x8b": "gzip data (name it .gz)", b"PK\x03\x04": "a ZIP archive", b"PAR1": "Parquet",
         b"%PDF": "a PDF document", b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image",
         b"SQLite format 3": "an SQLite database", b"\x7fELF": "an executable", b"BZh": "bzip2 data",
         b"\xfd7zXZ": "xz data", b"\x28\xb5\x2f\xfd": "zstd data"}
# A JSON string (skipped whole, possessive: no backtracking) or one bracket.
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')


def looks_like(head: bytes, width: int | None = None) -> str | None:
    """What binary content probably is, by its magic number (compared on `width` bytes when given)."""
    return next((v for k, v in MAGIC.items() if head.startswith(k[:width] if width else k)), None)


def text_encoding(head: bytes, declared: str, location: str) -> str:
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
        what = looks_like(head)
        if what is None and head[1::2].count(0) > len(head) // 4:
            what = "UTF-16 text without a byte-order mark (set the source's encoding to utf-16-le or utf-16-be)"
        at = head.index(b"\x00")
        raise IngestError(f"{location}: binary content, not text: NUL byte at offset {at}"
                          + (f"; looks like {what}" if what else ""), "binary_content")
    return declared


class Transcoded(io.RawIOBase):
    """A byte stream in another encoding, read as UTF-8 bytes (undecodable bytes kept as they were)."""

    def __init__(self, raw, codec: str):
        self.reader = codecs.getreader(codec)(raw, errors="surrogateescape")

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self.reader.read(n // 2 if n > 0 else -1).encode("utf-8", "surrogateescape")


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
