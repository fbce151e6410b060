"""The proof of erasure (issue 27, "Done when"; docs/privacy.md "How to prove it"), on a copy of the privacy tests'
world (tests/privacy/conftest.py: 500 people through the pipeline, journeys advanced, service files for some).

People are sampled from each group the issue names: merged from several source records, in a journey, already
exported, with collected events and preference records. Each is named by one identifier (an e-mail, a phone, an
anonymous id or a customer id, in turn) in an erasure request, processed as `beacon privacy erase` does (suppress,
resolve, remove from the destinations, erase every store, audit). Then the independent scan of
`beacon.privacy.scan` (ground truth, not Beacon's catalog or matcher) reads every column of every table and
view, every file under the data folder and Airflow's logs, and every table of Airflow's metadata database: none of their e-mails, phones, names,
anonymous ids or record ids may be left. Re-running the ingest over every landing day, a re-delivery of every landing
file as first delivered, and `dbt build --full-refresh` must bring none back. Before erasing, the same scan must find
every sampled person (the scan can fail), and an access request must return every value the scan finds for them.
The steps are the functions of `beacon.bench.privacy_proof`, which `beacon privacy prove` runs on a demo world."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from beacon.activation.erasure import remove_subject
from beacon.bench.privacy_proof import (
    KINDS,
    audit_check,
    candidates,
    erase_requests,
    named_in_requests,
    request_identifiers,
    resurrect,
    sample,
    scan_all,
)
from beacon.config import settings
from beacon.privacy.requests import process_request, submit
from beacon.privacy.scan import targets
from beacon.privacy.subject import resolve_subject
from beacon.warehouse import connect

pytestmark = pytest.mark.e2e

PER_GROUP = 5


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
            groups = sample(candidates(con, truth, privacy_world.planted), PER_GROUP)
            sampled = sorted({p for g in groups.values() for p in g})
            asked = {pid: request_identifiers(con, truth, pid, KINDS[i % len(KINDS)]) for i, pid in enumerate(sampled)}
            subjects = {pid: resolve_subject(con, ids) for pid, ids in asked.items()}
            named = named_in_requests(con, truth, asked)
        t = targets(truth, delivered, sampled, named)
        before = scan_all(s, t)
        access = {}
        for pid in sampled[:3]:  # through a request too: the document lands under the data folder
            doc = process_request(s, submit(s, "access", asked[pid], "test"), remove_subject)
            access[pid] = json.loads(Path(doc["result"]["access_document"]).read_text())
        done = erase_requests(s, asked, remove_subject)
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
    leaks = scan_all(proof["settings"], proof["targets"])
    assert not leaks, "left after erasure:\n" + "\n".join(sorted(map(str, leaks)))


def test_the_audit_trail_has_one_complete_record_per_request_and_no_personal_data(proof):
    ids = {doc["request_id"] for doc in proof["done"].values()}
    audit = audit_check(proof["settings"], ids, proof["targets"])
    assert audit["requests"] == len(proof["sampled"]) and audit["complete"] == audit["requests"], audit
    assert audit["plaintext_values"] == 0


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
        missing = sorted(w for w in where if w not in covered and not w.startswith("airflow metadata"))
        assert not missing, f"{pid}: the scan finds them in {missing}, the access document does not"
        values = {leak.value for leak in proof["before"] if leak.person == pid and leak.kind in ("email", "id")
                  and leak.where in covered}
        missing = sorted(v for v in values if v not in text)
        assert values and not missing, f"{pid}: values the scan finds, missing from the access document: {missing}"


def test_reingest_redelivery_and_full_refresh_bring_no_one_back(proof):
    back = resurrect(proof["settings"], proof["delivered"], proof["targets"])
    assert back["reingest_rows_loaded"] == 0, "rewritten landing files must not load twice"
    assert back["redelivered_files"] > 0
    assert back["redelivered_rows_loaded"] > 0  # the re-delivered files did load: everyone else came again
    assert back["full_refresh_ok"]
    # The re-delivered files are the source's own new delivery, not something Beacon wrote: every other store and
    # file is scanned again.
    assert not back["leak_set"], "back after re-ingest, re-delivery and full refresh:\n" + "\n".join(back["leaks"])
