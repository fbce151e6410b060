-- Buyers whose last order is between N days (var lapsed_days) and a year old: the win-back play.
with customers as (
    select customer_id, email, first_name, order_count, lifetime_revenue, last_order_at
    from {{ ref('dim_customers') }}
    where is_email_valid and order_count > 0
),

as_of as (
    select as_of_at from {{ ref('warehouse_as_of') }}
),

final as (
    select c.customer_id, c.email, c.first_name, c.last_order_at,
           {{ days_between('c.last_order_at', 'a.as_of_at') }} as days_since_order, c.order_count, c.lifetime_revenue
    from customers c cross join as_of a
    where c.last_order_at <= a.as_of_at - {{ days_interval(var('lapsed_days', 90)) }}
      and c.last_order_at > a.as_of_at - interval 365 day
)

select * from final
