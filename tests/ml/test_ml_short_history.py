"""A deployment with 30 days of orders runs the ML stage to the end: train (nothing may be trainable yet),
score, recommend (evaluated on the history there is), publish. Nothing in it may fail the DAG."""

from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
from support.ml_world import END, build_world

from beacon.personalize.recommend import write_recommendations
from ml.score import score_all
from ml.train import train_all


def test_thirty_days_of_orders_run_the_ml_stage_to_the_end(tmp_path, caplog):
    con = build_world(n=800, seed=5)
    # The shop was connected 30 days ago: no order before that
    con.execute("DELETE FROM marts.fct_orders WHERE ordered_at < ?", [END - timedelta(days=30)])
    rng = np.random.default_rng(0)
    orders = con.execute("SELECT customer_id, ordered_at, status FROM marts.fct_orders").df()
    assert len(orders) > 50 and orders.ordered_at.min() >= END - timedelta(days=30)
    items = orders.assign(product_id=rng.choice([f"p{i}" for i in range(12)], len(orders)))
    con.register("_items", items)
    con.execute("CREATE TABLE marts.fct_order_items AS SELECT * FROM _items")
    registry = tmp_path / "registry"
    with caplog.at_level(logging.WARNING):
        # The ML DAG's tasks in order (dags/beacon_ml.py): train_models -> score_customers -> recommend_products
        trained = train_all(con, registry)
        scored = score_all(con, registry)
        recs = write_recommendations(con)
    assert trained["failed"] and not trained["models"]  # too little history for any model: said, not raised
    assert "no model could be trained yet" in caplog.text
    assert set(scored["not_trained"]) == set(trained["failed"])
    assert 7 <= recs["holdout_days"] <= 10 and recs["rows_written"] > 0  # evaluated on the last third, published
    assert con.execute("SELECT count(*) FROM ml.recommendations").fetchone()[0] == recs["rows_written"]
