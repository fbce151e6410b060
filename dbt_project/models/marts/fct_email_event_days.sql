-- Email-service events per customer and day, counted: int_email_event_days (per canonical e-mail and day,
-- incremental by day) with the customer from the current e-mail mapping when read, as fct_email_events gives each
-- event, so a merge changes no stored day.
{{ config(materialized='view') }}
with days as (
    select * from {{ ref('int_email_event_days') }}
),

emails as (
    select email_canonical, min(r.customer_id) as customer_id
    from {{ ref('int_customer_records_unioned') }}
    join {{ ref('int_customer_records_resolved') }} r using (source, record_id)
    where email_canonical is not null
    group by email_canonical
),

final as (
    select
        m.customer_id,
        d.event_date,
        d.events,
        d.sends,
        d.delivered,
        d.opens,
        d.clicks,
        d.last_open_at,
        d.last_engaged_at,
        d.last_event_at,
        d._loaded_at
    from days d
    left join emails m using (email_canonical)
)

select * from final
