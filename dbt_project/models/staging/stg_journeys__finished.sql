-- Finished journey entries, compacted by the journeys engine to one row each (arm, entry time, sends).
-- Absent until the first journeys run: then an empty view of the same columns; the measurement build
-- (tag:measurement) rebuilds it after each activation run.
{%- set finished = source('journeys', 'finished') %}
with source as (
    {%- if relation_exists(finished) %}
    select * from {{ finished }}
    {%- else %}
    select
        null::varchar as journey, null::integer as version, null::varchar as customer_id, null::integer as entry_no,
        null::varchar as arm, null::timestamp as entered_at, null::timestamp as exited_at, null::varchar as exit_reason,
        null::integer as sends, null::varchar as compacted_run
    where false
    {%- endif %}
),

final as (
    select
        journey,
        version,
        customer_id,
        entry_no,
        arm,
        entered_at,
        exited_at,
        exit_reason,
        sends,
        compacted_run
    from source
)

select * from final
