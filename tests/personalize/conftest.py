"""A small generated world shared by the personalization tests (generated once per session, ~3 s)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from beacon.generate.config import GenConfig
from beacon.generate.world import generate

PEOPLE = 8000


@pytest.fixture(scope="session")
def gen_world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("personalize_world")
    generate(GenConfig(people=PEOPLE, seed=42), out)
    return out / "landing" / "2026-06-30", out / "truth" / "2026-06-30"


@pytest.fixture()
def orders_warehouse(gen_world) -> duckdb.DuckDBPyConnection:
    """marts.fct_order_items and the warehouse clock from the world's shop files (bad rows dropped)."""
    landing, _ = gen_world
    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts")
    con.execute(f"""CREATE TABLE marts.fct_order_items AS SELECT o.customer_id, o.ordered_at::TIMESTAMP AS ordered_at,
        o.status, i.product_id FROM '{landing}/shop_order_items.parquet' i
        JOIN '{landing}/shop_orders.parquet' o USING (order_id)
        WHERE o.ordered_at < TIMESTAMP '2026-07-01' AND o.customer_id IS NOT NULL""")
    con.execute("CREATE TABLE marts.warehouse_as_of AS SELECT max(ordered_at) AS as_of_at FROM marts.fct_order_items")
    return con


@pytest.fixture(scope="session")
def email_history(gen_world) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(engagement, people): the world's email events by person, and the true people (tz, preferred_hour, ...)."""
    from beacon.bench.best_time import load_world

    landing, truth = gen_world
    return load_world(landing, truth)
