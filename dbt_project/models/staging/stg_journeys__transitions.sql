-- The journeys engine's append-only log of what happened to each entry (entered, assigned to an arm, sent,
-- exited, ...). Absent until the first journeys run: then an empty view of the same columns; the measurement
-- build (tag:measurement) rebuilds it after each activation run.
{%- set transitions = source('journeys', 'transitions') %}
with source as (
    {%- if relation_exists(transitions) %}
    select * from {{ transitions }}
    {%- else %}
    select
        null::varchar as journey, null::integer as version, null::varchar as customer_id, null::integer as entry_no,
        null::integer as step, null::varchar as node_id, null::varchar as transition, null::varchar as arm,
        null::timestamp as occurred_at, null::timestamp as entered_at, null::varchar as run_id
    where false
    {%- endif %}
),

final as (
    select
        journey,
        version,
        customer_id,
        entry_no,
        step,
        node_id,
        transition,
        arm,
        occurred_at,
        entered_at,
        run_id
    from source
)

select * from final
