"""The proof's scan: look for erased people everywhere, without Beacon's catalog, resolver or matcher
(docs/privacy.md "How to prove it").

What is looked for comes from the generator's ground truth (who each person is, which source records and anonymous
ids are theirs) and from the landing files as delivered (the e-mails and phones exactly as their records carry
them): their e-mail addresses (any case, the gmail dot and +tag variants), phone numbers (any format), anonymous ids
and source record ids, and their full name (the first name followed by the last name, at most two words apart, in
one row or line, with only field labels or table tags between; only names no one else in the world has and no other
person's record carries, since a namesake's row is not theirs). A value that an erased person shares with someone
who was not erased (a household's phone or mailbox) is that other person's too, and is not looked for. Given what
each request names, a record or anonymous id is looked for only when the delivered data ties it to the request
(`linkable`); the others are reported (`Targets.unlinked`), not hidden.

Where: every column of every table and view of the warehouse (each row's values cast to text and joined), every
file under the given folders (text line by line; JSON, Parquet and gzip read first), and every column of every table
of Airflow's metadata database. A cheap filter (`Targets.prefilter`: a regular expression that every form of every
value matches, in DuckDB for the warehouse) picks the rows and lines that the full matcher (`find`) then reads; it
can only let more through, never fewer.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import duckdb
import pandas as pd

EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
PHONE = re.compile(r"(?<![\d])(?:\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}(?![\d])")
TOKEN = re.compile(r"[A-Za-z0-9_-]{4,}")
_EMAIL = re.compile(EMAIL)
_ANON_FIELD = re.compile(r'"anonymousId"\s*:\s*"([^"]*)"')
_WORD = re.compile(r"[A-Za-z0-9]+(?:['-][A-Za-z0-9]+)*")  # a number between two words separates them
# Words allowed between a first and a last name: "first_name": "Ann", "last_name": "Lee" has two, both labels; a
# cell of an HTML table has its tags. Any other word between them makes it another text: "Sheila | Smith | 1744
# Daugherty Ave" is not Sheila Daugherty, nor "Daniel | [dan, daniel, dann, danny] | 6608 Grimes Avenue" Daniel
# Grimes.
NAME_GAP = 2
NAME_LABELS = frozenset({"last", "name", "lastname", "surname", "family", "td", "th", "tr", "span", "div", "li", "b",
                         "strong", "em", "br", "p"})


def canonical(email: str) -> str:
    local, _, domain = email.strip().lower().partition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        return local.replace(".", "") + "@gmail.com"
    return f"{local}@{domain}"


def digits10(value: str) -> str:
    return re.sub(r"\D", "", value or "")[-10:]


@dataclass
class Targets:
    """Values -> the person they belong to."""

    emails: dict[str, str] = field(default_factory=dict)  # canonical e-mail
    phones: dict[str, str] = field(default_factory=dict)  # last 10 digits
    ids: dict[str, str] = field(default_factory=dict)  # anonymous ids and source record ids (lower case)
    names: dict[tuple[str, str], str] = field(default_factory=dict)  # (first, last), lower case
    unlinked: Unlinked = field(default_factory=lambda: Unlinked())  # what is not looked for, and why

    def people(self) -> set[str]:
        return {*self.emails.values(), *self.phones.values(), *self.ids.values(), *self.names.values()}

    def fragments(self, lines: bool = False) -> list[str]:
        """Regular expressions (lower case) one of which every form of every value matches: each e-mail as `find`
        recognises it (any +tag; for gmail, dots anywhere in the local part), an id, a phone's last 7 digits (with
        the one separator `PHONE` allows), a first name followed by the last name (at most NAME_GAP words between).
        `lines`: for text read line by line, no pattern crosses a line end (so each match lies in the line `find`
        then reads)."""
        other = r"[^a-z\n]" if lines else r"[^a-z]"
        tag = r"(\+[^@\n]*)?" if lines else r"(\+[^@]*)?"
        sep = "." if lines else "(?s:.)"  # any one separator (PHONE's `[\s.-]` takes any white space)
        out = {*map(re.escape, self.ids), *(p[3:6] + sep + "?" + p[6:] for p in self.phones),
               *(rf"{re.escape(first)}{other}+(?:[a-z'-]+{other}+){{0,{NAME_GAP}}}{re.escape(last)}"
                 for first, last in self.names)}
        for e in self.emails:
            local, _, domain = e.partition("@")
            if domain == "gmail.com":
                out.add(r"\.*".join(map(re.escape, local)) + r"\.*" + tag + r"@(gmail|googlemail)\.com")
            else:
                out.add(re.escape(local) + tag + "@" + re.escape(domain))
        return sorted(out)

    def pattern(self, lines: bool = False) -> str:
        """The filter as one regular expression (Python's and DuckDB's RE2 alike)."""
        return "|".join(self.fragments(lines)) or "$^"

    def prefilter(self, lines: bool = False) -> re.Pattern:
        return re.compile(self.pattern(lines), re.IGNORECASE)


@dataclass(frozen=True)
class Leak:
    person: str
    kind: str  # email | phone | id | name
    where: str  # schema.table, a file path, or "airflow metadata <table>"
    value: str = ""  # what was found, as matched (lower case for e-mails and ids)

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} of {self.person}"


@lru_cache(maxsize=4)
def truth_tables(truth: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(people, record_map) of a generated world: one day's folder, or the truth folder of a several-day world (each
    day's folder holds that day's new people and records: they are put together)."""
    days = [truth] if (truth / "people.parquet").exists() else sorted(p for p in truth.iterdir()
                                                                      if (p / "people.parquet").exists())
    people = pd.concat([pd.read_parquet(d / "people.parquet") for d in days], ignore_index=True)
    records = pd.concat([pd.read_parquet(d / "record_map.parquet") for d in days], ignore_index=True)
    return people.drop_duplicates("person_id", keep="last"), records.drop_duplicates(["record_id", "person_id"])


def _people_records(landing: Path) -> pd.DataFrame:
    """(record_id, email, phone, first_name, last_name, zip, house) of every person record as delivered."""
    frames = []
    for name, rid, street, zipc in (("crm_contacts", "contact_id", "street", "postal_code"),
                                    ("shop_customers", "customer_id", "address_line1", "zip")):
        for f in sorted(landing.glob(f"*/{name}.csv")):
            d = pd.read_csv(f, dtype=str, keep_default_na=False, on_bad_lines="skip")
            if not {rid, "email", "phone", "first_name", "last_name", street, zipc} <= set(d.columns):
                continue
            frames.append(pd.DataFrame({
                "record_id": d[rid], "email": d.email, "phone": d.phone, "first_name": d.first_name.str.strip().str.lower(),
                "last_name": d.last_name.str.strip().str.lower(), "zip": d[zipc].str.strip().str[:5],
                "house": d[street].str.strip().str.split(" ").str[0].str.lower()}))
    cols = ["record_id", "email", "phone", "first_name", "last_name", "zip", "house"]
    return pd.concat(frames, ignore_index=True).drop_duplicates("record_id", keep="last") if frames \
        else pd.DataFrame(columns=cols)


def _event_links(landing: Path, anon_ids: set[str]) -> list[tuple[str, str | None, list[str]]]:
    """(anonymous id, user id, e-mails) of every delivered web or collected event of the given anonymous ids."""
    out = []
    for f in sorted([*landing.glob("*/web_events*.jsonl"), *landing.glob("*/collected_events*.jsonl")]):
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                m = _ANON_FIELD.search(line)
                if m is None or m.group(1) not in anon_ids:
                    continue
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                anon = ev.get("anonymousId") if isinstance(ev, dict) else None
                if not isinstance(anon, str) or anon not in anon_ids:
                    continue
                mails = [d.get("email") for d in (ev.get("traits"), ev.get("properties")) if isinstance(d, dict)]
                out.append((anon, ev.get("userId") if isinstance(ev.get("userId"), str) else None,
                            [m for m in mails if isinstance(m, str) and "@" in m]))
    return out


def linkable(pid: str, named: dict[str, list[str]], recs: pd.DataFrame, anons: set[str],
             events: list[tuple[str, str | None, list[str]]]) -> set[str]:
    """The person's record ids and anonymous ids (lower case) that their request can reach through the data as
    delivered, without Beacon: from what the request names (e-mails, phones, anonymous ids, the records a named
    customer id is made of), through the person's own records (a record reaches its e-mail and phone, and the
    other records of theirs with the same name and address: last name, first initial, postcode, house number) and
    events (an event reaches its anonymous id, its user id and the e-mails in it). What nothing reaches is held
    in the data without anything that ties it to the person (GDPR Art. 11)."""
    edges: dict[tuple[str, str], set[tuple[str, str]]] = {}

    def link(a: tuple[str, str], b: tuple[str, str]) -> None:
        edges.setdefault(a, set()).add(b)
        edges.setdefault(b, set()).add(a)

    for r in recs.itertuples():
        node = ("id", r.record_id.lower())
        if isinstance(r.email, str) and "@" in r.email:
            link(node, ("email", canonical(r.email)))
        if len(digits10(r.phone)) == 10:
            link(node, ("phone", digits10(r.phone)))
        if r.last_name and r.zip and r.house:
            link(node, ("place", f"{r.last_name}|{r.first_name[:1]}|{r.zip}|{r.house}"))
    for anon, user, mails in events:
        node = ("id", anon.lower())
        if user:
            link(node, ("id", user.lower()))
        for m in mails:
            link(node, ("email", canonical(m)))
    todo = [("email", canonical(e)) for e in named.get("email", [])]
    todo += [("phone", digits10(p)) for p in named.get("phone", [])]
    todo += [("id", v.lower()) for k in ("anonymous_id", "record_id") for v in named.get(k, [])]
    seen = set(todo)
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return {v for k, v in seen if k == "id"}


@dataclass
class Unlinked:
    """What the scan does not look for, and why (reported in the proof's JSON)."""

    ids: dict[str, str] = field(default_factory=dict)  # record or anonymous id -> person: nothing ties it to them
    names_shared: dict[tuple[str, str], str] = field(default_factory=dict)  # carried by another person's record
    names_unlinked: dict[tuple[str, str], str] = field(default_factory=dict)  # carried by an unlinked record


def targets(truth: Path, landing: Path, erased: Iterable[str],
            named: dict[str, dict[str, list[str]]] | None = None, planted: dict[str, str] | None = None) -> Targets:
    """What to look for, for the erased person ids (see the module doc). `named`: person -> what their request
    names (`email`, `phone`, `anonymous_id`, and `record_id`: the records of a customer id it names); when given,
    a record or anonymous id is looked for only when the request reaches it through the delivered data
    (`linkable`), and the others are listed in `Targets.unlinked`. `planted`: anonymous id -> person, of the
    service's files the proof itself wrote for them (ground truth as well)."""
    erased = set(erased)
    people, records = truth_tables(truth)
    if planted:
        records = pd.concat([records, pd.DataFrame({"record_id": list(planted), "person_id": list(planted.values()),
                                                    "source": "web_events"})], ignore_index=True)
    delivered = _people_records(landing)
    recorded = delivered.merge(records[["record_id", "person_id"]], on="record_id")
    reach: dict[str, set[str]] | None = None
    unlinked = Unlinked()
    # Linkability is judged for the person records and anonymous ids as delivered; any other id of theirs in the
    # ground truth (a row the ingest quarantined) is looked for as it is.
    judged = {*delivered.record_id.str.lower(), *records[records.source == "web_events"].record_id.str.lower()}
    if named is not None:
        mine = records[records.person_id.isin(erased)]
        anons = {pid: set(g.record_id) for pid, g in mine[mine.source == "web_events"].groupby("person_id")}
        events = _event_links(landing, {a for v in anons.values() for a in v})
        by_anon: dict[str, list] = {}
        for ev in events:
            by_anon.setdefault(ev[0], []).append(ev)
        reach = {pid: linkable(pid, named.get(pid, {}), recorded[recorded.person_id == pid], anons.get(pid, set()),
                               [e for a in anons.get(pid, ()) for e in by_anon.get(a, [])]) for pid in erased}
    owners: dict[tuple[str, str], set[str]] = {}

    def own(kind: str, value, pid: str) -> None:
        if isinstance(value, str) and value.strip():
            v = canonical(value) if kind == "email" else digits10(value) if kind == "phone" else value.strip()
            if kind != "phone" or len(v) == 10:
                owners.setdefault((kind, v), set()).add(pid)

    for p in people.itertuples():
        for e in (p.email, p.work_email):
            own("email", e, p.person_id)
        own("phone", p.phone, p.person_id)
    for r in recorded.itertuples():
        if reach is None or r.person_id not in erased or r.record_id.lower() in reach[r.person_id]:
            own("email", r.email, r.person_id)
            own("phone", r.phone, r.person_id)
    for r in records.itertuples():
        own("id", r.record_id, r.person_id)
    t = Targets(unlinked=unlinked)
    for (kind, v), pids in owners.items():
        if len(pids) == 1 and (pid := next(iter(pids))) in erased:
            if kind == "id" and reach is not None and v.lower() in judged and v.lower() not in reach[pid]:
                unlinked.ids[v.lower()] = pid
                continue
            {"email": t.emails, "phone": t.phones, "id": t.ids}[kind][v.lower() if kind == "id" else v] = pid
    _name_targets(t, people, recorded, erased, reach)
    return t


def _name_targets(t: Targets, people: pd.DataFrame, recorded: pd.DataFrame, erased: set[str],
                  reach: dict[str, set[str]] | None) -> None:
    """Full names looked for: a name no one else in the world has and no other person's record carries (a record
    whose first name was varied can spell someone else's name: a namesake at record level), and, when the
    requests are known, that no record of theirs carries unless the request reaches it."""
    full = people.assign(k=list(zip(people.first_name.str.lower(), people.last_name.str.lower(), strict=True)))
    unique = full.k.value_counts()
    carriers: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for r in recorded.itertuples():
        carriers.setdefault((r.first_name, r.last_name), set()).add((r.person_id, r.record_id.lower()))
    # A row of "Kelly | Morgan | kelly | morgan" (first name, last name, their keys) reads "morgan kelly" too: the
    # swapped name of someone else is a namesake as well.
    swapped = {(last, first): pid for pid, (first, last) in zip(full.person_id, full.k, strict=True)}
    for p in full[full.person_id.isin(erased)].itertuples():
        if unique[p.k] != 1:
            continue
        held = carriers.get(p.k, set())
        other = swapped.get(p.k)
        if any(pid != p.person_id for pid, _ in held | carriers.get(p.k[::-1], set())) or \
                (other is not None and other != p.person_id):
            t.unlinked.names_shared[p.k] = p.person_id
        elif reach is not None and any(rid not in reach[p.person_id] for _, rid in held):
            t.unlinked.names_unlinked[p.k] = p.person_id
        else:
            t.names[p.k] = p.person_id


def find(text: str, t: Targets) -> set[tuple[str, str, str]]:
    """(person, kind, value) of every target value in one row or line of text."""
    out = set()
    for m in _EMAIL.finditer(text):
        pid = t.emails.get(canonical(m.group(0)))
        if pid:
            out.add((pid, "email", m.group(0).lower()))
    for m in PHONE.findall(text):
        pid = t.phones.get(digits10(m))
        if pid:
            out.add((pid, "phone", m))
    for tok in TOKEN.findall(text):
        pid = t.ids.get(tok.lower())
        if pid:
            out.add((pid, "id", tok.lower()))
    if t.names:
        words = [w.lower() for w in _WORD.findall(text)]
        for i, w in enumerate(words):  # a first name followed by its last name (at most NAME_GAP labels between)
            for j, nxt in enumerate(words[i + 1:i + 2 + NAME_GAP]):
                pid = t.names.get((w, nxt))
                if pid:
                    out.add((pid, "name", f"{w} {nxt}"))
                if nxt not in NAME_LABELS or j == NAME_GAP:
                    break
    return out


def scan_warehouse(con: duckdb.DuckDBPyConnection, t: Targets) -> set[Leak]:
    """Every row of every table and view, its values cast to text and joined (rows the prefilter lets through)."""
    leaks: set[Leak] = set()
    rels = con.execute("""SELECT table_schema, table_name, list(column_name ORDER BY ordinal_position)
        FROM information_schema.columns WHERE table_catalog = current_database()
          AND table_schema NOT IN ('information_schema', 'pg_catalog') GROUP BY 1, 2 ORDER BY 1, 2""").fetchall()
    pattern = t.pattern()
    for schema, table, cols in rels:
        joined = " || ' | ' || ".join(f"coalesce(CAST(\"{c}\" AS VARCHAR), '')" for c in cols)
        cur = con.execute(f'SELECT t FROM (SELECT {joined} AS t FROM "{schema}"."{table}") '
                          "WHERE regexp_matches(lower(t), $p)", {"p": pattern})
        while batch := cur.fetchmany(5000):
            for (text,) in batch:
                leaks |= {Leak(pid, kind, f"{schema}.{table}", v) for pid, kind, v in find(text or "", t)}
    return leaks


def _file_text(path: Path) -> Iterable[str]:
    """The text of a file, in pieces: the whole text (JSON re-indented, one value a line), or one piece per Parquet
    row."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    if path.suffix == ".parquet":
        for row in pd.read_parquet(path).astype(str).itertuples(index=False):
            yield " | ".join(row)
        return
    text = raw.decode("utf-8", errors="replace")
    if path.suffix == ".json":
        try:
            text = json.dumps(json.loads(text), indent=1)
        except ValueError:
            pass
    yield text


def _candidate_lines(text: str, pattern: str, con: duckdb.DuckDBPyConnection) -> list[str]:
    """The lines of `text` in which the filter `pattern` (`Targets.pattern(lines=True)`, lower case) matches.
    DuckDB's RE2 runs the alternation of every value of every person as one automaton, in time linear in the text;
    Python's backtracking `re` tries each alternative at each position (a 100-person proof spent most of its time
    there)."""
    rows = con.execute("SELECT l FROM (SELECT unnest(string_split($t, chr(10))) AS l) "
                       "WHERE regexp_matches(lower(l), $p)", {"t": text, "p": pattern}).fetchall()
    return [r[0] for r in rows]


def _pieces(path: Path) -> Iterable[str]:
    """`_file_text` in pieces of at most about 8 MB of text (a Parquet file's rows joined line by line: the filter
    never crosses a line end, so that is the same as reading each row alone)."""
    buf: list[str] = []
    size = 0
    for piece in _file_text(path):
        buf.append(piece)
        size += len(piece)
        if size > 8_000_000:
            yield "\n".join(buf)
            buf, size = [], 0
    if buf:
        yield "\n".join(buf)


def scan_files(folders: Iterable[Path], t: Targets, skip: Iterable[Path] = ()) -> set[Leak]:
    """Every file under the folders (but those in `skip`, and what is under them), line by line."""
    skip = [Path(p).resolve() for p in skip]
    pattern = t.pattern(lines=True)
    leaks: set[Leak] = set()
    with duckdb.connect() as con:
        for folder in folders:
            for path in sorted(Path(folder).rglob("*")):
                rp = path.resolve()
                if not path.is_file() or any(rp == s or s in rp.parents for s in skip):
                    continue
                for piece in _pieces(path):
                    for line in _candidate_lines(piece, pattern, con):
                        leaks |= {Leak(pid, kind, str(path), v) for pid, kind, v in find(line, t)}
    return leaks


def scan_metadata(url: str | None, t: Targets) -> set[Leak]:
    """Every column of every table of Airflow's metadata database (a SQLAlchemy URL), each row cast to text."""
    if url is None:
        return set()
    import sqlalchemy as sa

    leaks: set[Leak] = set()
    pre = t.prefilter()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            meta = sa.MetaData()
            for name in sa.inspect(conn).get_table_names():
                table = sa.Table(name, meta, autoload_with=conn)
                for row in conn.execute(sa.select(table)):
                    text = " | ".join("" if v is None else bytes(v).decode("utf-8", "replace")
                                      if isinstance(v, (bytes, memoryview)) else str(v) for v in row)
                    if pre.search(text):
                        leaks |= {Leak(pid, kind, f"airflow metadata {name}", v) for pid, kind, v in find(text, t)}
    finally:
        engine.dispose()
    return leaks
