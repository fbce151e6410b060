"""Daily recommendations recompute only the customers whose purchases changed, and equal recomputing everyone
(issue 28; docs/personalization.md).

The generated world's order lines are replayed over days: each day's warehouse holds the lines up to its clock,
and days 2 and 3 also bring a late order of an old day, a refunded order, a customer merged into another (their
lines re-keyed), a customer whose only order is refunded and a re-sent order whose time moved. After each day the incremental table is compared
with a full recomputation of every customer against the same stored model.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from beacon.personalize.recommend import write_recommendations


def _table(con) -> pd.DataFrame:
    return con.execute("SELECT * FROM ml.recommendations ORDER BY customer_id, rank").df()


def _day(con, clock) -> None:
    """The warehouse as of `clock`: the order lines (of `_all`) up to it, and the clock."""
    con.execute("CREATE OR REPLACE TABLE marts.fct_order_items AS SELECT * FROM _all WHERE ordered_at <= ?", [clock])
    con.execute("CREATE OR REPLACE TABLE marts.warehouse_as_of AS SELECT ?::TIMESTAMP AS as_of_at", [clock])


def _full_equals_incremental(con) -> None:
    """Recomputing every customer (same stored model) gives the table the incremental runs left."""
    daily = _table(con)
    full = write_recommendations(con, k=10, full_refresh=True)
    assert full["retrained"] is None
    assert len(daily) > 0
    pd.testing.assert_frame_equal(daily, _table(con), check_exact=True)


def _buyers(con, n: int, skip: int = 0) -> list[str]:
    return [r[0] for r in con.execute("""SELECT customer_id FROM _all WHERE status = 'completed' GROUP BY 1
        HAVING count(DISTINCT ordered_at) >= 3 ORDER BY customer_id LIMIT ? OFFSET ?""", [n, skip]).fetchall()]


@pytest.mark.parametrize("changes", [False, True])
def test_daily_runs_equal_recomputing_everyone_with_late_refunded_and_merged_orders(orders_warehouse, changes):
    con = orders_warehouse
    con.execute("CREATE TABLE _all AS SELECT * FROM marts.fct_order_items")
    end = con.execute("SELECT max(ordered_at) FROM _all").fetchone()[0]
    _day(con, end - timedelta(days=2))
    day1 = write_recommendations(con, k=10)
    assert day1["retrained"] == "no stored model" and day1["rows_written"] > 0
    # Right after training, recomputing everyone against the stored model gives the trained table.
    _full_equals_incremental(con)
    customers = con.execute("SELECT count(DISTINCT customer_id) FROM ml.recommendations").fetchone()[0]
    for d, clock in ((2, end - timedelta(days=1)), (3, end)):
        if changes:
            late, merged_from, merged_into, refunded, only, moved = _buyers(con, 6, skip=10 * d)
            product = con.execute("SELECT min(product_id) FROM _all").fetchone()[0]
            # A late order line dated 40 days back; a refund; a merge; a customer left with no purchase at all.
            con.execute("INSERT INTO _all VALUES (?, ?::TIMESTAMP - INTERVAL 40 DAY, 'completed', ?)",
                        [late, clock, product])
            con.execute("""UPDATE _all SET status = 'refunded' WHERE customer_id = ? AND ordered_at =
                (SELECT max(ordered_at) FROM _all WHERE customer_id = ?)""", [refunded, refunded])
            con.execute("UPDATE _all SET customer_id = ? WHERE customer_id = ?", [merged_into, merged_from])
            con.execute("UPDATE _all SET status = 'refunded' WHERE customer_id = ?", [only])
            # A re-sent order whose time moved: as many lines as before, their recency weights changed.
            con.execute("""UPDATE _all SET ordered_at = ordered_at - INTERVAL 60 DAY WHERE customer_id = ? AND ordered_at =
                (SELECT max(ordered_at) FROM _all WHERE customer_id = ?)""", [moved, moved])
        _day(con, clock)
        got = write_recommendations(con, k=10)
        assert got["retrained"] is None and got["model_version_written"] == day1["model_version_written"]
        # Only a few customers were recomputed: those with new lines that day (and the changed ones).
        assert 0 < got["customers_recomputed"] < customers / 5, got
        if changes:
            have = {r[0] for r in con.execute("SELECT DISTINCT customer_id FROM ml.recommendations").fetchall()}
            assert merged_from not in have and only not in have and {late, merged_into, refunded, moved} <= have
        _full_equals_incremental(con)


def test_a_product_the_model_does_not_know_or_an_old_model_trains_again(orders_warehouse, monkeypatch):
    con = orders_warehouse
    con.execute("CREATE TABLE _all AS SELECT * FROM marts.fct_order_items")
    end = con.execute("SELECT max(ordered_at) FROM _all").fetchone()[0]
    _day(con, end - timedelta(days=10))
    first = write_recommendations(con, k=10)
    # A new product in the catalogue, bought today: the model is trained again and everyone recomputed.
    buyer = _buyers(con, 1)[0]
    con.execute("INSERT INTO _all VALUES (?, ?::TIMESTAMP, 'completed', 'P-NEW')", [buyer, end - timedelta(days=9)])
    _day(con, end - timedelta(days=9))
    again = write_recommendations(con, k=10)
    assert again["retrained"] == "1 product(s) the model does not know"
    assert again["model_version_written"] != first["model_version_written"]
    _full_equals_incremental(con)
    # BEACON_RETRAIN_EVERY_DAYS later (default 7), the model is trained again.
    _day(con, end - timedelta(days=2))
    assert write_recommendations(con, k=10)["retrained"].startswith("the model is 7 days old")
    monkeypatch.setenv("BEACON_RETRAIN_EVERY_DAYS", "30")
    _day(con, end)
    assert write_recommendations(con, k=10)["retrained"] is None
    assert write_recommendations(con, k=10, retrain=True)["retrained"] == "asked"
