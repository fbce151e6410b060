-- One row per merge: two existing customers found to be one person. The older id survives; the
-- merged id's records moved to it in that resolution run. Downstream systems map old ids with this.
with events as (
    select * from {{ ref('int_identity_events') }}
    where event = 'merged'
),

final as (
    select
        md5(previous_customer_id || '>' || customer_id || '@' || resolution_run) as merge_id,
        previous_customer_id as merged_customer_id,
        customer_id as surviving_customer_id,
        resolution_run,
        min(resolved_as_of) as merged_as_of,
        count(*) as records_moved,
        {{ sorted_distinct_list('match_rule', "', '") }} as match_rules,
        max(match_probability) as max_match_probability
    from events
    group by previous_customer_id, customer_id, resolution_run
)

select * from final
