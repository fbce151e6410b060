-- Orders posted as Segment `Order Completed` events (with `order_id` and `revenue`), one row per order id (the
-- first event wins: a shop that re-sends an order, or a library's retry, counts once), with the customer of its
-- user id (a shop customer id) or else of its device's identity. fct_orders adds those the shop feed lacks.
with events as (
    select * from {{ ref('stg_web__events') }}
    where event_name = 'order_completed' and order_id is not null and revenue is not null
),

records as (
    select record_id, customer_id from {{ ref('int_customer_records_resolved') }} where source = 'shop'
),

identities as (
    select * from {{ ref('int_web_identities_mapped') }}
),

final as (
    select
        e.order_id,
        coalesce(r.customer_id, i.customer_id) as customer_id,
        e.shop_customer_id,
        e.event_at as ordered_at,
        'completed' as status,
        e.currency,
        e.revenue as total_amount,
        e.message_id
    from events e
    left join records r on r.record_id = e.shop_customer_id
    left join identities i on i.anonymous_id = e.anonymous_id
    qualify row_number() over (partition by e.order_id order by e.event_at, e.message_id) = 1
)

select * from final
