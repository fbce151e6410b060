-- Customers who added to cart in the last N hours (var cart_abandonment_hours) before the latest
-- event in the warehouse, and have not ordered since their last cart add.
with events as (
    select * from {{ ref('fct_web_events') }}
),

as_of as (
    select max(event_at) as as_of_at from events
),

carts as (
    select
        customer_id,
        max(event_at) as last_cart_at,
        max_by(product_id, (event_at, product_id)) as last_product_id,
        count(*) as cart_adds
    from events, as_of
    where event_name = 'product_added'
      and customer_id is not null
      and event_at > as_of_at - {{ hours_interval(var('cart_abandonment_hours')) }}
    group by customer_id
),

orders as (
    select customer_id, max(ordered_at) as last_order_at
    from {{ ref('fct_orders') }}
    group by customer_id
),

customers as (
    select customer_id, email, first_name from {{ ref('dim_customers') }} where is_email_valid
),

final as (
    select c.customer_id, cu.email, cu.first_name, c.last_cart_at, c.last_product_id, c.cart_adds
    from carts c
    join customers cu using (customer_id)
    left join orders o using (customer_id)
    where o.last_order_at is null or o.last_order_at < c.last_cart_at
)

select * from final
