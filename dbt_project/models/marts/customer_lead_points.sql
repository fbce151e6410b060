-- One row per customer: current (decayed) lead points overall, and the strongest point group.
with customers as (
    select customer_id from {{ ref('dim_customers') }}
),

groups as (
    select * from {{ ref('fct_lead_points') }}
),

totals as (
    select customer_id, sum(points) as lead_points, sum(points_undecayed) as lead_points_undecayed,
           max(last_scored_at) as last_scored_at
    from groups
    group by customer_id
),

-- The group with the most current points; a tie goes to the first group by name (max_by would pick either, and
-- DuckDB and Spark picked differently).
ranked_groups as (
    select customer_id, point_group,
           row_number() over (partition by customer_id order by points desc, point_group asc) as group_rank
    from groups
),

final as (
    select c.customer_id, coalesce(t.lead_points, 0) as lead_points,
           coalesce(t.lead_points_undecayed, 0) as lead_points_undecayed, g.point_group as top_point_group,
           t.last_scored_at
    from customers c
    left join totals t on c.customer_id = t.customer_id
    left join ranked_groups g on c.customer_id = g.customer_id and g.group_rank = 1
)

select * from final
