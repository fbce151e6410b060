"""Identity resolution events: which customer each person record belongs to, appended run by run.

A dbt Python model on DuckDB around beacon.identity_task.resolve_identities, the one implementation both engines
call (on Spark, whose dbt adapter runs no Python models, beacon.spark.tasks calls it between two dbt selections).
The first run resolves every record; each later run links only new or changed records against the existing
clusters, so customer ids stay stable, and a record that moves because two customers turned out to be one gets a
`merged` event (the older id survives). Rules and thresholds are the `identity_*` vars in dbt_project.yml.

Every run's guards (beacon.identity.guards) are written to quality.expectation_results as critical rules.
When one trips, the model fails: this table and the stored linkage model stay as they were, the build stops
before the marts, and the data-quality breaker blocks activation until a later run passes.
"""


def model(dbt, session):
    dbt.config(materialized="incremental")
    import pyarrow as pa

    from beacon.identity.resolve import event_schema
    from beacon.identity_task import identity_config, resolve_identities

    # Plain assignments: dbt's static parser only passes on config keys read this way.
    values = {
        "match_threshold": dbt.config.get("match_threshold"),
        "max_email_group": dbt.config.get("max_email_group"),
        "max_phone_group": dbt.config.get("max_phone_group"),
        "require_name_agreement": dbt.config.get("require_name_agreement"),
        "probabilistic": dbt.config.get("probabilistic"),
        "shared_email_needs_more": dbt.config.get("shared_email_needs_more"),
        "guard_max_matches_per_record": dbt.config.get("guard_max_matches_per_record"),
        "guard_max_links_over_expected": dbt.config.get("guard_max_links_over_expected"),
        "guard_max_cluster_size": dbt.config.get("guard_max_cluster_size"),
        "guard_max_large_cluster_share": dbt.config.get("guard_max_large_cluster_share"),
        "guard_max_merge_share": dbt.config.get("guard_max_merge_share"),
    }
    records = dbt.ref("int_customer_records_unioned")
    # The event log as a relation: DuckDB reads what the run needs from it (no copy of the whole log into pandas).
    previous = session.sql(f"SELECT * FROM {dbt.this}") if dbt.is_incremental else None
    events = resolve_identities(session, records, previous, identity_config(values))
    return pa.Table.from_pandas(events, schema=event_schema(), preserve_index=False)
