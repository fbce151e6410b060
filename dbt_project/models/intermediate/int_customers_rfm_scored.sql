-- Recency, frequency and monetary quintiles (5 = best) for every buyer, and the classic RFM segment.
with customers as (
    select customer_id, order_count, lifetime_revenue, last_order_at
    from {{ ref('dim_customers') }}
    where order_count > 0
),

as_of as (
    select as_of_at from {{ ref('warehouse_as_of') }}
),

scored as (
    select
        c.customer_id,
        {{ days_between('c.last_order_at', 'a.as_of_at') }} as recency_days,
        c.order_count as frequency,
        c.lifetime_revenue as monetary,
        ntile(5) over (order by c.last_order_at asc, c.customer_id asc) as r_score,
        ntile(5) over (order by c.order_count asc, c.customer_id asc) as f_score,
        ntile(5) over (order by c.lifetime_revenue asc, c.customer_id asc) as m_score
    from customers c cross join as_of a
),

final as (
    select
        *,
        case
            when r_score >= 4 and f_score >= 4 and m_score >= 4 then 'champions'
            when r_score >= 3 and f_score >= 4 then 'loyal'
            when r_score <= 2 and f_score >= 3 then 'at_risk'
            when r_score <= 2 and f_score <= 2 then 'hibernating'
            when r_score >= 4 and f_score <= 2 then 'new_customers'
            else 'needs_attention'
        end as rfm_segment
    from scored
)

select * from final
