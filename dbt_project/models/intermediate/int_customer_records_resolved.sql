-- Each person record with its current customer_id: the latest identity event per record.
with events as (
    select * from {{ ref('int_identity_events') }}
),

final as (
    select
        source,
        record_id,
        record_key,
        max_by(customer_id, resolution_run) as customer_id,
        max_by(match_rule, resolution_run) as match_rule,
        max_by(match_probability, resolution_run) as match_probability,
        min(resolution_run) as first_resolution_run,
        max(resolution_run) as last_resolution_run
    from events
    group by source, record_id, record_key
)

select * from final
