-- Top-value buyers (top share by lifetime revenue, var high_value_share) at risk of churning: the
-- churn score when the ML DAG has produced one, else no order for N days (var churn_fallback_days).
with customers as (
    select customer_id, email, first_name, lifetime_revenue, last_order_at
    from {{ ref('dim_customers') }}
    where is_email_valid and order_count > 0
),

as_of as (
    select as_of_at from {{ ref('warehouse_as_of') }}
),

churn as (
    select customer_id, score as churn_score from {{ ref('stg_ml__scores') }} where model = 'churn'
),

ranked as (
    select c.*, percent_rank() over (order by c.lifetime_revenue desc) as value_rank
    from customers c
),

final as (
    select r.customer_id, r.email, r.first_name, r.lifetime_revenue, r.last_order_at, ch.churn_score,
           case when ch.churn_score is not null then 'churn_score' else 'no_recent_order' end as risk_basis
    from ranked r
    cross join as_of a
    left join churn ch using (customer_id)
    where r.value_rank < {{ var('high_value_share', 0.2) }}
      and (ch.churn_score >= {{ var('churn_score_threshold', 0.5) }}
           or (ch.churn_score is null
               and r.last_order_at <= a.as_of_at - {{ days_interval(var('churn_fallback_days', 60)) }}))
)

select * from final
