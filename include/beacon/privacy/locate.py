"""Find a person's rows: for every tagged column of the catalog, how many rows hold one of their identifiers.

The building block of erasure and access requests (docs/privacy.md): they act on what this finds, so a store is
covered as soon as its columns are tagged.

Matching, per kind of column:
- `identifier`: the exact value (customer ids and the given identifiers: anonymous ids, contact ids, ...);
- `email`: case- and space-insensitive equality with a given identifier;
- `phone`: the same digits (the last 10, so +1 415 555 0100 and (415) 555-0100 match);
- `free_text`: the document contains a customer id or an identifier (case-insensitive);
- `name`, `address`, `birth_date`, `ip`: equality as text (names alone rarely single out a person: a request
  should give the e-mail or an id as well).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from beacon.privacy.catalog import PiiColumn, catalog
from beacon.warehouse import quote_ident, relations, sql_literal


@dataclass(frozen=True)
class Hit:
    """Rows of one tagged column that hold one of the person's values."""

    relation: str  # schema.table
    column: str
    kind: str
    rows: int
    is_view: bool  # a view over other relations: its rows are found again in the tables it reads


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)[-10:]


def _condition(col: PiiColumn, customer_ids: list[str], identifiers: list[str]) -> str | None:
    """A SQL condition true on the rows of `col` that hold one of the values; None when no value applies."""
    text = f"CAST({quote_ident(col.column)} AS VARCHAR)"

    def in_list(expr: str, values: Iterable[str]) -> str | None:
        vals = sorted({v for v in values if v})
        return f"{expr} IN ({', '.join(sql_literal(v) for v in vals)})" if vals else None

    if col.kind == "identifier":
        return in_list(text, [*customer_ids, *identifiers])
    if col.kind == "email":
        return in_list(f"lower(trim({text}))", [v.strip().lower() for v in identifiers])
    if col.kind == "phone":
        digits = [d for d in map(_digits, identifiers) if len(d) >= 7]
        return in_list(f"right(regexp_replace({text}, '[^0-9]', '', 'g'), 10)", digits)
    if col.kind == "free_text":
        vals = sorted({v.strip().lower() for v in [*customer_ids, *identifiers] if v and v.strip()})
        return " OR ".join(f"contains(lower({text}), {sql_literal(v)})" for v in vals) or None
    return in_list(f"trim({text})", [v.strip() for v in identifiers])


def locate(con: duckdb.DuckDBPyConnection, customer_ids: Iterable[str] = (), identifiers: Iterable[str] = (),
           cat: list[PiiColumn] | None = None, include_empty: bool = False) -> list[Hit]:
    """Rows per tagged column that hold one of the person's customer ids or identifiers (e-mails, phones,
    anonymous ids, contact ids). Relations or columns of the catalog that the warehouse lacks are skipped (a
    stage that has not run yet); `include_empty` keeps the columns with no matching row."""
    cids, idents = [str(c) for c in customer_ids], [str(i) for i in identifiers]
    if not cids and not idents:
        raise ValueError("locate needs at least one customer id or identifier")
    cat = catalog() if cat is None else cat
    present = relations(con)
    by_rel: dict[str, list[tuple[PiiColumn, str]]] = {}
    for col in cat:
        rel = present.get(col.relation)
        cond = _condition(col, cids, idents) if rel and col.column in rel[1] else None
        if cond:
            by_rel.setdefault(col.relation, []).append((col, cond))
    hits = []
    for relation, cols in sorted(by_rel.items()):
        schema, _, table = relation.partition(".")
        counts = ", ".join(f"count(*) FILTER (WHERE {cond})" for _, cond in cols)
        row = con.execute(f"SELECT {counts} FROM {quote_ident(schema)}.{quote_ident(table)}").fetchall()[0]
        is_view = present[relation][0] == "VIEW"
        hits += [Hit(relation, col.column, col.kind, int(n), is_view)
                 for (col, _), n in zip(cols, row, strict=True) if n or include_empty]
    return hits
