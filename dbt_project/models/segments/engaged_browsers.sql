-- The behaviour cluster that browses most while buying least (k-means over behaviour features):
-- people to nudge from browsing to a first or next order.
with clustered as (
    select * from {{ ref('int_customers_clustered') }}
),

profiles as (
    select distinct cluster, cluster_avg_web_events_90d, cluster_avg_orders_365d, cluster_size from clustered
),

chosen as (
    -- Among clusters buying less than the average customer, the one with the most web activity.
    select cluster from profiles
    where cluster_avg_orders_365d < (select avg(orders_365d) from clustered)
    order by cluster_avg_web_events_90d desc, cluster asc
    limit 1
),

customers as (
    select customer_id, email, first_name from {{ ref('dim_customers') }} where is_email_valid
),

final as (
    select c.customer_id, c.email, c.first_name, k.cluster, k.web_events_90d, k.product_views_90d, k.cart_adds_90d,
           k.orders_365d
    from clustered k
    join chosen using (cluster)
    join customers c using (customer_id)
    where k.web_events_90d > 0
)

select * from final
