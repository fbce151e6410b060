-- B2B accounts: one row per CRM company with its contacts, customers and account-level activity, and the people
-- an app reported acting for it (Segment group calls whose groupId is the company id).
with companies as (
    select * from {{ ref('stg_crm__companies') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
    where company_id is not null
),

members as (
    select group_id as company_id, count(*) as web_members, max(last_seen_at) as web_last_seen_at
    from {{ ref('int_web_group_members_mapped') }}
    group by group_id
),

rollup as (
    select
        company_id,
        count(*) as customers,
        count(*) filter (where is_email_valid) as reachable_customers,
        sum(order_count) as orders,
        sum(lifetime_revenue) as lifetime_revenue,
        max(last_order_at) as last_order_at,
        min(first_seen_at) as first_customer_seen_at
    from customers
    group by company_id
),

final as (
    select
        c.company_id,
        c.company_name,
        c.domain,
        c.industry,
        try_cast(c.employees as integer) as employees,
        case
            when try_cast(c.employees as integer) >= 1000 then 'enterprise'
            when try_cast(c.employees as integer) >= 100 then 'mid_market'
            when try_cast(c.employees as integer) is not null then 'smb'
        end as company_size,
        c.country,
        c.created_at,
        coalesce(r.customers, 0) as customers,
        coalesce(r.reachable_customers, 0) as reachable_customers,
        coalesce(r.orders, 0) as orders,
        coalesce(r.lifetime_revenue, 0) as lifetime_revenue,
        r.last_order_at,
        r.first_customer_seen_at,
        coalesce(m.web_members, 0) as web_members,
        m.web_last_seen_at
    from companies c
    left join rollup r using (company_id)
    left join members m using (company_id)
)

select * from final
