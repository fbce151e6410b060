"""SQL the load engine runs per batch: stage a registered batch as text columns, type and classify it.

A batch `_batch` arrives in one of three shapes (text columns, JSON lines, typed Arrow); `stage_select`
turns it into text columns plus `_line`, `_malformed`, `_payload`, `_bad_reason` and the drifted extras;
`classify_sql` types every column once and gives each row its reason (NULL = good); `message_sql` says
what was wrong with a quarantined row, naming the field.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from beacon.ingest.spec import SQL_TYPES, SourceSpec, column_name
from beacon.tombstones import sql_blocked
from beacon.warehouse import quote_ident, sql_literal

# Raw columns whose values are matched against the erased people's keyed hashes (beacon.tombstones kinds).
_ERASED_KINDS = {"email": "email", "phone": "phone", "identifier": "id"}
ERASED_MESSAGE = "matches a person who asked to be erased or suppressed (privacy request): row not kept"

# Epochs beyond this (year ~2286 in seconds) are not times: NULL, hence wrong_type (and no overflow error).
_EPOCH_MAX = {"epoch": 10**10, "epoch_ms": 10**13}
_EPOCH_MICROS = {"epoch": 1_000_000, "epoch_ms": 1_000}
_SIMPLE_PATH = re.compile(r"^\$(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def typed_sql(col: str, type_: str) -> str:
    """SQL casting one text column to its declared type (NULL when it does not cast).

    Timestamps go through TIMESTAMPTZ: an offset or `Z` is honoured, a naive value is read in the session
    time zone (set to the source's `time_zone` by load_unit); the result is the UTC wall clock. Epochs are
    seconds or milliseconds by their declared type (never guessed), always UTC."""
    v = f"nullif(trim({quote_ident(col)}), '')"
    if type_ in _EPOCH_MAX:
        n = f"try_cast({v} AS BIGINT)"
        return (f"CASE WHEN abs({n}) < {_EPOCH_MAX[type_]} "
                f"THEN make_timestamp({n} * {_EPOCH_MICROS[type_]}) END")
    if type_ == "timestamp":  # the instant's UTC micros, without ICU's per-row zone conversion
        return f"make_timestamp(epoch_us(try_cast({v} AS TIMESTAMPTZ)))"
    return f"try_cast({v} AS {SQL_TYPES[type_]})"


def typed_ref(col: str) -> str:
    """The column holding `col`'s typed value in the classified batch."""
    return quote_ident(f"__t_{col}")


def json_columns(spec: SourceSpec) -> tuple[str, str]:
    """JSON parsing for the declared paths: one `json_transform` into a struct (fast) when every path is a
    plain dotted path, else one `json_extract_string` with the list of paths. A column whose path is `$` is the
    whole line (a `json` column keeping the record as sent). Returns (expression, columns)."""
    cols = [c for c in spec.columns if c.path != "$"]
    whole = "".join(f", line AS {quote_ident(c.name)}" for c in spec.columns if c.path == "$")
    if all(c.path and _SIMPLE_PATH.match(c.path) for c in cols):
        tree: dict = {}
        for c in cols:
            node = tree
            *parents, leaf = c.path[2:].split(".")
            for k in parents:
                node = node.setdefault(k, {})
            node[leaf] = "VARCHAR"
        refs = ", ".join("v" + "".join(f".{quote_ident(k)}" for k in c.path[2:].split("."))
                         + f" AS {quote_ident(c.name)}" for c in cols)
        return f"json_transform(line, {sql_literal(json.dumps(tree))})", refs + whole
    paths = ", ".join(sql_literal(c.path) for c in cols)
    refs = ", ".join(f"v[{i + 1}] AS {quote_ident(c.name)}" for i, c in enumerate(cols))
    return f"json_extract_string(line, [{paths}])", refs + whole


def _json_stage(spec: SourceSpec, present: set[str], extras: list[str]) -> str:
    parse, cols = json_columns(spec)
    ex = "".join(f", CASE WHEN ok THEN json_extract_string(line, {sql_literal('$.' + quote_ident(e))}) END "
                 f"AS {quote_ident(column_name(e))}" for e in extras)
    if "_bad" not in present:  # no line of this batch was marked by the reader: the plain, fastest query
        return f"""SELECT _line, CASE WHEN NOT ok THEN 'line is not a valid JSON object' END AS _malformed,
                          line AS _payload, NULL::VARCHAR AS _bad_reason, {cols}{ex}
                   FROM (SELECT _line, line, v, v IS NOT NULL AND starts_with(ltrim(line), '{{') AS ok
                         FROM (SELECT _line, line, try({parse}) AS v FROM _batch))"""
    # One JSON parse per line: try() turns invalid JSON into NULL (cheaper than json_valid first);
    # the raw line is kept only for quarantined rows. Lines the reader marked bad (too long, too deep,
    # invalid UTF-8) come with their reason, message and payload, and are not parsed.
    return f"""SELECT _line, CASE WHEN _bad IS NOT NULL THEN _bad_msg
                                  WHEN NOT ok THEN 'line is not a valid JSON object' END AS _malformed,
                      CASE WHEN _bad IS NOT NULL THEN _bad_payload ELSE line END
                        AS _payload, _bad AS _bad_reason,
                      {cols}{ex}
               FROM (SELECT _line, line, _bad, _bad_msg, _bad_payload, v,
                            v IS NOT NULL AND starts_with(ltrim(line), '{{') AS ok
                     FROM (SELECT _line, line, _bad, _bad_msg, _bad_payload,
                                  CASE WHEN _bad IS NULL THEN try({parse}) END AS v FROM _batch))"""


def stage_select(spec: SourceSpec, shape: str, present: set[str], extras: list[str]) -> str:
    """SQL turning one registered batch `_batch` into text columns plus _line, _malformed, _payload, extras
    and _bad_reason (the named reason of a row the reader already found bad; NULL = 'malformed')."""
    if shape == "text":
        return "SELECT *" + ("" if "_bad_reason" in present else ", NULL::VARCHAR AS _bad_reason") + " FROM _batch"
    if shape == "json":
        return _json_stage(spec, present, extras)
    cols = ", ".join((f"CAST({quote_ident(c.name)} AS VARCHAR)" if c.name in present else "NULL::VARCHAR")
                     + f" AS {quote_ident(c.name)}" for c in spec.columns)
    ex = "".join(f", CAST({quote_ident(e)} AS VARCHAR) AS {quote_ident(column_name(e))}" for e in extras)
    return (f"SELECT _line, NULL::VARCHAR AS _malformed, NULL::VARCHAR AS _payload, NULL::VARCHAR AS _bad_reason, "
            f"{cols}{ex} FROM _batch")


def _dedupe_sql(spec: SourceSpec) -> str:
    """`_dup`: loaded before (an earlier file, or an earlier batch of this one) or earlier in this batch."""
    if not spec.dedupe:
        return "false AS _dup"
    on = " AND ".join(f"r.{quote_ident(d)} = _src.{quote_ident(d)}" for d in spec.dedupe)
    part = ", ".join(quote_ident(d) for d in spec.dedupe)
    return (f"(EXISTS (SELECT 1 FROM raw.{quote_ident(spec.name)} r WHERE {on}) OR "
            f"row_number() OVER (PARTITION BY {part} ORDER BY _line) > 1) AS _dup")


def erased_sql(spec: SourceSpec) -> str:
    """SQL true on a row whose e-mail, phone or identifier columns match an erased or suppressed person (after
    `beacon.tombstones.prepare_match` on the connection)."""
    return sql_blocked((_ERASED_KINDS[c.pii], quote_ident(c.name)) for c in spec.columns
                       if c.pii in _ERASED_KINDS and c.type != "json")


def classify_sql(spec: SourceSpec, stage: str, max_event_time: datetime, check_erased: bool = False) -> str:
    """SQL typing every staged row once (columns __t_<name>) and giving it a reason (NULL = good).

    The raw payload is carried only for quarantined rows (EXCLUDE keeps good rows' text out of memory), and never
    for a row quarantined as `erased` (its payload is the person's data). `check_erased`: match the rows against
    the erased people (beacon.tombstones.prepare_match ran on the connection)."""
    missing = " OR ".join(f"{typed_ref(k)} IS NULL" for k in spec.key)
    typed = [c for c in spec.columns if c.type != "varchar"]
    bad_type = " OR ".join(f"({typed_ref(c.name)} IS NULL AND nullif(trim({quote_ident(c.name)}), '') IS NOT NULL)"
                           for c in typed) or "false"
    et = spec.event_time
    future = f"{typed_ref(et)} > TIMESTAMP '{max_event_time:%Y-%m-%d %H:%M:%S}'" if et else "false"
    payload = "to_json({" + ", ".join(f"{sql_literal(c.name)}: {quote_ident(c.name)}" for c in spec.columns) \
        + "})::VARCHAR"
    casts = ", ".join(f"{typed_sql(c.name, c.type)} AS {typed_ref(c.name)}" for c in spec.columns)
    casts += ", " + _dedupe_sql(spec)
    casts += f", {erased_sql(spec) if check_erased else 'false'} AS _erased"
    # Text of varchar columns equals their typed value: only the typed copy is kept (less to materialize).
    drop = ", ".join(["_payload", "_bad_reason", "_dup", "_erased",
                      *(quote_ident(c.name) for c in spec.columns if c.type == "varchar")])
    return f"""
      SELECT * EXCLUDE ({drop}),
        CASE WHEN _reason IS NOT NULL AND _reason <> 'erased'
             THEN rtrim(coalesce(_payload, {payload}), chr(10) || chr(13)) END AS _bad_payload
      FROM (
        SELECT *,
          CASE WHEN _erased THEN 'erased'
               WHEN _malformed IS NOT NULL THEN coalesce(_bad_reason, 'malformed')
               WHEN {missing} THEN 'missing_key'
               WHEN {bad_type} THEN 'wrong_type'
               WHEN {future} THEN 'future_timestamp'
               WHEN _dup THEN 'duplicate' END AS _reason
        FROM (SELECT *, {casts} FROM ({stage}) _src)
      )"""


def message_sql(spec: SourceSpec, max_event_time: datetime) -> str:
    """The quarantine message of a classified row, naming the field and what was wrong with it."""
    missing_msg = "concat_ws(', ', " + ", ".join(
        f"CASE WHEN {typed_ref(k)} IS NULL THEN {sql_literal(f'{k} is empty')} END" for k in spec.key) + ")"
    typed = [c for c in spec.columns if c.type != "varchar"]
    type_msg = "concat_ws(', ', " + ", ".join(
        f"CASE WHEN {typed_ref(c.name)} IS NULL AND nullif(trim({quote_ident(c.name)}), '') IS NOT NULL "
        f"THEN {sql_literal(c.name + ': ')} || {quote_ident(c.name)} || {sql_literal(f' is not a {c.type}')} END"
        for c in typed) + ")" if typed else "''"
    et = spec.event_time
    future_msg = (f"{sql_literal(et + ': ')} || {typed_ref(et)} || "
                  f"{sql_literal(f' is after {max_event_time:%Y-%m-%d %H:%M}')}" if et else "''")
    dup_msg = ("'already loaded: ' || " + " || ', ' || ".join(
        f"{sql_literal(d + ' ')} || coalesce({typed_ref(d)}, '')" for d in spec.dedupe) if spec.dedupe else "''")
    return (f"CASE _reason WHEN 'erased' THEN {sql_literal(ERASED_MESSAGE)} WHEN 'duplicate' THEN {dup_msg} WHEN 'missing_key' THEN {missing_msg} "
            f"WHEN 'wrong_type' THEN {type_msg} WHEN 'future_timestamp' THEN {future_msg} ELSE _malformed END")
