"""Who a privacy request is about: the identifiers given, resolved through identity resolution to every record of the
person (docs/privacy.md "Who a request covers").

A request names a person by one or more of `email`, `phone`, `customer_id`, `anonymous_id`. `resolve_subject` follows
the identity log to all of them:

1. the source records (CRM contacts, shop customers) whose e-mail (as recorded or canonical) or phone (same last 10
   digits) is a given one, and the web visitors whose anonymous id is given, give customer ids;
2. every customer id those records ever had (the identity log keeps `merged` events: an id that was merged into
   another is the same person) and every record that belongs to one of them now or belonged to one before;
3. everything those records hold (record ids, e-mails as recorded and canonical, phones, names) and every anonymous
   id linked to the person (identify and alias calls, web events carrying their user id or e-mail).

Names are collected so that erasure can blank them and an access request can show them, never to find rows: a name
alone does not single out a person (namesakes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import duckdb

from beacon.warehouse import quote_ident, relations

IDENTIFIER_KINDS = ("email", "phone", "customer_id", "anonymous_id")
MAX_VALUES = 100  # identifiers per kind in one request: a person has a few, not thousands

# Where identity resolution keeps its state (dbt models, docs/identity.md).
RECORDS = "intermediate.int_customer_records_unioned"
EVENTS = "intermediate.int_identity_events"
WEB_IDS = "intermediate.int_web_identities_mapped"
# Raw person records: (relation, record id column, source name in the identity log).
RAW_PEOPLE = (("raw.crm_contacts", "contact_id", "crm"), ("raw.shop_customers", "customer_id", "shop"))
# Raw event tables whose rows carry an anonymous id, a user id (the shop customer id) and a traits e-mail.
RAW_EVENTS = ("raw.web_events", "raw.collected_events")


class SubjectError(ValueError):
    """A request's identifiers are unusable (unknown kind, empty, too many)."""


@dataclass(frozen=True)
class Subject:
    """Every value that identifies one person in Beacon's stores."""

    given: dict[str, tuple[str, ...]]
    customer_ids: tuple[str, ...] = ()
    record_keys: tuple[str, ...] = ()  # source:record_id
    record_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()  # lower-cased, trimmed; as recorded and canonical
    phones: tuple[str, ...] = ()  # E.164 and as recorded
    names: tuple[str, ...] = ()  # first and last names (never used to find rows)
    anonymous_ids: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def found(self) -> bool:
        """True when identity resolution knows the person (a customer id or a source record)."""
        return bool(self.customer_ids or self.record_keys)

    def keys(self) -> list[str]:
        """The values that single the person out (ids, e-mails, phones), to find their rows and lines; not names."""
        return sorted({*self.customer_ids, *self.record_keys, *self.record_ids, *self.emails, *self.phones,
                       *self.anonymous_ids})

    def phone_digits(self) -> list[str]:
        """The last 10 digits of each phone (how phones are compared: any format)."""
        return sorted({d for d in map(digits10, self.phones) if len(d) >= 7})

    def to_dict(self) -> dict:
        return {"given": {k: list(v) for k, v in self.given.items()}, "customer_ids": list(self.customer_ids),
                "record_keys": list(self.record_keys), "record_ids": list(self.record_ids),
                "emails": list(self.emails), "phones": list(self.phones), "names": list(self.names),
                "anonymous_ids": list(self.anonymous_ids), "notes": list(self.notes)}


def digits10(value: str) -> str:
    """The last 10 digits of a phone number in any format."""
    return re.sub(r"\D", "", value or "")[-10:]


def canonical_email(value: str) -> str | None:
    """The canonical form identity resolution matches on (the `canonical_email` dbt macro): lower case, `+tag`
    dropped, and for gmail.com / googlemail.com the dots of the local part dropped and the domain gmail.com."""
    e = (value or "").strip().lower()
    if e.count("@") != 1:
        return None
    local, domain = e.split("@")
    if not local or "." not in domain:
        return None
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        return local.replace(".", "") + "@gmail.com"
    return f"{local}@{domain}"


def check_identifiers(identifiers: dict[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """The identifiers, trimmed and de-duplicated; SubjectError naming the kind or value that is unusable."""
    if not isinstance(identifiers, dict):
        raise SubjectError("identifiers must be a mapping of kind -> list of values")
    out: dict[str, tuple[str, ...]] = {}
    for kind, values in identifiers.items():
        if kind not in IDENTIFIER_KINDS:
            raise SubjectError(f"unknown identifier kind {kind!r} (one of {', '.join(IDENTIFIER_KINDS)})")
        if isinstance(values, str):
            values = [values]
        vals = sorted({str(v).strip() for v in values if v is not None and str(v).strip()})
        if len(vals) > MAX_VALUES:
            raise SubjectError(f"{kind}: {len(vals)} values; at most {MAX_VALUES} per request")
        if kind == "email" and any("@" not in v for v in vals):
            raise SubjectError(f"email: {next(v for v in vals if '@' not in v)!r} is not an e-mail address")
        if kind == "phone" and any(len(digits10(v)) < 7 for v in vals):
            raise SubjectError(f"phone: {next(v for v in vals if len(digits10(v)) < 7)!r} has fewer than 7 digits")
        if vals:
            out[kind] = tuple(vals)
    if not out:
        raise SubjectError("a request needs at least one identifier: email, phone, customer_id or anonymous_id")
    return out


def _values(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> set[str]:
    return {str(r[0]) for r in con.execute(sql, params or []).fetchall() if r[0] is not None and str(r[0]).strip()}


def _phone_sql(col: str) -> str:
    return f"right(regexp_replace(CAST({col} AS VARCHAR), '[^0-9]', '', 'g'), 10)"


def _seed_records(con, have, given: dict[str, tuple[str, ...]], pinned: set[str]) -> set[str]:
    """Record keys whose e-mail or phone is a given one. A value shared by the records of several customers (a
    household's phone or mailbox) is ambiguous: it counts only for the customers another given identifier names
    (`pinned`), and with none, the request is refused (SubjectError) rather than erase someone else."""
    if RECORDS not in have or "intermediate.int_customer_records_resolved" not in have:
        return set()
    keys: set[str] = set()
    for kind in ("email", "phone"):
        for value in given.get(kind, ()):
            if kind == "email":
                vals = sorted({value.lower(), canonical_email(value) or value.lower()})
                cond = "lower(trim(u.email)) IN (SELECT unnest($v)) OR u.email_canonical IN (SELECT unnest($v))"
            else:
                vals, cond = [digits10(value)], f"{_phone_sql('u.phone_e164')} IN (SELECT unnest($v))"
            rows = con.execute(f"""SELECT u.record_key, r.customer_id FROM {RECORDS} u
                LEFT JOIN intermediate.int_customer_records_resolved r USING (record_key) WHERE {cond}""",
                               {"v": vals}).fetchall()
            owners = {c for _, c in rows if c}
            if len(owners) > 1:
                if not owners & pinned:
                    raise SubjectError(f"{kind} {value!r} belongs to {len(owners)} different customers; name the "
                                       "person by another identifier too (an e-mail, phone or customer id of theirs)")
                rows = [(k, c) for k, c in rows if c in pinned]
            else:
                pinned |= owners  # an e-mail of one customer pins the phone given with it
            keys |= {k for k, _ in rows}
    return keys


def _expand(con, have, cids: set[str], keys: set[str]) -> tuple[set[str], set[str]]:
    """Customer ids and record keys closed under the identity log: every id a record of the person ever had, and
    every record that ever belonged to one of those ids (two rounds reach merges of merges)."""
    if EVENTS not in have:
        return cids, keys
    for _ in range(3):
        more_keys = _values(con, f"""SELECT record_key FROM {EVENTS} WHERE customer_id IN (SELECT unnest($c))
            OR previous_customer_id IN (SELECT unnest($c))""", {"c": sorted(cids)}) if cids else set()
        all_keys = keys | more_keys
        more_cids = set()
        if all_keys:
            rows = con.execute(f"""SELECT customer_id, previous_customer_id FROM {EVENTS}
                WHERE record_key IN (SELECT unnest($k))""", {"k": sorted(all_keys)}).fetchall()
            more_cids = {str(v) for r in rows for v in r if v}
        if all_keys == keys and more_cids <= cids:
            break
        keys, cids = all_keys, cids | more_cids
    return cids, keys


def _record_values(con, have, keys: set[str]) -> tuple[set[str], set[str], set[str], set[str]]:
    """(record ids, e-mails, phones, names) of the records, from the unioned records and the raw rows."""
    ids, emails, phones, names = set(), set(), set(), set()
    if not keys:
        return ids, emails, phones, names
    if RECORDS in have:
        for rid, em, canon, ph, fn, ln in con.execute(f"""SELECT record_id, email, email_canonical, phone_e164,
                first_name, last_name FROM {RECORDS} WHERE record_key IN (SELECT unnest($k))""",
                                                      {"k": sorted(keys)}).fetchall():
            ids.add(str(rid))
            emails |= {v.strip().lower() for v in (em, canon) if v and v.strip()}
            phones |= {v for v in (ph,) if v}
            names |= {v.strip() for v in (fn, ln) if v and v.strip()}
    by_source: dict[str, list[str]] = {}
    for k in keys:
        src, _, rid = k.partition(":")
        by_source.setdefault(src, []).append(rid)
        ids.add(rid)
    for relation, id_col, source in RAW_PEOPLE:
        rel = have.get(relation)
        if not rel or id_col not in rel[1] or source not in by_source:
            continue
        cols = [c for c in ("email", "phone", "first_name", "last_name") if c in rel[1]]
        schema, _, table = relation.partition(".")
        for row in con.execute(f"""SELECT {', '.join(quote_ident(c) for c in cols)} FROM
                {quote_ident(schema)}.{quote_ident(table)} WHERE {quote_ident(id_col)} IN (SELECT unnest($r))""",
                               {"r": by_source[source]}).fetchall():
            for c, v in zip(cols, row, strict=True):
                if v and str(v).strip():
                    {"email": emails, "phone": phones}.get(c, names).add(str(v).strip().lower()
                                                                          if c == "email" else str(v).strip())
    return ids, emails, phones, names


def _anonymous_ids(con, have, cids: set[str], record_ids: set[str], emails: set[str]) -> set[str]:
    """Anonymous ids linked to the person: the identity map of web visitors, and raw events carrying one of their
    user ids or e-mails."""
    out: set[str] = set()
    if WEB_IDS in have and cids:
        out |= _values(con, f"SELECT anonymous_id FROM {WEB_IDS} WHERE customer_id IN (SELECT unnest($c))",
                       {"c": sorted(cids)})
    for relation in RAW_EVENTS:
        rel = have.get(relation)
        if not rel or "anonymous_id" not in rel[1]:
            continue
        conds = []
        if "user_id" in rel[1] and (record_ids or cids):
            conds.append("user_id IN (SELECT unnest($u))")
        conds += [f"lower(trim({c})) IN (SELECT unnest($e))" for c in ("email", "form_email") if c in rel[1]]
        if conds and (emails or record_ids or cids):
            schema, _, table = relation.partition(".")
            out |= _values(con, f"""SELECT DISTINCT anonymous_id FROM {quote_ident(schema)}.{quote_ident(table)}
                WHERE {' OR '.join(conds)}""", {"u": sorted(record_ids | cids), "e": sorted(emails)}
                           if "user_id IN" in " ".join(conds) else {"e": sorted(emails)})
    return out


def resolve_subject(conn: duckdb.DuckDBPyConnection, identifiers: dict[str, list[str]]) -> Subject:
    """Resolve a request's identifiers to every record, id and value of the person (see the module doc).

    Works on whatever the warehouse holds: a stage that has not run yet is skipped, and identifiers that match
    nothing are kept as given (a person known only to the service's files is still covered)."""
    given = check_identifiers(identifiers)
    have = relations(conn)
    emails = {e.lower() for e in given.get("email", ())}
    emails |= {c for c in map(canonical_email, emails) if c}
    cids = set(given.get("customer_id", ()))
    anon = set(given.get("anonymous_id", ()))
    if WEB_IDS in have and anon:
        cids |= _values(conn, f"SELECT customer_id FROM {WEB_IDS} WHERE anonymous_id IN (SELECT unnest($a))",
                        {"a": sorted(anon)})
    keys = _seed_records(conn, have, given, set(cids))  # e-mails first: they pin a shared phone
    cids, keys = _expand(conn, have, cids, keys)
    if "intermediate.int_customer_records_resolved" in have and cids:
        keys |= _values(conn, """SELECT record_key FROM intermediate.int_customer_records_resolved
            WHERE customer_id IN (SELECT unnest($c))""", {"c": sorted(cids)})
        cids, keys = _expand(conn, have, cids, keys)
    record_ids, rec_emails, phones, names = _record_values(conn, have, keys)
    emails |= rec_emails
    emails |= {c for c in map(canonical_email, emails) if c}
    phones |= set(given.get("phone", ()))
    anon |= _anonymous_ids(conn, have, cids, {k.partition(":")[2] for k in keys if k.startswith("shop:")}, emails)
    notes = () if cids or keys else ("identity resolution knows no record of these identifiers: only the values "
                                     "given are searched",)
    return Subject(given=given, customer_ids=tuple(sorted(cids)), record_keys=tuple(sorted(keys)),
                   record_ids=tuple(sorted(record_ids)), emails=tuple(sorted(emails)), phones=tuple(sorted(phones)),
                   names=tuple(sorted(names)), anonymous_ids=tuple(sorted(anon)), notes=notes)
