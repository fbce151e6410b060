"""K-means clusters of customer behaviour (scikit-learn), for the behaviour-cluster segment.

A dbt Python model on DuckDB around ml.clusters, the one implementation both engines call (on Spark, whose dbt
adapter runs no Python models, beacon.spark.tasks calls cluster_customers between two dbt selections). With
`retrain_days` in its config (var `cluster_retrain_days`), k-means is fitted on schedule and a normal day assigns
each customer to the stored centroids (ml.clusters.scheduled_clusters); without it, every run fits.
"""

from ml.clusters import FEATURES  # noqa: F401  (the features, for readers and tests)


def model(dbt, session):
    dbt.config(materialized="table")
    from ml.clusters import CLUSTERS, cluster_customers, scheduled_clusters

    k = int(dbt.config.get("clusters") or CLUSTERS)
    retrain_days = dbt.config.get("retrain_days")
    behaviour = dbt.ref("int_customers_behaviour").df()
    if not retrain_days:
        return cluster_customers(behaviour, k)
    as_of = dbt.ref("warehouse_as_of").df().as_of_date.iloc[0]
    if as_of is None or as_of != as_of:  # an empty warehouse has no clock: fit, keep nothing
        return cluster_customers(behaviour, k)
    return scheduled_clusters(session, behaviour, k, str(as_of), int(retrain_days))
