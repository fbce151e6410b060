"""Scores on Spark (beacon.spark.score) equal DuckDB's scoring (ml.score) for every customer (issue 29, item 4).

A small synthetic warehouse (tests/support/ml_world) trains the lead score and the churn model (which scores
buyers only); DuckDB's scoring writes ml.scores. The same features, written as Parquet straight from DuckDB's SQL
(its integer and decimal types, not the float frame the trainer sees), are read by Spark in several partitions and
scored there. Compared per customer: score to 1e-6, decile, the three reasons, and who is scored at all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.ml_world import build_world

from beacon.config import override_env
from ml import features
from ml.score import score_model
from ml.train import train_model

PARTITIONS = 6
REASONS = ["reason_1", "reason_2", "reason_3"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from beacon.config import settings
    from beacon.spark.session import session

    data = tmp_path_factory.mktemp("spark_score")
    con = build_world(n=1200, seed=11)
    reg = data / "registry"
    for model in ("lead_score", "churn"):
        train_model(con, reg, model)
        score_model(con, reg, model)
    cutoff = features.as_of(con)
    feats = data / "features.parquet"
    con.execute(f"COPY ({features.features_sql(cutoff)}) TO '{feats}' (FORMAT parquet)")
    with override_env(BEACON_DATA_DIR=str(data)):
        spark = session(settings())
        try:
            yield {"con": con, "registry": reg, "cutoff": cutoff, "spark": spark,
                   "features": spark.read.parquet(str(feats)).repartition(PARTITIONS)}
        finally:
            spark.stop()


def _duckdb_scores(con, model: str) -> pd.DataFrame:
    return con.execute("SELECT customer_id, model, version, score, decile, scored_at, reason_1, reason_2, reason_3 "
                       "FROM ml.scores WHERE model = ? ORDER BY customer_id", [model]).df()


@pytest.mark.parametrize("model", ["lead_score", "churn"])
def test_spark_scores_equal_duckdb_scores_for_every_customer(world, model):
    from beacon.spark.score import SCORE_COLUMNS, score

    duck = _duckdb_scores(world["con"], model)
    out, loads = score(world["spark"], world["features"], world["registry"], model, world["cutoff"])
    assert out.columns == SCORE_COLUMNS
    spark = out.toPandas().sort_values("customer_id", ignore_index=True)
    # The same customers (churn: the buyers only), each once.
    assert len(duck) > 100 and spark.customer_id.is_unique
    assert spark.customer_id.tolist() == duck.customer_id.tolist()
    assert (spark.model == model).all() and (spark.version == duck.version).all()
    assert (pd.to_datetime(spark.scored_at) == pd.to_datetime(duck.scored_at)).all()
    np.testing.assert_allclose(spark.score.to_numpy(), duck.score.to_numpy(), rtol=0, atol=1e-6)
    assert spark.decile.tolist() == duck.decile.tolist()
    assert sorted(set(spark.decile)) == list(range(1, 11))
    for r in REASONS:  # an empty reason is null on both
        assert spark[r].fillna("-").tolist() == duck[r].astype(object).fillna("-").tolist(), r
    assert spark.reason_1.notna().sum() > len(spark) // 2  # most customers have a reason: the check compares text
    # The model text is parsed at most once per partition (in fact once per Python worker, which Spark reuses).
    assert 1 <= loads.value <= PARTITIONS


def test_deciles_rank_the_whole_population_across_partitions(world):
    """Ties broken by customer_id, ranges of any size: the decile of a row is its rank over everyone."""
    from beacon.spark.score import with_deciles
    from ml.metrics import deciles

    rng = np.random.default_rng(5)
    n = 997
    frame = pd.DataFrame({"customer_id": [f"c{i:04d}" for i in range(n)],
                          "score_exact": rng.choice([0.1, 0.5, 0.5, 0.9], n) + rng.integers(0, 3, n) / 10})
    got = with_deciles(world["spark"].createDataFrame(frame).repartition(7)).toPandas()
    got = got.sort_values("customer_id", ignore_index=True)
    assert got.decile.tolist() == deciles(frame.score_exact.to_numpy()).tolist()


def test_partitions_without_anyone_in_the_population_give_no_rows(world):
    """Churn scores buyers only: partitions holding none of them return nothing, and the deciles still count."""
    from beacon.spark.score import score

    feats = world["features"]
    none, _ = score(world["spark"], feats.where("coalesce(orders_total, 0) = 0"), world["registry"], "churn",
                    world["cutoff"])
    assert none.count() == 0
    # Non-buyers first, in partitions of their own, then the buyers: the same scores as the mixed frame.
    split = feats.where("coalesce(orders_total, 0) = 0").repartition(3).union(
        feats.where("orders_total > 0").repartition(2))
    out, _ = score(world["spark"], split, world["registry"], "churn", world["cutoff"])
    got = out.toPandas().sort_values("customer_id", ignore_index=True)
    duck = _duckdb_scores(world["con"], "churn")
    assert got.customer_id.tolist() == duck.customer_id.tolist()
    assert got.decile.tolist() == duck.decile.tolist()


def test_a_features_frame_without_a_model_feature_is_refused_by_name(world):
    from beacon.spark.score import score

    partial = world["features"].drop("web_30d")
    with pytest.raises(ValueError, match="lacks column.*web_30d"):
        score(world["spark"], partial, world["registry"], "lead_score", world["cutoff"])


def test_a_model_without_a_champion_is_refused(world, tmp_path):
    from beacon.spark.score import score

    with pytest.raises(FileNotFoundError, match="no trained ltv model"):
        score(world["spark"], world["features"], tmp_path / "empty", "ltv", world["cutoff"])


def test_published_scores_replace_only_their_models_folder(world):
    from beacon.spark.score import publish, score

    with override_env(BEACON_DATA_DIR=str(world["registry"].parent)):
        for model in ("lead_score", "churn"):
            out, _ = score(world["spark"], world["features"], world["registry"], model, world["cutoff"])
            path = publish(out, None)
        again, _ = score(world["spark"], world["features"], world["registry"], "churn", world["cutoff"])
        publish(again, None)
    back = world["spark"].read.parquet(str(path)).toPandas()
    counts = back.groupby("model").size().to_dict()
    duck = world["con"].execute("SELECT model, count(*) FROM ml.scores GROUP BY 1").fetchall()
    assert counts == dict(duck)  # churn written twice: its folder replaced, lead_score's kept


def test_the_control_plane_reads_spark_published_audiences_and_scores_without_a_jvm(world, tmp_path):
    """DuckDB views over the Parquet folders Spark wrote (beacon.spark.published): the same rows, under the names
    activation reads (segments.*, ml.scores), joinable as governance joins them."""
    import duckdb

    from beacon.spark.published import attach, attach_published
    from beacon.spark.score import publish, score

    spark = world["spark"]
    with override_env(BEACON_DATA_DIR=str(world["registry"].parent)):
        scores, _ = score(spark, world["features"], world["registry"], "lead_score", world["cutoff"])
        publish(scores, None)
        spark.sql("CREATE DATABASE IF NOT EXISTS segments")
        top = scores.where("decile = 1").select("customer_id", "score")
        top.write.mode("overwrite").format("parquet").saveAsTable("segments.top_decile")
        expected = sorted(top.toPandas().itertuples(index=False, name=None))
        con = duckdb.connect(str(tmp_path / "control.duckdb"))
        made = attach_published(con)
    assert {"segments.top_decile", "ml.scores"} <= set(made)
    got = sorted(con.execute("SELECT customer_id, score FROM segments.top_decile").fetchall())
    assert got == expected and len(got) > 50
    joined = con.execute("""SELECT count(*), min(sc.decile), max(sc.decile) FROM segments.top_decile s
                            JOIN ml.scores sc ON sc.customer_id = s.customer_id AND sc.model = 'lead_score'""").fetchone()
    assert joined == (len(expected), 1, 1)
    # A DuckDB table of the same name is not shadowed silently.
    con.execute("CREATE TABLE segments.local_only AS SELECT 1 AS customer_id")
    with pytest.raises(ValueError, match="segments.local_only is a DuckDB table"):
        attach(con, {"segments.local_only": tmp_path})
