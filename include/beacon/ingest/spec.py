"""Source specs: how each landing file (or API resource) maps onto one raw table (`sources.yml`).

Read and validated once per run: formats, column types, keys, encodings, time zones, limits and the
dedupe columns are checked here, so the load engine only meets valid specs.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from beacon.ingest.errors import IngestError

SPEC_FILE = Path(__file__).with_name("sources.yml")
SQL_TYPES = {"varchar": "VARCHAR", "integer": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE",
             "date": "DATE", "timestamp": "TIMESTAMP", "epoch": "TIMESTAMP", "epoch_ms": "TIMESTAMP", "json": "JSON"}
# Load metadata on every raw row: where it came from (file or page, line), which load, when, which content.
META_COLUMNS = {"_source_file": "VARCHAR", "_line": "BIGINT", "_batch_id": "VARCHAR", "_loaded_at": "TIMESTAMP",
                "_file_sha256": "VARCHAR", "_source": "VARCHAR"}
FORMATS = ("csv", "jsonl", "parquet")
# Kinds of personal data a column may hold (`pii:` of a column; dbt's `meta.pii`; docs/privacy.md). `identifier`:
# an id that singles out a person (customer, anonymous, user, contact ids); `free_text`: a document that may hold
# any of the others (a whole JSON message, a consent proof).
PII_KINDS = ("email", "phone", "name", "address", "birth_date", "ip", "free_text", "identifier")


@dataclass(frozen=True)
class Limits:
    """Caps that keep memory bounded whatever a file holds; each is checked before the work it protects."""

    max_file_bytes: int = 64 << 30  # a file (after decompression) larger than this is rejected
    max_line_bytes: int = 16 << 20  # a longer line (record) is quarantined: line_too_long
    max_json_depth: int = 64  # deeper nesting is quarantined (JSON lines) or rejects the document
    max_columns: int = 1_000  # a header (or Parquet schema) with more columns is rejected

    @classmethod
    def from_dict(cls, d: dict | None, base: Limits | None = None) -> Limits:
        base = base or cls()
        d = dict(d or {})
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise IngestError(f"unknown limit(s) {', '.join(sorted(unknown))}", "config")
        bad = [k for k, v in d.items() if not isinstance(v, int) or isinstance(v, bool) or v <= 0]
        if bad:
            raise IngestError(f"limit(s) {', '.join(bad)} must be positive integers", "config")
        return replace(base, **d)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    path: str | None = None
    pii: str | None = None  # the kind of personal data it holds (PII_KINDS), None when it holds none


@dataclass(frozen=True)
class SourceSpec:
    """How one landing file (or API resource) maps onto one raw table."""

    name: str
    file: str
    format: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    event_time: str | None = None
    ignore: tuple[str, ...] = ()  # fields known and deliberately not loaded (not reported as drift)
    encoding: str = "utf-8"  # used when the file has no byte-order mark
    time_zone: str = "UTC"  # naive timestamps are read in this zone; all are stored in UTC
    limits: Limits = field(default_factory=Limits)
    # varchar columns whose value loads once: a row whose value is already in the raw table (or earlier in
    # the file) is quarantined as `duplicate` (collected events: a client retry re-sends the same messageId)
    dedupe: tuple[str, ...] = ()


def column_name(raw: str) -> str:
    """A safe raw-table column name for a new (drifted) field: lower snake case."""
    return re.sub(r"[^a-z0-9_]+", "_", raw.strip().lower()).strip("_")[:60] or "unnamed"


def _check_encoding(where: str, enc: str) -> str:
    try:
        return codecs.lookup(enc).name
    except LookupError:
        raise IngestError(f"{where}: unknown encoding {enc!r}", "config") from None


def _check_zone(where: str, tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise IngestError(f"{where}: unknown time zone {tz!r} (use an IANA name such as UTC or Europe/Paris)",
                          "config") from None
    return tz


def _columns(path: Path, name: str, s: dict) -> list[Column]:
    cols = []
    for cname, c in s["columns"].items():
        c = {"type": c} if isinstance(c, str) else c
        if c["type"] not in SQL_TYPES:
            raise IngestError(f"{path}: source {name}, column {cname}: unknown type {c['type']!r}")
        unknown = set(c) - {"type", "path", "pii"}
        if unknown:
            raise IngestError(f"{path}: source {name}, column {cname}: unknown field(s) {', '.join(sorted(unknown))}",
                              "config")
        pii = c.get("pii")
        if pii is not None and pii not in PII_KINDS:
            raise IngestError(f"{path}: source {name}, column {cname}: unknown pii kind {pii!r} "
                              f"(one of {', '.join(PII_KINDS)})", "config")
        cols.append(Column(cname, c["type"], c.get("path"), pii))
    return cols


def _source_spec(path: Path, name: str, s: dict, base_enc: str, base_tz: str, base_limits: Limits) -> SourceSpec:
    """One validated source of the YAML (the defaults fill what it does not say)."""
    cols = _columns(path, name, s)
    if s["format"] not in FORMATS:
        raise IngestError(f"{path}: source {name}: unknown format {s['format']!r}")
    names = {c.name for c in cols}
    for k in [*s["key"], *([s["event_time"]] if s.get("event_time") else [])]:
        if k not in names:
            raise IngestError(f"{path}: source {name}: key/event_time column {k!r} is not declared")
    where = f"{path}: source {name}"
    enc = _check_encoding(where, s["encoding"]) if "encoding" in s else base_enc
    if s["format"] == "parquet" and "encoding" in s:
        raise IngestError(f"{where}: `encoding` applies to text formats, not parquet", "config")
    spec = SourceSpec(name, s["file"], s["format"], tuple(s["key"]), tuple(cols), s.get("event_time"),
                      tuple(s.get("ignore", [])), encoding=enc,
                      time_zone=_check_zone(where, s["time_zone"]) if "time_zone" in s else base_tz,
                      limits=Limits.from_dict(s.get("limits"), base_limits),
                      dedupe=tuple(s.get("dedupe", [])))
    bad = [d for d in spec.dedupe if d not in names or next(c for c in cols if c.name == d).type != "varchar"]
    if bad:
        raise IngestError(f"{where}: dedupe column(s) {', '.join(bad)} must be declared varchar columns", "config")
    return spec


def load_specs(path: Path = SPEC_FILE) -> dict[str, SourceSpec]:
    """Read and validate the sources YAML (`defaults:` give encoding, time zone and limits to every source)."""
    doc = yaml.safe_load(Path(path).read_text())
    defaults = doc.get("defaults") or {}
    base_limits = Limits.from_dict(defaults.get("limits"))
    base_enc = _check_encoding(f"{path}: defaults", defaults.get("encoding", "utf-8"))
    base_tz = _check_zone(f"{path}: defaults", defaults.get("time_zone", "UTC"))
    return {name: _source_spec(path, name, s, base_enc, base_tz, base_limits) for name, s in doc["sources"].items()}
