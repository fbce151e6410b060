"""`beacon ml recommend --json` on a warehouse file; `beacon bench best-time --json` on a small world."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb

BEACON = str(Path(sys.executable).with_name("beacon"))


def test_ml_recommend_json_writes_and_reports(orders_warehouse, tmp_path):
    db = tmp_path / "wh.duckdb"
    orders_warehouse.execute(f"ATTACH '{db}' AS f")
    orders_warehouse.execute("CREATE SCHEMA f.marts")
    for t in ("fct_order_items", "warehouse_as_of"):
        orders_warehouse.execute(f"CREATE TABLE f.marts.{t} AS SELECT * FROM marts.{t}")
    orders_warehouse.execute("DETACH f")
    out = subprocess.run([BEACON, "ml", "recommend", "--json"], capture_output=True, text=True, check=True,
                         env={**os.environ, "BEACON_WAREHOUSE": str(db)})
    d = json.loads(out.stdout)
    assert d["recall_at_10_model"] > d["recall_at_10_popularity"] and d["rows_written"] > 0
    with duckdb.connect(str(db)) as con:
        assert con.execute("SELECT count(*) FROM ml.recommendations").fetchone()[0] == d["rows_written"]


def test_bench_best_time_json():
    out = subprocess.run([BEACON, "bench", "best-time", "--people", "3000", "--rounds", "2", "--json"],
                         capture_output=True, text=True, check=True)
    d = json.loads(out.stdout)
    assert d["sends_per_policy"] == d["people"] * 2 and set(d["open_rate"]) == {"fixed", "fixed_peak", "best_time", "oracle"}
    assert 0 < d["open_rate"]["fixed"] < 1 and d["history_events"] > 0
