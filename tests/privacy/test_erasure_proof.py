"""The proof of erasure (issue 27, "Done when"; docs/privacy.md "How to prove it"), on a copy of the privacy tests'
world (tests/privacy/conftest.py: 500 people through the pipeline, journeys advanced, service files for some).

People are sampled from each group the issue names: merged from several source records, in a journey, already
exported, with collected events and preference records. Each is named by one identifier (an e-mail, a phone, an
anonymous id or a customer id, in turn) in an erasure request, processed as `beacon privacy erase` does (suppress,
resolve, remove from the destinations, erase every store, audit). Then the independent scan of
tests/support/erasure_scan.py (ground truth, not Beacon's catalog or matcher) reads every column of every table and
view, every file under the data folder and Airflow's logs, and the XComs: none of their e-mails, phones, names,
anonymous ids or record ids may be left. Re-running the ingest over every landing day, a re-delivery of every landing
file as first delivered, and `dbt build --full-refresh` must bring none back. Before erasing, the same scan must find
every sampled person (the scan can fail), and an access request must return every value the scan finds for them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from support.erasure_scan import Leak, scan_files, scan_warehouse, scan_xcoms, targets

from beacon.activation.erasure import remove_subject
from beacon.config import settings
from beacon.privacy.requests import process_request, submit
from beacon.privacy.subject import resolve_subject
from beacon.warehouse import connect

pytestmark = pytest.mark.e2e

PER_GROUP = 5
KINDS = ("email", "phone", "anonymous_id", "customer_id")


def _people_of(con, truth, customer_ids) -> list[str]:
    """Person ids (ground truth) of customer ids, through their source records."""
    records = pd.read_parquet(truth / "record_map.parquet")
    rows = con.execute("""SELECT DISTINCT record_id, customer_id FROM intermediate.int_customer_records_resolved
        WHERE customer_id IN (SELECT unnest($c))""", {"c": sorted(customer_ids)}).df()
    return sorted(set(rows.merge(records, on="record_id").person_id))


def _sample(con, truth, planted: list[str]) -> dict[str, list[str]]:
    records = pd.read_parquet(truth / "record_map.parquet")
    sources = records[records.source != "web_events"].groupby("person_id").size()
    in_journeys = [r[0] for r in con.execute("SELECT DISTINCT customer_id FROM journeys.transitions").fetchall()]
    exported = [r[0] for r in con.execute("SELECT DISTINCT customer_id FROM activation.sync_state "
                                          "WHERE present AND destination = 'file'").fetchall()]
    groups = {"merged": sorted(sources[sources >= 2].index), "journeys": _people_of(con, truth, in_journeys),
              "exported": _people_of(con, truth, exported), "service_files": sorted(planted)}
    chosen: set[str] = set()
    out = {}
    for name, pids in groups.items():
        free = [p for p in pids if p not in chosen]
        out[name] = free[::max(1, min(7, len(free) // PER_GROUP))][:PER_GROUP]  # spread over the group
        chosen |= set(out[name])
    return out


def _identifier(con, truth, pid: str, kind: str) -> dict[str, list[str]]:
    """One identifier of the person, of the given kind when they have one (else their e-mail)."""
    people = pd.read_parquet(truth / "people.parquet").set_index("person_id")
    records = pd.read_parquet(truth / "record_map.parquet")
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
    return {"email": [people.email[pid]]}


def _scan(s, t) -> set[Leak]:
    with connect(read_only=True) as con:
        leaks = scan_warehouse(con, t)
    skip = [s.truth_dir, s.warehouse_path, s.dbt_target_dir]
    leaks |= scan_files([s.data_dir, s.airflow_home / "logs"], t, skip=skip)
    return leaks | scan_xcoms(s.airflow_home / "airflow.db", t)


@pytest.fixture(scope="module")
def proof(privacy_world, tmp_path_factory):
    """Erase the sampled people from a copy of the world, each through a request (`submit` then `process_request`,
    as `beacon privacy erase` does); yields what the test functions check."""
    base = privacy_world.settings
    root = tmp_path_factory.mktemp("erasure-proof")
    shutil.copytree(base.data_dir, root / "data")
    delivered = root / "landing-as-delivered"
    shutil.copytree(base.landing_dir, delivered)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BEACON_DATA_DIR", str(root / "data"))
        mp.setenv("BEACON_DBT_TARGET_DIR", str(root / "data" / "dbt_target"))
        mp.setenv("BEACON_PRIVACY_KEY", "test-privacy-key-not-a-secret")
        s = settings()
        truth = s.truth_dir / privacy_world.day
        with connect() as con:
            groups = _sample(con, truth, privacy_world.planted)
            sampled = sorted({p for g in groups.values() for p in g})
            asked = {pid: _identifier(con, truth, pid, KINDS[i % len(KINDS)]) for i, pid in enumerate(sampled)}
            subjects = {pid: resolve_subject(con, ids) for pid, ids in asked.items()}
        t = targets(truth, delivered, sampled)
        before = _scan(s, t)
        access = {}
        for pid in sampled[:3]:  # through a request too: the document lands under the data folder
            doc = process_request(s, submit(s, "access", asked[pid], "test"), remove_subject)
            access[pid] = json.loads(Path(doc["result"]["access_document"]).read_text())
        done = {pid: process_request(s, submit(s, "erase", asked[pid], "test"), remove_subject) for pid in sampled}
        yield {"settings": s, "targets": t, "groups": groups, "before": before, "done": done, "access": access,
               "sampled": sampled, "subjects": subjects, "delivered": delivered}


def test_every_group_is_sampled_and_the_scan_finds_them_before(proof):
    assert all(len(g) == PER_GROUP for g in proof["groups"].values()), proof["groups"]
    found = {leak.person for leak in proof["before"]}
    assert found == set(proof["sampled"]), f"the scan must find every sampled person before: {set(proof['sampled']) - found}"
    kinds = {leak.kind for leak in proof["before"]}
    assert kinds == {"email", "phone", "id", "name"}, kinds


def test_merged_people_resolve_to_all_their_records(proof):
    for pid in proof["groups"]["merged"]:
        sub = proof["subjects"][pid]
        mine = {v for v, p in proof["targets"].ids.items() if p == pid}
        got = {v.lower() for v in (*sub.record_ids, *sub.anonymous_ids)}
        assert mine <= got, f"{pid}: records {sorted(mine - got)} not resolved from {sub.given}"


def test_erasure_leaves_nothing_of_them(proof):
    for pid, doc in proof["done"].items():
        assert doc["status"] == "completed", f"{pid}: {doc}"
        assert not doc["result"]["unclean"], f"{pid}: stores not cleaned: {doc['result']['unclean']}"
    stores = [doc["result"]["stores"] for doc in proof["done"].values()]
    assert sum(sum(st.get("warehouse", {}).values()) for st in stores) > 0
    assert sum(sum(st.get("files", {}).values()) for st in stores) > 0
    leaks = _scan(proof["settings"], proof["targets"])
    assert not leaks, "left after erasure:\n" + "\n".join(sorted(map(str, leaks)))


def test_the_audit_trail_has_one_complete_record_per_request_and_no_personal_data(proof):
    ids = {doc["request_id"] for doc in proof["done"].values()}
    with connect(read_only=True) as con:
        rows = con.execute("SELECT request_id, count(*) FROM privacy.audit WHERE event = 'completed' "
                           "AND completed_at IS NOT NULL GROUP BY 1").fetchall()
        text = json.dumps([con.execute(f"SELECT * FROM privacy.{x}").df().astype(str).values.tolist()
                           for x in ("audit", "requests")]).lower()
    assert {r for r, n in rows if n == 1} >= ids
    t = proof["targets"]
    assert not [v for v in (*t.emails, *t.ids) if v in text]


def test_destinations_get_a_status_each(proof):
    statuses = [doc["result"]["destinations"] for doc in proof["done"].values()]
    values = {v for d in statuses for v in d.values()}
    assert values and not [v for v in values if v.startswith("failed")], values
    exported = proof["groups"]["exported"]
    assert all(proof["done"][pid]["result"]["destinations"].get("file") == "erased_with_files" for pid in exported)


def test_access_returns_every_value_the_scan_finds(proof):
    for pid, doc in proof["access"].items():
        text = json.dumps(doc, default=str).lower()
        where = {leak.where for leak in proof["before"] if leak.person == pid}
        covered = set(doc["warehouse"]) | set(doc["files"])
        missing = sorted(w for w in where if w not in covered and not w.startswith("xcom"))
        assert not missing, f"{pid}: the scan finds them in {missing}, the access document does not"
        values = {leak.value for leak in proof["before"] if leak.person == pid and leak.kind in ("email", "id")
                  and leak.where in covered}
        missing = sorted(v for v in values if v not in text)
        assert values and not missing, f"{pid}: values the scan finds, missing from the access document: {missing}"


def _redeliver(delivered: Path, landing: Path) -> int:
    """Every landing file as first delivered, again (a source re-sending its old export: one more trailing newline,
    so the ledger sees new content); the number of files."""
    n = 0
    for f in sorted(delivered.glob("*/*")):
        if f.is_file() and f.suffix in (".csv", ".jsonl"):
            (landing / f.parent.name / f.name).write_bytes(f.read_bytes() + b"\n")
            n += 1
    return n


def test_reingest_redelivery_and_full_refresh_bring_no_one_back(proof):
    from beacon.dbt import run as dbt_run
    from beacon.ingest.run import load_landing

    s = proof["settings"]
    with connect(read_only=True) as con:
        raw_before = con.execute("SELECT count(*) FROM raw.crm_contacts").fetchall()[0][0]
    assert load_landing(s.landing_dir).totals()["rows_loaded"] == 0, "rewritten landing files must not load twice"
    with connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.crm_contacts").fetchall()[0][0] == raw_before
    assert _redeliver(proof["delivered"], s.landing_dir) > 0
    again = load_landing(s.landing_dir).totals()
    assert again["rows_loaded"] > 0  # the re-delivered files did load: everyone else came again
    assert dbt_run(["build", "--full-refresh"], s, quiet=True)
    # The re-delivered files are the source's own new delivery, not something Beacon wrote: every other store and
    # file is scanned again.
    leaks = {leak for leak in _scan(s, proof["targets"]) if not leak.where.startswith(str(s.landing_dir))}
    assert not leaks, "back after re-ingest, re-delivery and full refresh:\n" + "\n".join(sorted(map(str, leaks)))
