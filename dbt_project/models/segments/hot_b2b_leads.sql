-- B2B contacts with lead points (or lead score) over a threshold and engagement in the last 14 days,
-- with their account's totals for account-based marketing.
with customers as (
    select customer_id, email, first_name, company_id, job_title from {{ ref('dim_customers') }}
    where is_email_valid and company_id is not null
),

points as (
    select customer_id, lead_points, top_point_group, last_scored_at from {{ ref('customer_lead_points') }}
),

scores as (
    select customer_id, score as lead_score from {{ ref('stg_ml__scores') }} where model = 'lead_score'
),

as_of as (
    select as_of_at from {{ ref('warehouse_as_of') }}
),

hot as (
    select c.*, p.lead_points, p.top_point_group, p.last_scored_at, s.lead_score
    from customers c
    join points p using (customer_id)
    left join scores s using (customer_id)
    cross join as_of a
    where (p.lead_points >= {{ var('hot_lead_points', 30) }} or s.lead_score >= {{ var('hot_lead_score', 0.5) }})
      and p.last_scored_at > a.as_of_at - interval 14 day
),

companies as (
    select company_id, company_name from {{ ref('stg_crm__companies') }}
),

final as (
    select h.customer_id, h.email, h.first_name, h.job_title, h.company_id, co.company_name, h.lead_points,
           h.lead_score, h.top_point_group,
           count(*) over (partition by h.company_id) as account_hot_leads,
           sum(h.lead_points) over (partition by h.company_id) as account_lead_points
    from hot h
    left join companies co using (company_id)
)

select * from final
