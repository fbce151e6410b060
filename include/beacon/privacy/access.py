"""Access requests: one document with everything Beacon holds about a person (docs/privacy.md "Access requests").

`build_access_document` reads, for the resolved person (`beacon.privacy.subject`):
- `warehouse`: every table and view with a tagged column (the catalog), the rows that hold one of the person's keys
  (the rule of `beacon.privacy.match`, the same one erasure deletes by), each row whole (a score or an order total
  is about the person too), under its `schema.table`, with the tagged columns and their kinds;
- `files`: the lines, JSON values or Parquet rows of the files Beacon wrote (`beacon.privacy.files.walk`) that hold
  a key, under the file's path;
- `consent_history`: the person's consent records, oldest first;
- `messages`: what was sent to them, when, by which audience or journey and destination.

`render_access_html` turns the document into one readable page (every value escaped).
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime

import duckdb

from beacon.config import Settings
from beacon.privacy.catalog import PiiColumn, catalog
from beacon.privacy.files import JSON, PARQUET, TEXT, file_format, walk
from beacon.privacy.match import PHONE_RE, TOKEN_RE, TOKEN_TRIM, Keys, sql_key_condition
from beacon.privacy.subject import Subject
from beacon.warehouse import connect, quote_ident, relations

MAX_ROWS = 50_000  # per relation or file: beyond it the section says `truncated` (a person has far fewer)
KEYS, PHONES = "_access_keys", "_access_phones"
# (relation, order column) of the consent records and of what was sent, read when they exist.
CONSENT = ("marts.dim_consent", "staging.stg_consent__records")
SENT = ("activation.sync_log", "journeys.actions", "marts.fct_email_events")


def _condition(col: PiiColumn) -> str | None:
    text = f"CAST({quote_ident(col.column)} AS VARCHAR)"
    if col.kind in ("identifier", "email", "phone"):
        return sql_key_condition(col.kind, text, KEYS, PHONES)
    if col.kind == "free_text":  # views have no rowid: a correlated test, fine for one person's keys
        return f"""(EXISTS (SELECT 1 FROM (SELECT unnest(regexp_extract_all(lower({text}), '{TOKEN_RE}')) AS tok)
                    WHERE trim(tok, '{TOKEN_TRIM}') IN (SELECT v FROM {KEYS}))
                OR EXISTS (SELECT 1 FROM (SELECT unnest(regexp_extract_all({text}, '{PHONE_RE}')) AS ph)
                    WHERE right(regexp_replace(ph, '[^0-9]', '', 'g'), 10) IN (SELECT d FROM {PHONES})))"""
    return None


def _rows(con: duckdb.DuckDBPyConnection, relation: str, where: str) -> tuple[list[dict], bool]:
    schema, _, table = relation.partition(".")
    df = con.execute(f"SELECT * FROM {quote_ident(schema)}.{quote_ident(table)} WHERE {where} "
                     f"LIMIT {MAX_ROWS + 1}").df()
    rows = json.loads(df.head(MAX_ROWS).to_json(orient="records", date_format="iso", default_handler=str))
    return rows, len(df) > MAX_ROWS


def warehouse_section(con: duckdb.DuckDBPyConnection, subject: Subject,
                      cat: list[PiiColumn] | None = None) -> dict[str, dict]:
    """relation -> {"kind", "tagged": {column: kind}, "rows": [...], "truncated"} for each relation holding the
    person."""
    keys = Keys.of([subject])
    con.execute(f"CREATE OR REPLACE TEMP TABLE {KEYS} AS SELECT unnest($v::VARCHAR[]) AS v", {"v": sorted(keys.values)})
    con.execute(f"CREATE OR REPLACE TEMP TABLE {PHONES} AS SELECT unnest($p::VARCHAR[]) AS d", {"p": sorted(keys.phones)})
    present = relations(con)
    by_rel: dict[str, list[PiiColumn]] = {}
    for col in catalog() if cat is None else cat:
        rel = present.get(col.relation)
        if rel and col.column in rel[1]:
            by_rel.setdefault(col.relation, []).append(col)
    out = {}
    for relation, cols in sorted(by_rel.items()):
        conds = [c for c in map(_condition, cols) if c]
        if not conds:
            continue
        rows, truncated = _rows(con, relation, " OR ".join(f"({c})" for c in conds))
        if rows:
            out[relation] = {"kind": "view" if present[relation][0] == "VIEW" else "table",
                             "tagged": {c.column: c.kind for c in cols}, "rows": rows, "truncated": truncated}
    return out


def _file_values(path, keys: Keys) -> list:
    """The parts of one file that hold a key: lines, JSON values, or Parquet rows."""
    fmt, gz = file_format(path)
    if fmt in PARQUET and not gz:
        import pyarrow.parquet as pq

        return [r for r in pq.read_table(path).to_pylist() if keys.hits(r)][:MAX_ROWS]
    raw = path.read_bytes()
    if gz:
        import gzip

        raw = gzip.decompress(raw)
    if b"\x00" in raw[:8192] and fmt not in TEXT | JSON:
        return ["(binary file holding a key: not readable as text)"] if keys.tokens_hit(raw.decode("latin-1")) else []
    text = raw.decode("utf-8", errors="replace")
    if fmt in JSON:
        try:
            return _json_hits(json.loads(text), keys)
        except ValueError:
            pass
    return [ln.rstrip("\n") for ln in text.splitlines() if keys.tokens_hit(ln)][:MAX_ROWS]


def _json_hits(doc, keys: Keys) -> list:
    """The smallest list items or values of a JSON document that hold a key."""
    if isinstance(doc, list):
        out = []
        for item in doc:
            if keys.hits(item):
                out += _json_hits(item, keys) if isinstance(item, list) else [item]
        return out
    if isinstance(doc, dict):
        out = []
        for k, v in doc.items():
            if isinstance(v, (list, dict)):
                out += _json_hits(v, keys)
            elif keys.hits(v):
                out.append({k: v})
        return out
    return [doc] if keys.hits(doc) else []


def files_section(s: Settings, subject: Subject) -> dict[str, list]:
    """path -> what of the file holds the person."""
    keys = Keys.of([subject])
    out = {}
    for _, path in walk(s):
        try:
            found = _file_values(path, keys)
        except (OSError, ValueError) as exc:
            found = [f"(unreadable: {type(exc).__name__})"] if keys else []
        if found:
            out[str(path)] = found
    return out


def _ordered(section: dict, relations_: tuple[str, ...]) -> dict[str, list]:
    """Rows of the named relations from the warehouse section, oldest first by their first time column."""
    out = {}
    for rel in relations_:
        rows = section.get(rel, {}).get("rows", [])
        if rows:
            tcol = next((c for c in ("recorded_at", "as_of", "logged_at", "at", "acted_at", "occurred_at",
                                     "event_at", "valid_from") if c in rows[0]), None)
            out[rel] = sorted(rows, key=lambda r: str(r.get(tcol) or "")) if tcol else rows
    return out


def build_access_document(settings: Settings, subject: Subject, con: duckdb.DuckDBPyConnection | None = None) -> dict:
    """Everything Beacon holds about the person, each value under its source (see the module doc)."""
    if con is None:
        with connect() as c:
            warehouse = warehouse_section(c, subject)
    else:
        warehouse = warehouse_section(con, subject)
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "subject": subject.to_dict(),
        "consent_history": _ordered(warehouse, CONSENT),
        "messages": _ordered(warehouse, SENT),
        "warehouse": warehouse,
        "files": files_section(settings, subject),
    }


def _table(rows: list) -> str:
    if not rows:
        return "<p>(none)</p>"
    if not all(isinstance(r, dict) for r in rows):
        return "<ul>" + "".join(f"<li><code>{html.escape(str(r))}</code></li>" for r in rows) + "</ul>"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if r.get(c) is None else str(r.get(c)))}</td>"
                                    for c in cols) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_access_html(doc: dict) -> str:
    """A readable HTML page of an access document (one section per source; every value escaped)."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Your data held by Beacon</title><style>"
             "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}</style></head><body>",
             "<h1>Your data held by Beacon</h1>",
             f"<p>Generated {html.escape(doc['generated_at'])}.</p><h2>Who</h2>",
             _table([{k: ", ".join(v) if isinstance(v, list) else json.dumps(v)
                      for k, v in doc["subject"].items()}])]
    for title, key in (("Consent history", "consent_history"), ("What was sent to you", "messages")):
        parts.append(f"<h2>{title}</h2>")
        parts += [f"<h3>{html.escape(src)}</h3>{_table(rows)}" for src, rows in doc[key].items()] or ["<p>(none)</p>"]
    parts.append("<h2>Everything held, by source table</h2>")
    for rel, sec in doc["warehouse"].items():
        tagged = ", ".join(f"{c} ({k})" for c, k in sec["tagged"].items())
        parts.append(f"<h3>{html.escape(rel)}</h3><p>Personal data columns: {html.escape(tagged)}"
                     f"{' (truncated)' if sec['truncated'] else ''}</p>{_table(sec['rows'])}")
    parts.append("<h2>Files</h2>")
    parts += [f"<h3>{html.escape(path)}</h3>{_table(v)}" for path, v in doc["files"].items()] or ["<p>(none)</p>"]
    return "".join(parts) + "</body></html>"
