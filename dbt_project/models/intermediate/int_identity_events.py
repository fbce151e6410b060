"""Identity resolution events: which customer each person record belongs to, appended run by run.

A dbt Python model around beacon.identity.resolve: the first run resolves every record; each later
run links only new or changed records against the existing clusters, so customer ids stay stable, and
a record that moves because two customers turned out to be one gets a `merged` event (the older id
survives). Rules and thresholds are the `identity_*` vars in dbt_project.yml.
"""


def model(dbt, session):
    dbt.config(materialized="incremental")
    import pyarrow as pa

    from beacon.identity.resolve import ResolutionConfig, event_schema, resolve

    # Plain assignments: dbt's static parser only passes on config keys read this way.
    name_agreement = dbt.config.get("require_name_agreement")
    probabilistic = dbt.config.get("probabilistic")
    cfg = ResolutionConfig(
        match_threshold=float(dbt.config.get("match_threshold")),
        max_email_group=int(dbt.config.get("max_email_group")),
        max_phone_group=int(dbt.config.get("max_phone_group")),
        require_name_agreement=name_agreement == "yes",
        probabilistic=probabilistic == "yes",
    )
    records = dbt.ref("int_customer_records_unioned")
    previous = session.sql(f"SELECT * FROM {dbt.this}").df() if dbt.is_incremental else None
    # The trained Splink model is kept beside the log, so increments are scored with the same model.
    events = resolve(session, records, previous, cfg, model_store="intermediate.identity_linker_models")
    return pa.Table.from_pandas(events, schema=event_schema(), preserve_index=False)
