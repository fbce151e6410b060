-- Customer features as of a cutoff (var features_as_of, default the warehouse clock): RFM, email
-- engagement and web-activity windows. Every input is filtered to facts dated at or before the
-- cutoff, so a model trained on `dbt build --vars '{features_as_of: ...}'` never sees the future.
{% set cutoff = var('features_as_of', none) %}
with clock as (
    {% if cutoff %}
    select timestamp '{{ cutoff }}' as as_of
    {% else %}
    select as_of_at as as_of from {{ ref('warehouse_as_of') }}
    {% endif %}
),

customers as (
    select c.customer_id, c.first_seen_at, c.company_id
    from {{ ref('dim_customers') }} c, clock
    where c.first_seen_at <= clock.as_of
),

orders as (
    select
        o.customer_id,
        count(*) as orders_total,
        count(*) filter (where o.ordered_at > clock.as_of - interval 90 day) as orders_90d,
        sum(o.total_amount) as revenue_total,
        sum(o.total_amount) filter (where o.ordered_at > clock.as_of - interval 365 day) as revenue_365d,
        max(o.ordered_at) as last_order_at
    from {{ ref('fct_orders') }} o, clock
    where o.status = 'completed' and o.ordered_at <= clock.as_of
    group by o.customer_id
),

web as (
    select
        w.customer_id,
        count(*) filter (where w.event_at > clock.as_of - interval 7 day) as web_events_7d,
        count(*) filter (where w.event_at > clock.as_of - interval 30 day) as web_events_30d,
        count(*) filter (where w.event_at > clock.as_of - interval 90 day) as web_events_90d,
        count(*) filter (where w.event_at > clock.as_of - interval 30 day and w.event_name = 'product_viewed') as product_views_30d,
        count(*) filter (where w.event_at > clock.as_of - interval 30 day and w.event_name = 'product_added') as cart_adds_30d,
        max(w.event_at) as last_web_at
    from {{ ref('fct_web_events') }} w, clock
    where w.customer_id is not null and w.event_at <= clock.as_of
    group by w.customer_id
),

sessions as (
    select
        s.customer_id,
        count(*) filter (where s.session_started_at > clock.as_of - interval 30 day) as sessions_30d
    from {{ ref('fct_web_sessions') }} s, clock
    where s.customer_id is not null and s.session_started_at <= clock.as_of
    group by s.customer_id
),

email as (
    select
        e.customer_id,
        count(*) filter (where e.event_name = 'delivered' and e.event_at > clock.as_of - interval 90 day) as emails_delivered_90d,
        count(*) filter (where e.event_name = 'open' and e.event_at > clock.as_of - interval 90 day) as email_opens_90d,
        count(*) filter (where e.event_name = 'click' and e.event_at > clock.as_of - interval 90 day) as email_clicks_90d,
        max(e.event_at) filter (where e.event_name in ('open', 'click')) as last_engaged_at
    from {{ ref('fct_email_events') }} e, clock
    where e.customer_id is not null and e.event_at <= clock.as_of
    group by e.customer_id
),

joined as (
    select
        c.customer_id,
        clock.as_of as features_as_of,
        date_diff('day', c.first_seen_at, clock.as_of) as tenure_days,
        c.company_id is not null as is_b2b,
        coalesce(o.orders_total, 0) as orders_total,
        coalesce(o.orders_90d, 0) as orders_90d,
        coalesce(o.revenue_total, 0) as revenue_total,
        coalesce(o.revenue_365d, 0) as revenue_365d,
        date_diff('day', o.last_order_at, clock.as_of) as days_since_order,
        coalesce(w.web_events_7d, 0) as web_events_7d,
        coalesce(w.web_events_30d, 0) as web_events_30d,
        coalesce(w.web_events_90d, 0) as web_events_90d,
        coalesce(w.product_views_30d, 0) as product_views_30d,
        coalesce(w.cart_adds_30d, 0) as cart_adds_30d,
        coalesce(s.sessions_30d, 0) as sessions_30d,
        date_diff('day', w.last_web_at, clock.as_of) as days_since_web,
        coalesce(e.emails_delivered_90d, 0) as emails_delivered_90d,
        coalesce(e.email_opens_90d, 0) as email_opens_90d,
        coalesce(e.email_clicks_90d, 0) as email_clicks_90d,
        date_diff('day', e.last_engaged_at, clock.as_of) as days_since_email_engagement
    from customers c
    cross join clock
    left join orders o using (customer_id)
    left join web w using (customer_id)
    left join sessions s using (customer_id)
    left join email e using (customer_id)
),

final as (
    select
        *,
        -- RFM quintiles among buyers (5 = best); null for customers with no order yet.
        case when orders_total > 0 then ntile(5) over (partition by orders_total > 0 order by days_since_order desc, customer_id) end as r_score,
        case when orders_total > 0 then ntile(5) over (partition by orders_total > 0 order by orders_total, customer_id) end as f_score,
        case when orders_total > 0 then ntile(5) over (partition by orders_total > 0 order by revenue_total, customer_id) end as m_score
    from joined
)

select * from final
