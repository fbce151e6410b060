"""Scoring only the customers whose features changed (ml.score_delta) writes the same ml.scores as scoring all."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from support.ml_world import build_world

from ml import features, registry, score_delta
from ml.metrics import deciles
from ml.score import score_frame, score_model
from ml.train import train_model

COLUMNS = ["customer_id", "score", "decile", "reason_1", "reason_2", "reason_3"]


def _full_scoring(con, reg, model: str) -> pd.DataFrame:
    """What scoring every customer gives, computed apart (score_frame on the whole population)."""
    version, booster, meta = registry.load_champion(reg, model)
    X = features.build(con, features.as_of(con))
    if meta.get("population") == "buyers":
        X = X[X.orders_total > 0].reset_index(drop=True)
    out = score_frame(booster, meta, X)  # ranks and rounds everyone at once
    for r in ("reason_1", "reason_2", "reason_3"):
        out[r] = out[r].astype(object)
    return out[COLUMNS].sort_values("customer_id", ignore_index=True)


def _stored(con, model: str) -> pd.DataFrame:
    return con.execute("SELECT customer_id, score, decile, reason_1, reason_2, reason_3 FROM ml.scores "
                       "WHERE model = ? ORDER BY customer_id", [model]).df()


def _same(stored: pd.DataFrame, full: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(stored.astype({"decile": "int64"}).fillna("-"),
                                  full.astype({"decile": "int64"}).fillna("-"), check_dtype=False)


@pytest.mark.parametrize("model", ["lead_score", "churn"])  # churn scores the buyers only
def test_scoring_only_changed_customers_equals_scoring_all(tmp_path, model):
    con = build_world(n=900, seed=7)
    reg = tmp_path / "registry"
    train_model(con, reg, model)
    first = score_model(con, reg, model)
    assert first["rescored"] == first["rows"]  # nothing stored yet: everyone is scored
    _same(_stored(con, model), _full_scoring(con, reg, model))

    # The next day: the clock moves (every days-since counter grows by one), some customers get web visits and
    # orders, some lose their web events, one customer is new.
    con.execute("UPDATE marts.warehouse_as_of SET as_of_at = as_of_at + INTERVAL 1 DAY")
    con.execute("""INSERT INTO marts.fct_web_events SELECT customer_id, TIMESTAMP '2026-07-01 10:00:00', 'product_viewed'
                   FROM marts.dim_customers WHERE customer_id < 'c00060'""")
    con.execute("""INSERT INTO marts.fct_orders SELECT 'new-' || customer_id, customer_id, TIMESTAMP '2026-07-01 11:00:00',
                   'completed', 80.0 FROM marts.dim_customers WHERE customer_id BETWEEN 'c00100' AND 'c00130'""")
    con.execute("DELETE FROM marts.fct_web_events WHERE customer_id BETWEEN 'c00200' AND 'c00240'")
    con.execute("""INSERT INTO marts.dim_customers (customer_id, first_seen_at)
                   VALUES ('c99999', TIMESTAMP '2026-07-01 09:00:00')""")
    con.execute("""INSERT INTO marts.fct_orders VALUES ('new-c99999', 'c99999', TIMESTAMP '2026-07-01 09:30:00',
                   'completed', 20.0)""")
    second = score_model(con, reg, model)
    # Only some customers were scored again, and the table is what scoring everyone gives, deciles included.
    assert 0 < second["rescored"] < second["rows"], second
    _same(_stored(con, model), _full_scoring(con, reg, model))
    assert "c99999" in set(_stored(con, model).customer_id)

    # A new champion scores everyone again (its fingerprints are its own), here the same model under a new version.
    version, booster, meta = registry.load_champion(reg, model)
    registry.save(reg, model, version + "-again", booster, meta)
    registry.set_champion(reg, model, version + "-again")
    third = score_model(con, reg, model)
    assert third["rescored"] == third["rows"] == second["rows"]
    _same(_stored(con, model), _full_scoring(con, reg, model))


def _tiny_model() -> tuple[lgb.Booster, dict]:
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.uniform(0, 100, 2000), "b": rng.uniform(0, 1, 2000)})
    y = (X.a > 50).astype(int) ^ (rng.random(2000) < 0.1)
    booster = lgb.train({"objective": "binary", "num_leaves": 4, "verbose": -1, "min_data_in_leaf": 20},
                        lgb.Dataset(X, y), num_boost_round=5)
    return booster, {"features": ["a", "b"], "feature_means": {"a": 50.0, "b": 0.5}}


def test_fingerprint_moves_only_when_a_split_or_the_mean_is_crossed():
    booster, meta = _tiny_model()
    points, categorical = score_delta._split_points(booster, meta)
    assert not categorical and len(points[0]) >= 2
    lo, hi = points[0][0], points[0][1]
    inside = [lo + (hi - lo) * 0.25, lo + (hi - lo) * 0.75]  # between the same two thresholds of a
    rows = pd.DataFrame({"a": [*inside, hi + 1e-9 if hi + 1e-9 < points[0][2:3].min(initial=np.inf) else hi + 1e-6,
                               np.nan, 0.0],
                         "b": [0.1, 0.1, 0.1, 0.1, 0.1]})
    fp = score_delta.fingerprints(booster, meta, rows)
    assert fp[0] == fp[1]  # no threshold between them: the same fingerprint ...
    X = rows[["a", "b"]].to_numpy()
    assert booster.predict(X[:1], raw_score=True)[0] == booster.predict(X[1:2], raw_score=True)[0]  # ... same score
    assert fp[2] != fp[0]  # past a threshold
    assert len({fp[3], fp[4]}) == 2  # missing is not zero


def test_combine_ranks_deciles_over_everyone_by_the_unrounded_score():
    X = pd.DataFrame({"customer_id": [f"c{i}" for i in range(20)]})
    exact = np.r_[np.linspace(0.0, 0.45, 10), np.linspace(0.5, 0.95, 10)]
    exact[3], exact[12] = 0.5000001, 0.5000002  # the same rounded score: the unrounded one ranks them
    kept = pd.DataFrame({"customer_id": [f"c{i}" for i in range(10)], "score": exact[:10].round(6),
                         "score_exact": exact[:10], "reason_1": "r", "reason_2": None, "reason_3": None})
    fresh = pd.DataFrame({"customer_id": [f"c{i}" for i in range(10, 20)], "score": exact[10:].round(6),
                          "score_exact": exact[10:], "reason_1": pd.Categorical(["s"] * 10),
                          "reason_2": pd.Categorical([None] * 10), "reason_3": pd.Categorical([None] * 10)})
    out = score_delta.combine(X, kept, fresh, deciles)
    assert list(out.customer_id) == list(X.customer_id)  # the population's order
    assert list(out.decile) == list(deciles(exact))
    assert list(out.reason_1) == ["r"] * 10 + ["s"] * 10


def test_a_fingerprint_is_scored_once_and_a_stored_one_is_reused(tmp_path):
    # Six customers, three fingerprints (pairs between the same thresholds); one fingerprint already stored
    # for another customer. The scorer sees one row per fingerprint never stored, and every customer gets
    # what score_frame gives it alone.
    import duckdb

    from ml.score import score_frame, write_scores

    booster, meta = _tiny_model()
    lo, hi = score_delta._split_points(booster, meta)[0][0][:2]
    a = [lo + (hi - lo) * 0.25, lo + (hi - lo) * 0.75, -5.0, -6.0, np.nan, np.nan]
    X = pd.DataFrame({"customer_id": [f"c{i}" for i in range(6)], "a": a, "b": [0.1] * 6})
    prints = score_delta.fingerprints(booster, meta, X)
    assert len(set(prints)) == 3
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    old = pd.DataFrame({"customer_id": ["old"], "a": [-7.0], "b": [0.1]})  # the fingerprint of c2 and c3
    assert score_delta.fingerprints(booster, meta, old)[0] == prints[2]
    write_scores(con, "m", "v1", pd.Timestamp("2026-01-01"), score_frame(booster, meta, old, exact=True),
                 score_delta.fingerprints(booster, meta, old))
    seen = []

    def scorer(rows: pd.DataFrame) -> pd.DataFrame:
        seen.append(list(rows.customer_id))
        return score_frame(booster, meta, rows, exact=True)

    out, computed = score_delta.fresh_scores(con, "m", "v1", X, prints, scorer)
    assert computed == 2 and len(seen) == 1 and len(seen[0]) == 2  # c0/c1 and c4/c5: one row each
    assert set(seen[0]) & {"c2", "c3"} == set()  # the stored fingerprint was not computed again
    alone = pd.concat([score_frame(booster, meta, X.iloc[[i]].reset_index(drop=True), exact=True)
                       for i in range(6)], ignore_index=True)
    assert list(out.customer_id) == list(X.customer_id)
    assert out.score_exact.tolist() == alone.score_exact.tolist()
    assert out.score.tolist() == alone.score.tolist()
    for r in ("reason_1", "reason_2", "reason_3"):
        assert out[r].fillna("-").tolist() == alone[r].astype(object).fillna("-").tolist()


def test_scoring_reads_the_features_mart_only_when_built_at_the_same_cutoff():
    con = build_world(n=300, seed=5)
    end = features.as_of(con)
    built = features.build(con, end)
    assert features.current(con, end).equals(built)  # no mart: computed
    con.execute("CREATE TABLE marts.customer_features AS SELECT *, ?::TIMESTAMP AS features_as_of FROM built", [end])
    con.execute("UPDATE marts.customer_features SET web_7d = 99 WHERE customer_id = (SELECT min(customer_id) "
                "FROM marts.customer_features)")
    from_mart = features.current(con, end)
    assert from_mart.web_7d.iloc[0] == 99 and from_mart.drop(columns="web_7d").equals(built.drop(columns="web_7d"))
    assert from_mart.dtypes.equals(built.dtypes)
    con.execute("UPDATE marts.customer_features SET features_as_of = features_as_of - INTERVAL 1 DAY")
    assert features.current(con, end).equals(built)  # built at another cutoff: computed again
