"""The two steps dbt-spark cannot run, as tasks between dbt selections: the whole warehouse on Spark (issue 29).

dbt-spark runs no Python models on open-source Spark (its Python models need Databricks), so on the spark engine
`int_identity_events` (identity resolution) and `int_customers_clustered` (k-means) are not built by dbt: `build`
runs dbt up to each of them, runs its task (the same function the DuckDB model calls: beacon.identity_task,
ml.clusters) and writes its table under the name dbt's `ref` gives it, then runs dbt on.

Identity on Spark runs on the driver: the records are collected from Spark and resolved by the same code as on
DuckDB (beacon.identity.resolve: Splink's DuckDB backend, deterministic links and stable ids in DuckDB SQL); the
new events are appended to the Spark table. Splink's Spark backend (SparkAPI) would start here (its similarity
functions ship as a jar inside the splink package), but Beacon's linker is DuckDB SQL end to end (input
normalization, blocking budgets, deterministic links, connected components, stable-id assignment, the model store),
so moving it to SparkAPI means porting that SQL, not switching a backend: the driver's memory bounds the records
this can take (docs/scale.md, "Identity and clustering on Spark"). The stored linkage model and the guards' results
stay on the control plane (the DuckDB file), where the data-quality breaker reads them.
"""

from __future__ import annotations

import json
from typing import Any

from beacon.config import Settings, settings
from beacon.warehouse import connect

EVENTS = "intermediate.int_identity_events"
RECORDS = "intermediate.int_customer_records_unioned"
CLUSTERED = "intermediate.int_customers_clustered"
BEHAVIOUR = "intermediate.int_customers_behaviour"
# The spark engine's stored linkage model, on the control plane beside DuckDB's own (a warehouse that runs both
# engines, as the equivalence test does, keeps their models apart).
SPARK_MODEL_STORE = "intermediate.spark_identity_linker_models"
# Likewise the spark engine's stored k-means centroids (ml.clusters.scheduled_clusters).
SPARK_CLUSTER_STORE = "intermediate.spark_customer_cluster_models"
AS_OF = "marts.warehouse_as_of"
# The Python models, in the order they depend on each other, and the task that builds each on Spark.
PYTHON_MODELS = ("int_identity_events", "int_customers_clustered")


def _model_config(name: str, s: Settings) -> dict[str, Any]:
    """The config dbt gives model `name` (its YAML, vars rendered), from the manifest of the last dbt call."""
    nodes = json.loads(s.manifest_path.read_text())["nodes"]
    return nodes[f"model.beacon.{name}"]["config"]


def _plain(frame):
    """A Spark-collected frame as DuckDB reads it: arrays as lists (Arrow gives numpy arrays)."""
    import numpy as np

    for col in frame.columns:
        if frame[col].map(lambda v: isinstance(v, np.ndarray)).any():
            frame[col] = frame[col].map(lambda v: list(v) if isinstance(v, np.ndarray) else v)
    return frame


def _python(value: Any) -> Any:
    """A pandas cell as the Python value Spark takes (None for missing, datetime for Timestamp)."""
    import pandas as pd

    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value


def resolve_identities_on_spark(spark: Any, s: Settings | None = None, full_refresh: bool = False) -> int:
    """Resolve the records of `int_customer_records_unioned` on Spark and append the new events to
    `int_identity_events` there (created on the first run); returns the events written. A guard that trips
    raises IdentityGuardError with nothing written (its results recorded on the control plane)."""
    from pyspark.sql import types as T  # noqa: N812

    from beacon.identity_task import identity_config, resolve_identities

    s = s or settings()
    cfg = identity_config(_model_config("int_identity_events", s))
    if full_refresh:
        spark.sql(f"DROP TABLE IF EXISTS {EVENTS}")
    exists = spark.catalog.tableExists(EVENTS)
    records = _plain(spark.table(RECORDS).toPandas())
    previous = spark.table(EVENTS).toPandas() if exists else None
    with connect(s.warehouse_path) as con:
        # The model store's schema: a control plane that never ran dbt on DuckDB (the spark engine) has none yet.
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {SPARK_MODEL_STORE.split('.')[0]}")
        events = resolve_identities(con, records, previous, cfg, model_store=SPARK_MODEL_STORE)
    text = [T.StructField(c, T.StringType()) for c in ("record_key", "source", "record_id", "customer_id", "event",
                                                         "previous_customer_id", "match_rule")]
    schema = T.StructType([*text, T.StructField("match_probability", T.DoubleType()),
                           T.StructField("match_fingerprint", T.StringType()),
                           T.StructField("resolution_run", T.IntegerType()),
                           T.StructField("resolved_as_of", T.TimestampNTZType())])
    rows = [{k: _python(v) for k, v in row.items()} for row in events.to_dict("records")]
    frame = spark.createDataFrame(rows, schema=schema)
    frame.write.mode("append" if exists else "overwrite").format("parquet").saveAsTable(EVENTS)
    return len(events)


def cluster_customers_on_spark(spark: Any, s: Settings | None = None) -> int:
    """Cluster the customers of `int_customers_behaviour` (ml.clusters) and write `int_customers_clustered` on
    Spark; returns its rows. On the same schedule as DuckDB's model (its config's `retrain_days`): the fitted
    centroids are kept on the control plane, apart from DuckDB's own (SPARK_CLUSTER_STORE), and a normal day assigns
    customers to them."""
    from ml.clusters import CLUSTERS, cluster_customers, scheduled_clusters

    s = s or settings()
    config = _model_config("int_customers_clustered", s)
    k = int(config.get("clusters") or CLUSTERS)
    behaviour = spark.table(BEHAVIOUR).toPandas()
    as_of = spark.sql(f"SELECT max(as_of_date) FROM {AS_OF}").collect()[0][0] if config.get("retrain_days") else None
    if as_of is None:  # no schedule, or an empty warehouse without a clock: fit, keep nothing (as on DuckDB)
        clustered = cluster_customers(behaviour, k)
    else:
        with connect(s.warehouse_path) as con:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {SPARK_CLUSTER_STORE.split('.')[0]}")
            clustered = scheduled_clusters(con, behaviour, k, str(as_of), int(config["retrain_days"]),
                                           store=SPARK_CLUSTER_STORE)
    clustered["cluster"] = clustered["cluster"].astype("int64")
    spark.createDataFrame(clustered).write.mode("overwrite").format("parquet").saveAsTable(CLUSTERED)
    return len(clustered)


def build(spark: Any, command: str = "run", exclude: tuple[str, ...] = (), s: Settings | None = None,
          full_refresh: bool = False) -> dict[str, Any]:
    """`dbt <command>` of the project on Spark with the two tasks in their places: dbt up to identity, identity,
    dbt up to the clustering, the clustering, dbt on. `exclude`: further dbt selectors left out of every step.
    Returns each step's outcome and `built` ({model: status} over every step); stops at the first that fails."""
    from beacon import dbt

    s = s or settings()
    built: dict[str, str] = {}

    def dbt_step(args: list[str]) -> bool:
        ok = dbt.run([command, *flags, *args, *extra], s, quiet=True)
        results = json.loads((s.dbt_target_dir / "run_results.json").read_text())["results"]
        built.update({r["unique_id"].split(".")[-1]: r["status"] for r in results})
        return ok

    flags = ["--full-refresh"] if full_refresh else []
    extra = ["--exclude", *exclude] if exclude else []
    identity, clustered = PYTHON_MODELS
    steps: dict[str, Any] = {"built": built}
    steps["dbt_before_identity"] = dbt_step(["--exclude", f"{identity}+"])
    if not steps["dbt_before_identity"]:
        return steps
    steps[identity] = resolve_identities_on_spark(spark, s, full_refresh)
    built[identity] = "success"
    steps["dbt_before_clustering"] = dbt_step(["--select", f"{identity}+", "--exclude", identity, f"{clustered}+"])
    if not steps["dbt_before_clustering"]:
        return steps
    steps[clustered] = cluster_customers_on_spark(spark, s)
    built[clustered] = "success"
    steps["dbt_after_clustering"] = dbt_step(["--select", f"{clustered}+", "--exclude", clustered])
    return steps
