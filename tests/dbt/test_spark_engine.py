"""The same dbt project on Spark and on DuckDB gives the same tables (issue 29; docs/scale.md).

One small world is ingested once (the ingest contract runs once, into DuckDB's raw schema); dbt builds the whole
project on DuckDB, then the raw layer is published to Spark as Parquet partitioned by load day (beacon.spark.raw)
and the same project is built there (method: session, local[2]; one Spark session for the module) by
beacon.spark.tasks.build: dbt-spark for the SQL models, the identity and clustering tasks (the functions the DuckDB
Python models call) between dbt selections. Compared: the raw tables' rows, which models built (every model of the
project), then every column of every model, row for row; and the stored linkage model each engine trained.
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
# Columns whose values are engine-specific by design, left out of the comparison: measurement_input_days' digest is
# a change detector (xor of row hashes: DuckDB's 64-bit hash(), Spark's 32-bit murmur3 hash()), compared only with
# earlier digests of the same engine; its rows and row counts are compared.
ENGINE_SPECIFIC = {"measurement_input_days": ("digest",)}
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
    from beacon.spark.tasks import build

    data = tmp_path_factory.mktemp("engines")
    with override_env(BEACON_DATA_DIR=str(data), BEACON_DBT_TARGET_DIR=str(data / "duckdb_target")):
        s = settings()
        generate(GenConfig(people=PEOPLE, seed=SEED, day=1), data)
        load_landing(s.landing_dir)
        assert dbt.run(["seed"], s, quiet=True) and dbt.run(["run"], s, quiet=True), "dbt failed on DuckDB"
        duck_built = _built(s.dbt_target_dir)
    with override_env(BEACON_DATA_DIR=str(data), BEACON_DBT_TARGET_DIR=str(data / "spark_target"),
                      BEACON_ENGINE="spark"):
        s = settings()
        spark = session(s)
        try:
            published = publish_raw(spark, s)
            assert dbt.run(["seed"], s, quiet=True), "dbt seed failed on Spark"
            steps = build(spark, "run", s=s)
            nodes = json.loads(s.manifest_path.read_text())["nodes"].values()
            models = {n["name"]: n["schema"] for n in nodes if n["resource_type"] == "model"}
            partitions = {n["name"]: n["config"].get("partition_by") or [] for n in nodes
                          if n["resource_type"] == "model"}
            yield {"warehouse": s.warehouse_path, "spark": spark, "published": published, "steps": steps,
                   "duckdb_built": duck_built, "spark_built": steps["built"], "models": models,
                   "partitions": partitions}
        finally:
            spark.stop()


def _duckdb(warehouse: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).df()


def _plain(value):
    """One value in a form both engines' pandas frames agree on (lists, timestamps, numbers, nulls): a whole float is
    its integer (a nullable integer column arrives as floats from Spark, as Int64 from DuckDB)."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_plain(v) for v in value)
    if isinstance(value, (pd.Timestamp, dt.date)):  # DuckDB's frames give a date as a timestamp at midnight
        return pd.Timestamp(value).isoformat()
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else float(value)
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, str) and value[:1] in "{[":  # JSON text: DuckDB and Spark space it differently
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return value
    return value


def _order(row: tuple) -> str:
    """A row's sort key, floats to 6 significant digits (a sum's last bits follow the engine's order of addition)."""
    return repr(tuple(f"{v:.6g}" if isinstance(v, float) else v for v in row))


def _rows(frame: pd.DataFrame) -> list[tuple]:
    return sorted((tuple(_plain(v) for v in row) for row in frame.itertuples(index=False, name=None)), key=_order)


def _same(a, b) -> bool:
    """Equal values; floats to a relative 1e-9 (sums of the same numbers in another order)."""
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _differences(theirs: list[tuple], ours: list[tuple]) -> list[tuple]:
    """The row pairs that differ, after both are sorted the same way."""
    return [(a, b) for a, b in zip(theirs, ours, strict=True) if not _same(a, b)]


def test_the_raw_layer_on_spark_holds_every_loaded_row(engines):
    for table in RAW:
        n = _duckdb(engines["warehouse"], f"SELECT count(*) AS n FROM raw.{table}").n[0]
        assert engines["published"][f"raw.{table}"] == n, table
        assert engines["spark"].table(f"raw.{table}").count() == n, table
    days = engines["spark"].sql("SHOW PARTITIONS raw.web_events").count()
    assert days >= 1  # partitioned by load day


def test_every_model_builds_on_both_engines(engines):
    duck, spark, steps = engines["duckdb_built"], engines["spark_built"], engines["steps"]
    assert all(steps[k] for k in ("dbt_before_identity", "dbt_before_clustering", "dbt_after_clustering")), \
        {m: st for m, st in spark.items() if st != "success"}
    # Every model of the project, the two Python models included (built by their tasks on Spark).
    assert set(spark) == set(duck) == set(engines["models"])
    assert {"int_identity_events", "int_customers_clustered", "dim_customers", "engaged_browsers"} <= set(spark)
    assert all(st == "success" for st in spark.values())
    assert all(st == "success" for st in duck.values())
    assert steps["int_identity_events"] > 0 and steps["int_customers_clustered"] > 0


def test_every_model_has_the_same_rows_on_both_engines(engines):
    from pyspark.sql import functions as F  # noqa: N812

    spark = engines["spark"]
    checked = 0
    for model in sorted(engines["spark_built"]):
        schema = engines["models"][model]
        duck = _duckdb(engines["warehouse"], f"SELECT * FROM {schema}.{model}")
        duck = duck.drop(columns=list(ENGINE_SPECIFIC.get(model, ())))
        frame = spark.table(f"{schema}.{model}")
        # The same columns; a day-partitioned model keeps its partition column (config partition_by) last on Spark
        # (Spark stores partition columns after the others), in place on DuckDB.
        columns = [c for c in frame.columns if c not in ENGINE_SPECIFIC.get(model, ())]
        assert sorted(columns) == sorted(duck.columns), model
        moved = [c for c, d in zip(columns, duck.columns, strict=True) if c != d]
        assert not moved or columns[-1] in engines["partitions"][model], (model, moved)
        assert frame.count() == len(duck), model
        # Arrays of strings arrive as numpy arrays from DuckDB and lists from Spark; _plain makes both tuples.
        theirs = frame.select([F.col(c) for c in duck.columns]).toPandas()
        assert _differences(_rows(theirs), _rows(duck)) == [], model
        checked += len(duck) > 0
    assert checked >= 40  # most models hold rows in this world


def _plain_json(value):
    """A JSON document as nested tuples of (key, value) pairs and values, for _same."""
    if isinstance(value, dict):
        return tuple((k, _plain_json(v)) for k, v in sorted(value.items()))
    if isinstance(value, list):
        return tuple(_plain_json(v) for v in value)
    return value


def test_both_engines_trained_the_same_linkage_model_and_recorded_their_guards(engines):
    """Identity on Spark runs the same code with the same settings: the stored Splink model equals DuckDB's (its m
    and u probabilities to 1e-9: the same sums in another order), and both runs' guards are on the control plane,
    passed (the customer ids are compared row for row above)."""
    from beacon.identity.guards import SUITE
    from beacon.spark.tasks import SPARK_MODEL_STORE

    duck = _duckdb(engines["warehouse"], "SELECT * FROM intermediate.identity_linker_models")
    spark = _duckdb(engines["warehouse"], f"SELECT * FROM {SPARK_MODEL_STORE}")
    assert len(duck) == len(spark) == 1
    ours, theirs = json.loads(duck.model_json[0]), json.loads(spark.model_json[0])
    for model in (ours, theirs):  # a random name Splink gives each linker
        model["settings"].pop("linker_uid", None)
    assert _same(_plain_json(theirs), _plain_json(ours))
    runs = _duckdb(engines["warehouse"], f"""SELECT run_id, bool_and(success) AS passed
                                             FROM quality.expectation_results WHERE suite = '{SUITE}' GROUP BY 1""")
    assert len(runs) == 2 and runs.passed.all()


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

