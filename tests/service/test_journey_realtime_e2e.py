"""End to end, issue 19: an event POSTed to a real `beacon serve` enters a journey and is sent within ONE trigger
cycle, on a small dbt-built warehouse (a generated 300-person world: load, `dbt run` of the marts the journeys read).

The cycle is what the two DAGs run, called the same way: `beacon_realtime` (`load_realtime`, then
`refresh_event_facts`: the event facts and the warehouse clock) and `beacon_journeys` (`journeys.engine.advance`
at `warehouse.clock`, with `journeys.api.default_env`: governance, the exactly-once sync, the `email` channel's
connection). The send lands in a real SMTP server. Airflow's own scheduling (the realtime DAG's 20 s interval,
the Asset trigger) is not in it: docs/benchmarks.md says what the latency figure includes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx
import pytest

from beacon.config import override_env, settings
from beacon.journeys.model import Journey

pytestmark = pytest.mark.e2e

PEOPLE, SEED = 300, 19
# A journey whose entry event leads straight to a send (the project's cart journey waits 1 h first, by design).
JOURNEY = Journey.model_validate({
    "name": "rt_cart", "version": 1, "owner": "tests", "priority": 90,
    "entry": {"event": {"name": "product_added", "dedupe_key": "event_key", "lookback": "1d"}, "re_entry": "never"},
    "exit_when": ["unsubscribed", "erased"], "start": "reminder",
    "nodes": [{"id": "reminder", "type": "send", "channel": "email", "template": "cart_reminder_1", "next": "done"},
              {"id": "done", "type": "exit"}]})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Generate, load and `dbt run` the marts the journeys read; return the data folder."""
    from beacon import dbt
    from beacon.generate import GenConfig, generate
    from beacon.ingest.landing import load_landing

    data = tmp_path_factory.mktemp("rt-world")
    with override_env(BEACON_DATA_DIR=str(data)):
        s = settings()
        generate(GenConfig(people=PEOPLE, seed=SEED), s.data_dir)
        load_landing(s.landing_dir)
        ok = dbt.run(["run", "--select", "+warehouse_as_of", "+dim_customers", "+dim_consent"], quiet=True)
        dbt.release_warehouse()
        assert ok, "dbt run of the marts failed"
    return data


def _person(con) -> tuple[str, str, str]:
    """(anonymous_id, customer_id, email) of a visitor the daily run identified, opted in to email."""
    return con.execute("""SELECT i.anonymous_id, i.customer_id, d.email
        FROM intermediate.int_web_identities_mapped i JOIN marts.dim_customers d USING (customer_id)
        JOIN marts.dim_consent k ON k.customer_id = i.customer_id AND k.channel = 'email' AND k.status = 'opt_in'
        WHERE d.email IS NOT NULL AND d.is_email_valid ORDER BY i.anonymous_id LIMIT 1""").fetchone()


def one_cycle(landing, run_id: str):
    """One trigger cycle: the realtime DAG's two tasks, then the journeys DAG's advance of `JOURNEY`."""
    from beacon import dbt
    from beacon.ingest.realtime import load_realtime, refresh_event_facts
    from beacon.journeys.api import default_env
    from beacon.journeys.engine import advance
    from beacon.warehouse import clock, connect

    loaded = load_realtime(landing, datetime.now(UTC).date()).totals()["rows_loaded"]
    if loaded:
        assert refresh_event_facts(), "dbt run of the event facts failed"
        dbt.release_warehouse()
    with connect() as con:
        return loaded, advance(con, JOURNEY, clock(con), default_env(), run_id=run_id)


def test_a_posted_event_enters_a_journey_and_is_sent_within_one_cycle(world, svc, smtp_sink):
    from beacon.warehouse import connect

    with override_env(BEACON_DATA_DIR=str(world), BEACON_LANDING_DIR=str(svc.landing)):
        with connect() as con:
            anon, cid, email = _person(con)
            before = con.execute("SELECT as_of_at FROM marts.warehouse_as_of").fetchone()[0]
        t0 = time.perf_counter()
        r = httpx.post(f"{svc.url}/v1/track", auth=(svc.write_key, ""), json={
            "event": "Product Added", "anonymousId": anon, "messageId": f"rt-e2e-{anon}",
            "properties": {"product_id": "sku-1"}})
        assert r.status_code == 200
        # The collector closes its file within rotate_seconds (0.5 s here; the DAG's interval covers this).
        deadline = time.time() + 10
        while time.time() < deadline and not any(p.name.startswith("collected_events-") and p.parent.name != "_spool"
                                                  and f"rt-e2e-{anon}" in p.read_text() for p in svc.files()):
            time.sleep(0.05)
        loaded, res = one_cycle(svc.landing, "rt-cycle-1")
        latency = time.perf_counter() - t0
        assert loaded >= 1
        assert (res.entered, res.sent) == (1, 1), res.to_dict()
        assert [rcpt for rcpt, _ in smtp_sink.messages] == [[email]]
        print(f"event-to-action (one cycle, no DAG interval): {latency:.2f} s")
        with connect() as con:
            log = con.execute("""SELECT customer_id, node_id, transition FROM journeys.transitions
                WHERE journey = 'rt_cart' AND node_id = 'reminder' ORDER BY step""").fetchall()
            after = con.execute("SELECT as_of_at FROM marts.warehouse_as_of").fetchone()[0]
        assert {c for c, _, _ in log} == {cid}, log
        assert after > before  # the warehouse clock moved to the posted event: that is what let it enter
        # The next cycle, with nothing new posted: no second entry, no second send.
        _, again = one_cycle(svc.landing, "rt-cycle-2")
        assert (again.entered, again.sent) == (0, 0) and len(smtp_sink.messages) == 1
