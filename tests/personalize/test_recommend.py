"""The co-occurrence recommender on a generated world: beats popularity on later purchases; writes ml.recommendations."""

from __future__ import annotations

import pandas as pd
import pytest

from beacon.personalize.recommend import (
    ItemKNN,
    purchases,
    recall_at_k,
    warehouse_clock,
    write_recommendations,
)


def test_recommender_beats_popularity_on_later_purchases(orders_warehouse):
    ev = write_recommendations(orders_warehouse, k=10, holdout_days=60)
    assert ev["test_customers"] > 300
    model, pop = ev["recall_at_10_model"], ev["recall_at_10_popularity"]
    # The world's buyers follow their taste: item-item must find it, clearly above the best global ranking.
    assert model > pop + 0.05, ev
    recorded = orders_warehouse.execute("SELECT recall_model, recall_popularity FROM ml.recommendation_evaluations").fetchall()
    assert recorded == [(model, pop)]


def test_recommendations_table_excludes_bought_items(orders_warehouse):
    ev = write_recommendations(orders_warehouse, k=10)
    recs = orders_warehouse.execute("SELECT * FROM ml.recommendations").df()
    assert list(recs.columns) == ["customer_id", "rank", "product_id", "score", "model_version"]
    assert ev["rows_written"] == len(recs) and (recs.model_version == ev["model_version_written"]).all()
    per = recs.groupby("customer_id")
    assert (per.size() == 10).all() and per["rank"].apply(lambda r: sorted(r) == list(range(1, 11))).all()
    assert (per.score.apply(lambda s: s.is_monotonic_decreasing)).all()
    bought = purchases(orders_warehouse)[["customer_id", "product_id"]].drop_duplicates()
    assert recs.merge(bought, on=["customer_id", "product_id"]).empty
    # Re-running replaces, never appends.
    write_recommendations(orders_warehouse, k=10)
    assert orders_warehouse.execute("SELECT count(*) FROM ml.recommendations").fetchone()[0] == len(recs)


def test_recall_and_cold_start_on_a_tiny_example():
    rows = pd.DataFrame({"customer_id": ["a", "a", "b", "b", "c"], "product_id": ["x", "y", "x", "y", "x"],
                         "ordered_at": pd.to_datetime(["2026-01-01"] * 5)})
    m = ItemKNN().fit(rows, pd.Timestamp("2026-02-01").to_pydatetime())
    recs = m.recommend(5, pd.Index(["c", "new"]))
    assert recs[recs.customer_id == "c"].product_id.tolist() == ["y"]  # bought x; y co-occurs with x
    assert recs[recs.customer_id == "new"].product_id.tolist() == ["x", "y"]  # no history: most popular
    truth = pd.DataFrame({"customer_id": ["c", "c"], "product_id": ["y", "z"]})
    assert recall_at_k(recs, truth, 10) == pytest.approx(0.5)


def test_empty_warehouse_clock_is_a_clear_error():
    import duckdb
    con = duckdb.connect()
    con.execute("CREATE SCHEMA marts; CREATE TABLE marts.warehouse_as_of (as_of_at TIMESTAMP)")
    with pytest.raises(ValueError, match="warehouse_as_of is empty"):
        warehouse_clock(con)


def test_a_deployment_with_30_days_of_orders_evaluates_on_what_there_is_and_publishes(orders_warehouse):
    # Keep only the last 30 days of orders: the 60-day split would leave nothing to train on
    orders_warehouse.execute("""DELETE FROM marts.fct_order_items WHERE ordered_at <
        (SELECT as_of_at FROM marts.warehouse_as_of) - INTERVAL 30 DAY""")
    ev = write_recommendations(orders_warehouse, k=10, holdout_days=60)
    h = ev["holdout_days"]  # the last third of a history just under 30 days
    assert h in (9, 10) and f"held out the last {h} days" in ev["note"]
    assert ev["test_customers"] > 0 and ev["recall_at_10_model"] is not None
    assert ev["rows_written"] > 0
    assert orders_warehouse.execute("SELECT count(*) FROM ml.recommendations").fetchone()[0] == ev["rows_written"]


def test_a_few_days_of_orders_skip_the_evaluation_with_a_reason_but_still_publish(orders_warehouse, caplog):
    orders_warehouse.execute("""DELETE FROM marts.fct_order_items WHERE ordered_at <
        (SELECT as_of_at FROM marts.warehouse_as_of) - INTERVAL 5 DAY""")
    ev = write_recommendations(orders_warehouse, k=10)
    assert "evaluation skipped" in ev["skipped"] and ev["recall_at_10_model"] is None
    assert ev["rows_written"] > 0 and "evaluation skipped" in caplog.text
    recorded = orders_warehouse.execute("SELECT recall_model, detail->>'skipped' FROM ml.recommendation_evaluations")
    (recall, why), = recorded.fetchall()
    assert recall is None and "too short" in why
