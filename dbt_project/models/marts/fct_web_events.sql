-- Web events with the customer id: the event's own user id (the shop's customer id; a server-side library often
-- sends no anonymous id) first, else the device's identity once identified (also retroactively).
-- A view (issue 28): the events are stored once, incremental by day, in stg_web__events, keyed by message and
-- device; the customer comes from the current identity mapping when read, so a merge or a newly identified device
-- changes a mapping row, never the stored history.
{{ config(materialized='view') }}
with events as (
    select * from {{ ref('stg_web__events') }}
),

identities as (
    select * from {{ ref('int_web_identities_mapped') }}
),

records as (
    select record_id, customer_id from {{ ref('int_customer_records_resolved') }} where source = 'shop'
),

final as (
    select e.message_id, coalesce(r.customer_id, i.customer_id) as customer_id, e.anonymous_id, e.event_type,
           e.event_name, e.event_at, e.page_path, e.product_id, e.webinar_id
    from events e
    left join identities i using (anonymous_id)
    left join records r on r.record_id = e.shop_customer_id
)

select * from final
