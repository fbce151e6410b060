"""The proof of erasure (issue 27, "Done when"; docs/privacy.md "How to prove it"), on a copy of the privacy tests'
world (tests/privacy/conftest.py: 500 people through the pipeline, journeys advanced, service files for some).

People are sampled from each group the issue names: merged from several source records, in a journey, already
exported, with collected events and preference records. Each is named by one identifier (an e-mail, a phone, an
anonymous id or a customer id, in turn), resolved, removed from the destinations and erased. Then the independent
scan of tests/support/erasure_scan.py (ground truth, not Beacon's catalog or matcher) reads every column of every
table and view, every file under the data folder and Airflow's logs, and the XComs: none of their e-mails, phones,
names, anonymous ids or record ids may be left. Re-running the ingest over every landing day and `dbt build
--full-refresh` must bring none back. Before erasing, the same scan must find every sampled person (the scan can
fail), and an access request must return every value the scan finds for the person."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from support.erasure_scan import Leak, scan_files, scan_warehouse, scan_xcoms, targets

from beacon.activation.erasure import remove_subject
from beacon.config import settings
from beacon.privacy.access import build_access_document
from beacon.privacy.erase import erase_subject
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
        out[name] = [p for p in pids if p not in chosen][::7][:PER_GROUP]
        chosen |= set(out[name])
    return out


def _identifier(con, truth, pid: str, kind: str) -> dict[str, list[str]]:
    """One identifier of the person, of the given kind when they have one (else their e-mail)."""
    people = pd.read_parquet(truth / "people.parquet").set_index("person_id")
    records = pd.read_parquet(truth / "record_map.parquet")
    mine = records[records.person_id == pid]
    shared = people.phone.value_counts()
    if kind == "phone" and isinstance(people.phone[pid], str) and people.phone[pid] and shared[people.phone[pid]] == 1:
        return {"phone": [people.phone[pid]]}  # a household's phone names two people: asked with it, Beacon refuses
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
    """Erase the sampled people from a copy of the world; yields what the test functions check."""
    base = privacy_world.settings
    root = tmp_path_factory.mktemp("erasure-proof")
    shutil.copytree(base.data_dir, root / "data")
    delivered = root / "landing-as-delivered"
    shutil.copytree(base.landing_dir, delivered)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BEACON_DATA_DIR", str(root / "data"))
        mp.setenv("BEACON_DBT_TARGET_DIR", str(root / "data" / "dbt_target"))
        s = settings()
        truth = s.truth_dir / privacy_world.day
        with connect() as con:
            groups = _sample(con, truth, privacy_world.planted)
            sampled = sorted({p for g in groups.values() for p in g})
            asked = {pid: _identifier(con, truth, pid, KINDS[i % len(KINDS)]) for i, pid in enumerate(sampled)}
        t = targets(truth, delivered, sampled)
        before = _scan(s, t)
        with connect() as con:
            subjects = {pid: resolve_subject(con, ids) for pid, ids in asked.items()}
        access = {pid: build_access_document(s, subjects[pid]) for pid in sampled[:3]}
        reports, destinations = {}, {}
        for pid in sampled:
            destinations[pid] = remove_subject(s, subjects[pid])
            reports[pid] = erase_subject(s, subjects[pid], f"test-{pid}")
        yield {"settings": s, "targets": t, "groups": groups, "before": before, "reports": reports,
               "destinations": destinations, "access": access, "sampled": sampled, "subjects": subjects}


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
    for pid, rep in proof["reports"].items():
        assert rep.complete, f"{pid}: stores not cleaned: {rep.unclean}"
    assert sum(r.touched("warehouse") for r in proof["reports"].values()) > 0
    assert sum(r.touched("files") for r in proof["reports"].values()) > 0
    leaks = _scan(proof["settings"], proof["targets"])
    assert not leaks, "left after erasure:\n" + "\n".join(sorted(map(str, leaks)))


def test_reports_hold_no_personal_data(proof):
    text = json.dumps([r.to_dict() for r in proof["reports"].values()])
    t = proof["targets"]
    assert not [v for v in (*t.emails, *t.ids) if v in text.lower()]


def test_destinations_get_a_status_each(proof):
    statuses = {v for d in proof["destinations"].values() for v in d.values()}
    assert statuses and not [v for v in statuses if v.startswith("failed")], statuses
    exported = proof["groups"]["exported"]
    assert all(proof["destinations"][pid].get("file") == "erased_with_files" for pid in exported)


def test_access_returns_every_value_the_scan_finds(proof):
    for pid, doc in proof["access"].items():
        text = json.dumps(doc, default=str).lower()
        where = {leak.where for leak in proof["before"] if leak.person == pid}
        covered = set(doc["warehouse"]) | set(doc["files"])
        missing = sorted(w for w in where if w not in covered and not w.startswith("xcom"))
        assert not missing, f"{pid}: the scan finds them in {missing}, the access document does not"
        values = [v for v, p in (*proof["targets"].emails.items(), *proof["targets"].ids.items()) if p == pid]
        assert values and all(v in text for v in values), f"{pid}: values missing from the access document"


def test_reingest_and_full_refresh_bring_no_one_back(proof):
    from beacon.dbt import run as dbt_run
    from beacon.ingest.run import load_landing

    s = proof["settings"]
    with connect(read_only=True) as con:
        raw_before = con.execute("SELECT count(*) FROM raw.crm_contacts").fetchall()[0][0]
    summary = load_landing(s.landing_dir)
    assert summary.totals()["rows_loaded"] == 0, "rewritten landing files must not load twice"
    assert dbt_run(["build", "--full-refresh"], s, quiet=True)
    with connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.crm_contacts").fetchall()[0][0] == raw_before
    leaks = _scan(s, proof["targets"])
    assert not leaks, "back after re-ingest and full refresh:\n" + "\n".join(sorted(map(str, leaks)))
