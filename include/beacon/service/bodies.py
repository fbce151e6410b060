"""Request bodies for collection: `Content-Encoding` (gzip, deflate) decoded while the body streams in.

Tracking libraries compress their batches (RudderStack's Python library gzips every batch by default,
Segment's does with `gzip=True`). The size limit applies to the *decompressed* stream as it is produced:
zlib is asked for at most `STEP` bytes per call, so a body that inflates past the limit (a zip bomb) is
refused with 413 after at most limit + STEP bytes were ever held, whatever it would expand to. The wire
bytes are held to the same limit. An unknown coding is 415 with `Accept-Encoding` naming what is accepted
(RFC 9110 section 15.5.16); a truncated or corrupt stream is 400 `malformed_body`.
"""

from __future__ import annotations

import zlib

from starlette.requests import Request

CODINGS = ("gzip", "deflate")  # besides identity; x-gzip is gzip's old name (RFC 9110 section 8.4.1.3)
ACCEPT_ENCODING = "gzip, deflate, identity"
STEP = 64 << 10  # the most zlib may produce per call: the memory a bomb gets beyond the limit itself


class PayloadError(Exception):
    """A request refused with a status, an error code and a detail (a message, or a list of {field, message})."""

    def __init__(self, status: int, error: str, detail: list[dict] | str, headers: dict[str, str] | None = None):
        super().__init__(error)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


def content_coding(header: str | None) -> str | None:
    """The one content coding a body carries (None for identity), or 415 for anything else."""
    codings = [c.strip().lower() for c in (header or "").split(",")]
    codings = ["gzip" if c == "x-gzip" else c for c in codings if c and c != "identity"]
    if not codings:
        return None
    if len(codings) == 1 and codings[0] in CODINGS:
        return codings[0]
    raise PayloadError(415, "unsupported_encoding", f"Content-Encoding {header!r} is not supported; send "
                       f"{ACCEPT_ENCODING}", {"Accept-Encoding": ACCEPT_ENCODING})


class Inflater:
    """Incremental gzip/deflate decoder whose total output is capped at `limit` bytes (413 past it)."""

    def __init__(self, coding: str, limit: int):
        self.coding, self.limit = coding, limit
        self.size = 0
        self._head = b""  # deflate: the first two bytes decide zlib-wrapped (RFC 1950) or raw (RFC 1951)
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS) if coding == "gzip" else None

    def _start_deflate(self) -> None:
        b0, b1 = self._head[0], self._head[1]
        wrapped = b0 & 0x0F == 8 and (b0 << 8 | b1) % 31 == 0  # RFC 1950 header: CM=8 and FCHECK
        self._d = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)

    def feed(self, data: bytes) -> bytes:
        """The bytes `data` decodes to so far; PayloadError 413 past the limit, 400 when the stream is invalid."""
        if self._d is None:
            self._head += data
            if len(self._head) < 2:
                return b""
            self._start_deflate()
            data, self._head = self._head, b""
        out = bytearray()
        try:
            while data:
                if self._d.eof:  # gzip allows several members one after another; deflate has one stream
                    if self.coding != "gzip":
                        raise self._bad("data after the end of the deflate stream")
                    self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                piece = self._d.decompress(data, STEP)
                self.size += len(piece)
                if self.size > self.limit:
                    raise PayloadError(413, "body_too_large", f"the {self.coding} body decompresses to more than "
                                       f"the limit of {self.limit} bytes")
                out += piece
                data = self._d.unused_data if self._d.eof else self._d.unconsumed_tail
        except zlib.error as exc:
            raise self._bad(str(exc)) from None
        return bytes(out)

    def finish(self) -> None:
        """400 unless the stream ended where a complete one ends (a truncated body is refused, not half-read)."""
        if self._d is None or not self._d.eof:
            raise self._bad("the stream is truncated (it ends before its end marker)")

    def _bad(self, why: str) -> PayloadError:
        return PayloadError(400, "malformed_body", f"the body is not valid {self.coding}: {why}")


async def read_decoded(request: Request, limit: int) -> bytes:
    """The body, decoded per its Content-Encoding; refused as soon as the wire or the decoded bytes pass `limit`."""
    coding = content_coding(request.headers.get("content-encoding"))
    cl = request.headers.get("content-length")
    if cl is not None and cl.isdigit() and int(cl) > limit:
        raise PayloadError(413, "body_too_large", f"{cl} bytes, more than the limit of {limit}")
    inflater = Inflater(coding, limit) if coding else None
    chunks, wire = [], 0
    async for chunk in request.stream():
        wire += len(chunk)
        if wire > limit:
            raise PayloadError(413, "body_too_large", f"more than the limit of {limit} bytes")
        chunks.append(inflater.feed(chunk) if inflater else chunk)
    if inflater:
        inflater.finish()
    return b"".join(chunks)
