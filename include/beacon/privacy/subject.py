"""Who a privacy request is about: the identifiers given, resolved through identity resolution to every record of the
person (docs/privacy.md "Who a request covers").

A request names a person by one or more of `email`, `phone`, `customer_id`, `anonymous_id`. `resolve_subject` follows
the identity log to all of them:

1. the source records (CRM contacts, shop customers) whose e-mail (as recorded or canonical) or phone (same last 10
   digits) is a given one, for a given e-mail on no record the shop records an identify call logged into while
   stating it (a login is the account's owner: the record may carry a household member's mailbox), and the web
   visitors whose anonymous id is given, give customer ids;
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
WEB_EVENTS = "staging.stg_web__events"  # web and collected events: anonymous id, shop user id, canonical e-mail
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


Pairs = list[tuple[int, str]]  # (request index, value): a batch's values, one row each


def _by_request(con: duckdb.DuckDBPyConnection, sql: str, pairs: Pairs) -> list[tuple]:
    """Run `sql` (which reads the relation `p(req, v)`: the batch's pairs) once for every request of the batch;
    its rows. Every query is one set-based join of the pairs to an identity table, never a query per request."""
    if not pairs:
        return []
    return con.execute(f"WITH p AS (SELECT unnest($r::INTEGER[]) AS req, unnest($v::VARCHAR[]) AS v) {sql}",
                       {"r": [r for r, _ in pairs], "v": [v for _, v in pairs]}).fetchall()


def _grouped(rows: Iterable[tuple]) -> dict[int, set[str]]:
    """(req, value, ...) rows -> req -> the non-empty values (every column after the first)."""
    out: dict[int, set[str]] = {}
    for req, *vals in rows:
        out.setdefault(req, set()).update(str(v) for v in vals if v is not None and str(v).strip())
    return out


def _pairs(by_req: dict[int, Iterable[str]]) -> Pairs:
    return [(r, v) for r, vs in by_req.items() for v in sorted(vs)]


def _phone_sql(col: str) -> str:
    return f"right(regexp_replace(CAST({col} AS VARCHAR), '[^0-9]', '', 'g'), 10)"


def _seed_matches(con, have, given: dict[int, dict[str, tuple[str, ...]]]) -> dict[tuple[int, str, str], set[tuple]]:
    """(req, kind, given value) -> {(record key, customer id)} of the source records whose e-mail (as recorded or
    canonical) or phone (last 10 digits) is that value, for the whole batch in two joins."""
    probes: list[tuple[int, str, str]] = []
    emails: Pairs = []
    phones: Pairs = []
    for req, g in given.items():
        for kind in ("email", "phone"):
            for value in g.get(kind, ()):
                probes.append((req, kind, value))
                if kind == "email":
                    emails += [(len(probes) - 1, v) for v in sorted({value.lower(), canonical_email(value) or
                                                                      value.lower()})]
                else:
                    phones.append((len(probes) - 1, digits10(value)))
    resolved = "LEFT JOIN intermediate.int_customer_records_resolved r USING (record_key)"
    rows = _by_request(con, f"""SELECT p.req, u.record_key, r.customer_id FROM {RECORDS} u JOIN p
            ON lower(trim(u.email)) = p.v {resolved}
        UNION SELECT p.req, u.record_key, r.customer_id FROM {RECORDS} u JOIN p ON u.email_canonical = p.v {resolved}""",
                       emails)
    rows += _by_request(con, f"""SELECT p.req, u.record_key, r.customer_id FROM {RECORDS} u JOIN p
        ON {_phone_sql('u.phone_e164')} = p.v {resolved}""", phones)
    out: dict[tuple[int, str, str], set[tuple]] = {p: set() for p in probes}
    for probe, key, cid in rows:
        out[probes[probe]].add((key, cid))
    if WEB_EVENTS in have:
        # An e-mail on no record: the person's own identify call, a login (the shop's user id) that states it, says
        # whose shop account is theirs (it may carry a household member's mailbox, or none).
        bare = [(i, v) for i, v in emails if not out[probes[i]]]
        for probe, key, cid in _by_request(con, f"""SELECT DISTINCT p.req, r.record_key, r.customer_id
                FROM {WEB_EVENTS} e JOIN p ON e.email_canonical = p.v JOIN intermediate.int_customer_records_resolved r
                ON r.source = 'shop' AND r.record_id = e.shop_customer_id""", bare):
            out[probes[probe]].add((key, cid))
    return out


def _seed_records(con, have, given: dict[int, dict[str, tuple[str, ...]]],
                  pinned: dict[int, set[str]]) -> dict[int, set[str] | SubjectError]:
    """Per request, the record keys whose e-mail or phone is a given one. A value shared by the records of several
    customers (a household's phone or mailbox) is ambiguous: it counts only for the customers another given
    identifier names (`pinned`), and with none, the request is refused (a SubjectError in its place) rather than
    erase someone else."""
    if RECORDS not in have or "intermediate.int_customer_records_resolved" not in have:
        return {req: set() for req in given}
    matches = _seed_matches(con, have, given)
    out: dict[int, set[str] | SubjectError] = {}
    for req, g in given.items():
        keys: set[str] = set()
        pins = set(pinned.get(req, ()))
        try:
            for kind in ("email", "phone"):  # e-mails first: they pin a shared phone
                for value in g.get(kind, ()):
                    rows = matches[(req, kind, value)]
                    owners = {c for _, c in rows if c}
                    if len(owners) > 1:
                        if not owners & pins:
                            raise SubjectError(f"{kind} {value!r} belongs to {len(owners)} different customers; name "
                                               "the person by another identifier too (an e-mail, phone or customer id "
                                               "of theirs)")
                        rows = {(k, c) for k, c in rows if c in pins}
                    else:
                        pins |= owners  # an e-mail of one customer pins the phone given with it
                    keys |= {k for k, _ in rows}
        except SubjectError as exc:
            out[req] = exc
            continue
        out[req] = keys
    return out


def _expand(con, have, cids: dict[int, set[str]], keys: dict[int, set[str]]) -> None:
    """Close each request's customer ids and record keys under the identity log, in place: every id a record of the
    person ever had, and every record that ever belonged to one of those ids (three rounds reach merges of merges).
    Each round is two joins for the whole batch."""
    if EVENTS not in have:
        return
    active = set(cids) | set(keys)
    for _ in range(3):
        if not active:
            break
        more_keys = _grouped(_by_request(con, f"""SELECT p.req, e.record_key FROM {EVENTS} e JOIN p
                ON e.customer_id = p.v
            UNION SELECT p.req, e.record_key FROM {EVENTS} e JOIN p ON e.previous_customer_id = p.v""",
                                         _pairs({r: cids.get(r, set()) for r in active})))
        all_keys = {r: keys.get(r, set()) | more_keys.get(r, set()) for r in active}
        more_cids = _grouped(_by_request(con, f"""SELECT p.req, e.customer_id, e.previous_customer_id FROM {EVENTS} e
            JOIN p ON e.record_key = p.v""", _pairs(all_keys)))
        for r in list(active):
            if all_keys[r] == keys.get(r, set()) and more_cids.get(r, set()) <= cids.get(r, set()):
                active.discard(r)
                continue
            keys[r], cids[r] = all_keys[r], cids.get(r, set()) | more_cids.get(r, set())


def _record_values(con, have, keys: dict[int, set[str]]) -> dict[int, dict[str, set[str]]]:
    """Per request: the record ids, e-mails, phones and names of its records, from the unioned records and the raw
    person tables (one join each for the whole batch)."""
    out = {r: {"ids": set(), "emails": set(), "phones": set(), "names": set()} for r in keys}
    if RECORDS in have:
        for r, rid, em, canon, ph, fn, ln in _by_request(con, f"""SELECT p.req, u.record_id, u.email,
                u.email_canonical, u.phone_e164, u.first_name, u.last_name FROM {RECORDS} u
                JOIN p ON u.record_key = p.v""", _pairs(keys)):
            v = out[r]
            v["ids"].add(str(rid))
            v["emails"] |= {e.strip().lower() for e in (em, canon) if e and e.strip()}
            v["phones"] |= {ph} if ph else set()
            v["names"] |= {n.strip() for n in (fn, ln) if n and n.strip()}
    by_source: dict[str, Pairs] = {}
    for r, ks in keys.items():
        for k in ks:
            src, _, rid = k.partition(":")
            by_source.setdefault(src, []).append((r, rid))
            out[r]["ids"].add(rid)
    for relation, id_col, source in RAW_PEOPLE:
        rel = have.get(relation)
        if not rel or id_col not in rel[1] or source not in by_source:
            continue
        cols = [c for c in ("email", "phone", "first_name", "last_name") if c in rel[1]]
        schema, _, table = relation.partition(".")
        for r, *row in _by_request(con, f"""SELECT p.req, {', '.join('t.' + quote_ident(c) for c in cols)} FROM
                {quote_ident(schema)}.{quote_ident(table)} t JOIN p ON t.{quote_ident(id_col)} = p.v""",
                                   by_source[source]):
            for c, v in zip(cols, row, strict=True):
                if v and str(v).strip():
                    bucket = {"email": "emails", "phone": "phones"}.get(c, "names")
                    out[r][bucket].add(str(v).strip().lower() if c == "email" else str(v).strip())
    return out


def _same_name_and_address(con, have, cids: dict[int, set[str]], keys: dict[int, set[str]]) -> dict[int, set[str]]:
    """The records that carry one of the person's names at one of their addresses (the same last name key, a
    first-name alias in common, the same street key and 5-digit postcode as a record of theirs), whatever e-mail or
    phone they carry (a shop account opened with a household member's mailbox, or none). In place: a customer all
    of whose records are such (or already the person's) is added with them. Returned, per request: the records of a
    customer that also holds someone else's records (that customer keeps them; only the person's record goes)."""
    cols = {"last_name_key", "first_name_aliases", "street_key", "postal_code"}
    if RECORDS not in have or "intermediate.int_customer_records_resolved" not in have or \
            not cols <= set(have[RECORDS][1]):
        return {}
    rows = _by_request(con, f""", mine AS (SELECT p.req, u.* FROM {RECORDS} u JOIN p ON u.record_key = p.v),
        same AS (SELECT DISTINCT m.req, o.record_key FROM mine m JOIN {RECORDS} o
            ON o.last_name_key = m.last_name_key AND o.street_key = m.street_key
           AND left(o.postal_code, 5) = left(m.postal_code, 5)
           AND len(list_intersect(o.first_name_aliases, m.first_name_aliases)) > 0
           AND o.record_key <> m.record_key)
        SELECT s.req, s.record_key, r.customer_id FROM same s
        JOIN intermediate.int_customer_records_resolved r USING (record_key)""", _pairs(keys))
    found: dict[int, dict[str, set[str]]] = {}
    for req, key, cid in rows:
        if key not in keys[req]:
            found.setdefault(req, {}).setdefault(cid, set()).add(key)
    members: dict[str, set[str]] = {}
    for _, cid, key in _by_request(con, """SELECT p.req, r.customer_id, r.record_key
            FROM intermediate.int_customer_records_resolved r JOIN p ON r.customer_id = p.v""",
                                   _pairs({r: set(by_cid) for r, by_cid in found.items()})):
        members.setdefault(cid, set()).add(key)
    alone: dict[int, set[str]] = {}
    for req, by_cid in found.items():
        matched = keys[req] | {k for ks in by_cid.values() for k in ks}
        for cid, ks in by_cid.items():
            if members.get(cid, set()) <= matched:
                keys[req] |= ks
                cids.setdefault(req, set()).add(cid)
            else:
                alone.setdefault(req, set()).update(ks)
    return alone


def _anonymous_ids(con, have, cids: dict[int, set[str]], user_ids: dict[int, set[str]],
                   emails: dict[int, set[str]]) -> dict[int, set[str]]:
    """Per request, the anonymous ids linked to the person: the identity map of web visitors, and raw events
    carrying one of their user ids or e-mails (one scan of each raw event table for the whole batch)."""
    rows: list[tuple] = []
    if WEB_IDS in have:
        rows += _by_request(con, f"SELECT p.req, w.anonymous_id FROM {WEB_IDS} w JOIN p ON w.customer_id = p.v",
                            _pairs(cids))
    for relation in RAW_EVENTS:
        rel = have.get(relation)
        if not rel or "anonymous_id" not in rel[1]:
            continue
        schema, _, table = relation.partition(".")
        src = f"{quote_ident(schema)}.{quote_ident(table)}"
        if "user_id" in rel[1]:
            rows += _by_request(con, f"SELECT DISTINCT p.req, t.anonymous_id FROM {src} t JOIN p ON t.user_id = p.v",
                                _pairs({r: user_ids.get(r, set()) | cids.get(r, set()) for r in cids}))
        for col in ("email", "form_email"):
            if col in rel[1]:
                rows += _by_request(con, f"""SELECT DISTINCT p.req, t.anonymous_id FROM {src} t
                    JOIN p ON lower(trim(t.{col})) = p.v""", _pairs(emails))
    return _grouped(rows)


def resolve_subjects(conn: duckdb.DuckDBPyConnection,
                     requests: list[dict[str, list[str]]]) -> list[Subject | SubjectError]:
    """Resolve a batch of requests at once (see the module doc): each step is one set-based join of every request's
    values to an identity table. In the requests' order, a `Subject` each, or the `SubjectError` that refuses it
    (unusable identifiers, an ambiguous shared value).

    Works on whatever the warehouse holds: a stage that has not run yet is skipped, and identifiers that match
    nothing are kept as given (a person known only to the service's files is still covered)."""
    out: list[Subject | SubjectError] = []
    given: dict[int, dict[str, tuple[str, ...]]] = {}
    for i, ids in enumerate(requests):
        try:
            given[i] = check_identifiers(ids)
            out.append(None)  # type: ignore[arg-type]
        except SubjectError as exc:
            out.append(exc)
    have = relations(conn)
    emails = {r: {e.lower() for e in g.get("email", ())} for r, g in given.items()}
    emails = {r: es | {c for c in map(canonical_email, es) if c} for r, es in emails.items()}
    cids = {r: set(g.get("customer_id", ())) for r, g in given.items()}
    anon = {r: set(g.get("anonymous_id", ())) for r, g in given.items()}
    if WEB_IDS in have:
        for r, vs in _grouped(_by_request(conn, f"""SELECT p.req, w.customer_id FROM {WEB_IDS} w
                JOIN p ON w.anonymous_id = p.v""", _pairs(anon))).items():
            cids[r] |= vs
    seeded = _seed_records(conn, have, given, cids)
    for r, res in seeded.items():
        if isinstance(res, SubjectError):
            out[r] = res
            given.pop(r)
    keys = {r: set(seeded[r]) for r in given}
    cids = {r: cids[r] for r in given}
    _expand(conn, have, cids, keys)
    if "intermediate.int_customer_records_resolved" in have:
        more = _grouped(_by_request(conn, """SELECT p.req, r.record_key FROM intermediate.int_customer_records_resolved r
            JOIN p ON r.customer_id = p.v""", _pairs(cids)))
        for r, ks in more.items():
            keys[r] |= ks
        _expand(conn, have, cids, keys)
    alone = _same_name_and_address(conn, have, cids, keys)
    _expand(conn, have, cids, keys)
    for r, ks in alone.items():  # records of a customer that holds someone else's too: the record alone
        keys[r] |= ks
    values = _record_values(conn, have, keys)
    for r in given:
        emails[r] |= values[r]["emails"]
        emails[r] |= {c for c in map(canonical_email, emails[r]) if c}
    shop_ids = {r: {k.partition(":")[2] for k in keys[r] if k.startswith("shop:")} for r in given}
    linked = _anonymous_ids(conn, have, cids, shop_ids, {r: emails[r] for r in given})
    for r, g in given.items():
        out[r] = _subject(g, cids[r], keys[r], values[r], emails[r], anon[r] | linked.get(r, set()))
    return out


def _subject(given, cids: set[str], keys: set[str], values: dict[str, set[str]], emails: set[str],
             anon: set[str]) -> Subject:
    notes = () if cids or keys else ("identity resolution knows no record of these identifiers: only the values "
                                     "given are searched",)
    phones = values["phones"] | set(given.get("phone", ()))
    return Subject(given=given, customer_ids=tuple(sorted(cids)), record_keys=tuple(sorted(keys)),
                   record_ids=tuple(sorted(values["ids"])), emails=tuple(sorted(emails)), phones=tuple(sorted(phones)),
                   names=tuple(sorted(values["names"])), anonymous_ids=tuple(sorted(anon)), notes=notes)


def resolve_subject(conn: duckdb.DuckDBPyConnection, identifiers: dict[str, list[str]]) -> Subject:
    """Resolve one request's identifiers to every record, id and value of the person (`resolve_subjects` for a batch
    of one); SubjectError when they are unusable or ambiguous."""
    res = resolve_subjects(conn, [identifiers])[0]
    if isinstance(res, SubjectError):
        raise res
    return res
