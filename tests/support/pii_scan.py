"""An independent scan for personal data: reads real values of every column of every table and view (cast to text)
and says which look personal, without looking at the PII catalog (docs/privacy.md "How the scan test works").

Detectors (each names itself in a finding):
- `email`: an e-mail address anywhere in the value (regular expression, over every row of the column);
- `ip`: an IPv4 address anywhere in the value (over every row), or an IPv6 address as a token (sampled);
- `phone`: a phone-shaped run of digits whose last 10 digits are one of the world's phone numbers;
- `identifier`: a token equal to one of the world's known ids (customer ids, source record ids, anonymous ids,
  user ids);
- `name`: at least NAME_SHARE of the sampled values are a first name, a last name or "first last" of the world;
- `address`: at least ADDRESS_SHARE of the sampled values look like a street address ("12 Oak St");
- `birth_date`: the column is named like a birth date (birth_date, date_of_birth, dob).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import duckdb

from beacon.privacy.scan import EMAIL, PHONE, TOKEN  # the detectors the proof's scan uses too
from beacon.warehouse import quote_ident

IPV4 = r"(^|[^0-9.])(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}([^0-9.]|$)"
STREET = re.compile(r"^\d{1,6} [A-Za-z][A-Za-z .'-]* (St|Street|Ave|Avenue|Rd|Road|Blvd|Boulevard|Dr|Drive|Ln|Lane|"
                    r"Ct|Court|Pl|Place|Ter|Terrace|Pkwy|Parkway|Way)\.?\b", re.IGNORECASE)
BIRTH = re.compile(r"(^|_)(birth_?date|date_of_birth|dob)$")
NAME_SHARE, ADDRESS_SHARE = 0.3, 0.3
SAMPLE = 500  # distinct values read per column for the detectors that compare with the world's values


@dataclass
class World:
    """What the generator made: the values a scan recognises as personal."""

    ids: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)  # the last 10 digits
    first_names: set[str] = field(default_factory=set)  # lower case
    last_names: set[str] = field(default_factory=set)

    def add_phones(self, phones: Iterable[str | None]) -> None:
        for p in phones:
            digits = re.sub(r"\D", "", p or "")
            if len(digits) >= 10:
                self.phones.add(digits[-10:])


@dataclass(frozen=True)
class Finding:
    relation: str
    column: str
    detector: str
    matches: int
    scanned: int

    def __str__(self) -> str:
        return f"{self.relation}.{self.column}: {self.detector} ({self.matches} of {self.scanned} values)"


def _is_ipv6(token: str) -> bool:
    if token.count(":") < 2:
        return False
    try:
        ipaddress.IPv6Address(token)
    except ValueError:
        return False
    return True


def _is_name(v: str, w: World) -> bool:
    parts = v.strip().lower().split()
    return (len(parts) == 1 and (parts[0] in w.first_names or parts[0] in w.last_names)) or \
        (len(parts) == 2 and parts[0] in w.first_names and parts[1] in w.last_names)


def _sampled(values: list[str], column: str, w: World) -> dict[str, int]:
    """Matches per detector among the sampled values of one column."""
    hits = {"phone": 0, "identifier": 0, "name": 0, "address": 0, "ipv6": 0}
    for v in values:
        hits["phone"] += any(re.sub(r"\D", "", m)[-10:] in w.phones for m in PHONE.findall(v))
        hits["identifier"] += any(t in w.ids for t in TOKEN.findall(v))
        hits["name"] += _is_name(v, w)
        hits["address"] += bool(STREET.match(v.strip()))
        hits["ipv6"] += any(_is_ipv6(t.strip("[]\"',")) for t in re.split(r"[\s/\"',;=]+", v))
    return hits


def scan_column(con: duckdb.DuckDBPyConnection, schema: str, table: str, column: str, w: World) -> list[Finding]:
    """What looks personal in one column."""
    rel = f"{quote_ident(schema)}.{quote_ident(table)}"
    text = f"CAST({quote_ident(column)} AS VARCHAR)"
    where, name = f"{schema}.{table}", column
    total, emails, ips = con.execute(f"""SELECT count(*), count(*) FILTER (WHERE regexp_matches(v, '{EMAIL}')),
        count(*) FILTER (WHERE regexp_matches(v, '{IPV4}'))
        FROM (SELECT {text} AS v FROM {rel} WHERE {quote_ident(column)} IS NOT NULL)""").fetchall()[0]
    values = [r[0] for r in con.execute(f"""SELECT v FROM (SELECT DISTINCT {text} AS v FROM {rel}
        WHERE {quote_ident(column)} IS NOT NULL) USING SAMPLE reservoir({SAMPLE} ROWS) REPEATABLE (7)""").fetchall()]
    out = []
    if emails:
        out.append(Finding(where, name, "email", emails, total))
    if ips:
        out.append(Finding(where, name, "ip", ips, total))
    if BIRTH.search(column.lower()):
        out.append(Finding(where, name, "birth_date", total, total))
    hits = _sampled(values, column, w)
    n = len(values)
    for det in ("phone", "identifier"):
        if hits[det]:
            out.append(Finding(where, name, det, hits[det], n))
    if hits["ipv6"]:
        out.append(Finding(where, name, "ip", hits["ipv6"], n))
    if n >= 3 and hits["name"] >= NAME_SHARE * n:
        out.append(Finding(where, name, "name", hits["name"], n))
    if n >= 3 and hits["address"] >= ADDRESS_SHARE * n:
        out.append(Finding(where, name, "address", hits["address"], n))
    return out


def columns(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """(schema, table, column) of every table and view of the warehouse (DuckDB's own catalogs left out)."""
    return [tuple(r) for r in con.execute("""SELECT table_schema, table_name, column_name
        FROM information_schema.columns WHERE table_catalog = current_database()
          AND table_schema NOT IN ('information_schema', 'pg_catalog')
        ORDER BY 1, 2, ordinal_position""").fetchall()]


def scan(con: duckdb.DuckDBPyConnection, w: World) -> list[Finding]:
    """Every finding of every column of every table and view."""
    return [f for s, t, c in columns(con) for f in scan_column(con, s, t, c, w)]
