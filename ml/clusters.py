"""K-means clusters of customer behaviour (scikit-learn), for the behaviour-cluster segment.

The step behind `int_customers_clustered`, one function both engines call (issue 29): on DuckDB the dbt Python
model calls it, on Spark `beacon.spark.tasks` between two dbt selections. Features are log-scaled and
standardized, k and the seed are fixed so a re-run gives the same clusters; each cluster gets its centroid's
profile so SQL can pick one by meaning. KMeans runs on one thread: on a few thousand customers its thread pool
costs far more than the work (3.2 CPU seconds under load against 0.07 on one thread), and the machine's other
cores are busy with the rest of the build.

Retraining is scheduled (issue 28): with `retrain_days` set (the model's config, var `cluster_retrain_days`), the
fitted scaler and centroids are kept (`ClusterModel`, in `intermediate.customer_cluster_models`) and a normal day
assigns each customer to the nearest stored centroid; a new fit happens when none is stored, k changed, or the
warehouse clock is `retrain_days` past the last fit. On a day that fits, the result is the fit's, as before.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import pandas as pd

FEATURES = ["web_events_90d", "product_views_90d", "cart_adds_90d", "email_opens_90d", "email_clicks_90d",
            "orders_365d", "revenue_365d"]
CLUSTERS = 5


@dataclass(frozen=True)
class ClusterModel:
    """A fitted scaler and k-means centroids, kept between runs so a normal day assigns instead of refitting."""

    k: int
    mean: list[float]
    scale: list[float]
    centers: list[list[float]]
    trained_as_of: str  # the warehouse date (ISO) it was fitted on

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ClusterModel:
        return cls(**json.loads(text))

    def due(self, k: int, as_of: str, retrain_days: int) -> bool:
        """Is a new fit due: another k, or the clock `retrain_days` past this fit?"""
        return self.k != k or (pd.Timestamp(as_of) - pd.Timestamp(self.trained_as_of)).days >= retrain_days


def _features(df: pd.DataFrame):
    import numpy as np

    return np.log1p(df[FEATURES].to_numpy(dtype=float))


def fit_clusters(behaviour: pd.DataFrame, k: int, as_of: str) -> tuple[pd.Series, ClusterModel | None]:
    """Fit the scaler and k-means on `behaviour`: (each customer's cluster, in customer_id order; the model, None
    when there are fewer customers than k)."""
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    df = behaviour.sort_values("customer_id").reset_index(drop=True)
    if len(df) < k:
        return pd.Series(0, index=df.index, dtype=int), None
    scaler = StandardScaler()
    X = scaler.fit_transform(_features(df))
    with threadpool_limits(limits=1):
        km = KMeans(n_clusters=k, random_state=0, n_init=10).fit(X)
    model = ClusterModel(k=k, mean=scaler.mean_.tolist(), scale=scaler.scale_.tolist(),
                         centers=km.cluster_centers_.tolist(), trained_as_of=str(as_of))
    return pd.Series(km.labels_.astype(int)), model


def assign_clusters(behaviour: pd.DataFrame, model: ClusterModel) -> pd.Series:
    """Each customer's nearest stored centroid (in customer_id order), scaled as at the fit."""
    import numpy as np

    df = behaviour.sort_values("customer_id").reset_index(drop=True)
    X = (_features(df) - np.asarray(model.mean)) / np.asarray(model.scale)
    centers = np.asarray(model.centers)
    dist = (X * X).sum(1)[:, None] - 2 * X @ centers.T + (centers * centers).sum(1)[None, :]
    return pd.Series(dist.argmin(1).astype(int))


def cluster_customers(behaviour: pd.DataFrame, k: int = CLUSTERS, model: ClusterModel | None = None) -> pd.DataFrame:
    """`behaviour` (int_customers_behaviour) with each customer's `cluster`, its profile (`cluster_avg_<feature>`)
    and `cluster_size`; fewer customers than `k` make one cluster. With `model`: assigned to its centroids, else
    fitted."""
    df = behaviour.sort_values("customer_id").reset_index(drop=True)
    df["cluster"] = assign_clusters(df, model) if model is not None else fit_clusters(df, k, "")[0]
    return with_profiles(df)


def with_profiles(df: pd.DataFrame) -> pd.DataFrame:
    """Each row with its cluster's profile (`cluster_avg_<feature>`) and `cluster_size`."""
    profile = df.groupby("cluster")[FEATURES].mean().add_prefix("cluster_avg_").reset_index()
    sizes = df.groupby("cluster").size().rename("cluster_size").reset_index()
    return df.merge(profile, on="cluster").merge(sizes, on="cluster")


# Where the dbt model keeps the fitted model between runs (a small table beside the clusters; no personal data).
MODEL_STORE = "intermediate.customer_cluster_models"


def scheduled_clusters(con, behaviour: pd.DataFrame, k: int, as_of: str, retrain_days: int,
                       store: str = MODEL_STORE) -> pd.DataFrame:
    """cluster_customers on a schedule: assigned to the stored centroids on a normal day, fitted (and the fit stored
    on `con`, a DuckDB connection) when none is stored, k changed or the fit is `retrain_days` old by `as_of`."""
    as_of = pd.Timestamp(as_of).date().isoformat()  # a date, however the clock was read
    con.execute(f"CREATE TABLE IF NOT EXISTS {store} (trained_as_of VARCHAR, model_json VARCHAR)")
    row = con.execute(f"SELECT arg_max(model_json, trained_as_of) FROM {store}").fetchall()[0][0]
    model = ClusterModel.from_json(row) if row else None
    df = behaviour.sort_values("customer_id").reset_index(drop=True)
    if model is None or model.due(k, as_of, retrain_days):
        df["cluster"], fitted = fit_clusters(df, k, as_of)
        if fitted is not None:
            con.execute(f"DELETE FROM {store}")
            con.execute(f"INSERT INTO {store} VALUES (?, ?)", [fitted.trained_as_of, fitted.to_json()])
    else:
        df["cluster"] = assign_clusters(df, model)
    return with_profiles(df)
