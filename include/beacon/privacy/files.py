"""Files Beacon wrote that may hold a person: found, read and rewritten without them (docs/privacy.md).

Where: everything under the data folder (landing files and the service's spool, collected events, webhook bodies
and preference records; exports and their manifests; the model registry and its reports; the page snapshot; the
demo's outbox), the exports, landing and registry folders when they are elsewhere, and Airflow's task logs (the
embedded Airflow home's `logs`, `AIRFLOW__LOGGING__BASE_LOG_FOLDER`, and the local stack's `logs`). Left out: the
warehouse file (a store of its own), the generator's ground truth (`truth/`, the answer key of a generated world,
not Beacon's data), dbt's target folder of compiled SQL, and the privacy requests' queue (`<landing>/_privacy`).

How, by format (the person is recognised by `beacon.privacy.match.Keys`):
- text files (CSV, JSON lines, logs, HTML, Markdown, plain text): the lines that hold a key are dropped;
- a JSON document: list items that hold a key are dropped, other values that hold one become null;
- Parquet: the rows whose values hold a key are dropped;
- `.gz`: the same, inside the compression.
Every file is read once for all the people of a batch, in blocks (bounded memory): one compiled matcher of all their
keys (`Keys.matcher`) finds the candidate lines or rows, checked with the exact rule. Only a file that holds one of
them is rewritten, to a temporary file beside it renamed over it (atomic); a file whose format cannot be read and
whose bytes hold a key is reported unclean with the reason.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from beacon.config import Settings
from beacon.fsio import fsync_dir, write_durably
from beacon.privacy.match import Keys

TEXT = {".csv", ".tsv", ".jsonl", ".ndjson", ".log", ".txt", ".html", ".htm", ".md", ".eml", ".xml", ".yml", ".yaml"}
JSON = {".json"}
PARQUET = {".parquet"}
SKIP_NAMES = {".DS_Store"}
STORE = "files"


def log_roots(s: Settings) -> list[Path]:
    """Where Airflow writes task logs for this deployment."""
    roots = []
    if s.airflow_home:
        roots.append(Path(s.airflow_home) / "logs")
    if s.airflow_log_folder:
        roots.append(Path(s.airflow_log_folder))
    if s.stack_dir:
        roots.append(Path(s.stack_dir) / "logs")
    return roots


def roots(s: Settings) -> list[tuple[str, Path]]:
    """(store, folder) pairs to clean: the data folder and the folders Beacon writes outside it, then the logs."""
    data = [s.data_dir, s.landing_dir, s.exports_dir, s.registry_dir]
    out = [(STORE, p) for p in data] + [("airflow_logs", p) for p in log_roots(s)]
    seen: list[Path] = []
    unique = []
    for store, p in out:
        p = Path(p).resolve()
        if p.exists() and not any(p == q or q in p.parents for q in seen):
            seen.append(p)
            unique.append((store, p))
    return unique


def excluded(s: Settings) -> list[Path]:
    """Paths left alone: the warehouse (its own store), the generator's truth, dbt's compiled SQL, and the privacy
    requests' queue (`<landing>/_privacy`: a request's own identifiers until it completes, then deleted; keyed
    hashes in the blocked files)."""
    wh = Path(s.warehouse_path).resolve()
    return [wh, Path(str(wh) + ".wal"), Path(s.truth_dir).resolve(), Path(s.dbt_target_dir).resolve(),
            (Path(s.landing_dir) / "_privacy").resolve()]


def walk(s: Settings) -> Iterator[tuple[str, Path]]:
    """(store, file) for every file to look at."""
    skip = excluded(s)
    for store, root in roots(s):
        for dirpath, dirnames, filenames in os.walk(root):
            d = Path(dirpath)
            dirnames[:] = [n for n in dirnames if not any((d / n) == x for x in skip)]
            for name in filenames:
                p = d / name
                if name in SKIP_NAMES or p in skip or p.is_symlink():
                    continue
                yield store, p


def file_format(p: Path) -> tuple[str, bool]:
    """(format suffix, gzipped)."""
    sfx = [x.lower() for x in p.suffixes]
    gz = bool(sfx) and sfx[-1] == ".gz"
    if gz:
        sfx = sfx[:-1]
    return (sfx[-1] if sfx else ""), gz


def write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half (temp file, fsync, rename, fsync the folder)."""
    write_durably(path, data)


def prune(doc, keys: Keys) -> tuple[object, int]:
    """A JSON document without the person: list items holding a key dropped, other values holding one nulled."""
    if isinstance(doc, list):
        out, n = [], 0
        for item in doc:
            if keys.hits(item):
                n += 1
                continue
            item, m = prune(item, keys)
            out.append(item)
            n += m
        return out, n
    if isinstance(doc, dict):
        out, n = {}, 0
        for k, v in doc.items():
            if isinstance(v, (dict, list)):
                out[k], m = prune(v, keys)
                n += m
            elif keys.hits(v) or keys.tokens_hit(str(k)):
                out[k], n = None, n + 1
            else:
                out[k] = v
        return out, n
    return (None, 1) if keys.hits(doc) else (doc, 0)


# Bytes read at a time: a file larger than this is cleaned block by block, blocks of whole lines (memory bounded
# by this, or by the longest line); the result does not depend on it (a test reads one byte at a time).
LARGE = 8 << 20


def _blocks(fh) -> Iterator[tuple[int, bytes]]:
    """(offset, block) of whole lines (each block ends with a newline, but the last); a line longer than LARGE makes
    one longer block."""
    off, rest, size = 0, bytearray(), max(LARGE, 1)
    while True:
        block = fh.read(size)
        if not block:
            if rest:
                yield off, bytes(rest)
            return
        rest += block
        cut = rest.rfind(b"\n") + 1
        if cut:
            yield off, bytes(rest[:cut])
            off += cut
            del rest[:cut]


def _held_lines(buf: bytes, keys: Keys) -> list[tuple[int, int]]:
    """(start, end) of the lines of `buf` that hold a key: candidates from the matcher, checked with the rule."""
    return [(a, b) for a, b in keys.matcher.spans(buf)
            if keys.tokens_hit(buf[a:b].decode("utf-8", errors="surrogateescape"))]


class _Rewrite:
    """A file's new content, written beside it and renamed over it (readers see the old file or the new one). Opened
    only at the first line to drop, with the bytes before it copied as they are."""

    def __init__(self, path: Path, gz: bool) -> None:
        self.path, self.gz = path, gz
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.erase-tmp")
        self.raw = None
        self.out = None
        self.digest = hashlib.sha256()  # of the new content (plain files: the bytes written)

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.out.write(data)

    def open(self, prefix: int) -> None:
        self.raw = open(self.tmp, "wb")
        self.out = gzip.GzipFile(fileobj=self.raw, mode="wb") if self.gz else self.raw
        with _reader(self.path, self.gz) as src:
            left = prefix
            while left:
                block = src.read(min(max(LARGE, 1), left))
                if not block:
                    break
                self.write(block)
                left -= len(block)

    def commit(self) -> None:
        if self.gz:
            self.out.close()
        self.raw.flush()
        os.fsync(self.raw.fileno())
        self.raw.close()
        os.replace(self.tmp, self.path)
        fsync_dir(self.path.parent)

    def abort(self) -> None:
        if self.raw is not None:
            self.raw.close()
            self.tmp.unlink(missing_ok=True)


def _reader(path: Path, gz: bool):
    return gzip.open(path, "rb") if gz else open(path, "rb")


def clean_stream(path: Path, keys: Keys, gz: bool, digests: dict | None = None) -> int:
    """Drop the lines that hold a key from a text file (inside gzip too), read once in blocks; the file is rewritten
    only when a line goes. The lines dropped. For a plain file, `digests` gets the SHA-256 of the content read
    ("before") and of the one written ("after", when rewritten), so nothing is read again to hash it."""
    dropped, rw, before = 0, _Rewrite(path, gz), hashlib.sha256()
    try:
        with _reader(path, gz) as src:
            for off, buf in _blocks(src):
                before.update(buf)
                held = _held_lines(buf, keys)
                if held and rw.out is None:
                    rw.open(off)
                if rw.out is not None:
                    pos = 0
                    for a, b in held:
                        rw.write(buf[pos:a])
                        pos = b + 1  # the line and its newline
                    rw.write(buf[pos:])
                dropped += len(held)
        if rw.out is not None:
            rw.commit()
    except BaseException:
        rw.abort()
        raise
    if digests is not None and not gz:
        digests["before"] = before.hexdigest()
        if rw.out is not None:
            digests["after"] = rw.digest.hexdigest()
    return dropped


def _column_text(col) -> tuple[list[str | None], object]:
    """A Parquet column as Python strings (None for NULL) and its lower-cased Arrow string array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = col.combine_chunks() if hasattr(col, "combine_chunks") else col
    try:
        text = pc.cast(col, pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        text = pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.large_string())
    return text.to_pylist(), pc.utf8_lower(text)


def _parquet_rows_held(table, keys: Keys) -> set[int]:
    """Rows of an Arrow table whose values hold a key: each column's lower-cased text searched once by the matcher,
    candidate rows checked with the rule on the row's values joined by ` | ` (as one line)."""
    import numpy as np

    cand: set[int] = set()
    texts = []
    for col in table.columns:
        values, low = _column_text(col)
        texts.append(values)
        bufs = low.buffers()
        if bufs[2] is None or not len(low):
            continue
        offsets = np.frombuffer(bufs[1], dtype=np.int64)[low.offset:low.offset + len(low) + 1]
        starts = keys.matcher.starts(bytes(bufs[2])[offsets[0]:offsets[-1]])
        if starts:
            cand |= set((np.searchsorted(offsets, np.asarray(starts) + offsets[0], side="right") - 1).tolist())
    return {r for r in cand if keys.tokens_hit(" | ".join(v[r] for v in texts if v[r] is not None))}


def clean_parquet(path: Path, keys: Keys) -> int:
    """Drop the rows that hold a key from a Parquet file, one row group at a time; rewritten (same schema, rows in
    order) only when a row goes. The rows dropped."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    held = [_parquet_rows_held(pf.read_row_group(i), keys) for i in range(pf.num_row_groups)]
    n = sum(map(len, held))
    if not n:
        return 0
    tmp = path.with_name(f".{path.name}.{os.getpid()}.erase-tmp")
    try:
        with pq.ParquetWriter(tmp, pf.schema_arrow) as w:
            for i, rows in enumerate(held):
                t = pf.read_row_group(i)
                if rows:
                    t = t.filter(pa.array([r not in rows for r in range(t.num_rows)]))
                w.write_table(t)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def _clean_json(path: Path, raw: bytes, gz: bool, keys: Keys) -> int | None:
    """A JSON document without the person (`prune`); None when it is not JSON (then it is cleaned as text)."""
    try:
        doc = json.loads(raw.decode("utf-8", errors="surrogateescape"))
    except ValueError:
        return None
    new, n = prune(doc, keys)
    if n:
        data = json.dumps(new, indent=2, default=str).encode()
        write_atomically(path, gzip.compress(data) if gz else data)
    return n


def clean_file(path: Path, keys: Keys, digests: dict | None = None) -> tuple[int, str | None]:
    """Rewrite one file without the person: (rows or lines removed, the reason it could not be cleaned or None).
    Every file is read once, all the people's keys matched at once (`Keys.matcher`); only a file that holds one of
    them is rewritten. `digests`: see `clean_stream`."""
    fmt, gz = file_format(path)
    if fmt in PARQUET and not gz:
        try:
            return clean_parquet(path, keys), None
        except Exception as exc:  # noqa: BLE001 - an unreadable file is reported, not skipped
            return 0, f"unreadable Parquet: {type(exc).__name__}"
    try:
        with _reader(path, gz) as fh:
            head = fh.read(8192)
    except (OSError, EOFError) as exc:
        if gz:
            return 0, f"unreadable gzip: {type(exc).__name__}"
        raise
    if fmt in JSON:
        raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
        if not keys.matcher.may_hold(raw):
            return 0, None
        n = _clean_json(path, raw, gz, keys)
        if n is not None:
            return n, None
    elif not (fmt in TEXT or not _binary(head)):
        return _check_binary(path, gz, keys)
    try:
        return clean_stream(path, keys, gz, digests), None
    except (OSError, EOFError) as exc:
        if not gz:
            raise
        return 0, f"unreadable gzip: {type(exc).__name__}"


def _check_binary(path: Path, gz: bool, keys: Keys) -> tuple[int, str | None]:
    """A binary file of an unknown format cannot be rewritten: reported when it holds a key."""
    with _reader(path, gz) as fh:
        for _, buf in _blocks(fh):
            if any(keys.tokens_hit(buf[a:b].decode("latin-1")) for a, b in keys.matcher.spans(buf)):
                fmt, _ = file_format(path)
                return 0, f"binary file of an unknown format ({fmt or 'no suffix'}) holds a key"
    return 0, None


def _binary(raw: bytes) -> bool:
    return b"\x00" in raw[:8192]


def erase_files(s: Settings, keys: Keys, report) -> list[tuple[str, str, str]]:
    """Clean every file of `walk(s)`; counts per file and unclean files into the report. Returns the landing files
    rewritten, as (path, SHA-256 before, SHA-256 after), for the load ledger (`record_rewrites`)."""
    if not keys:
        return []
    landing = Path(s.landing_dir).resolve()
    rewritten = []
    for store, path in walk(s):
        in_landing = landing in path.parents
        fmt, gz = file_format(path)
        # A plain text file is hashed while it is read (clean_stream); the others before they may be rewritten.
        pre = _sha256(path) if in_landing and (gz or fmt in PARQUET or fmt in JSON) else ""
        digests: dict = {}
        try:
            n, problem = clean_file(path, keys, digests)
        except OSError as exc:
            n, problem = 0, f"{type(exc).__name__}: {exc.strerror or exc}"
        if problem:
            report.fail(store, str(path), problem)
        report.add(store, str(path), n)
        if n and in_landing:
            rewritten.append((str(path), digests.get("before") or pre, digests.get("after") or _sha256(path)))
    return rewritten


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def record_rewrites(con, rewritten: list[tuple[str, str, str]]) -> int:
    """Tell the load ledger that a rewritten landing file's new content is loaded already (its rows are in the
    warehouse, minus the erased person's): re-running the ingest must not load the rest of the file twice. The
    ledger row of the old content is copied under the new hash, with reason `rewritten_by_erasure`."""
    from beacon.warehouse import table_exists

    if not rewritten or not table_exists(con, "raw", "_load_ledger"):
        return 0
    con.execute("CREATE OR REPLACE TEMP TABLE _erase_rewrites (old_sha VARCHAR, new_sha VARCHAR)")
    con.execute("INSERT INTO _erase_rewrites SELECT unnest($o), unnest($n)",
                {"o": [r[1] for r in rewritten], "n": [r[2] for r in rewritten]})
    return int(con.execute("""INSERT INTO raw._load_ledger (batch_id, source, file, file_sha256, file_bytes, rows_read,
            rows_loaded, rows_quarantined, status, error, loaded_at, reason)
        SELECT l.batch_id, l.source, l.file, r.new_sha, l.file_bytes, l.rows_read, l.rows_loaded, l.rows_quarantined,
               l.status, l.error, l.loaded_at, 'rewritten_by_erasure'
        FROM raw._load_ledger l JOIN _erase_rewrites r ON l.file_sha256 = r.old_sha
        WHERE l.status = 'loaded' AND NOT EXISTS (SELECT 1 FROM raw._load_ledger x
            WHERE x.source = l.source AND x.file_sha256 = r.new_sha AND x.status = 'loaded')""").fetchall()[0][0])
