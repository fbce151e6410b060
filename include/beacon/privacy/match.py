"""How a person's values are recognised in a row, a line of a file or a document: one rule for the warehouse (SQL)
and for files (Python), so erasure, access and the stores agree on what "holds the person" means.

A value holds the person when one of its tokens is one of their keys (ids, e-mails, phones in E.164 or as digits),
or a phone-shaped run of digits in it has the same last 10 digits as one of their phones. Tokens are runs of
letters, digits and `_ . + @ -`, lower-cased, with `.` and `-` trimmed at the ends: `"email":"a.b@x.com"`,
`customer_id=cus_1`, `anon-12ab,` and `shop:S123` all yield the value itself. Names are never keys (namesakes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from beacon.privacy.subject import Subject, digits10

TOKEN_RE = r"[a-z0-9_.+@-]+"
TOKEN_TRIM = ".-"
PHONE_RE = r"\+?1?[ .-]?\(?[0-9]{3}\)?[ .-]?[0-9]{3}[ .-]?[0-9]{4}"
_TOKEN = re.compile(TOKEN_RE)
_PHONE = re.compile(r"(?<!\d)" + PHONE_RE + r"(?!\d)")
MIN_KEY = 6  # shorter values are not used as keys: they would match unrelated text (ids here are longer)


@dataclass(frozen=True)
class Keys:
    """The lower-cased keys of one or more people, and their phones' last 10 digits."""

    values: frozenset[str]
    phones: frozenset[str]

    @classmethod
    def of(cls, subjects: Iterable[Subject]) -> Keys:
        values: set[str] = set()
        phones: set[str] = set()
        for s in subjects:
            for v in s.keys():
                v = v.strip().lower()
                if len(v) >= MIN_KEY:
                    values.add(v)
                    # A record key `source:id` also appears as its id alone (the id is a key on its own).
                    values.update(p for p in v.split(":") if len(p) >= MIN_KEY)
            for p in s.phones:
                d = re.sub(r"\D", "", p)
                values.update(x for x in (d, d[-10:]) if len(x) >= 7)
                if len(d) >= 7:
                    phones.add(digits10(p))
        return cls(frozenset(values), frozenset(phones))

    def __bool__(self) -> bool:
        return bool(self.values or self.phones)

    def tokens_hit(self, text: str) -> bool:
        """True when `text` holds one of the keys (see the module doc)."""
        low = text.lower()
        if any(t.strip(TOKEN_TRIM) in self.values for t in _TOKEN.findall(low)):
            return True
        return bool(self.phones) and any(digits10(m) in self.phones for m in _PHONE.findall(text))

    @cached_property
    def matcher(self) -> Matcher:
        """One compiled matcher of every key, to find candidate lines in bytes (`Matcher`)."""
        return Matcher(self)

    def hits(self, value: object) -> bool:
        """`tokens_hit` on any string inside `value` (nested lists and dicts of a JSON document included)."""
        if value is None:
            return False
        if isinstance(value, dict):
            return any(self.hits(k) or self.hits(v) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return any(self.hits(v) for v in value)
        return self.tokens_hit(str(value))


def sql_rowids_hit(relation_sql: str, text_sql: str, keys_table: str, phones_table: str) -> str:
    """A SQL query of the `rowid`s of `relation_sql` (a table) whose text expression holds a key of `keys_table(v)`
    or a phone of `phones_table(d)`: the same rule as `Keys.tokens_hit`, set-based (each value is split into tokens
    once and the tokens are joined to the keys)."""
    return f"""SELECT rid FROM (SELECT rowid AS rid, unnest(regexp_extract_all(lower({text_sql}), '{TOKEN_RE}')) AS tok
            FROM {relation_sql} WHERE {text_sql} IS NOT NULL)
        WHERE trim(tok, '{TOKEN_TRIM}') IN (SELECT v FROM {keys_table})
        UNION
        SELECT rid FROM (SELECT rowid AS rid, unnest(regexp_extract_all({text_sql}, '{PHONE_RE}')) AS ph
            FROM {relation_sql} WHERE {text_sql} IS NOT NULL)
        WHERE right(regexp_replace(ph, '[^0-9]', '', 'g'), 10) IN (SELECT d FROM {phones_table})"""


def sql_key_condition(kind: str, text_sql: str, keys_table: str, phones_table: str) -> str | None:
    """The row's column (as text) holds one of the person's keys: identifiers and e-mails by value, phones by their
    last 10 digits. Other kinds (free text, names, addresses…) have their own rule or never find rows."""
    if kind == "identifier":
        return f"lower({text_sql}) IN (SELECT v FROM {keys_table})"
    if kind == "email":
        return f"lower(trim({text_sql})) IN (SELECT v FROM {keys_table})"
    if kind == "phone":
        return f"right(regexp_replace({text_sql}, '[^0-9]', '', 'g'), 10) IN (SELECT d FROM {phones_table})"
    return None


class Matcher:
    """Every key of a batch of people in one Aho-Corasick automaton over bytes: finds, in one pass over a buffer, the
    places that may hold a key, so a file is read once whatever the number of people. It only narrows the search:
    a candidate is then checked with the exact rule (`Keys.tokens_hit`), so the result is the rule's.

    It never misses what the rule finds: the rule's tokens are substrings of the lower-cased text, so each key is
    searched as such (and as a JSON string would escape it); a phone the rule finds (a phone-shaped run whose last 10
    digits are one of the phones) ends with its last 7 digits as `DDD?DDDD` with `?` one of nothing, space, `.` or
    `-`, and those four spellings are searched too. Lower-casing is ASCII for an ASCII buffer and Unicode's otherwise
    (as the rule's `str.lower`)."""

    def __init__(self, keys: Keys) -> None:
        import ahocorasick_rs

        pats: set[bytes] = set()
        for v in keys.values:
            pats.add(v.encode("utf-8", "surrogateescape"))
            esc = json.dumps(v)[1:-1].lower()
            if esc != v:
                pats.add(esc.encode("ascii"))
        for d in keys.phones:
            if len(d) == 10:
                pats |= {f"{d[3:6]}{sep}{d[6:]}".encode() for sep in ("", " ", ".", "-")}
        pats.discard(b"")
        self._ac = ahocorasick_rs.BytesAhoCorasick(sorted(pats)) if pats else None

    def starts(self, low: bytes) -> list[int]:
        """Where a key may start in `low`, an already lower-cased buffer (`str.lower` encoded as UTF-8)."""
        return [] if self._ac is None else [s for _, s, _ in self._ac.find_matches_as_indexes(low)]

    def spans(self, buf: bytes) -> list[tuple[int, int]]:
        """(start, end) of every line of `buf` (split on `\\n`; end excludes the newline) that may hold a key, in
        order; an empty list when none can."""
        if self._ac is None or not buf:
            return []
        if buf.isascii():
            hits = self.starts(buf.lower())
            starts = sorted({buf.rfind(b"\n", 0, s) + 1 for s in hits})
        else:  # Unicode lower-casing may change lengths: locate lines by their number instead
            low = buf.decode("utf-8", "surrogateescape").lower().encode("utf-8", "surrogateescape")
            hits = self.starts(low)
            lines = sorted({low.count(b"\n", 0, s) for s in hits})
            starts, pos, n = [], 0, 0
            for target in lines:
                while n < target:
                    pos, n = buf.index(b"\n", pos) + 1, n + 1
                starts.append(pos)
        out = []
        for st in starts:
            end = buf.find(b"\n", st)
            out.append((st, len(buf) if end < 0 else end))
        return out

    def may_hold(self, buf: bytes) -> bool:
        """True when `buf` may hold a key (False: it holds none)."""
        return bool(self.spans(buf)) if self._ac is not None else False
