-- Activation's decision log: one row per member and sync decision (an add sent or failed, an update, a remove,
-- a member held out, suppressed or invalid) with the warehouse time. Absent before the first activation run:
-- then an empty view of the same columns; the measurement build (tag:measurement) rebuilds it after each run.
{%- set sync_log = source('activation', 'sync_log') %}
with source as (
    {%- if relation_exists(sync_log) %}
    select * from {{ sync_log }}
    {%- else %}
    select
        null::varchar as run_id, null::varchar as audience, null::varchar as destination, null::varchar as channel,
        null::varchar as customer_id, null::varchar as operation, null::varchar as status, null::varchar as reason,
        null::timestamp as as_of, null::timestamp as logged_at
    where false
    {%- endif %}
),

final as (
    select
        run_id,
        audience,
        destination,
        channel,
        customer_id,
        operation,
        status,
        reason,
        as_of,
        logged_at
    from source
)

select * from final
