-- Bought in the last N days (var cross_sell_days): suggest the category most often bought together
-- with what they bought, among categories they have not bought yet.
with items as (
    select customer_id, order_id, ordered_at, category from {{ ref('fct_order_items') }}
    where status = 'completed' and customer_id is not null
),

as_of as (
    select as_of_at from {{ ref('warehouse_as_of') }}
),

recent as (
    -- Items of one order share its time: the category breaks the tie, so a rebuild picks the same one.
    select customer_id, max(ordered_at) as last_order_at, max_by(category, (ordered_at, category)) as last_category
    from items, as_of
    where ordered_at > as_of_at - {{ days_interval(var('cross_sell_days', 14)) }}
    group by customer_id
),

bought as (
    select distinct customer_id, category from items
),

affinity as (
    -- How many customers bought both categories.
    select a.category as from_category, b.category as to_category, count(*) as customers
    from bought a join bought b on a.customer_id = b.customer_id and a.category <> b.category
    group by a.category, b.category
),

ranked as (
    select r.customer_id, r.last_order_at, r.last_category, f.to_category, f.customers
    from recent r
    join affinity f on f.from_category = r.last_category
    where not exists (select 1 from bought x where x.customer_id = r.customer_id and x.category = f.to_category)
    qualify row_number() over (partition by r.customer_id order by f.customers desc, f.to_category asc) = 1
),

customers as (
    select customer_id, email, first_name from {{ ref('dim_customers') }} where is_email_valid
),

final as (
    select c.customer_id, c.email, c.first_name, r.last_order_at, r.last_category,
           r.to_category as recommended_category
    from ranked r
    join customers c using (customer_id)
)

select * from final
