"""K-means clusters of customer behaviour (scikit-learn), for the behaviour-cluster segment.

A dbt Python model: features are log-scaled and standardized, k and the seed are fixed so a re-run
gives the same clusters; each cluster gets its centroid's profile so SQL can pick one by meaning.
"""

FEATURES = ["web_events_90d", "product_views_90d", "cart_adds_90d", "email_opens_90d", "email_clicks_90d",
            "orders_365d", "revenue_365d"]


def model(dbt, session):
    dbt.config(materialized="table")
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import StandardScaler

    df = dbt.ref("int_customers_behaviour").df().sort_values("customer_id").reset_index(drop=True)
    k = int(dbt.config.get("clusters") or 5)
    if len(df) < k:
        df["cluster"] = 0
    else:
        X = StandardScaler().fit_transform(np.log1p(df[FEATURES].to_numpy(dtype=float)))
        df["cluster"] = KMeans(n_clusters=k, random_state=0, n_init=10).fit_predict(X).astype(int)
    profile = df.groupby("cluster")[FEATURES].mean().add_prefix("cluster_avg_").reset_index()
    sizes = df.groupby("cluster").size().rename("cluster_size").reset_index()
    return df.merge(profile, on="cluster").merge(sizes, on="cluster")
