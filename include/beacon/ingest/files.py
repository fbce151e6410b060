"""Files of a landing root, local or behind any fsspec URL: sizes without opening, hashes, compression."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import fsspec

from beacon.ingest.errors import IngestError

SNIFF_BYTES = 64 << 10  # bytes looked at for a byte-order mark and binary content


def url_to_fs(root: str | Path, storage_options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and path of a landing root (a local folder or a URL such as s3://bucket/landing)."""
    fs, path = fsspec.core.url_to_fs(str(root), **(storage_options or {}))
    return fs, path


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def file_sha256(path: str | Path, fs: fsspec.AbstractFileSystem | None = None) -> str:
    """SHA-256 of a file's bytes, streamed (the ledger's identity of a delivery)."""
    fs = fs or fsspec.filesystem("file")
    h = hashlib.sha256()
    with fs.open(str(path), "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def compression(path: str) -> str | None:
    return fsspec.utils.infer_compression(path)


def head(fs: fsspec.AbstractFileSystem, path: str, n: int = SNIFF_BYTES) -> bytes:
    """The first `n` bytes of a file, decompressed."""
    with fs.open(path, "rb", compression=compression(path)) as fh:
        return fh.read(n)


def regular_file_size(fs: fsspec.AbstractFileSystem, path: str) -> int:
    """The size of a regular file, found without opening it (a FIFO would block an open; a device never ends).

    Symlinks are followed, so a link to a regular file loads and a link to a device is rejected."""
    if is_local(fs):  # local: stat, never open
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise IngestError(f"{path}: does not exist (a dangling symlink?)", "not_regular_file") from None
        if not stat.S_ISREG(st.st_mode):
            kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                    else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device" if
                    stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
            raise IngestError(f"{path}: is {kind}, not a regular file; not opened", "not_regular_file")
        return st.st_size
    info = fs.info(path)
    if info.get("type") != "file":
        raise IngestError(f"{path}: is a {info.get('type')}, not a file; not opened", "not_regular_file")
    return int(info.get("size") or 0)
