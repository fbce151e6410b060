"""End to end, issue 25: an `Order Completed` posted through Segment's library reaches fct_orders and the outcomes.

A small generated world (300 people, loaded, marts built by dbt), one audience send logged by activation for a
shop customer, then the shop's own code posts orders through `segment-analytics-python` with its default settings
against a real `beacon serve`: a new order (counted, with its revenue), the same order re-sent under another
messageId (counted once), and an order id the shop's feed already has (the feed's row wins). The ingest and dbt
then run as the daily DAGs do.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, timedelta

import pytest
from support.service import small_world

from beacon.config import override_env

pytestmark = pytest.mark.e2e

MODELS = ["stg_web__events", "int_web_identities_mapped", "int_web_orders_mapped", "fct_orders", "fct_web_events", "int_web_sessions_split",
          "fct_web_sessions",
          "stg_activation__sync_log", "stg_journeys__transitions", "stg_journeys__finished", "measurement_input_days", "campaign_exposures",
          "campaign_outcome_events", "campaign_exposure_outcomes"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return small_world(tmp_path_factory, "orders-world")


def test_an_order_posted_through_a_library_reaches_fct_orders_and_the_outcomes(world, svc):
    from segment.analytics.client import Client

    from beacon import dbt
    from beacon.activation.governance import ensure_tables
    from beacon.ingest.core import load_specs
    from beacon.ingest.landing import load_landing
    from beacon.warehouse import clock, connect

    with override_env(BEACON_DATA_DIR=str(world)):
        with connect() as con:
            now = clock(con)
            shop_id, cid = con.execute("""SELECT record_id, customer_id FROM intermediate.int_customer_records_resolved
                WHERE source = 'shop' ORDER BY record_id LIMIT 1""").fetchone()
            fed_order, fed_total = con.execute("SELECT order_id, total_amount FROM marts.fct_orders "
                                               "ORDER BY order_id LIMIT 1").fetchone()
            ensure_tables(con)  # one audience send to this customer, two days before the orders
            con.execute("""INSERT INTO activation.sync_log (run_id, audience, destination, channel, customer_id,
                operation, status, as_of, logged_at) VALUES ('r1', 'e2e_orders', 'file', 'email', ?, 'add',
                'delivered', ?, ?)""", [cid, now - timedelta(days=2), now - timedelta(days=2)])

        errors: list = []
        lock = threading.Lock()

        def on_error(exc, batch):
            with lock:
                errors.append(exc)

        client = Client(write_key=svc.write_key, host=svc.url, on_error=on_error)
        order_id = f"LIB-{shop_id}"
        props = {"order_id": order_id, "revenue": 123.45, "currency": "eur",
                 "products": [{"product_id": "SKU-00001", "price": 123.45, "quantity": 1}]}
        at = (now - timedelta(days=1)).replace(tzinfo=UTC)  # the warehouse clock is naive UTC
        sent = [client.track(user_id=shop_id, event="Order Completed", properties=props, timestamp=at)[1],
                client.track(user_id=shop_id, event="Order Completed", properties=props,  # the shop re-sends it
                             timestamp=at + timedelta(minutes=5))[1],
                client.track(user_id=shop_id, event="Order Completed", timestamp=at,  # already in the shop's feed
                             properties={"order_id": fed_order, "revenue": 9999.0, "currency": "EUR"})[1]]
        client.flush()
        client.join()
        assert not errors, errors
        ids = {m["messageId"] for m in sent}
        deadline = time.time() + 10  # the collector hands its file over within rotate_seconds (0.5 s)
        while time.time() < deadline and not all(any(i in p.read_text() for p in svc.files() if p.parent.name != "_spool"
                                                     and p.name.startswith("collected_events-")) for i in ids):
            time.sleep(0.1)
        summary = load_landing(svc.landing, specs={"collected_events": load_specs()["collected_events"]}, webhooks=False)
        assert summary.failures() == []
        assert dbt.run(["run", "--select", *MODELS], quiet=True)
        dbt.release_warehouse()
        with connect() as con:
            posted = con.execute("""SELECT customer_id, total_amount, currency, order_source, ordered_at
                FROM marts.fct_orders WHERE order_id = ?""", [order_id]).fetchall()
            fed = con.execute("SELECT total_amount, order_source FROM marts.fct_orders WHERE order_id = ?",
                              [fed_order]).fetchall()
            outcome = con.execute("""SELECT orders, revenue, converted FROM measurement.campaign_exposure_outcomes
                WHERE campaign = 'audience:e2e_orders' AND customer_id = ?""", [cid]).fetchall()
    assert len(posted) == 1, posted  # two events, one order
    assert posted[0][:4] == (cid, 123.45, "EUR", "web")
    assert abs(posted[0][4] - at.replace(tzinfo=None)) < timedelta(seconds=5)  # the library's time, skew-corrected
    assert fed == [(fed_total, "shop")]  # the feed's order is not replaced nor doubled by the posted one
    orders, revenue, converted = outcome[0]
    assert converted == 1 and orders >= 1 and revenue >= 123.45
