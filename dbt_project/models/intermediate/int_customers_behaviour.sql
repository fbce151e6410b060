-- Behaviour features per customer over the last 90 days (web, cart, email) and 365 days (orders),
-- the input of the unsupervised clustering.
with as_of as (
    select as_of_at from {{ ref('warehouse_as_of') }}
),

web as (
    select w.customer_id,
           count(*) as web_events_90d,
           count(*) filter (where event_name = 'product_viewed') as product_views_90d,
           count(*) filter (where event_name = 'product_added') as cart_adds_90d
    from {{ ref('fct_web_events') }} w, as_of a
    where w.customer_id is not null and w.event_at > a.as_of_at - interval 90 day
    group by w.customer_id
),

email as (
    select e.customer_id,
           count(*) filter (where event_name = 'open') as email_opens_90d,
           count(*) filter (where event_name = 'click') as email_clicks_90d
    from {{ ref('fct_email_events') }} e, as_of a
    where e.customer_id is not null and e.event_at > a.as_of_at - interval 90 day
    group by e.customer_id
),

orders as (
    select o.customer_id, count(*) as orders_365d, sum(total_amount) as revenue_365d
    from {{ ref('fct_orders') }} o, as_of a
    where o.customer_id is not null and o.status = 'completed' and o.ordered_at > a.as_of_at - interval 365 day
    group by o.customer_id
),

final as (
    select c.customer_id,
           coalesce(web_events_90d, 0) as web_events_90d, coalesce(product_views_90d, 0) as product_views_90d,
           coalesce(cart_adds_90d, 0) as cart_adds_90d, coalesce(email_opens_90d, 0) as email_opens_90d,
           coalesce(email_clicks_90d, 0) as email_clicks_90d, coalesce(orders_365d, 0) as orders_365d,
           coalesce(revenue_365d, 0) as revenue_365d
    from {{ ref('dim_customers') }} c
    left join web using (customer_id)
    left join email using (customer_id)
    left join orders using (customer_id)
)

select * from final
