-- Lead points per customer and point group (general, or the product line: consumer, pro, enterprise).
with events as (
    select * from {{ ref('int_lead_point_events_scored') }}
),

final as (
    select
        customer_id || ':' || point_group as lead_points_key,
        customer_id,
        point_group,
        round(sum(points_decayed), 2) as points,
        sum(points) as points_undecayed,
        count(*) as scored_events,
        max(event_at) as last_scored_at
    from events
    group by customer_id, point_group
)

select * from final
