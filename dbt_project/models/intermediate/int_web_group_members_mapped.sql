-- Accounts people act for, from Segment `group` calls: one row per group id and customer (the user id's shop
-- customer, else the device's identity), with the account's latest reported name. dim_companies counts them
-- for the CRM company whose id the app sends as groupId.
with groups as (
    select * from {{ ref('stg_web__events') }}
    where event_type = 'group' and group_id is not null
),

records as (
    select record_id, customer_id from {{ ref('int_customer_records_resolved') }} where source = 'shop'
),

identities as (
    select * from {{ ref('int_web_identities_mapped') }}
),

linked as (
    select g.group_id, coalesce(r.customer_id, i.customer_id) as customer_id, g.event_at,
        {{ json_text('g.group_traits', "'$.name'") }} as group_name
    from groups g
    left join records r on r.record_id = g.shop_customer_id
    left join identities i on i.anonymous_id = g.anonymous_id
),

final as (
    select
        group_id,
        customer_id,
        max_by(group_name, event_at) filter (where group_name is not null) as group_name,
        min(event_at) as first_seen_at,
        max(event_at) as last_seen_at
    from linked
    where customer_id is not null
    group by group_id, customer_id
)

select * from final
