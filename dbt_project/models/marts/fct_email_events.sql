-- Email-service events with the customer id (matched on the canonical email).
-- A view (issue 28): the events are stored once, incremental by day, in stg_esp__email_events; the customer comes
-- from the current e-mail mapping when read, so a merge changes a mapping row, never the stored history.
{{ config(materialized='view') }}
with events as (
    select * from {{ ref('stg_esp__email_events') }}
),

emails as (
    select email_canonical, min(r.customer_id) as customer_id
    from {{ ref('int_customer_records_unioned') }}
    join {{ ref('int_customer_records_resolved') }} r using (source, record_id)
    where email_canonical is not null
    group by email_canonical
),

final as (
    select e.event_id, m.customer_id, e.email, e.event_name, e.event_at, e.message_id, e.campaign_id,
           e.bounce_type, e.url, e.topic
    from events e
    left join emails m using (email_canonical)
)

select * from final
