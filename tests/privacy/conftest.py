"""The privacy tests' world, built once per session and shared: a 500-person world through the pipeline (Airflow
`dag.test()`, like the e2e run), with what `beacon serve` would have landed for a few people (collected events and
preference-centre records) and one advance of every journey.

`test_pii_scan` reads it as it is; `test_erasure_proof` erases people from a copy of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from support.pii_scan import World

from beacon.bench.privacy_proof import plant_service_files
from beacon.config import Settings, settings

PEOPLE, SEED = 500, 27
PLANT_EVERY = 25  # every 25th person of the world also used the service: collected events and a preference record


@dataclass
class PrivacyWorld:
    settings: Settings
    day: str
    scan_world: World  # what support.pii_scan recognises
    planted: list[str] = field(default_factory=list)  # person ids with collected events and preference records


@pytest.fixture(scope="session")
def privacy_world(airflow_home) -> PrivacyWorld:
    from beacon.journeys.api import names, run
    from beacon.pipeline import prepare_world, run_dags
    from beacon.warehouse import clock, connect

    s = settings()
    day = prepare_world(s, people=PEOPLE, seed=SEED)
    planted = plant_service_files(s, day, PLANT_EVERY)
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
