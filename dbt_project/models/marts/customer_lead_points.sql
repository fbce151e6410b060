-- One row per customer: current (decayed) lead points overall, and the strongest point group.
with customers as (
    select customer_id from {{ ref('dim_customers') }}
),

groups as (
    select * from {{ ref('fct_lead_points') }}
),

totals as (
    select customer_id, sum(points) as lead_points, sum(points_undecayed) as lead_points_undecayed,
           max_by(point_group, points) as top_point_group, max(last_scored_at) as last_scored_at
    from groups
    group by customer_id
),

final as (
    select c.customer_id, coalesce(t.lead_points, 0) as lead_points,
           coalesce(t.lead_points_undecayed, 0) as lead_points_undecayed, t.top_point_group, t.last_scored_at
    from customers c
    left join totals t using (customer_id)
)

select * from final
