"""int_customers_clustered (a dbt Python model, which dbt cannot unit-test): called here with a stand-in `dbt`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

MODEL = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "intermediate" / "int_customers_clustered.py"


def _load():
    spec = importlib.util.spec_from_file_location("int_customers_clustered", MODEL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Dbt:
    """The two things the model uses: ref(...).df() and config (get and set)."""

    def __init__(self, frame: pd.DataFrame, clusters: int | None):
        self._frame, self._clusters = frame, clusters
        self.config = self

    def __call__(self, **_):  # dbt.config(materialized=...)
        return None

    def get(self, key):
        return self._clusters if key == "clusters" else None

    def ref(self, name):
        assert name == "int_customers_behaviour"
        frame = self._frame
        return type("Rel", (), {"df": lambda _self: frame.copy()})()


def _behaviour(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    mod = _load()
    df = pd.DataFrame({f: rng.poisson(3, n) for f in mod.FEATURES})
    df.insert(0, "customer_id", [f"c{i:03d}" for i in range(n)])
    # Ten heavy browsers who never buy: they must land together, apart from the rest.
    df.loc[:9, ["web_events_90d", "product_views_90d", "cart_adds_90d"]] = 400
    df.loc[:9, ["orders_365d", "revenue_365d"]] = 0
    return df


def test_same_input_same_clusters_whatever_the_row_order():
    mod = _load()
    df = _behaviour(120)
    a = mod.model(_Dbt(df, 5), None).set_index("customer_id").cluster
    b = mod.model(_Dbt(df.sample(frac=1, random_state=3), 5), None).set_index("customer_id").cluster
    assert a.sort_index().tolist() == b.sort_index().tolist()
    assert a.nunique() == 5


def test_each_row_carries_its_clusters_profile_and_size():
    mod = _load()
    out = mod.model(_Dbt(_behaviour(120), 5), None)
    browsers = out[out.customer_id.isin([f"c{i:03d}" for i in range(10)])]
    assert browsers.cluster.nunique() == 1  # the planted group is one cluster
    c = browsers.cluster.iloc[0]
    members = out[out.cluster == c]
    assert members.cluster_size.iloc[0] == len(members)
    assert members.cluster_avg_web_events_90d.iloc[0] == members.web_events_90d.mean()
    assert members.cluster_avg_orders_365d.iloc[0] == members.orders_365d.mean()


def test_fewer_customers_than_clusters_gives_one_cluster():
    mod = _load()
    out = mod.model(_Dbt(_behaviour(3), 5), None)
    assert out.cluster.tolist() == [0, 0, 0] and out.cluster_size.tolist() == [3, 3, 3]


def test_scheduled_clusters_fit_then_assign_to_the_stored_centroids_until_due():
    # Day 1 fits and stores the model (the fit's clusters, as without a schedule); later days within the schedule
    # assign to the stored centroids, however the population moved; once `retrain_days` have passed it fits again.
    import duckdb

    from ml.clusters import cluster_customers, scheduled_clusters

    con = duckdb.connect()
    con.execute("CREATE SCHEMA intermediate")
    day1 = _behaviour(120)
    first = scheduled_clusters(con, day1, 5, "2026-07-01", 7)
    pd.testing.assert_frame_equal(first, cluster_customers(day1, 5))
    # Day 2: a shifted population that a new fit would split differently; the stored centroids keep yesterday's
    # assignment for yesterday's customers with yesterday's behaviour.
    day2 = pd.concat([day1, _behaviour(60, seed=9).assign(customer_id=lambda d: "n" + d.customer_id)], ignore_index=True)
    second = scheduled_clusters(con, day2, 5, "2026-07-02", 7)
    old = second[second.customer_id.isin(day1.customer_id)].set_index("customer_id").cluster.sort_index()
    assert old.tolist() == first.set_index("customer_id").cluster.sort_index().tolist()
    assert con.execute("SELECT trained_as_of FROM intermediate.customer_cluster_models").fetchall() == [("2026-07-01",)]
    # A week on, the model is refitted on that day's population and stored.
    later = scheduled_clusters(con, day2, 5, "2026-07-08", 7)
    pd.testing.assert_frame_equal(later, cluster_customers(day2, 5))
    assert con.execute("SELECT trained_as_of FROM intermediate.customer_cluster_models").fetchall() == [("2026-07-08",)]
