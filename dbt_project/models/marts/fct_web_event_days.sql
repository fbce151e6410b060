-- Web events per customer and day, counted: int_web_event_days (per device, shop user id and day, incremental by day)
-- with the customer from the current mappings when read, as fct_web_events gives each event (the shop customer id
-- first, else the device's identity), so a merge or a newly identified device changes no stored day. A customer has
-- one row per device and day here; what reads it sums them.
{{ config(materialized='view') }}
with days as (
    select * from {{ ref('int_web_event_days') }}
),

identities as (
    select * from {{ ref('int_web_identities_mapped') }}
),

records as (
    select record_id, customer_id from {{ ref('int_customer_records_resolved') }} where source = 'shop'
),

final as (
    select
        coalesce(r.customer_id, i.customer_id) as customer_id,
        d.event_date,
        d.events,
        d.product_views,
        d.cart_adds,
        d.checkouts,
        d.webinar_regs,
        d.first_form_at,
        d.last_event_at,
        d._loaded_at
    from days d
    left join identities i using (anonymous_id)
    left join records r on r.record_id = d.shop_customer_id
)

select * from final
