-- Every behaviour and attribute that earns lead points, with its points and its decayed value as of
-- the warehouse clock. Rules come from the lead_point_rules seed that analysts edit.
{{ config(materialized='view') }}

with rules as (
    select * from {{ ref('lead_point_rules') }}
),

as_of as (
    select as_of_at from {{ ref('warehouse_as_of') }}
),

products as (
    select product_id, product_line from {{ ref('stg_shop__products') }}
),

behaviour as (
    select 'web' as source, w.message_id as event_id, w.customer_id, w.event_name as match, w.event_at, p.product_line
    from {{ ref('fct_web_events') }} w
    left join products p using (product_id)
    where w.customer_id is not null
    union all
    select 'email' as source, e.event_id, e.customer_id, e.event_name as match, e.event_at, null as product_line
    from {{ ref('fct_email_events') }} e
    where e.customer_id is not null
),

customers as (
    select customer_id, first_seen_at, company_id, lower(coalesce(job_title, '')) as job_title
    from {{ ref('dim_customers') }}
),

attributes as (
    select 'attribute' as source, 'attr:' || c.customer_id as event_id, c.customer_id, r.match, c.first_seen_at as event_at,
           null as product_line
    from customers c
    join rules r on r.source = 'attribute'
    where (r.match = 'senior_title' and {{ regex_contains('c.job_title', "'\\b(vp|head|director|chief|founder|cto|ceo)\\b'") }})
       or (r.match = 'b2b_account' and c.company_id is not null)
),

final as (
    select
        b.event_id || ':' || r.rule_id as point_event_id,
        b.customer_id,
        r.rule_id,
        case when r.point_group = 'product' then coalesce(b.product_line, 'general') else r.point_group end as point_group,
        b.event_at,
        r.points,
        case when r.half_life_days > 0
             then r.points * pow(
                 0.5, {{ seconds_between('b.event_at', 'a.as_of_at') }} / cast(86400 as double) / r.half_life_days)
             else r.points end as points_decayed
    from (
        select * from behaviour
        union all
        select * from attributes
    ) b
    join rules r on r.source = b.source and r.match = b.match
    cross join as_of a
    where b.event_at <= a.as_of_at
)

select * from final
