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
A file is rewritten to a temporary file beside it and renamed over it (atomic); a file whose format cannot be read
and whose bytes hold a key is reported unclean with the reason.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from beacon.config import Settings
from beacon.fsio import write_durably
from beacon.privacy.match import Keys
from beacon.warehouse import quote_ident, sql_literal

TEXT = {".csv", ".tsv", ".jsonl", ".ndjson", ".log", ".txt", ".html", ".htm", ".md", ".eml", ".xml", ".yml", ".yaml"}
JSON = {".json"}
PARQUET = {".parquet"}
SKIP_NAMES = {".DS_Store"}
STORE = "files"
LARGE = 1 << 20  # bytes: a text file above this is cleaned in DuckDB (`clean_large`, as every Parquet file is)


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


def clean_text(text: str, keys: Keys) -> tuple[str, int]:
    """The text without the lines that hold a key; (new text, lines dropped)."""
    lines = text.splitlines(keepends=True)
    kept = [ln for ln in lines if not keys.tokens_hit(ln)]
    return "".join(kept), len(lines) - len(kept)


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


_RAW_LINES = "delim = chr(31), quote = chr(30), escape = chr(30)"  # control characters no text line here holds


def clean_large(path: Path, keys: Keys, parquet: bool) -> int:
    """A large text file (the lines, as `clean_text`) or a Parquet file (the rows), cleaned in DuckDB: parallel and
    set-based (each line or row is split into tokens once and joined to the keys). Lines are kept in order and written back byte for byte; Parquet
    rows are kept in order with their columns."""
    import duckdb

    from beacon.privacy.match import sql_rowids_hit

    con = duckdb.connect()
    try:
        con.execute("CREATE TEMP TABLE _k AS SELECT unnest($v::VARCHAR[]) AS v", {"v": sorted(keys.values)})
        con.execute("CREATE TEMP TABLE _p AS SELECT unnest($p::VARCHAR[]) AS d", {"p": sorted(keys.phones)})
        if parquet:
            con.execute("CREATE TEMP TABLE _rows AS SELECT * FROM read_parquet($f)", {"f": str(path)})
            cols = [r[0] for r in con.execute("DESCRIBE _rows").fetchall()]
            text = "concat_ws(' | ', " + ", ".join(f"CAST({quote_ident(c)} AS VARCHAR)" for c in cols) + ")"
            out = "FORMAT parquet"
        else:
            con.execute(f"""CREATE TEMP TABLE _rows AS SELECT line FROM read_csv($f, columns = {{'line': 'VARCHAR'}},
                header = false, {_RAW_LINES}, auto_detect = false, strict_mode = false)""", {"f": str(path)})
            text, out = "line", "FORMAT csv, header false, delimiter chr(31), quote chr(30), escape chr(30)"
        con.execute(f"CREATE TEMP TABLE _hit AS {sql_rowids_hit('_rows', text, '_k', '_p')}")
        n = con.execute("SELECT count(*) FROM _hit").fetchall()[0][0]
        if n:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.erase-tmp")
            con.execute(f"""COPY (SELECT * FROM _rows WHERE rowid NOT IN (SELECT rid FROM _hit) ORDER BY rowid)
                TO {sql_literal(str(tmp))} ({out})""")
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        return int(n)
    finally:
        con.close()


def _clean_bytes(raw: bytes, fmt: str, keys: Keys) -> tuple[bytes | None, int]:
    text = raw.decode("utf-8", errors="surrogateescape")
    if fmt in JSON:
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if doc is not None:
            new, n = prune(doc, keys)
            return (json.dumps(new, indent=2, default=str).encode() if n else None), n
    new_text, n = clean_text(text, keys)
    return (new_text.encode("utf-8", errors="surrogateescape") if n else None), n


def clean_file(path: Path, keys: Keys) -> tuple[int, str | None]:
    """Rewrite one file without the person: (rows or lines removed, the reason it could not be cleaned or None)."""
    fmt, gz = file_format(path)
    if fmt in PARQUET and not gz:
        try:
            return clean_large(path, keys, parquet=True), None
        except Exception as exc:  # noqa: BLE001 - an unreadable file is reported, not skipped
            return 0, f"unreadable Parquet: {type(exc).__name__}"
    if fmt in TEXT and not gz and path.stat().st_size > LARGE:
        return clean_large(path, keys, parquet=False), None
    raw = path.read_bytes()
    if gz:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            return 0, f"unreadable gzip: {type(exc).__name__}"
    if fmt in TEXT or fmt in JSON or not _binary(raw):
        data, n = _clean_bytes(raw, fmt, keys)
        if data is not None:
            write_atomically(path, gzip.compress(data) if gz else data)
        return n, None
    if keys.tokens_hit(raw.decode("latin-1")):
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
        before = _sha256(path) if in_landing else ""
        try:
            n, problem = clean_file(path, keys)
        except OSError as exc:
            n, problem = 0, f"{type(exc).__name__}: {exc.strerror or exc}"
        if problem:
            report.fail(store, str(path), problem)
        report.add(store, str(path), n)
        if n and in_landing:
            rewritten.append((str(path), before, _sha256(path)))
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
