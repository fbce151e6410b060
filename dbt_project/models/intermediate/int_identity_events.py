"""Identity resolution events: which customer each person record belongs to, appended run by run.

A dbt Python model around beacon.identity.resolve: the first run resolves every record; each later
run links only new or changed records against the existing clusters, so customer ids stay stable, and
a record that moves because two customers turned out to be one gets a `merged` event (the older id
survives). Rules and thresholds are the `identity_*` vars in dbt_project.yml.

Every run's guards (beacon.identity.guards) are written to quality.expectation_results as critical rules.
When one trips, the model fails: this table and the stored linkage model stay as they were, the build stops
before the marts, and the data-quality breaker blocks activation until a later run passes.
"""


def model(dbt, session):
    dbt.config(materialized="incremental")
    import uuid

    import pyarrow as pa

    from beacon.identity.guards import SUITE, GuardConfig, GuardReport, IdentityGuardError
    from beacon.identity.resolve import ResolutionConfig, ResolutionStats, event_schema, resolve
    from beacon.quality.breaker import record_results

    # Plain assignments: dbt's static parser only passes on config keys read this way.
    name_agreement = dbt.config.get("require_name_agreement")
    probabilistic = dbt.config.get("probabilistic")
    shared_email_needs_more = dbt.config.get("shared_email_needs_more")
    guards = GuardConfig(
        max_matches_per_record=float(dbt.config.get("guard_max_matches_per_record")),
        max_links_over_expected=float(dbt.config.get("guard_max_links_over_expected")),
        max_cluster_size=int(dbt.config.get("guard_max_cluster_size")),
        max_large_cluster_share=float(dbt.config.get("guard_max_large_cluster_share")),
        max_merge_share=float(dbt.config.get("guard_max_merge_share")),
    )
    cfg = ResolutionConfig(
        match_threshold=float(dbt.config.get("match_threshold")),
        max_email_group=int(dbt.config.get("max_email_group")),
        max_phone_group=int(dbt.config.get("max_phone_group")),
        require_name_agreement=name_agreement == "yes",
        probabilistic=probabilistic == "yes",
        shared_email_needs_more=shared_email_needs_more == "yes",
        guards=guards,
    )
    records = dbt.ref("int_customer_records_unioned")
    previous = session.sql(f"SELECT * FROM {dbt.this}").df() if dbt.is_incremental else None
    stats = ResolutionStats()
    run_id = uuid.uuid4().hex[:12]
    try:
        # The trained Splink model is kept beside the log, so increments are scored with the same model.
        events = resolve(session, records, previous, cfg, stats, model_store="intermediate.identity_linker_models")
    except IdentityGuardError as exc:
        record_results(session, SUITE, run_id, GuardReport(exc.results).rows())
        raise
    record_results(session, SUITE, run_id, GuardReport(stats.guards).rows())
    return pa.Table.from_pandas(events, schema=event_schema(), preserve_index=False)
