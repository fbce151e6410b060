"""K-means clusters of customer behaviour (scikit-learn), for the behaviour-cluster segment.

The step behind `int_customers_clustered`, one function both engines call (issue 29): on DuckDB the dbt Python
model calls it, on Spark `beacon.spark.tasks` between two dbt selections. Features are log-scaled and
standardized, k and the seed are fixed so a re-run gives the same clusters; each cluster gets its centroid's
profile so SQL can pick one by meaning. KMeans runs on one thread: on a few thousand customers its thread pool
costs far more than the work (3.2 CPU seconds under load against 0.07 on one thread), and the machine's other
cores are busy with the rest of the build.
"""

from __future__ import annotations

import pandas as pd

FEATURES = ["web_events_90d", "product_views_90d", "cart_adds_90d", "email_opens_90d", "email_clicks_90d",
            "orders_365d", "revenue_365d"]
CLUSTERS = 5


def cluster_customers(behaviour: pd.DataFrame, k: int = CLUSTERS) -> pd.DataFrame:
    """`behaviour` (int_customers_behaviour) with each customer's `cluster`, its profile (`cluster_avg_<feature>`)
    and `cluster_size`; fewer customers than `k` make one cluster."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    df = behaviour.sort_values("customer_id").reset_index(drop=True)
    if len(df) < k:
        df["cluster"] = 0
    else:
        X = StandardScaler().fit_transform(np.log1p(df[FEATURES].to_numpy(dtype=float)))
        with threadpool_limits(limits=1):
            df["cluster"] = KMeans(n_clusters=k, random_state=0, n_init=10).fit_predict(X).astype(int)
    profile = df.groupby("cluster")[FEATURES].mean().add_prefix("cluster_avg_").reset_index()
    sizes = df.groupby("cluster").size().rename("cluster_size").reset_index()
    return df.merge(profile, on="cluster").merge(sizes, on="cluster")
