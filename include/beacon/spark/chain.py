"""The DAG chain's stages on the spark engine (issue 29): what the warehouse, ML and activation DAGs run when
`BEACON_ENGINE=spark`, each the counterpart of one DuckDB step, so `beacon demo` runs the same DAGs on both engines.

    warehouse DAG   build_warehouse      raw layer -> Parquet (beacon.spark.raw), dbt seed, the project on Spark
                                         (beacon.spark.tasks.build) but the score-based segments and the measurement
                                         marts, then the control plane's views over the Parquet Spark wrote
    ML DAG          score_all            the registry's champions score on Spark (beacon.spark.score) from Spark's
                                         `marts.customer_features`; published as Parquet; drift and fairness on the
                                         node, from the published scores (ml.score.record_monitoring)
                    build_score_based    `ml.scores` declared on Spark over the published scores; the segments that
                                         read them built there
    activation DAG  build_measurement    the control plane's own tables that measurement reads (the sync log, the
                                         journeys' logs, the scores) handed over as Parquet; the measurement marts
                                         built on Spark

Ingest (landing -> DuckDB's raw schema: the ingest contract is one implementation), training (one node, from the
features the control plane reads over Spark's Parquet), recommendations, activation and journeys run unchanged on the
control plane, which reads what Spark publishes through DuckDB views (beacon.spark.published;
docs/architecture.md, "The control-plane boundary"). The Spark session is the process's (dbt-spark's `session`
method takes it), so the in-process demo starts the JVM once for the whole run.

dbt on Spark runs the models (`dbt run`), not the data and unit tests: those run on DuckDB builds (CI's suite, the
DuckDB demo) and the equivalence test holds the two engines' tables equal (tests/dbt/test_spark_engine.py).
"""

from __future__ import annotations

from typing import Any

from beacon.config import Settings, settings

# The dbt schemas the control plane reads over Spark's Parquet (published.READ_SCHEMAS and what else the node's
# code reads: the measurement marts for the campaign report, staging and intermediate for the page and privacy).
CONTROL_PLANE_SCHEMAS = ("staging", "intermediate", "marts", "segments", "measurement", "ml")
# The control plane's tables that are dbt sources of Spark models (staging reads them), handed over as Parquet.
HANDED_OVER = (("activation", "sync_log"), ("journeys", "transitions"), ("journeys", "finished"),
               ("privacy", "tombstones"))


# The columns beacon.spark.score.publish writes (SCORE_COLUMNS; `model` is the partition folder).
SCORES_DDL = ("customer_id string, version string, score double, decile int, scored_at timestamp_ntz, "
              "reason_1 string, reason_2 string, reason_3 string, model string")


def spark_session(s: Settings | None = None) -> Any:
    from beacon.spark.session import session

    return session(s or settings())


def attach_control_plane(s: Settings | None = None) -> list[str]:
    """Declare (again) in the control plane's DuckDB one view per table Spark published; returns the views."""
    from beacon.warehouse import connect

    s = s or settings()
    with connect(s.warehouse_path) as con:
        return _attach(con, s)


def _attach(con, s: Settings) -> list[str]:
    from beacon.spark.published import attach, spark_tables

    # Spark's tables and the copies of its views (publish_views) of the schemas the control plane reads.
    return attach(con, spark_tables(s, CONTROL_PLANE_SCHEMAS))


def publish_views(spark: Any, s: Settings | None = None) -> list[str]:
    """Spark's views in the control plane's schemas (dbt models materialized as views, e.g. the fact marts read
    through the current identity mapping) written as Parquet, since the node reads files, not Spark's catalog: a
    copy per build, which a table format shared by both sides would make unnecessary. Returns the views copied."""
    from beacon.spark.published import publish_views as publish

    return sorted(publish(spark, s or settings(), CONTROL_PLANE_SCHEMAS))


def _failed(built: dict[str, str]) -> list[str]:
    return sorted(m for m, status in built.items() if status not in ("success", "pass"))


def build_warehouse(exclude: tuple[str, ...] = (), s: Settings | None = None) -> dict:
    """The warehouse DAG's build on Spark: the raw layer and the control plane's source tables published as Parquet,
    the seeds, every model but `exclude` (identity and clustering as tasks between dbt selections), then the
    control plane's views. Raises naming the models that failed."""
    from beacon import dbt
    from beacon.spark.raw import publish_raw
    from beacon.spark.tasks import build

    s = s or settings()
    spark = spark_session(s)
    published = publish_raw(spark, s)
    if not dbt.run(["seed"], s, quiet=True):
        raise RuntimeError("dbt seed failed on Spark")
    steps = build(spark, "run", exclude=exclude, s=s)
    failed = _failed(steps["built"])
    if failed or not steps.get("dbt_after_clustering"):
        raise RuntimeError(f"dbt on Spark failed: {failed or [k for k, v in steps.items() if v is False]}")
    publish_views(spark, s)
    views = attach_control_plane(s)
    return {"engine": "spark", "raw_tables": len(published), "models": len(steps["built"]), "views": len(views)}


def _declare_scores(spark: Any, s: Settings) -> None:
    """`ml.scores` on Spark (the dbt source of stg_ml__scores) over the Parquet beacon.spark.score published."""
    from beacon.spark.score import scores_dir

    spark.sql("CREATE DATABASE IF NOT EXISTS ml")
    spark.sql("DROP TABLE IF EXISTS ml.scores")  # an external table (LOCATION): its files stay
    spark.sql(f"CREATE TABLE ml.scores ({SCORES_DDL}) USING parquet PARTITIONED BY (model) "
              f"LOCATION '{scores_dir(s)}'")
    spark.sql("MSCK REPAIR TABLE ml.scores")


def _drop_placeholder_scores(con) -> None:
    """The empty `ml.scores` table ingest creates (beacon.warehouse.ensure_scores_table) makes way for the view over
    Spark's scores; a table holding scores is left for `attach` to refuse, named."""
    from beacon.warehouse import table_type

    if table_type(con, "ml", "scores") not in (None, "VIEW") and \
            con.execute("SELECT count(*) FROM ml.scores").fetchall()[0][0] == 0:
        con.execute("DROP TABLE ml.scores")


def score_all(registry_dir, s: Settings | None = None) -> dict:
    """The ML DAG's scoring on Spark: every champion scores Spark's `marts.customer_features`; the scores are
    published as Parquet (the control plane's `ml.scores`) and declared on Spark for the segments; drift and
    fairness are recorded on the node as DuckDB's scoring records them. Returns ml.score.score_all's summary."""
    from beacon.spark.score import publish, score
    from beacon.warehouse import connect
    from ml import features, registry
    from ml.score import MODELS, monitoring_summary, population, record_monitoring

    s = s or settings()
    spark = spark_session(s)
    feats = spark.table("marts.customer_features")
    out, missing = {}, []
    with connect(s.warehouse_path) as con:
        end = features.as_of(con)
        X = groups = None
        for model in MODELS:
            version = registry.champion_version(registry_dir, model)
            if version is None:
                missing.append(model)
                continue
            scores, _ = score(spark, feats, registry_dir, model, end)
            publish(scores, s)
            _drop_placeholder_scores(con)
            _attach(con, s)  # the first scores published make the view ml.scores
            if X is None:
                X, groups = features.build(con, end), features.demographics(con, end)
            meta = registry.metadata(registry_dir, model, version)
            mine = con.execute("SELECT customer_id, score, decile, reason_1, reason_2, reason_3 FROM ml.scores "
                               "WHERE model = ? ORDER BY customer_id", [model]).df()
            rows, fair = record_monitoring(con, model, version, end, population(meta, X), mine, meta, groups)
            out[model] = monitoring_summary(model, version, end, mine, rows, fair)
    _declare_scores(spark, s)
    alert = "alert" if any(v["drift_state"] == "alert" for v in out.values()) else \
        "warn" if any(v["drift_state"] == "warn" for v in out.values()) else "ok"
    return {"engine": "spark", "scored_at": str(end), "models": out, "not_trained": missing, "drift_state": alert}


def build_selected(select: str, s: Settings | None = None) -> dict:
    """`dbt run --select <select>` on Spark, then the control plane's views; raises naming what failed."""
    from beacon import dbt

    s = s or settings()
    spark = spark_session(s)
    ok = dbt.run(["run", "--select", select], s, quiet=True)
    if not ok:
        raise RuntimeError(f"dbt run --select {select} failed on Spark")
    publish_views(spark, s)
    return {"engine": "spark", "views": len(attach_control_plane(s))}


def build_score_based(s: Settings | None = None) -> dict:
    """The ML DAG's score-based segments on Spark (their source, `ml.scores`, declared by score_all)."""
    from beacon.dbt import SCORE_BASED

    return build_selected(SCORE_BASED, s)


def build_measurement(s: Settings | None = None) -> dict:
    """The activation DAG's measurement marts on Spark: the sync log and the journeys' logs this run wrote handed
    over as Parquet first (beacon.spark.raw.publish_raw, those tables only), then `tag:measurement`."""
    from beacon.dbt import MEASUREMENT
    from beacon.spark.raw import publish_raw

    s = s or settings()
    publish_raw(spark_session(s), s, only=HANDED_OVER)
    return build_selected(MEASUREMENT, s)
