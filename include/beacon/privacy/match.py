"""How a person's values are recognised in a row, a line of a file or a document: one rule for the warehouse (SQL)
and for files (Python), so erasure, access and the stores agree on what "holds the person" means.

A value holds the person when one of its tokens is one of their keys (ids, e-mails, phones in E.164 or as digits),
or a phone-shaped run of digits in it has the same last 10 digits as one of their phones. Tokens are runs of
letters, digits and `_ . + @ -`, lower-cased, with `.` and `-` trimmed at the ends: `"email":"a.b@x.com"`,
`customer_id=cus_1`, `anon-12ab,` and `shop:S123` all yield the value itself. Names are never keys (namesakes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

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
