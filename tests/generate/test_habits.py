"""Habits in the generated world (truth files): time zone, preferred email hour, product taste; opens come at
the person's check and order lines follow their taste."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from beacon.generate.behaviour import SEND_PEAK, local_hour, open_multiplier
from beacon.generate.config import GenConfig
from beacon.generate.world import generate
from beacon.personalize.best_time import STATE_TZ


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("habits")
    s = generate(GenConfig(people=4000, seed=9), out)
    return s


def test_truth_has_habits_and_zones_match_states(world):
    people = pd.read_parquet(f"{world.truth}/people.parquet")
    assert {"tz", "preferred_hour", "taste_1", "taste_2"} <= set(people.columns)
    assert people.preferred_hour.between(0, 23).all() and (people.taste_1 != people.taste_2).all()
    # The warehouse only has the state: its zone must be the one the generator used.
    assert (people.state.map(STATE_TZ) == people.tz.replace({"America/Detroit": "America/New_York"})).all()


def test_opens_happen_around_the_preferred_local_hour(world):
    people = pd.read_parquet(f"{world.truth}/people.parquet")
    key = pd.concat([people.assign(e=people.email.str.lower()), people.assign(e=people.work_email.str.lower())])
    ev = duckdb.sql(f"""SELECT lower(email) AS e, "timestamp" AS ts FROM read_json('{world.landing}/email_events.jsonl',
                        ignore_errors = true, columns = {{'email': 'VARCHAR', 'event': 'VARCHAR', 'timestamp': 'BIGINT'}})
                        WHERE event = 'open' AND email IS NOT NULL AND "timestamp" < 1782864000""").df()
    ev = ev.merge(key.drop_duplicates("e")[["e", "tz", "preferred_hour"]], on="e")
    h = local_hour(ev.ts.to_numpy(), ev.tz.to_numpy())
    off = (h - ev.preferred_hour.to_numpy() + 12) % 24 - 12
    assert len(ev) > 500 and (np.abs(off) < 2).mean() > 0.9


def test_send_time_effect_averages_one_and_peaks_before_the_check():
    ts = np.arange(0, 86_400 * 7, 600)
    m = open_multiplier(ts, np.full(len(ts), "UTC"), np.full(len(ts), 9))
    assert m.mean() == pytest.approx(1.0, abs=0.01)
    hours = (ts % 86_400) / 3600
    assert m[np.argmax(m)] == pytest.approx(SEND_PEAK, abs=0.01) and 8.5 <= hours[np.argmax(m)] <= 9.0


def test_order_lines_follow_taste(world):
    people = pd.read_parquet(f"{world.truth}/people.parquet")
    rm = pd.read_parquet(f"{world.truth}/record_map.parquet").query("source == 'shop_customers'")
    lines = duckdb.sql(f"""SELECT o.customer_id AS record_id, p.category FROM '{world.landing}/shop_order_items.parquet' i
                           JOIN '{world.landing}/shop_orders.parquet' o USING (order_id)
                           JOIN read_csv('{world.landing}/shop_products.csv') p USING (product_id)""").df()
    lines = lines.merge(rm, on="record_id").merge(people[["person_id", "taste_1", "taste_2"]], on="person_id")
    share = ((lines.category == lines.taste_1) | (lines.category == lines.taste_2)).mean()
    assert len(lines) > 1000 and share > 0.85  # 0.6 + 0.25 + a third of the remaining 0.15
