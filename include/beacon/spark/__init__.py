"""The spark engine (BEACON_ENGINE=spark, issue 29; docs/scale.md): a Spark session with Beacon's functions, the raw
layer published as Parquet tables, and dbt run on it through dbt-spark."""
