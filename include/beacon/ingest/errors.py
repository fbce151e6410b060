"""Ingest errors: the typed error of a unit that cannot be loaded, its named reason and its message.

Every message that reaches the ledger or the quarantine passes `safe_text` first (valid UTF-8, bounded),
so the failure path itself cannot fail on what an input file holds.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

MAX_MESSAGE_CHARS = 2_000  # ledger/quarantine messages are cut here (a message may quote input)


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


def error_reason(exc: BaseException) -> str:
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
