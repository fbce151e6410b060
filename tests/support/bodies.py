"""Compressed request bodies for the collection tests: gzip/deflate of JSON, and a gzip bomb built cheaply."""

from __future__ import annotations

import gzip
import struct
import zlib

import orjson


def gzip_json(doc) -> bytes:
    return gzip.compress(orjson.dumps(doc))


def deflate_json(doc, raw: bool = False) -> bytes:
    """HTTP `deflate` as RFC 9110 defines it (zlib-wrapped), or the raw stream some clients send instead."""
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
    return c.compress(orjson.dumps(doc)) + c.flush()


def gzip_bomb(mib: int = 1024) -> bytes:
    """A valid gzip member that decompresses to `mib` MiB of zeros (1 GiB: about 1 MB on the wire).

    One MiB of zeros is compressed once and ended with a full flush (no back-reference crosses it), so the
    same deflate segment can be repeated; the trailer carries the CRC-32 and size of the whole."""
    zeros = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    segment = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + segment * mib + c.flush(zlib.Z_FINISH) + struct.pack("<II", crc, (mib << 20) & 0xFFFFFFFF)


def inflated_size(body: bytes) -> int:
    """How many bytes a gzip body decompresses to, counted in bounded steps (never held whole)."""
    d, n, data = zlib.decompressobj(16 + zlib.MAX_WBITS), 0, body
    while data:
        n += len(d.decompress(data, 1 << 20))
        data = d.unconsumed_tail
    assert d.eof, "the body is not a complete gzip stream"
    return n
