"""Keyed hashes of the identifiers of people who asked to be erased or suppressed, and where they are kept.

An identifier is never stored in the clear once a privacy request is accepted: it is kept as
`sha256(<BEACON_PRIVACY_KEY>:<kind>:<normalized value>)` (a salted, keyed hash: without the key nobody can test a
guessed address against it). The same hash is computed in Python (`keyed_hash`) and in SQL (`sql_hash`), so the
service, the ingest, governance and the privacy requests all match the same people. Kinds:

- `email`: trimmed, lower-case (the dbt macro `normalized_email`);
- `phone`: the last 10 digits, when there are at least 7 (any format matches);
- `id`: customer ids, anonymous ids, source record ids (contact, shop customer ids), trimmed;
- `email_sha`: the SHA-256 of the normalized e-mail (the offers routes' lookup key), lower-case hex.

Two stores hold the hashes: the warehouse table `privacy.tombstones` (written by the privacy requests) and the
*blocked files* `<landing>/_privacy/blocked/<request id>.json`, written at acceptance by whoever accepts the
request (`beacon serve`, which never opens the warehouse, or the `beacon privacy` command) and read by the offers
routes, the ingest and governance, so suppression holds from the moment a request is accepted.

Imports nothing of ours but `beacon.fsio` (bottom of the import graph: the ingest and the service use it).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path

from beacon.fsio import write_durably

KINDS = ("email", "phone", "id", "email_sha")
MIN_KEY_CHARS = 16
PRIVACY_DIR = "_privacy"  # under the landing folder; not a date: landing_days() never lists it
_NOT_DIGIT = re.compile(r"[^0-9]")
# What DuckDB's trim() removes (checked code point by code point): the Unicode space separators (Zs).
_TRIMMED = " \u00a0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B)) + "\u202f\u205f\u3000"


def _lower(text: str) -> str:
    """Lower case as DuckDB's lower(), character for character (checked over the whole BMP): Python turns U+0130
    into two characters and a word-final capital sigma into the final form."""
    return text.replace("\u0130", "i").replace("\u03a3", "\u03c3").lower()


def check_key(key: str | None) -> str:
    """The privacy key, or a clear error when it is missing or too short."""
    if not key or len(key) < MIN_KEY_CHARS:
        raise ValueError(f"BEACON_PRIVACY_KEY must be set to a secret of at least {MIN_KEY_CHARS} characters "
                         "(the key of the hashes of erased identifiers; docs/privacy.md)")
    return key


def normalize(kind: str, value: object) -> str | None:
    """The normalized value that is hashed (None: nothing to hash, e.g. a phone with fewer than 7 digits)."""
    if value is None:
        return None
    text = str(value).strip(_TRIMMED)  # as DuckDB's trim(): the Unicode space separators, not tabs or newlines
    if kind == "email":
        return _lower(text) or None
    if kind == "phone":
        digits = _NOT_DIGIT.sub("", text)
        return digits[-10:] if len(digits) >= 7 else None
    if kind == "id":
        return text or None
    if kind == "email_sha":
        return text.lower() or None
    raise ValueError(f"unknown identifier kind {kind!r} (known: {', '.join(KINDS)})")


def keyed_hash(key: str, kind: str, value: object) -> str | None:
    """`sha256(key:kind:normalized)` as lower-case hex, or None when the value normalizes to nothing."""
    norm = normalize(kind, value)
    return None if norm is None else hashlib.sha256(f"{key}:{kind}:{norm}".encode()).hexdigest()


def email_sha(email: str) -> str:
    """The offers routes' lookup key of an e-mail: SHA-256 of the trimmed, lower-case address."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def sql_hash(kind: str, expr: str, key_expr: str) -> str:
    """SQL computing `keyed_hash` of the text expression `expr` (NULL when it normalizes to nothing); `key_expr`
    is SQL yielding the key (e.g. a scalar subquery on a temporary table, so the key is never in the SQL text)."""
    if kind == "email":
        norm = f"nullif(lower(trim(CAST({expr} AS VARCHAR))), '')"
    elif kind == "phone":
        digits = f"regexp_replace(CAST({expr} AS VARCHAR), '[^0-9]', '', 'g')"
        norm = f"CASE WHEN length({digits}) >= 7 THEN right({digits}, 10) END"
    elif kind == "id":
        norm = f"nullif(trim(CAST({expr} AS VARCHAR)), '')"
    else:
        raise ValueError(f"no SQL hash for kind {kind!r}")
    return f"sha256(({key_expr}) || ':{kind}:' || {norm})"


def hashes_of(key: str, identifiers: dict[str, Iterable[str]]) -> list[str]:
    """Every keyed hash of `{kind: values}` (emails also under `email_sha`, as the offers routes look them up)."""
    out = set()
    for kind, values in identifiers.items():
        for v in values:
            out.add(keyed_hash(key, kind, v))
            if kind == "email" and normalize("email", v):
                out.add(keyed_hash(key, "email_sha", email_sha(str(v))))
    out.discard(None)
    return sorted(out)  # type: ignore[arg-type]


def blocked_dir(landing_dir: Path | str) -> Path:
    return Path(landing_dir) / PRIVACY_DIR / "blocked"


def write_blocked(landing_dir: Path | str, request_id: str, hashes: Iterable[str]) -> Path:
    """Record (durably, atomically) the keyed hashes a request blocks; a later call for the request widens it."""
    path = blocked_dir(landing_dir) / f"{request_id}.json"
    old = set(json.loads(path.read_text())["hashes"]) if path.exists() else set()
    doc = {"request_id": request_id, "hashes": sorted(old | set(hashes))}
    return write_durably(path, json.dumps(doc).encode())


def read_blocked(landing_dir: Path | str | None) -> set[str]:
    """Every keyed hash of every blocked file (a local landing folder; a URL has none). A file that does not
    parse is an error naming it: a broken file must never quietly unblock someone."""
    if landing_dir is None or "://" in str(landing_dir):
        return set()
    folder = blocked_dir(landing_dir)
    if not folder.is_dir():
        return set()
    out: set[str] = set()
    for f in sorted(folder.glob("*.json")):
        try:
            out.update(str(h) for h in json.loads(f.read_text())["hashes"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{f}: not a blocked-identifiers file ({exc})") from None
    return out


def blocked_version(landing_dir: Path | str | None) -> tuple:
    """A cheap fingerprint of the blocked files (names, sizes, mtimes): re-read them only when it changes."""
    if landing_dir is None or "://" in str(landing_dir):
        return ()
    folder = blocked_dir(landing_dir)
    if not folder.is_dir():
        return ()
    return tuple(sorted((f.name, st.st_size, st.st_mtime_ns) for f in folder.glob("*.json") for st in [f.stat()]))


KEY_TABLE = "_privacy_key"  # temporary (this connection only; never in the warehouse file)
HASH_TABLE = "_privacy_blocked"


def prepare_match(con, key: str | None, landing_dir: Path | str | None, has_table: bool) -> int:
    """Put the key and every blocked hash (the blocked files and, when `has_table`, `privacy.tombstones`) in two
    temporary tables of `con` for `sql_hash(..., KEY_SQL)` and `IN (SELECT h FROM HASH_TABLE)`; the number of
    hashes (0: nothing to match, the caller may skip the check). Hashes without the key are an error: they could
    not be enforced."""
    hashes = read_blocked(landing_dir)
    n_table = con.execute("SELECT count(*) FROM privacy.tombstones").fetchone()[0] if has_table else 0
    if not hashes and not n_table:
        return 0
    check_key(key)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {KEY_TABLE} AS SELECT ?::VARCHAR AS k", [key])
    con.execute(f"CREATE OR REPLACE TEMP TABLE {HASH_TABLE} (h VARCHAR)")
    if hashes:
        con.execute(f"INSERT INTO {HASH_TABLE} SELECT unnest(?::VARCHAR[])", [sorted(hashes)])
    if n_table:
        con.execute(f"INSERT INTO {HASH_TABLE} SELECT DISTINCT key_hash FROM privacy.tombstones")
    return len(hashes) + n_table


KEY_SQL = f"SELECT k FROM {KEY_TABLE}"


def sql_blocked(columns: Iterable[tuple[str, str]]) -> str:
    """SQL true when one of `(kind, expr)` hashes to a blocked hash (after `prepare_match`); false for none."""
    parts = [f"{sql_hash(kind, expr, KEY_SQL)} IN (SELECT h FROM {HASH_TABLE})" for kind, expr in columns]
    return "(" + " OR ".join(f"coalesce({p}, false)" for p in parts) + ")" if parts else "false"
