-- Web sessions (a new one after var web_session_timeout_minutes of inactivity), with the customer once identified.
-- A view (issue 28): the sessions are split and stored by device, incremental by day, in int_web_sessions_split;
-- the customer comes from the current mappings when read: the shop customer id an event of the session carried,
-- else the device's identity (as fct_web_events gives each event), so a merge changes no stored session.
{{ config(materialized='view') }}
with sessions as (
    select * from {{ ref('int_web_sessions_split') }}
),

identities as (
    select * from {{ ref('int_web_identities_mapped') }}
),

records as (
    select record_id, customer_id from {{ ref('int_customer_records_resolved') }} where source = 'shop'
),

final as (
    select
        s.session_id,
        s.anonymous_id,
        s.session_number,
        coalesce(r.customer_id, i.customer_id) as customer_id,
        s.session_started_at,
        s.session_ended_at,
        s.duration_seconds,
        s.events,
        s.page_views,
        s.product_views,
        s.cart_adds,
        s.checkouts,
        s.converted,
        s.landing_page,
        s.is_bounce
    from sessions s
    left join identities i using (anonymous_id)
    left join records r on r.record_id = s.shop_customer_id
)

select * from final
