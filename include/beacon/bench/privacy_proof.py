"""The proof of erasure on a generated world (issue 27, "Done when"; docs/privacy.md "How to prove it"):
`beacon privacy prove` and tests/privacy/test_erasure_proof.py both run these functions.

1. People are sampled from each group the issue names (`sample`): merged from several source records, in a journey,
   already exported, with collected events and preference records (what `beacon serve` lands; a world with none
   gets them planted for every n-th person and loaded by the ingest first, `plant_service_files`).
2. Each is named by one identifier (`identifier`: an e-mail, a phone, an anonymous id or a customer id in turn) in an
   erasure request, processed as `beacon privacy erase` does (suppress, resolve, remove from the destinations,
   erase every store, audit).
3. The independent scan (`beacon.privacy.scan`: ground truth, not the catalog or the matcher) reads every column of
   every table and view, every file under the data folder and Airflow's logs, and every table of Airflow's metadata
   database, before (it must find every sampled person: the scan can fail) and after (it must find nothing).
4. Resurrection (`resurrect`): re-running the ingest over every landing day loads nothing; every landing file
   delivered again as first delivered, loaded, and `dbt build --full-refresh` bring none of them back.
5. Audit (`audit_check`): one complete `completed` record per request, none of their values in the privacy schema.

The generator's ground truth is needed (a world made by `beacon demo` or `beacon generate`). This lives in
beacon.bench (above beacon.activation in the import layers, like the benchmarks it sits with): planting uses the
preference-centre file format.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import pandas as pd

from beacon.config import Settings, settings
from beacon.privacy.airflow_meta import metadata_url
from beacon.privacy.files import log_roots
from beacon.privacy.scan import (
    Leak,
    Targets,
    scan_files,
    scan_metadata,
    scan_warehouse,
    targets,
    truth_tables,
)
from beacon.warehouse import connect, table_exists

GROUPS = ("merged", "journeys", "exported", "service_files")
KINDS = ("email", "phone", "anonymous_id", "customer_id")


def plant_service_files(s: Settings, day: str, every: int) -> list[str]:
    """Collected events (identify with the e-mail trait, then a page view, from a device of their own) and an opt-out
    from the preference centre with its proof, for every `every`-th person, as `beacon serve` writes them into the
    landing day folder; the person ids."""
    from beacon.activation.preferences import preference_file, record_id

    people, records = truth_tables(s.truth_dir)
    chosen = people.iloc[::every]
    folder = s.landing_dir / day
    # The e-mail as one of their records carries it (else their own): an address Beacon can link to them.
    recorded: dict[str, str] = {}
    for name, rid in (("crm_contacts", "contact_id"), ("shop_customers", "customer_id")):
        for f in sorted(s.landing_dir.glob(f"*/{name}.csv")):
            d = pd.read_csv(f, dtype=str, keep_default_na=False, on_bad_lines="skip").rename(columns={rid: "record_id"})
            for r in d.merge(records, on="record_id").itertuples():
                if "@" in r.email:
                    recorded.setdefault(r.person_id, r.email.strip())
    chosen = chosen.assign(email=[recorded.get(pid, e) for pid, e in zip(chosen.person_id, chosen.email, strict=True)])
    lines, prefs = [], []
    for i, p in enumerate(chosen.itertuples()):
        anon = f"anon-svc{i:04d}-{p.person_id.lower()}"  # the person in the id: `planted_ids` reads it back
        at = f"{day}T0{i % 9}:1{i % 6}:00Z"
        ctx = {"ip": f"198.51.{100 + i // 250}.{i % 250 + 1}", "library": {"name": "analytics.js", "version": "4.1.0"}}
        lines.append({"messageId": f"svc-id-{i}", "type": "identify", "anonymousId": anon, "userId": None,
                      "traits": {"email": p.email, "firstName": p.first_name}, "timestamp": at, "receivedAt": at,
                      "context": ctx})
        lines.append({"messageId": f"svc-pg-{i}", "type": "page", "anonymousId": anon, "userId": None,
                      "properties": {"path": "/account"}, "timestamp": at, "receivedAt": at, "context": ctx})
        prefs.append({"consent_id": "pc-" + record_id("privacy-test", p.person_id), "email": p.email, "phone": "",
                      "channel": "email", "status": "opt_out", "source": "preference-centre",
                      "recorded_at": f"{day} 0{i % 9}:30:00", "topic": "", "customer_id": "", "audience": "",
                      "proof": json.dumps({"ip": ctx["ip"], "email": p.email, "asked": "email preferences"})})
    (folder / PLANTED_FILE).write_text("".join(json.dumps(x) + "\n" for x in lines))
    name, data = preference_file(prefs)
    (folder / name).write_bytes(data)
    return list(chosen.person_id)


PLANTED_FILE = "collected_events-privacy-test.jsonl"
_PLANTED_ANON = re.compile(r"anon-svc\d{4}-(p\d+)")


def planted_ids(landing: Path) -> dict[str, str]:
    """Anonymous id -> person id of the service's files `plant_service_files` wrote (the scan's ground truth for
    them: a planted person may have no record, and an e-mail or name shared with others)."""
    out = {}
    for f in landing.glob(f"*/{PLANTED_FILE}"):
        for m in _PLANTED_ANON.finditer(f.read_text(encoding="utf-8", errors="replace")):
            out[m.group(0)] = m.group(1).upper()
    return out


def _people_of(con, records: pd.DataFrame, customer_ids) -> list[str]:
    """Person ids (ground truth) of customer ids, through their source records."""
    rows = con.execute("""SELECT DISTINCT record_id, customer_id FROM intermediate.int_customer_records_resolved
        WHERE customer_id IN (SELECT unnest($c))""", {"c": sorted(customer_ids)}).df()
    return sorted(set(rows.merge(records, on="record_id").person_id))


def candidates(con, truth: Path, planted: list[str]) -> dict[str, list[str]]:
    """Person ids of each group: merged from several source records, in a journey, exported to a file destination,
    with service files."""
    _, records = truth_tables(truth)
    sources = records[records.source != "web_events"].groupby("person_id").size()
    in_journeys = [r[0] for r in con.execute("SELECT DISTINCT customer_id FROM journeys.transitions").fetchall()]
    exported = [r[0] for r in con.execute("SELECT DISTINCT customer_id FROM activation.sync_state "
                                          "WHERE present AND destination = 'file'").fetchall()]
    return {"merged": sorted(sources[sources >= 2].index), "journeys": _people_of(con, records, in_journeys),
            "exported": _people_of(con, records, exported), "service_files": sorted(planted)}


def sample(groups: dict[str, list[str]], per_group: int) -> dict[str, list[str]]:
    """Up to `per_group` people of each group, spread over it, no one twice."""
    chosen: set[str] = set()
    out = {}
    for name, pids in groups.items():
        free = [p for p in pids if p not in chosen]
        out[name] = free[::max(1, min(7, len(free) // max(1, per_group)))][:per_group]
        chosen |= set(out[name])
    return out


def identifier(con, truth: Path, pid: str, kind: str) -> dict[str, list[str]]:
    """One identifier of the person, of the given kind when they have one (else their e-mail)."""
    people, records = truth_tables(truth)
    mine = records[records.person_id == pid]
    if kind == "phone":  # a phone Beacon holds for them (one of their records has it) and no one else has
        held = con.execute("SELECT phone_e164 FROM intermediate.int_customer_records_unioned WHERE phone_e164 IS NOT "
                           "NULL AND record_id IN (SELECT unnest($r))", {"r": list(mine.record_id)}).fetchall()
        shared = con.execute("SELECT count(DISTINCT r.customer_id) FROM intermediate.int_customer_records_unioned u "
                             "JOIN intermediate.int_customer_records_resolved r USING (record_key) "
                             "WHERE u.phone_e164 = ?", [held[0][0]]).fetchall()[0][0] if held else 0
        if shared == 1:
            return {"phone": [held[0][0]]}
    if kind == "anonymous_id" and (mine.source == "web_events").any():
        return {"anonymous_id": [mine[mine.source == "web_events"].record_id.iloc[0]]}
    if kind == "customer_id":
        cids = con.execute("SELECT customer_id FROM intermediate.int_customer_records_resolved WHERE record_id IN "
                           "(SELECT unnest($r))", {"r": list(mine.record_id)}).fetchall()
        if cids:
            return {"customer_id": [cids[0][0]]}
    return {"email": [people.set_index("person_id").email[pid]]}


def request_identifiers(con, truth: Path, pid: str, kind: str) -> dict[str, list[str]]:
    """What the person names themselves by in their request: their contact details as they know them (their
    e-mail addresses and phone, as a request form asks), plus one identifier of the sampled kind (`identifier`:
    the browser's anonymous id, a customer id, ...). A record that carries only a detail identity resolution never
    linked to the others (a web visitor who never identified, a consent given by phone) is theirs only through what
    they name; a proof that named one identifier would ask the erasure to know what no one told it. When an
    identifier is ambiguous (an address or phone on the records of several customers: a household's), the customer
    id of each of their records is added, as someone with several accounts would give them."""
    from beacon.privacy.subject import SubjectError, resolve_subject

    people, records = truth_tables(truth)
    me = people.set_index("person_id").loc[pid]
    ids: dict[str, list[str]] = {}
    for k, v in (("email", me.email), ("email", me.work_email), ("phone", me.phone)):
        if isinstance(v, str) and v.strip():
            ids.setdefault(k, []).append(v.strip())
    for k, vs in identifier(con, truth, pid, kind).items():
        ids[k] = sorted({*ids.get(k, []), *vs})
    try:
        resolve_subject(con, ids)
        return ids
    except SubjectError:
        mine = list(records[records.person_id == pid].record_id)
        cids = sorted({r[0] for r in con.execute("SELECT customer_id FROM intermediate.int_customer_records_resolved "
                                                 "WHERE record_id IN (SELECT unnest($r))", {"r": mine}).fetchall()})
        return {**ids, "customer_id": sorted({*ids.get("customer_id", []), *cids})}


def named_in_requests(con, truth: Path, asked: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, list[str]]]:
    """What each request names, for the scan's linkability (`beacon.privacy.scan.linkable`): its identifiers, and
    the person's records that a customer id it names is made of."""
    _, records = truth_tables(truth)
    out = {}
    for pid, ids in asked.items():
        mine = list(records[records.person_id == pid].record_id)
        recs = [r[0] for r in con.execute("""SELECT record_id FROM intermediate.int_customer_records_resolved
            WHERE record_id IN (SELECT unnest($r)) AND customer_id IN (SELECT unnest($c))""",
                                          {"r": mine, "c": list(ids.get("customer_id", [])) or [""]}).fetchall()]
        out[pid] = {**ids, "record_id": recs}
    return out


def scan_all(s: Settings, t: Targets, skip_also: tuple[Path, ...] = ()) -> set[Leak]:
    """The scan of every store: the warehouse, every file under the data folder and Airflow's log folders (but the
    ground truth, the warehouse file, dbt's target folder), Airflow's metadata database."""
    with connect(s.warehouse_path, read_only=True) as con:
        leaks = scan_warehouse(con, t)
    skip = [s.truth_dir, s.warehouse_path, s.warehouse_path.with_name(s.warehouse_path.name + ".wal"),
            s.dbt_target_dir, *skip_also]
    leaks |= scan_files([s.data_dir, *log_roots(s)], t, skip=skip)
    return leaks | scan_metadata(metadata_url(s), t)


def redeliver(delivered: Path, landing: Path) -> int:
    """Every landing file as first delivered (source extracts, the service's event and preference files), again (a
    source re-sending its old export: one more trailing newline, so the ledger sees new content); the number of
    files."""
    n = 0
    for f in sorted(delivered.glob("*/*")):
        if f.is_file() and (f.suffix in (".csv", ".jsonl") or f.name.startswith("consent.csv")):
            (landing / f.parent.name / f.name).write_bytes(f.read_bytes() + b"\n")
            n += 1
    return n


def resurrect(s: Settings, delivered: Path, t: Targets) -> dict:
    """Re-run the ingest (must load nothing), re-deliver every landing file, load it, `dbt build --full-refresh`,
    and scan everything but the re-delivered landing files (the source's own new delivery, not Beacon's)."""
    from beacon.dbt import run as dbt_run
    from beacon.ingest.run import load_landing

    reingest = load_landing(s.landing_dir).totals()["rows_loaded"]
    files = redeliver(delivered, s.landing_dir)
    loaded = load_landing(s.landing_dir).totals()["rows_loaded"]
    refreshed = dbt_run(["build", "--full-refresh"], s, quiet=True)
    leaks = {leak for leak in scan_all(s, t) if not leak.where.startswith(str(s.landing_dir))}
    return {"reingest_rows_loaded": reingest, "redelivered_files": files, "redelivered_rows_loaded": loaded,
            "full_refresh_ok": bool(refreshed), "leaks": sorted(map(str, leaks)), "leak_set": leaks}


def audit_check(s: Settings, request_ids: set[str], t: Targets) -> dict:
    """One complete `completed` record per request; none of the people's e-mails or ids in the privacy schema."""
    with connect(s.warehouse_path, read_only=True) as con:
        rows = dict(con.execute("""SELECT request_id, count(*) FROM privacy.audit WHERE event = 'completed'
            AND completed_at IS NOT NULL GROUP BY 1""").fetchall())
        text = json.dumps([con.execute(f"SELECT * FROM privacy.{x}").df().astype(str).values.tolist()
                           for x in ("audit", "requests", "tombstones")]).lower()
    complete = sorted(r for r in request_ids if rows.get(r) == 1)
    plain = sorted({v for v in (*t.emails, *t.ids) if v in text})
    return {"requests": len(request_ids), "complete": len(complete), "missing": sorted(request_ids - set(complete)),
            "plaintext_values": len(plain)}


def work_copy(s: Settings, work: Path) -> dict[str, str]:
    """Copy the world (data folder, dbt's target, the embedded Airflow home's logs and metadata database) into
    `work`; the environment that points Beacon at the copy (and at an empty stack folder: the local stack's logs are
    not the world's)."""
    if work.exists() and any(work.iterdir()):
        raise ValueError(f"--work {work}: the folder exists and is not empty (the proof works on a fresh copy)")
    shutil.copytree(s.data_dir, work / "data", ignore=shutil.ignore_patterns("*.lock"))
    shutil.copytree(s.dbt_target_dir, work / "dbt_target", ignore=shutil.ignore_patterns("compiled", "run"))
    env = {"BEACON_DATA_DIR": str(work / "data"), "BEACON_DBT_TARGET_DIR": str(work / "dbt_target"),
           "AIRFLOW_HOME": str(work / "airflow"), "BEACON_STACK_DIR": str(work / "stack")}
    for field, name in (("landing_dir", "BEACON_LANDING_DIR"), ("truth_dir", "BEACON_TRUTH_DIR"),
                        ("warehouse_path", "BEACON_WAREHOUSE"), ("exports_dir", "BEACON_EXPORTS_DIR"),
                        ("registry_dir", "BEACON_REGISTRY_DIR")):
        if not Path(getattr(s, field)).resolve().is_relative_to(Path(s.data_dir).resolve()):
            raise ValueError(f"{name} points outside the data folder: the proof copies the data folder only; "
                             "unset it or use --in-place")
    airflow = Path(s.airflow_home or s.home / ".airflow")
    (work / "airflow").mkdir()
    if (airflow / "logs").is_dir():
        shutil.copytree(airflow / "logs", work / "airflow" / "logs")
    db = airflow / "airflow.db"
    if db.exists():
        dst = sqlite_copy(db, work / "airflow" / "airflow.db")
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{dst}"
    return env


def sqlite_copy(src: Path, dst: Path) -> Path:
    """A consistent copy of a SQLite database (its write-ahead log included), through SQLite's backup."""
    import sqlite3

    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()
    return dst


def erase_requests(s: Settings, asked: dict[str, dict], remove_destinations: Callable) -> dict[str, dict]:
    """One erasure request per person, submitted as `beacon privacy erase` accepts them, then processed together as
    the privacy DAG processes its queue (`process_erase_batch`: one resolution, one pass over each store, each
    request with its own record); person -> status document."""
    from beacon.privacy.requests import process_erase_batch, process_request, submit

    reqs = {pid: submit(s, "erase", ids, "cli:privacy-prove") for pid, ids in asked.items()}
    if len(reqs) == 1:
        return {pid: process_request(s, req, remove_destinations) for pid, req in reqs.items()}
    done = process_erase_batch(s, list(reqs.values()), remove_destinations)
    return {pid: done[req.request_id] for pid, req in reqs.items()}


def _has_service_data(s: Settings) -> bool:
    with connect(s.warehouse_path, read_only=True) as con:
        n = con.execute("SELECT count(*) FROM raw.collected_events").fetchall()[0][0] \
            if table_exists(con, "raw", "collected_events") else 0
    return n > 0


def prove(s: Settings, sample_size: int, remove_destinations: Callable, plant_every: int = 25,
          progress: Callable[[str], None] = lambda _: None) -> dict:
    """The whole proof on the world `s` points at (a copy: `work_copy`); a JSON-able result with the figures."""
    from beacon.ingest.run import load_landing
    from beacon.privacy.subject import resolve_subject

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    delivered = s.data_dir.parent / "landing-as-delivered"
    planted: list[str] = []
    day = max(p.name for p in s.landing_dir.iterdir() if p.is_dir() and p.name[:1].isdigit())
    if not _has_service_data(s):
        progress("planting the service's files")
        planted = plant_service_files(s, day, plant_every)
        load_landing(s.landing_dir)
    shutil.copytree(s.landing_dir, delivered, dirs_exist_ok=True)
    progress("sampling")
    with connect(s.warehouse_path) as con:
        groups = candidates(con, s.truth_dir, planted)
        chosen = sample(groups, max(1, sample_size // len(GROUPS)))
        people = sorted({p for g in chosen.values() for p in g})
        asked = {pid: request_identifiers(con, s.truth_dir, pid, KINDS[i % len(KINDS)])
                 for i, pid in enumerate(people)}
        subjects = {pid: resolve_subject(con, ids) for pid, ids in asked.items()}
        named = named_in_requests(con, s.truth_dir, asked)
    t = targets(s.truth_dir, delivered, people, named, planted_ids(delivered))
    seconds["prepare"] = round(time.perf_counter() - t0, 1)
    progress(f"scanning before ({len(people)} people)")
    t1 = time.perf_counter()
    before = scan_all(s, t, skip_also=(delivered,))
    seconds["scan_before"] = round(time.perf_counter() - t1, 1)
    progress(f"erasing {len(people)} people, one request each")
    t1 = time.perf_counter()
    from beacon.pipeline import demo_email_outbox, outbox

    # A demo world's e-mail channel is a file destination in its outbox (`beacon demo` sets that connection).
    with demo_email_outbox(s) if outbox(s).is_dir() else nullcontext():
        done = erase_requests(s, asked, remove_destinations)
    seconds["erase"] = round(time.perf_counter() - t1, 1)
    progress("scanning after")
    t1 = time.perf_counter()
    after = scan_all(s, t, skip_also=(delivered,))
    seconds["scan_after"] = round(time.perf_counter() - t1, 1)
    progress("re-ingest, re-delivery, dbt build --full-refresh")
    t1 = time.perf_counter()
    back = resurrect(s, delivered, t)
    seconds["resurrection"] = round(time.perf_counter() - t1, 1)
    audit = audit_check(s, {d["request_id"] for d in done.values()}, t)
    seconds["total"] = round(time.perf_counter() - t0, 1)
    return summary(groups, chosen, asked, subjects, t, before, done, after, back, audit, seconds, planted)


def summary(groups, chosen, asked, subjects, t, before, done, after, back, audit, seconds, planted) -> dict:
    """The proof's figures (counts and places; person ids of the generated world, never their values)."""
    people = sorted(asked)
    found = {leak.person for leak in before}
    merged_ok = sum(1 for pid in chosen["merged"] if {v for v, p in t.ids.items() if p == pid}
                    <= {v.lower() for v in (*subjects[pid].record_ids, *subjects[pid].anonymous_ids)})
    statuses = [d["status"] for d in done.values()]
    unclean = [u for d in done.values() for u in (d.get("result") or {}).get("unclean", [])]
    destinations = Counter(f"{k}: {v}" for d in done.values()
                           for k, v in ((d.get("result") or {}).get("destinations") or {}).items())
    failed = sum(n for k, n in destinations.items() if ": failed" in k)
    return {
        "groups": {g: {"candidates": len(groups[g]), "sampled": len(chosen[g])} for g in GROUPS},
        "planted_service_people": len(planted), "people": len(people),
        "identifiers_asked": dict(Counter("+".join(sorted(ids)) for ids in asked.values())),
        "targets": {"emails": len(t.emails), "phones": len(t.phones), "ids": len(t.ids), "names": len(t.names)},
        "not_looked_for": not_looked_for(t),
        "merged_resolved_to_all_records": f"{merged_ok}/{len(chosen['merged'])}",
        "before": {"people_found": len(found), "not_found": sorted(set(people) - found), "values": len(before),
                   "kinds": sorted({leak.kind for leak in before}), "places": len({leak.where for leak in before})},
        "requests": {"completed": statuses.count("completed"), "other": len(statuses) - statuses.count("completed"),
                     "unclean": unclean, "destinations": dict(destinations), "destinations_failed": failed},
        "after": {"leaks": len(after), "found": sorted(map(str, after))[:50]},
        "resurrection": {k: v for k, v in back.items() if k != "leak_set"},
        "audit": audit, "seconds": seconds,
        "proved": (not after and not back["leak_set"] and found == set(people) and not unclean and not failed
                   and back["reingest_rows_loaded"] == 0 and back["full_refresh_ok"]
                   and audit["complete"] == audit["requests"] and not audit["plaintext_values"]
                   and statuses.count("completed") == len(statuses)),
    }


def not_looked_for(t: Targets) -> dict:
    """What the scan leaves out and why (docs/privacy.md "How to prove it")."""
    u = t.unlinked
    return {"unlinkable_ids": len(u.ids), "unlinkable_anonymous_ids": sum(v.startswith("anon") for v in u.ids),
            "people_with_unlinkable_ids": len(set(u.ids.values())),
            "people": sorted({*u.ids.values(), *u.names_shared.values(), *u.names_unlinked.values()}),
            "names_another_persons_record_carries": len(u.names_shared),
            "names_on_unlinkable_records": len(u.names_unlinked),
            "why": "an id nothing in the delivered data ties to what the request names (a web visitor who never "
                   "identified) cannot be found by the controller (GDPR Art. 11); a name another person's record "
                   "carries is that person's too (a namesake)"}


def settings_for(env: dict[str, str]) -> Settings:
    """Settings after pointing the environment at the copy."""
    os.environ.update(env)
    return settings()


__all__ = ["GROUPS", "KINDS", "audit_check", "candidates", "erase_requests", "identifier", "named_in_requests",
           "not_looked_for", "plant_service_files", "planted_ids", "prove", "redeliver", "resurrect", "sample", "scan_all",
           "settings_for", "work_copy"]
