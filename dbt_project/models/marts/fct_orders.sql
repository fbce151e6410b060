-- Orders with the resolved customer id.
with orders as (
    select * from {{ ref('stg_shop__orders') }}
),

records as (
    select record_id, customer_id from {{ ref('int_customer_records_resolved') }} where source = 'shop'
),

final as (
    select o.order_id, r.customer_id, o.shop_customer_id, o.ordered_at, o.status, o.currency, o.total_amount
    from orders o
    left join records r on r.record_id = o.shop_customer_id
)

select * from final
