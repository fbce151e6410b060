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
