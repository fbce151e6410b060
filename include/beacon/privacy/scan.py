"""The proof's scan: look for erased people everywhere, without Beacon's catalog, resolver or matcher
(docs/privacy.md "How to prove it").

What is looked for comes from the generator's ground truth (who each person is, which source records and anonymous
ids are theirs) and from the landing files as delivered (the e-mails and phones exactly as their records carry
them): their e-mail addresses (any case, the gmail dot and +tag variants), phone numbers (any format), anonymous ids
and source record ids, and their full name (the first name followed by the last name, at most two words apart, in
one row or line; only names no one else in the world has, since a namesake's row is not theirs). A value that an
erased person shares with someone who was not erased (a household's phone or mailbox) is that other person's too,
and is not looked for.

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
_WORD = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")
# Words allowed between a first and a last name: "first_name": "Ann", "last_name": "Lee" has two.
NAME_GAP = 2


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


def _recorded(landing: Path) -> pd.DataFrame:
    """(record_id, email, phone) of every person record of the landing files as delivered."""
    frames = []
    for name, rid in (("crm_contacts", "contact_id"), ("shop_customers", "customer_id")):
        for f in sorted(landing.glob(f"*/{name}.csv")):
            d = pd.read_csv(f, dtype=str, keep_default_na=False, on_bad_lines="skip")  # malformed: quarantined
            frames.append(d.rename(columns={rid: "record_id"})[["record_id", "email", "phone"]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["record_id", "email", "phone"])


@lru_cache(maxsize=4)
def truth_tables(truth: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(people, record_map) of a generated world: one day's folder, or the truth folder of a several-day world (each
    day's folder holds that day's new people and records: they are put together)."""
    days = [truth] if (truth / "people.parquet").exists() else sorted(p for p in truth.iterdir()
                                                                      if (p / "people.parquet").exists())
    people = pd.concat([pd.read_parquet(d / "people.parquet") for d in days], ignore_index=True)
    records = pd.concat([pd.read_parquet(d / "record_map.parquet") for d in days], ignore_index=True)
    return people.drop_duplicates("person_id", keep="last"), records.drop_duplicates(["record_id", "person_id"])


def targets(truth: Path, landing: Path, erased: Iterable[str]) -> Targets:
    """What to look for, for the erased person ids (see the module doc)."""
    erased = set(erased)
    people, records = truth_tables(truth)
    recorded = _recorded(landing).merge(records[["record_id", "person_id"]], on="record_id")
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
        own("email", r.email, r.person_id)
        own("phone", r.phone, r.person_id)
    for r in records.itertuples():
        own("id", r.record_id, r.person_id)
    t = Targets()
    for (kind, v), pids in owners.items():
        if len(pids) == 1 and (pid := next(iter(pids))) in erased:
            {"email": t.emails, "phone": t.phones, "id": t.ids}[kind][v.lower() if kind == "id" else v] = pid
    full = people.assign(k=list(zip(people.first_name.str.lower(), people.last_name.str.lower(), strict=True)))
    unique = full.k.value_counts()
    for p in full[full.person_id.isin(erased)].itertuples():
        if unique[p.k] == 1:
            t.names[p.k] = p.person_id
    return t


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
        for i, w in enumerate(words):  # a first name followed by its last name (at most NAME_GAP words between)
            for nxt in words[i + 1:i + 2 + NAME_GAP]:
                pid = t.names.get((w, nxt))
                if pid:
                    out.add((pid, "name", f"{w} {nxt}"))
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
