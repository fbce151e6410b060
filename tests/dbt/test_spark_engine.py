"""Both engines give the same warehouse on the same world (issue 29, item 6; docs/scale.md, docs/benchmarks.md).

A 5,000-person world over two days, with bad rows in every file (the generator's), late events, re-sent messages and
re-sent orders of day 1 in day 2's files, and a changed CRM record that merges two customers of day 1
(tests/support/incremental_world), runs on both engines, each from the landing files:

- DuckDB: Beacon's ingest into the warehouse's raw schema, dbt on DuckDB;
- Spark: the same ingest contract written as Parquet partitioned by load day (beacon.spark.landing; no DuckDB raw
  schema is read), declared as Spark tables, dbt on Spark through dbt-spark (method: session, local[2]; one session
  for the module) with the identity and clustering tasks between dbt selections (beacon.spark.tasks.build).

Day 1 resolves identities on both (dbt up to `int_customer_records_resolved`), day 2 builds everything incrementally
on that, so identity runs a second time and merges. Then the registry's champions, trained once on one node, score
on both (ml.score on DuckDB, beacon.spark.score on Spark), the score-based segments are built on both, and every
audience is exported to files from each engine's control plane (DuckDB's warehouse; for Spark a DuckDB file that
reads what Spark published, beacon.spark.published). Compared: raw counts and quarantine reasons, every model row for
row, the customer partition (pairwise F1), segment memberships, scores to 1e-6 and the export files byte for byte.
The world is checked to hold late events, merges and bad rows, so the comparison cannot pass on an easy world.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from support.incremental_world import plant_late_rows, plant_merge

from beacon.config import override_env

PEOPLE = 5000
SEED = 29
# Days of history the world covers (the generator's default is a year): the day-partitioned models write one folder
# per day on Spark, whatever the number of people, so a shorter history is a cheaper world with the same people,
# late events, merges and bad rows. HISTORY is the shortest that still trains all three models (churn's training
# cutoff is 180 days back) and fills both score-based segments (docs/benchmarks.md, "The equivalence test").
HISTORY = 240
# Columns whose values are engine-specific by design, left out of the comparison: measurement_input_days' digest is
# a change detector (xor of row hashes: DuckDB's 64-bit hash(), Spark's 32-bit murmur3 hash()), compared only with
# earlier digests of the same engine; its rows and row counts are compared.
ENGINE_SPECIFIC = {"measurement_input_days": ("digest",)}
# The wall-clock time of each engine's own load (each ingests the landing files itself): an audit column, left out
# of every model's comparison; the rows it marks (`_batch_id`, `_source_file`, `_line`) are compared.
LOAD_TIME = "_loaded_at"
RAW = ("crm_contacts", "crm_companies", "shop_customers", "shop_products", "shop_orders", "shop_order_items",
       "web_events", "collected_events", "email_events", "consent")
# The control plane's tables that are dbt sources (the scores come from each engine's own scoring, declared after).
HANDED_OVER = (("activation", "sync_log"), ("journeys", "transitions"), ("journeys", "finished"),
               ("privacy", "tombstones"))
# Day 1 builds what identity resolution needs and resolves (plant_merge reads its result); day 2 builds the rest.
DAY1 = "+int_customer_records_resolved"
# The schemas the spark engine's control plane reads over Spark's Parquet.
CONTROL_PLANE_SCHEMAS = ("staging", "intermediate", "marts", "segments", "measurement", "ml")
F1_FLOOR = 0.999

pytestmark = pytest.mark.e2e


def _built(target: Path) -> dict[str, str]:
    """{model: status} of the last dbt run in `target`."""
    results = json.loads((target / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[-1]: r["status"] for r in results}


def _ingest_on_spark(spark, s) -> dict[str, int]:
    """Landing -> Parquet raw (the ingest contract), declared on Spark with the control plane's source tables."""
    from beacon.spark.landing import declare_raw, ingest_landing
    from beacon.spark.raw import publish_raw

    ingest_landing(s=s)
    counts = declare_raw(spark, s)
    publish_raw(spark, s, only=HANDED_OVER)
    return counts


def _declare_scores(spark, s) -> None:
    """`ml.scores` on Spark: the scores Spark published (partitioned by model), or empty before the first scoring."""
    from beacon.spark.score import scores_dir

    location = scores_dir(s)
    location.mkdir(parents=True, exist_ok=True)
    spark.sql("CREATE DATABASE IF NOT EXISTS ml")
    spark.sql("DROP TABLE IF EXISTS ml.scores")
    spark.sql("CREATE TABLE ml.scores (customer_id string, version string, score double, decile int, "
              "scored_at timestamp_ntz, reason_1 string, reason_2 string, reason_3 string, model string) "
              f"USING parquet PARTITIONED BY (model) LOCATION '{location}'")
    spark.sql("MSCK REPAIR TABLE ml.scores")


def _day1(data: Path, duck_env: dict, spark_env: dict) -> dict:
    """Day 1 on both engines: ingest, seeds, dbt up to identity resolution and its result."""
    from beacon import dbt
    from beacon.config import settings
    from beacon.generate import GenConfig, generate
    from beacon.ingest import load_landing
    from beacon.spark.session import session
    from beacon.spark.tasks import resolve_identities_on_spark

    generate(GenConfig(people=PEOPLE, seed=SEED, day=1, history_days=HISTORY), data)
    with override_env(**duck_env):
        s = settings()
        load_landing(s.landing_dir)
        assert dbt.run(["seed"], s, quiet=True) and dbt.run(["run", "--select", DAY1], s, quiet=True), "day 1, DuckDB"
    with override_env(**spark_env):
        s = settings()
        spark = session(s)
        _ingest_on_spark(spark, s)
        _declare_scores(spark, s)
        assert dbt.run(["seed"], s, quiet=True), "dbt seed failed on Spark"
        assert dbt.run(["run", "--select", DAY1, "--exclude", "int_identity_events+"], s, quiet=True), "day 1, Spark"
        resolve_identities_on_spark(spark, s)
        assert dbt.run(["run", "--select", f"int_identity_events+,{DAY1}", "--exclude", "int_identity_events"], s,
                       quiet=True), "day 1 after identity, Spark"
    return {"spark": spark}


def _score_on_spark(spark, s, registry: Path, con_cp) -> None:
    """Every champion scores on Spark from Spark's customer features; published, then declared as ml.scores."""
    from beacon.spark.score import publish, score
    from ml import features
    from ml import registry as reg
    from ml.score import MODELS

    as_of = features.as_of(con_cp)  # the warehouse clock, read from what Spark published
    for model in MODELS:
        if reg.champion_version(registry, model) is not None:
            out, _ = score(spark, spark.table("marts.customer_features"), registry, model, as_of)
            publish(out, s)
    _declare_scores(spark, s)


def _attach_spark(con: duckdb.DuckDBPyConnection, s) -> None:
    """The spark engine's control plane: one view per table Spark published (again: new tables appear)."""
    from beacon.spark.published import attach, spark_tables

    attach(con, spark_tables(s, CONTROL_PLANE_SCHEMAS))


def _export(con, manifest: Path, exports: Path, as_of) -> list[str]:
    """Every audience synced to the file destination (activation's sync engine, governance and all)."""
    from beacon.activation.activate import activate, delivery_pairs

    done = []
    for pair in delivery_pairs(manifest):
        if pair["destination"] == "file":
            activate(con, manifest, pair["audience"], "file", str(exports), as_of, run_id=f"eq:{pair['audience']}")
            done.append(pair["audience"])
    return done


def _day2_duckdb(s) -> dict:
    """Day 2 on DuckDB: ingest, the build but the score-based segments, training (one node), scoring, those
    segments."""
    from beacon import dbt
    from beacon.ingest import load_landing
    from beacon.warehouse import connect
    from ml.score import score_all
    from ml.train import train_all

    load_landing(s.landing_dir)
    assert dbt.run(["run", "--exclude", dbt.SCORE_BASED], s, quiet=True), "day 2, DuckDB"
    built = _built(s.dbt_target_dir)
    with connect(s.warehouse_path) as con:
        trained = train_all(con, s.registry_dir)
        score_all(con, s.registry_dir)
    assert dbt.run(["run", "--select", dbt.SCORE_BASED], s, quiet=True), "score-based segments, DuckDB"
    return {"built": {**built, **_built(s.dbt_target_dir)}, "trained": trained}


def _day2_spark(spark, s, registry: Path, control_plane: Path) -> dict:
    """Day 2 on Spark: ingest, the build but the score-based segments, scoring with DuckDB's champions, those
    segments."""
    from beacon import dbt
    from beacon.spark.published import publish_views
    from beacon.spark.tasks import build

    published = _ingest_on_spark(spark, s)
    steps = build(spark, "run", exclude=(dbt.SCORE_BASED,), s=s)
    with duckdb.connect(str(control_plane)) as cp:
        _attach_spark(cp, s)
        _score_on_spark(spark, s, registry, cp)
    assert dbt.run(["run", "--select", dbt.SCORE_BASED], s, quiet=True), "score-based segments, Spark"
    steps["built"].update(_built(s.dbt_target_dir))
    publish_views(spark, s, CONTROL_PLANE_SCHEMAS)  # the marts' views (fct_email_events: governance reads it)
    return {"published": published, "steps": steps}


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    from beacon.config import settings
    from beacon.generate import GenConfig, generate
    from beacon.warehouse import clock, connect

    data = tmp_path_factory.mktemp("engines")
    duck_env = {"BEACON_DATA_DIR": str(data), "BEACON_DBT_TARGET_DIR": str(data / "duckdb_target")}
    spark_env = {**duck_env, "BEACON_DBT_TARGET_DIR": str(data / "spark_target"), "BEACON_ENGINE": "spark"}
    control_plane = data / "spark_control_plane.duckdb"
    spark = _day1(data, duck_env, spark_env)["spark"]
    try:
        cfg = GenConfig(people=PEOPLE, seed=SEED, day=2, history_days=HISTORY)
        generate(cfg, data)
        with override_env(**duck_env):
            s = settings()
            day1 = s.landing_dir / cfg.day_date(1).isoformat()
            day2 = s.landing_dir / cfg.day_date().isoformat()
            planted = plant_late_rows(day2, day1)
            merged = plant_merge(s.warehouse_path, s.landing_dir, day2)
            duck = _day2_duckdb(s)
        with override_env(**spark_env):
            s = settings()
            ours = _day2_spark(spark, s, s.registry_dir, control_plane)
            nodes = json.loads(s.manifest_path.read_text())["nodes"].values()
        # The exports, once both engines have built (a sync writes the sync log, a dbt source of both builds).
        with override_env(**duck_env):
            s = settings()
            with connect(s.warehouse_path) as con:
                as_of = clock(con)
                duck_exports = _export(con, s.manifest_path, data / "exports_duckdb", as_of)
        with override_env(**spark_env):
            s = settings()
            with duckdb.connect(str(control_plane)) as cp:
                _attach_spark(cp, s)
                assert clock(cp) == as_of  # the same warehouse clock, read from what Spark published
                spark_exports = _export(cp, s.manifest_path, data / "exports_spark", as_of)
        models = {n["name"]: n["schema"] for n in nodes if n["resource_type"] == "model"}
        partitions = {n["name"]: n["config"].get("partition_by") or [] for n in nodes if n["resource_type"] == "model"}
        yield {"data": data, "warehouse": s.warehouse_path, "spark": spark, "published": ours["published"],
               "steps": ours["steps"], "duckdb_built": duck["built"], "spark_built": ours["steps"]["built"],
               "models": models, "partitions": partitions, "planted": planted, "merged": merged,
               "trained": duck["trained"], "exports": (duck_exports, spark_exports)}
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


def test_the_world_has_late_events_merges_and_bad_rows(engines):
    """What makes the comparison worth making: late events, a merge of two day-1 customers on day 2, bad rows."""
    planted = engines["planted"]
    assert planted["late_web"] > 0 and planted["late_email"] > 0 and planted["resent_orders"] > 0
    late = _duckdb(engines["warehouse"], "SELECT count(*) AS n FROM raw.web_events WHERE message_id LIKE 'late-%'")
    assert late.n[0] == planted["late_web"]
    spark = engines["spark"]
    assert spark.sql("SELECT count(*) AS n FROM raw.web_events WHERE message_id LIKE 'late-%'").first().n == late.n[0]
    for engine_merges in (_duckdb(engines["warehouse"], "SELECT count(*) AS n FROM marts.identity_merge_log").n[0],
                          spark.table("marts.identity_merge_log").count()):
        assert engine_merges > 0
    bad = _duckdb(engines["warehouse"], "SELECT count(*) AS n FROM raw._quarantine WHERE reason <> 'duplicate'")
    assert bad.n[0] > 0


def test_raw_counts_and_quarantine_reasons_are_the_same(engines):
    spark = engines["spark"]
    for table in RAW:
        n = _duckdb(engines["warehouse"], f"SELECT count(*) AS n FROM raw.{table}").n[0]
        assert engines["published"][f"raw.{table}"] == n == spark.table(f"raw.{table}").count(), table
    # Partitioned by load day: each row in the folder of its `_loaded_at` day (both runs may share one day).
    assert spark.sql("SHOW PARTITIONS raw.web_events").count() >= 1
    assert spark.sql("SELECT count(*) AS n FROM raw.web_events WHERE _load_date <> CAST(_loaded_at AS DATE)").first().n == 0
    sql = "SELECT source, reason, count(*) AS n FROM raw._quarantine GROUP BY 1, 2"
    duck = sorted(_duckdb(engines["warehouse"], sql).itertuples(index=False, name=None))
    ours = sorted(tuple(r) for r in spark.sql(sql).collect())
    assert ours == duck
    assert {r[1] for r in duck} >= {"malformed", "wrong_type"}  # the generator's bad rows
    ledger = "SELECT source, file, status, rows_read, rows_loaded, rows_quarantined FROM raw._load_ledger"
    assert sorted(tuple(r) for r in spark.sql(ledger).collect()) == \
        sorted(_duckdb(engines["warehouse"], ledger).itertuples(index=False, name=None))


def test_every_model_builds_on_both_engines(engines):
    duck, spark, steps = engines["duckdb_built"], engines["spark_built"], engines["steps"]
    assert all(steps[k] for k in ("dbt_before_identity", "dbt_before_clustering", "dbt_after_clustering")), \
        {m: st for m, st in spark.items() if st != "success"}
    assert all(st == "success" for st in spark.values())
    assert steps["int_identity_events"] > 0 and steps["int_customers_clustered"] > 0
    assert all(st == "success" for st in duck.values())
    # Every model of the project on both, the two Python models included (built by their tasks on Spark).
    assert set(spark) == set(duck) == set(engines["models"])
    assert {"int_identity_events", "int_customers_clustered", "dim_customers", "engaged_browsers"} <= set(spark)


def test_every_model_has_the_same_rows_on_both_engines(engines):
    from pyspark.sql import functions as F  # noqa: N812

    spark = engines["spark"]
    checked = 0
    for model in sorted(engines["models"]):
        schema = engines["models"][model]
        duck = _duckdb(engines["warehouse"], f"SELECT * FROM {schema}.{model}")
        skip = (*ENGINE_SPECIFIC.get(model, ()), LOAD_TIME)
        duck = duck.drop(columns=[c for c in skip if c in duck.columns])
        frame = spark.table(f"{schema}.{model}")
        # The same columns; a day-partitioned model keeps its partition column (config partition_by) last on Spark
        # (Spark stores partition columns after the others), in place on DuckDB.
        columns = [c for c in frame.columns if c not in skip]
        assert sorted(columns) == sorted(duck.columns), model
        moved = [c for c, d in zip(columns, duck.columns, strict=True) if c != d]
        assert not moved or columns[-1] in engines["partitions"][model], (model, moved)
        assert frame.count() == len(duck), model
        # Arrays of strings arrive as numpy arrays from DuckDB and lists from Spark; _plain makes both tuples.
        theirs = frame.select([F.col(c) for c in duck.columns]).toPandas()
        assert _differences(_rows(theirs), _rows(duck)) == [], model
        checked += len(duck) > 0
    assert checked >= 45  # most models hold rows in this world


def pairwise_f1(a: pd.Series, b: pd.Series) -> float:
    """Pairwise F1 of two partitions of the same records (cluster labels `a` and `b`, indexed by record): pairs of
    records in one cluster under both, over the pairs in one cluster under each (precision of b against a, recall)."""
    def pairs(sizes) -> int:
        return sum(n * (n - 1) // 2 for n in sizes)

    both = pd.DataFrame({"a": a, "b": b.reindex(a.index)})
    assert both.b.notna().all() and len(a) == len(b), "the two partitions cover different records"
    together = pairs(Counter(zip(both.a, both.b, strict=True)).values())
    in_a, in_b = pairs(Counter(both.a).values()), pairs(Counter(both.b).values())
    if in_a == in_b == 0:
        return 1.0
    precision, recall = together / in_b if in_b else 1.0, together / in_a if in_a else 1.0
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_pairwise_f1_counts_pairs():
    """Worked cases: the same partition under other labels is 1; splitting a 3-cluster into 2+1 loses 2 of its 3
    pairs (precision 1, recall 1/3: F1 0.5); no pairs on either side is 1."""
    a = pd.Series(["x", "x", "x", "y"], index=list("pqrs"))
    assert pairwise_f1(a, pd.Series(["1", "1", "1", "2"], index=list("pqrs"))) == 1.0
    assert pairwise_f1(a, pd.Series(["1", "1", "3", "2"], index=list("pqrs"))) == pytest.approx(0.5)
    assert pairwise_f1(pd.Series(["x", "y"], index=list("pq")), pd.Series(["1", "2"], index=list("pq"))) == 1.0


def test_the_customer_partition_is_the_same(engines):
    """Every record's customer on each engine (int_customer_records_resolved): pairwise F1 ≥ 0.999 (in fact the
    same ids: identity is the same code on the same records)."""
    sql = "SELECT source || ':' || record_id AS record, customer_id FROM intermediate.int_customer_records_resolved"
    duck = _duckdb(engines["warehouse"], sql).set_index("record").customer_id
    spark = engines["spark"].sql(sql).toPandas().set_index("record").customer_id
    assert duck.index.is_unique and len(duck) > PEOPLE  # every record once; more records than people
    assert duck.nunique() < len(duck)  # records were merged into customers: the F1 has pairs to count
    f1 = pairwise_f1(duck, spark)
    print(f"pairwise F1 {f1:.6f} over {len(duck)} records, {duck.nunique()} customers")  # noqa: T201
    assert f1 >= F1_FLOOR


def test_segment_memberships_are_the_same(engines):
    segments = sorted(m for m, schema in engines["models"].items() if schema == "segments")
    assert len(segments) >= 12
    members = {}
    for segment in segments:
        duck = set(_duckdb(engines["warehouse"], f"SELECT customer_id FROM segments.{segment}").customer_id)
        spark = {r.customer_id for r in engines["spark"].table(f"segments.{segment}").select("customer_id").collect()}
        assert spark == duck, segment
        members[segment] = len(duck)
    assert sum(n > 0 for n in members.values()) >= len(segments) - 2, members
    # The score-based segments read this run's scores on both engines: each has members to compare.
    for segment in ("hot_b2b_leads", "high_value_churn_risk"):
        assert members.get(segment, 0) > 0, (segment, members)


def test_scores_are_the_same_to_1e_6(engines):
    from ml.score import MODELS

    duck = _duckdb(engines["warehouse"], "SELECT customer_id, model, version, score, decile FROM ml.scores")
    spark = engines["spark"].table("ml.scores").select("customer_id", "model", "version", "score", "decile").toPandas()
    assert len(duck) > PEOPLE and set(duck.model) == set(spark.model) == set(MODELS)  # every model scored
    both = duck.merge(spark, on=["customer_id", "model"], how="outer", suffixes=("_duck", "_spark"), indicator=True)
    assert (both._merge == "both").all(), both[both._merge != "both"].head()
    assert (both.version_duck == both.version_spark).all()
    np.testing.assert_allclose(both.score_spark, both.score_duck, rtol=0, atol=1e-6)
    assert (both.decile_spark == both.decile_duck).all()


def _exports(folder: Path) -> dict[str, list[tuple]]:
    """The export files (manifests aside: they record when), each as its rows of values: numbers as floats."""
    out = {}
    for p in sorted(folder.rglob("*.csv")):
        frame = pd.read_csv(p, dtype=str, keep_default_na=False)
        out[str(p.relative_to(folder))] = [tuple(frame.columns)] + [tuple(_number(v) for v in row)
                                                                    for row in frame.itertuples(index=False)]
    return out


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def test_the_exports_are_the_same(engines):
    """Every audience's file export, from DuckDB's control plane and from the one reading Spark's Parquet: the same
    files (a file is named by the hash of its changes), the same columns and rows, numbers to 1e-9 (a sum of amounts
    ends in other last bits when the engines add in another order: 143.94 on one, 143.94000000000003 on the other)."""
    duck_audiences, spark_audiences = engines["exports"]
    assert duck_audiences == spark_audiences and len(duck_audiences) >= 10
    duck, spark = _exports(engines["data"] / "exports_duckdb"), _exports(engines["data"] / "exports_spark")
    assert len(duck) >= len(duck_audiences) - 2 and sum(len(rows) - 1 for rows in duck.values()) > 1000
    assert sorted(spark) == sorted(duck)
    for name, rows in duck.items():
        assert len(spark[name]) == len(rows) and _differences(spark[name], rows) == [], name


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
    assert len(duck) == len(spark) >= 1
    ours, theirs = json.loads(duck.model_json.iloc[-1]), json.loads(spark.model_json.iloc[-1])
    for model in (ours, theirs):  # a random name Splink gives each linker
        model["settings"].pop("linker_uid", None)
    assert _same(_plain_json(theirs), _plain_json(ours))
    runs = _duckdb(engines["warehouse"], f"""SELECT run_id, bool_and(success) AS passed
                                             FROM quality.expectation_results WHERE suite = '{SUITE}' GROUP BY 1""")
    assert len(runs) == 4 and runs.passed.all()  # two days on each engine


def test_a_row_removed_from_raw_leaves_the_spark_copy_at_the_next_publish(engines):
    """An erasure or a retention run deletes raw rows in DuckDB: the next publish must not keep them (the publishing
    path of a raw layer loaded into DuckDB, beacon.spark.raw; run last, it replaces the Parquet raw layer)."""
    from beacon.config import settings
    from beacon.spark.raw import publish_raw

    warehouse = engines["warehouse"]
    with duckdb.connect(str(warehouse)) as con:
        product = con.execute("SELECT min(product_id) FROM raw.shop_products").fetchone()[0]
        con.execute("DELETE FROM raw.shop_products WHERE product_id = ?", [product])
        left = con.execute("SELECT count(*) FROM raw.shop_products").fetchone()[0]
    with override_env(BEACON_DATA_DIR=str(engines["data"]), BEACON_ENGINE="spark"):
        published = publish_raw(engines["spark"], settings())
    assert published["raw.shop_products"] == left
    gone = engines["spark"].sql(f"SELECT count(*) AS n FROM raw.shop_products WHERE product_id = '{product}'")
    assert gone.first().n == 0
