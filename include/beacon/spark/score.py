"""Scores on Spark (issue 29, item 4): the registry's champion scores every customer across partitions.

Training stays on one node (ml.train, from the warehouse or a sample of it, as LightGBM's own users do at this
scale); scoring is the step that grows with the customers. `score` reads the customers' features as any Spark
DataFrame (the `customer_features` table a Spark build publishes as Parquet, or Parquet written from DuckDB) and
runs, per partition (`mapInPandas`), the same functions DuckDB's scoring runs: `ml.features.model_types` (the
feature types), `ml.score.population` (which customers a model scores) and `ml.score.score_frame` (score,
SHAP reasons). The model text travels once to each executor as a broadcast variable and is parsed into a LightGBM
booster once per Python worker (kept in this module while the worker lives: Spark reuses its Python workers from
task to task), not once per batch or row. Deciles rank the whole population, so they are computed after the
partitions are scored: a range partitioning by (unrounded score descending, customer_id) and a row number within
each range plus the sizes of the ranges before it, so no single task holds every customer (a window over the whole
table would). The columns and values equal `ml.scores` from DuckDB's scoring (tests/spark/test_score.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from beacon.config import Settings, settings
from beacon.spark.session import spark_dir

REASONS = ("reason_1", "reason_2", "reason_3")
# The columns of DuckDB's ml.scores (ml.score.SCORE_COLUMNS), in its order.
SCORE_COLUMNS = ["customer_id", "model", "version", "score", "decile", "scored_at", *REASONS]
# Rows scored at once in a partition (ml.score.CHUNK): Arrow batches are gathered up to it, then scored.
BLOCK = 262_144
# What each partition returns (the decile comes after, over every partition).
OUT_COLUMNS = ["customer_id", "score", "score_exact", *REASONS]
# The boosters this Python worker parsed, by (model, version, digest of the model text).
_BOOSTERS: dict[tuple[str, str, str], Any] = {}


def _booster(key: tuple[str, str, str], text: str, loads: Any) -> Any:
    """The champion's booster in this worker: parsed from its text the first time, then kept."""
    booster = _BOOSTERS.get(key)
    if booster is None:
        import lightgbm as lgb

        booster = _BOOSTERS[key] = lgb.Booster(model_str=text)
        loads.add(1)
    return booster


def _scorer(model: str, version: str, meta: dict, shipped: Any, loads: Any):
    """The function mapInPandas runs on each partition: its batches gathered into blocks of BLOCK rows, each block
    typed, filtered to the model's population and scored by ml.score.score_frame (its decile dropped: deciles are
    ranked over every partition afterwards)."""
    columns = ["customer_id", *meta["features"]]

    def score_block(block: list[pd.DataFrame]) -> pd.DataFrame:
        from ml.features import model_types
        from ml.score import population, score_frame

        text, key_digest = shipped.value
        booster = _booster((model, version, key_digest), text, loads)
        X = population(meta, model_types(pd.concat(block, ignore_index=True)[columns]))
        if X.empty:  # no row of this block is in the model's population (churn, LTV: no buyer here)
            return pd.DataFrame({c: pd.Series(dtype=object if c == "customer_id" or c in REASONS else "float64")
                                 for c in OUT_COLUMNS})
        out = score_frame(booster, meta, X, exact=True).drop(columns="decile")
        for r in REASONS:  # categories to plain text; an empty reason is a null, as in DuckDB's table
            out[r] = out[r].astype(object).where(out[r].notna(), None)
        return out[OUT_COLUMNS]

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        block: list[pd.DataFrame] = []
        rows = 0
        for batch in batches:
            block.append(batch)
            rows += len(batch)
            if rows >= BLOCK:
                yield score_block(block)
                block, rows = [], 0
        if rows:
            yield score_block(block)

    return run


def _check_columns(features: Any, names: list[str], model: str) -> None:
    missing = [c for c in ["customer_id", *names] if c not in features.columns]
    if missing:
        raise ValueError(f"the features DataFrame lacks column(s) {', '.join(missing)} that the {model} "
                         f"champion needs (it has: {', '.join(features.columns)})")


def with_deciles(scored: Any) -> Any:
    """Each row's decile over the whole population, as ml.metrics.deciles ranks it (1 = the highest 10% by the
    unrounded score; ties in the order of customer_id, the order DuckDB's features come in), computed without
    gathering every row in one task: rows range-partitioned by that order, numbered within their range, offset
    by the sizes of the ranges before."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    order = [F.col("score_exact").desc(), F.col("customer_id").asc()]
    spark = scored.sparkSession
    parts = max(1, int(spark.conf.get("spark.sql.shuffle.partitions")))
    # Materialized once: the range boundaries come from a sample, and the sizes and numbers below must see the
    # same ranges.
    ranged = scored.repartitionByRange(parts, *order).withColumn("_range", F.spark_partition_id()).localCheckpoint()
    sizes = dict(ranged.groupBy("_range").count().collect())
    total, offsets, before = sum(sizes.values()), [], 0
    for r in sorted(sizes):
        offsets.append((r, before))
        before += sizes[r]
    offset = spark.createDataFrame(offsets, "_range int, _offset long")
    numbered = ranged.withColumn("_n", F.row_number().over(Window.partitionBy("_range").orderBy(*order)))
    rank = F.col("_offset") + F.col("_n") - 1
    return (numbered.join(F.broadcast(offset), "_range")
            .withColumn("decile", (F.floor(rank * 10 / F.lit(max(total, 1))) + 1).cast("int"))
            .drop("_range", "_offset", "_n"))


def score(spark: Any, features: Any, registry_dir: Path, model: str, scored_at: datetime,
          exact: bool = False) -> tuple[Any, Any]:
    """`model`'s champion scores every row of the Spark DataFrame `features` (customer_id and the model's
    features); returns the scores (SCORE_COLUMNS, and `score_exact` with `exact`) and the accumulator counting
    the boosters parsed (at most one per Python worker; read it after an action)."""
    from pyspark.sql import functions as F  # noqa: N812

    from ml import registry

    version = registry.champion_version(registry_dir, model)
    if version is None:
        raise FileNotFoundError(f"no trained {model} model in {Path(registry_dir) / model}: train it first")
    meta = registry.metadata(registry_dir, model, version)
    _check_columns(features, meta["features"], model)
    text = (Path(registry_dir) / model / version / "model.txt").read_text()
    shipped = spark.sparkContext.broadcast((text, hashlib.sha256(text.encode()).hexdigest()[:16]))
    loads = spark.sparkContext.accumulator(0)
    schema = ("customer_id string, score double, score_exact double, reason_1 string, reason_2 string, "
              "reason_3 string")
    scored = features.select("customer_id", *meta["features"]).mapInPandas(
        _scorer(model, version, meta, shipped, loads), schema)
    out = with_deciles(scored).select(
        "customer_id", F.lit(model).alias("model"), F.lit(version).alias("version"), "score", "decile",
        F.lit(pd.Timestamp(scored_at).to_pydatetime()).cast("timestamp_ntz").alias("scored_at"), *REASONS,
        *(["score_exact"] if exact else []))
    return out, loads


def scores_dir(s: Settings | None = None) -> Path:
    """Where the Spark scores are published: Parquet, one folder per model (`model=<name>`)."""
    return spark_dir(s or settings()) / "published" / "ml_scores"


def publish(scores: Any, s: Settings | None = None) -> Path:
    """Write the scores of the models in `scores` as Parquet under scores_dir, replacing only those models'
    folders (dynamic partition overwrite), for the control plane to read (docs/architecture.md)."""
    out = scores_dir(s)
    (scores.write.mode("overwrite").option("partitionOverwriteMode", "dynamic").partitionBy("model")
     .parquet(str(out)))
    return out
