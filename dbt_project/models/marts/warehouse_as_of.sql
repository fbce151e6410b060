-- The warehouse clock: the latest event time in the data. Segment windows count back from it,
-- never from the wall clock, so re-running a day gives the same audiences.
with clocks as (
    select max(event_at) as t from {{ ref('fct_web_events') }}
    union all
    select max(ordered_at) from {{ ref('fct_orders') }}
    union all
    select max(event_at) from {{ ref('fct_email_events') }}
),

final as (
    select max(t) as as_of_at, cast(max(t) as date) as as_of_date from clocks
)

select * from final
