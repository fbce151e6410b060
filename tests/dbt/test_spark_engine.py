"""The same dbt models on Spark and on DuckDB give the same tables (issue 29; docs/scale.md).

One small world is ingested once (the ingest contract runs once, into DuckDB's raw schema); dbt builds the models on
DuckDB, then the raw layer is published to Spark as Parquet partitioned by load day (beacon.spark.raw) and the same
models are built there by dbt-spark (method: session, local[2]; one Spark session for the module). Built on Spark
today: every SQL model that does not read the two Python models (int_identity_events, int_customers_clustered), which
dbt-spark cannot run on open-source Spark (docs/scale.md, "What remains for Spark"). Compared: the raw tables' rows,
which models built, their row counts, then every column of every model built.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from beacon.config import override_env

PEOPLE = 300
SEED = 29
# The models dbt-spark can build: all but the Python models and what reads them.
SELECT = ["--exclude", "int_identity_events+", "int_customers_clustered+"]
RAW = ("crm_contacts", "crm_companies", "shop_customers", "shop_products", "shop_orders", "shop_order_items",
       "web_events", "collected_events", "email_events", "consent")

pytestmark = pytest.mark.e2e


def _built(target: Path) -> dict[str, str]:
    """{schema.model: status} of the last dbt run in `target`."""
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[-1]: r["status"] for r in results}


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    from beacon import dbt
    from beacon.config import settings
    from beacon.generate import GenConfig, generate
    from beacon.ingest import load_landing
    from beacon.spark.raw import publish_raw
    from beacon.spark.session import session

    data = tmp_path_factory.mktemp("engines")
    with override_env(BEACON_DATA_DIR=str(data), BEACON_DBT_TARGET_DIR=str(data / "duckdb_target")):
        s = settings()
        generate(GenConfig(people=PEOPLE, seed=SEED, day=1), data)
        load_landing(s.landing_dir)
        assert dbt.run(["run", *SELECT], s, quiet=True), "dbt run failed on DuckDB"
        duck_built = _built(s.dbt_target_dir)
    with override_env(BEACON_DATA_DIR=str(data), BEACON_DBT_TARGET_DIR=str(data / "spark_target"),
                      BEACON_ENGINE="spark"):
        s = settings()
        spark = session(s)
        try:
            published = publish_raw(spark, s)
            ok = dbt.run(["run", *SELECT], s, quiet=True)
            spark_built = _built(s.dbt_target_dir)
            yield {"warehouse": s.warehouse_path, "spark": spark, "published": published, "ok": ok,
                   "duckdb_built": duck_built, "spark_built": spark_built}
        finally:
            spark.stop()


def _duckdb(warehouse: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).df()


def _plain(value):
    """One value in a form both engines' pandas frames agree on (lists, timestamps, floats, nulls)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, (pd.Timestamp, dt.date)):  # DuckDB's frames give a date as a timestamp at midnight
        return pd.Timestamp(value).isoformat()
    if isinstance(value, (float, np.floating)):
        return round(float(value), 9)
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, str) and value[:1] in "{[":  # JSON text: DuckDB and Spark space it differently
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return value
    return value


def _rows(frame: pd.DataFrame) -> list[tuple]:
    return sorted((tuple(_plain(v) for v in row) for row in frame.itertuples(index=False, name=None)), key=repr)


def test_the_raw_layer_on_spark_holds_every_loaded_row(engines):
    for table in RAW:
        n = _duckdb(engines["warehouse"], f"SELECT count(*) AS n FROM raw.{table}").n[0]
        assert engines["published"][f"raw.{table}"] == n, table
        assert engines["spark"].table(f"raw.{table}").count() == n, table
    days = engines["spark"].sql("SHOW PARTITIONS raw.web_events").count()
    assert days >= 1  # partitioned by load day


def test_the_same_models_build_on_both_engines(engines):
    duck, spark = engines["duckdb_built"], engines["spark_built"]
    assert engines["ok"], {m: st for m, st in spark.items() if st != "success"}
    assert set(duck) == set(spark) and len(spark) >= 14
    assert all(st == "success" for st in spark.values())
    assert all(st == "success" for st in duck.values())


def test_every_model_has_the_same_rows_on_both_engines(engines):
    from pyspark.sql import functions as F  # noqa: N812

    spark = engines["spark"]
    checked = 0
    for model in sorted(engines["spark_built"]):
        schema = "intermediate" if model.startswith("int_") else "staging"
        duck = _duckdb(engines["warehouse"], f"SELECT * FROM {schema}.{model}")
        frame = spark.table(f"{schema}.{model}")
        # The same columns; a day-partitioned model keeps its partition column last on Spark (Spark stores
        # partition columns after the others), in place on DuckDB.
        assert sorted(frame.columns) == sorted(duck.columns), model
        moved = [c for c, d in zip(frame.columns, duck.columns, strict=True) if c != d]
        assert not moved or frame.columns[-1] in ("event_date", "order_date"), (model, moved)
        assert frame.count() == len(duck), model
        # Arrays of strings arrive as numpy arrays from DuckDB and lists from Spark; _plain makes both tuples.
        theirs = frame.select([F.col(c) for c in duck.columns]).toPandas()
        assert _rows(theirs) == _rows(duck), model
        checked += len(duck) > 0
    assert checked >= 10  # most models hold rows in this world


def test_a_row_removed_from_raw_leaves_the_spark_copy_at_the_next_publish(engines):
    """An erasure or a retention run deletes raw rows in DuckDB: the next publish must not keep them."""
    from beacon.config import settings
    from beacon.spark.raw import publish_raw

    warehouse = engines["warehouse"]
    with duckdb.connect(str(warehouse)) as con:
        product = con.execute("SELECT min(product_id) FROM raw.shop_products").fetchone()[0]
        con.execute("DELETE FROM raw.shop_products WHERE product_id = ?", [product])
        left = con.execute("SELECT count(*) FROM raw.shop_products").fetchone()[0]
    with override_env(BEACON_DATA_DIR=str(warehouse.parents[1]), BEACON_ENGINE="spark"):
        published = publish_raw(engines["spark"], settings())
    assert published["raw.shop_products"] == left
    gone = engines["spark"].sql(f"SELECT count(*) AS n FROM raw.shop_products WHERE product_id = '{product}'")
    assert gone.first().n == 0
