"""The privacy tests' world, built once per session and shared: a 500-person world through the pipeline (Airflow
`dag.test()`, like the e2e run), with what `beacon serve` would have landed for a few people (collected events and
preference-centre records) and one advance of every journey.

`test_pii_scan` reads it as it is; `test_erasure_proof` erases people from a copy of it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from support.pii_scan import World

from beacon.config import Settings, settings

PEOPLE, SEED = 500, 27
PLANT_EVERY = 25  # every 25th person of the world also used the service: collected events and a preference record


@dataclass
class PrivacyWorld:
    settings: Settings
    day: str
    scan_world: World  # what support.pii_scan recognises
    planted: list[str] = field(default_factory=list)  # person ids with collected events and preference records


def plant_service_files(s: Settings, day: str) -> list[str]:
    """Collected events (identify with the e-mail trait, then a page view, from a device of their own) and an opt-out
    from the preference centre with its proof, for every PLANT_EVERY-th person, as `beacon serve` writes them."""
    from beacon.activation.preferences import preference_file, record_id

    people = pd.read_parquet(s.truth_dir / day / "people.parquet")
    chosen = people.iloc[::PLANT_EVERY]
    folder = s.landing_dir / day
    # The e-mail as one of their records carries it (else their own): the address the service sees is one Beacon
    # can link to them (an address no record of theirs holds is only found when a request names it).
    records = pd.read_parquet(s.truth_dir / day / "record_map.parquet")
    recorded = {}
    for name, rid in (("crm_contacts", "contact_id"), ("shop_customers", "customer_id")):
        d = pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False).rename(columns={rid: "record_id"})
        for r in d.merge(records, on="record_id").itertuples():
            if "@" in r.email:
                recorded.setdefault(r.person_id, r.email.strip())
    chosen = chosen.assign(email=[recorded.get(pid, e) for pid, e in zip(chosen.person_id, chosen.email, strict=True)])
    lines, prefs = [], []
    for i, p in enumerate(chosen.itertuples()):
        anon = f"anon-svc{i:04d}{p.person_id[-4:]}"
        at = f"{day}T0{i % 9}:1{i % 6}:00Z"
        ctx = {"ip": f"198.51.100.{i + 1}", "library": {"name": "analytics.js", "version": "4.1.0"}}
        lines.append({"messageId": f"svc-id-{i}", "type": "identify", "anonymousId": anon, "userId": None,
                      "traits": {"email": p.email, "firstName": p.first_name}, "timestamp": at, "receivedAt": at,
                      "context": ctx})
        lines.append({"messageId": f"svc-pg-{i}", "type": "page", "anonymousId": anon, "userId": None,
                      "properties": {"path": "/account"}, "timestamp": at, "receivedAt": at, "context": ctx})
        prefs.append({"consent_id": "pc-" + record_id("privacy-test", p.person_id), "email": p.email, "phone": "",
                      "channel": "email", "status": "opt_out", "source": "preference-centre",
                      "recorded_at": f"{day} 0{i % 9}:30:00", "topic": "", "customer_id": "", "audience": "",
                      "proof": json.dumps({"ip": ctx["ip"], "email": p.email, "asked": "email preferences"})})
    (folder / "collected_events-privacy-test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    name, data = preference_file(prefs)
    (folder / name).write_bytes(data)
    return list(chosen.person_id)


@pytest.fixture(scope="session")
def privacy_world(airflow_home) -> PrivacyWorld:
    from beacon.journeys.api import names, run
    from beacon.pipeline import prepare_world, run_dags
    from beacon.warehouse import clock, connect

    s = settings()
    day = prepare_world(s, people=PEOPLE, seed=SEED)
    planted = plant_service_files(s, day)
    run_dags(day)
    with connect() as con:
        for name in names():  # journeys are not in the demo chain: one advance fills their tables
            run(con, name, clock(con))
    truth: Path = s.truth_dir / day
    people = pd.read_parquet(truth / "people.parquet")
    records = pd.read_parquet(truth / "record_map.parquet")
    w = World(first_names=set(people.first_name.str.lower()), last_names=set(people.last_name.str.lower()))
    w.add_phones(people.phone)
    w.ids = set(records.record_id)
    with connect(read_only=True) as con:
        w.ids |= {r[0] for r in con.execute("SELECT customer_id FROM marts.dim_customers").fetchall()}
        w.ids |= {r[0] for r in con.execute("SELECT DISTINCT user_id FROM raw.web_events WHERE user_id IS NOT NULL")
                  .fetchall()}
        w.ids |= {r[0] for r in con.execute("SELECT DISTINCT anonymous_id FROM raw.collected_events").fetchall()}
    return PrivacyWorld(s, day, w, planted)
