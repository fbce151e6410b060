"""Retention: how long each kind of data is kept, and the function that ages it out (issue 27, item 8).

The windows are configuration (`retention.yml` beside this module, or the file BEACON_RETENTION_CONFIG names) and
count back from the warehouse clock (`beacon.warehouse.clock`: the latest event), never from the wall clock, so a
replayed or late world ages the same way. `apply_retention` deletes warehouse rows older than their window (or
clears the payload they carry), deletes landing and export day folders older than theirs, and returns what it did
per store; the beacon_privacy DAG runs it. `pseudonymize_consent` replaces the identifiers and the proof of an erased
person's consent records with pseudonyms, keeping the record that consent was given or withdrawn, and when.
docs/privacy.md "Retention" lists every store and what is not covered.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
from dateutil.relativedelta import relativedelta
from pydantic import field_validator

from beacon.config import Settings, StrictConfig, parse_config
from beacon.warehouse import clock, table_exists, transaction

DEFAULT_FILE = Path(__file__).with_name("retention.yml")
_DURATION = re.compile(r"^\s*(\d+)\s*(day|month|year)s?\s*$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_duration(text: str) -> relativedelta | None:
    """'13 months' -> relativedelta(months=13); 'forever' -> None; anything else a ValueError."""
    if text.strip().lower() == "forever":
        return None
    m = _DURATION.match(text.lower())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"expected '<n> days', '<n> months', '<n> years' or 'forever', got {text!r}")
    n, unit = int(m.group(1)), m.group(2)
    return relativedelta(**{f"{unit}s": n})


class RetentionConfig(StrictConfig):
    """One window per kind of data (retention.yml says what each covers)."""

    web_events: str
    collected_events: str
    quarantine: str
    sync_logs: str
    sync_payloads: str
    webhook_bodies: str
    collected_files: str
    landing_files: str
    exports: str
    consent_proof: str
    email_events: str
    source_versions: str
    journey_history: str
    membership_history: str
    scores: str
    spool: str
    airflow_logs: str

    @field_validator("*")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v

    def window(self, name: str) -> relativedelta | None:
        return parse_duration(getattr(self, name))


def load_config(s: Settings) -> RetentionConfig:
    """The retention windows: BEACON_RETENTION_CONFIG's file, else retention.yml beside this module."""
    import yaml

    path = s.retention_config or DEFAULT_FILE
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ValueError(f"retention config {path}: cannot read it ({exc.strerror})") from None
    return parse_config(RetentionConfig, doc, f"retention config {path}")


@dataclass(frozen=True)
class Aged:
    """What retention did to one store: rows deleted (or payloads cleared), or day folders deleted."""

    store: str
    window: str
    cutoff: str | None  # everything dated before this was aged out; None: kept forever, or the store is absent
    rows: int = 0
    folders: int = 0
    files: int = 0
    note: str = ""

    @property
    def changed(self) -> int:
        return self.rows or self.folders or self.files


def _superseded(table: str, key: str, newest_first: str) -> str:
    """Rows of a raw table that a later copy of the same record replaced (the copy staging does not read: it keeps the
    first row of `partition by key order by newest_first`)."""
    return (f"rowid IN (SELECT rid FROM (SELECT rowid AS rid, row_number() OVER (PARTITION BY {key} "
            f"ORDER BY {newest_first}) AS rn FROM {table}) WHERE rn > 1)")


# Warehouse tables: (config key, table, time column, what to do, extra condition). "delete": the rows; else an
# UPDATE's SET clause. A row goes when its time is before the cutoff and the extra condition holds.
TABLE_RULES: tuple[tuple[str, str, str, str, str], ...] = (
    ("web_events", "raw.web_events", "event_at", "delete", ""),
    ("collected_events", "raw.collected_events", "coalesce(received_at, event_at)", "delete", ""),
    ("email_events", "raw.email_events", "event_at", "delete", ""),
    # dbt's incremental staging models keep the days they built: the same windows as the raw rows they read (a
    # full refresh would give the same tables). stg_web__events holds web and collected events alike.
    ("web_events", "staging.stg_web__events", "event_at", "delete", ""),
    ("email_events", "staging.stg_esp__email_events", "event_at", "delete", ""),
    # The sessions split from them (incremental by day): a session goes when its last event has gone.
    ("web_events", "intermediate.int_web_sessions_split", "session_ended_at", "delete", ""),
    # The events counted per day (incremental by day): a day's row goes when its last event has gone (a day partly
    # aged out is counted again at the next build, which compares each day with stg_*).
    ("web_events", "intermediate.int_web_event_days", "last_event_at", "delete", ""),
    ("email_events", "intermediate.int_email_event_days", "last_event_at", "delete", ""),
    ("quarantine", "raw._quarantine", "quarantined_at", "delete", ""),
    # Source records: each delivery appends a copy; the copy staging reads (the latest) stays while the source keeps
    # the record (an erasure removes a person's), the older copies (old addresses, old e-mails) go.
    ("source_versions", "raw.crm_contacts", "updated_at", "delete",
     _superseded("raw.crm_contacts", "contact_id", "updated_at DESC, _loaded_at DESC, _line DESC")),
    ("source_versions", "raw.shop_customers", "created_at", "delete",
     _superseded("raw.shop_customers", "customer_id", "_loaded_at DESC, _line DESC")),
    ("source_versions", "raw.shop_orders", "ordered_at", "delete",
     _superseded("raw.shop_orders", "order_id", "_loaded_at DESC, _line DESC")),
    ("sync_logs", "activation.sync_log", "logged_at", "delete", ""),
    ("sync_payloads", "activation.sync_state", "synced_at", "payload = NULL",
     "NOT coalesce(present, false) AND payload IS NOT NULL"),
    # Journey history: finished entries and actions; a transition unless it is the latest step of its entry (the
    # state journeys.current reads: an entry in flight keeps its place).
    ("journey_history", "journeys.finished", "exited_at", "delete", ""),
    ("journey_history", "journeys.actions", "occurred_at", "delete", ""),
    ("journey_history", "journeys.transitions", "occurred_at", "delete",
     _superseded("journeys.transitions", "journey, customer_id, entry_no", "step DESC")),
    # Membership history: every change but a current member's latest entry (what the next run compares with).
    ("membership_history", "audiences.membership_events", "as_of", "delete", "rowid NOT IN (SELECT rid FROM ("
     "SELECT rowid AS rid, change FROM audiences.membership_events QUALIFY row_number() OVER (PARTITION BY audience, "
     "customer_id ORDER BY as_of DESC, change = 'entered') = 1) WHERE change = 'entered')"),
    # Scores of a model no longer scored (each run replaces a model's scores: only a retired model's grow old).
    ("scores", "ml.scores", "scored_at", "delete", ""),
)


def _cutoff(as_of: datetime, window: relativedelta | None) -> datetime | None:
    return None if window is None else as_of - window


def _age_table(con: duckdb.DuckDBPyConnection, rule: tuple[str, str, str, str, str], cfg: RetentionConfig,
               as_of: datetime) -> Aged:
    key, table, at, action, extra = rule
    cutoff = _cutoff(as_of, cfg.window(key))
    schema, name = table.split(".")
    if cutoff is None or not table_exists(con, schema, name):
        return Aged(table, getattr(cfg, key), None, note="kept forever" if cutoff is None else "absent")
    where = f"{at} < ?" + (f" AND {extra}" if extra else "")
    if action == "delete":
        n = con.execute(f"DELETE FROM {table} WHERE {where}", [cutoff]).fetchall()[0][0]
    else:
        n = con.execute(f"UPDATE {table} SET {action} WHERE {where}", [cutoff]).fetchall()[0][0]
    return Aged(table, getattr(cfg, key), str(cutoff), rows=int(n))


def _age_consent_proof(con: duckdb.DuckDBPyConnection, cfg: RetentionConfig, as_of: datetime) -> Aged:
    """Clear the proof of consent records older than the window that a newer record for the same person, channel
    and topic has replaced: the proof of the consent in force is kept whatever its age."""
    cutoff = _cutoff(as_of, cfg.window("consent_proof"))
    if cutoff is None or not table_exists(con, "raw", "consent"):
        return Aged("raw.consent.proof", cfg.consent_proof, None, note="kept forever" if cutoff is None else "absent")
    def person(t: str) -> str:
        return f"coalesce({t}.customer_id, lower(trim({t}.email)), {t}.phone)"

    n = con.execute(f"""UPDATE raw.consent AS c SET proof = NULL
        WHERE c.proof IS NOT NULL AND c.recorded_at < ? AND EXISTS (
            SELECT 1 FROM raw.consent n
            WHERE {person('n')} = {person('c')}
              AND n.channel IS NOT DISTINCT FROM c.channel AND n.topic IS NOT DISTINCT FROM c.topic
              AND n.recorded_at > c.recorded_at)""", [cutoff]).fetchall()[0][0]
    return Aged("raw.consent.proof", cfg.consent_proof, str(cutoff), rows=int(n))


def _day_folders(root: Path) -> Iterable[tuple[date, Path]]:
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.is_dir() and _DAY.match(p.name):
                yield date.fromisoformat(p.name), p


# Landing day folders: which entries each window covers (the first that matches an entry wins).
LANDING_RULES: tuple[tuple[str, Callable[[Path], bool]], ...] = (
    ("webhook_bodies", lambda f: f.name == "webhooks"),
    ("collected_files", lambda f: f.name.startswith("collected_events-")),
    ("landing_files", lambda f: True),
)
FILE_STORES = {"webhook_bodies": "landing/<day>/webhooks", "collected_files": "landing/<day>/collected_events-*",
               "landing_files": "landing/<day>/* (other)", "exports": "exports/<audience>/<day>"}


def _age_files(s: Settings, cfg: RetentionConfig, as_of: datetime) -> list[Aged]:
    """Landing day folders (webhook bodies, the service's event files, everything else) and export day folders:
    an entry is dated by its day folder's name (the UTC day it holds) and goes when that day is before the cutoff."""
    cuts = {k: _cutoff(as_of, cfg.window(k)) for k in FILE_STORES}
    counts = dict.fromkeys(cuts, 0)
    for day, folder in _day_folders(Path(s.landing_dir)):
        for item in sorted(folder.iterdir()):
            key = next(k for k, pick in LANDING_RULES if pick(item))
            if cuts[key] is not None and day < cuts[key].date():
                shutil.rmtree(item) if item.is_dir() else item.unlink()
                counts[key] += 1
        if not any(folder.iterdir()):
            folder.rmdir()
    if s.exports_dir.is_dir() and cuts["exports"] is not None:
        for audience in sorted(p for p in s.exports_dir.iterdir() if p.is_dir()):
            for day, folder in _day_folders(audience):
                if day < cuts["exports"].date():
                    shutil.rmtree(folder)
                    counts["exports"] += 1
    return [Aged(FILE_STORES[k], getattr(cfg, k), str(cut) if cut else None, folders=counts[k],
                 note="" if cut else "kept forever") for k, cut in cuts.items()]


def _age_by_mtime(roots: Iterable[Path], cutoff: datetime) -> int:
    """Delete the files under the roots last written before the cutoff (UTC), then the folders left empty (never a
    root itself); the number of files."""
    n = 0
    for root in roots:
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*")):
            if p.is_file() and datetime.fromtimestamp(p.stat().st_mtime, UTC).replace(tzinfo=None) < cutoff:
                p.unlink()
                n += 1
        for d in sorted((d for d in root.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
            if not any(d.iterdir()):
                d.rmdir()
    return n


def _age_written_files(s: Settings, cfg: RetentionConfig, as_of: datetime) -> list[Aged]:
    """Files with no day in their path, dated by when they were last written: the service's spool (`<landing>/_spool`:
    the file being written and what a crash left) and Airflow's task logs (every folder the erasure cleans)."""
    from beacon.privacy.files import log_roots

    out = []
    for key, store, roots in (("spool", "landing/_spool", [Path(s.landing_dir) / "_spool"]),
                              ("airflow_logs", "airflow task logs", log_roots(s))):
        cut = _cutoff(as_of, cfg.window(key))
        files = 0 if cut is None else _age_by_mtime(roots, cut)
        out.append(Aged(store, getattr(cfg, key), str(cut) if cut else None, files=files,
                        note="" if cut else "kept forever"))
    return out


def apply_retention(s: Settings, con: duckdb.DuckDBPyConnection, as_of: datetime | None = None) -> list[dict]:
    """Age out everything older than its window (load_config), counted back from `as_of` (default: the warehouse
    clock, never the wall clock). Warehouse stores change in one transaction; then the files. Returns one small dict
    per store (store, window, cutoff, rows, folders, files, changed, note) for the DAG's XCom and the docs."""
    as_of = as_of or clock(con)
    cfg = load_config(s)
    with transaction(con):
        done = [_age_table(con, rule, cfg, as_of) for rule in TABLE_RULES]
        done.append(_age_consent_proof(con, cfg, as_of))
    done.extend(_age_files(s, cfg, as_of))
    done.extend(_age_written_files(s, cfg, as_of))
    return [{**asdict(a), "changed": a.changed} for a in done]


def salted_hash(kind: str, value: str, salt: str) -> str:
    """A salted SHA-256 of one normalized identifier (e-mails and ids lower-cased and trimmed, phones by their last
    10 digits): a `hash_identifier` for pseudonymize_consent when the erasure has none of its own."""
    norm = re.sub(r"\D", "", value)[-10:] if kind == "phone" else value.strip().lower()
    return hashlib.sha256(f"{salt}\x1f{kind}\x1f{norm}".encode()).hexdigest()


def pseudonymize_consent(con: duckdb.DuckDBPyConnection, subject_hashes: Iterable[str],
                         hash_identifier: Callable[[str, str], str]) -> int:
    """After an erasure: every raw.consent record whose e-mail, phone or customer id hashes (with the erasure's own
    `hash_identifier(kind, value)`, kinds 'email', 'phone', 'identifier') to one of `subject_hashes` keeps its channel,
    topic, status, source and time, but its identifiers become those hashes prefixed 'erased:' and its proof becomes
    {"erased": true, "proof_sha256": ...} (the digest still matches a copy of the proof, which holds none of the
    person's data here). Returns the records changed. Run it before the erasure deletes the person's rows, and
    leave raw.consent to it. dbt rebuilds the consent models from raw.consent."""
    wanted = set(subject_hashes)
    if not wanted or not table_exists(con, "raw", "consent"):
        return 0
    rows = con.execute("SELECT rowid, email, phone, customer_id, proof FROM raw.consent").fetchall()
    changes = []
    for rowid, email, phone, cid, proof in rows:
        hashed = {k: hash_identifier(k, v) for k, v in (("email", email), ("phone", phone), ("identifier", cid)) if v}
        if not wanted.intersection(hashed.values()):
            continue
        new_proof = None if proof is None else json.dumps(
            {"erased": True, "proof_sha256": hashlib.sha256(proof.encode()).hexdigest()})
        changes.append([f"erased:{hashed[k]}" if k in hashed else None for k in ("email", "phone", "identifier")]
                        + [new_proof, rowid])
    if changes:
        with transaction(con):
            con.executemany("UPDATE raw.consent SET email = ?, phone = ?, customer_id = ?, proof = ? WHERE rowid = ?",
                            changes)
    return len(changes)


# raw.consent columns that name the person, with the tombstone kind their keyed hash is taken as.
CONSENT_IDENTIFIERS = (("email", "email"), ("phone", "phone"), ("customer_id", "id"))
PSEUDONYM = "erased:"  # prefix of a pseudonymized identifier; the consent staging model leaves such records out


def pseudonymize_erased_consent(con: duckdb.DuckDBPyConnection, key: str, subjects: Iterable) -> int:
    """The erasure's step for consent proof (run before its deletion, `beacon.privacy.erase`): every raw.consent
    record whose e-mail, phone or customer id is one of the erased people's (`Subject`s: as `beacon.tombstones`
    normalizes them, so any case or phone format) keeps its channel, topic, status, source and time, while each
    identifier becomes `erased:<keyed hash>` (the hash `privacy.tombstones` holds for it, `BEACON_PRIVACY_KEY`) and
    the proof `{"erased": true, "proof_sha256": ...}`, as `pseudonymize_consent` does. Set-based (one UPDATE); the
    key is a parameter, never in the SQL text. Returns the records changed."""
    from beacon.tombstones import check_key, hashes_of, sql_hash

    people = list(subjects)
    hashes = hashes_of(check_key(key), {"email": [e for p in people for e in p.emails],
                                         "phone": [x for p in people for x in p.phones],
                                         "id": [c for p in people for c in p.customer_ids]})
    if not hashes or not table_exists(con, "raw", "consent"):
        return 0
    con.execute("CREATE OR REPLACE TEMP TABLE _consent_key AS SELECT ?::VARCHAR AS k", [key])
    con.execute("CREATE OR REPLACE TEMP TABLE _consent_hashes AS SELECT unnest(?::VARCHAR[]) AS h", [hashes])
    hashed = {col: sql_hash(kind, col, "SELECT k FROM _consent_key") for col, kind in CONSENT_IDENTIFIERS}
    sets = ", ".join(f"{col} = CASE WHEN {h} IS NULL THEN NULL ELSE '{PSEUDONYM}' || {h} END"
                     for col, h in hashed.items())
    where = " OR ".join(f"coalesce({h} IN (SELECT h FROM _consent_hashes), false)" for h in hashed.values())
    proof = """proof = CASE WHEN proof IS NULL THEN NULL
        ELSE '{"erased": true, "proof_sha256": "' || sha256(proof) || '"}' END"""
    try:
        with transaction(con):
            n = con.execute(f"UPDATE raw.consent SET {sets}, {proof} WHERE {where}").fetchall()[0][0]
    finally:
        con.execute("DROP TABLE IF EXISTS _consent_key")
        con.execute("DROP TABLE IF EXISTS _consent_hashes")
    return int(n)


def keep_consent_proof(s: Settings | None, con: duckdb.DuckDBPyConnection, subjects: Iterable, report) -> int:
    """Called by the erasure before it deletes: pseudonymize the people's consent records (kept as proof,
    `pseudonymize_erased_consent`) and count them in the report as pseudonymized `raw.consent` rows. Without
    BEACON_PRIVACY_KEY there is no keyed hash to keep: the records are deleted with the person's other rows (a
    request always has the key)."""
    key = getattr(s, "privacy_key", None)
    if not key:
        return 0
    n = pseudonymize_erased_consent(con, key, subjects)
    if n:
        report.pseudonymized["raw.consent"] = report.pseudonymized.get("raw.consent", 0) + n
        report.add("warehouse", "raw.consent", n)
    return n


def run_retention(s: Settings) -> dict:
    """The privacy DAG's retention task: open the warehouse, apply_retention at its clock, return a small summary
    (counts and cutoffs, no personal data). Before the first build (no warehouse clock yet) it does nothing."""
    from beacon.warehouse import connect

    with connect(s.warehouse_path) as con:
        try:
            as_of = clock(con)
        except ValueError as exc:  # no marts or no events yet: nothing can be dated against the warehouse clock
            return {"skipped": str(exc)}
        report = apply_retention(s, con, as_of)
    return {"as_of": str(as_of), "summary": retention_summary(report),
            "changed": {r["store"]: r["changed"] for r in report if r["changed"]}}


def retention_summary(report: list[dict]) -> str:
    """One line per store that changed: for the task log (no personal data: counts and cutoffs only)."""
    unit = lambda r: "rows" if r["rows"] else "folders" if r["folders"] else "files"  # noqa: E731
    return "; ".join(f"{r['store']}: {r['changed']} {unit(r)} before {r['cutoff']}"
                     for r in report if r["changed"]) or "nothing older than its window"


__all__ = ["Aged", "keep_consent_proof", "RetentionConfig", "apply_retention", "load_config", "parse_duration", "pseudonymize_consent",
           "pseudonymize_erased_consent", "retention_summary", "run_retention", "salted_hash"]
