"""K-means clusters of customer behaviour (scikit-learn), for the behaviour-cluster segment.

A dbt Python model on DuckDB around ml.clusters.cluster_customers, the one implementation both engines call (on
Spark, whose dbt adapter runs no Python models, beacon.spark.tasks calls it between two dbt selections).
"""

from ml.clusters import FEATURES  # noqa: F401  (the features, for readers and tests)


def model(dbt, session):
    dbt.config(materialized="table")
    from ml.clusters import CLUSTERS, cluster_customers

    return cluster_customers(dbt.ref("int_customers_behaviour").df(), int(dbt.config.get("clusters") or CLUSTERS))
