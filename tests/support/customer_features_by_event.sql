{#- The customer features counted event by event, as `customer_features_at` (dbt_project/macros/customer_features.sql)
    defined them before issue 28 read the events per day: the reference the per-day definition must equal
    (tests/dbt/test_incremental_daily.py). DuckDB SQL on the marts schema. -#}
{% macro days_between(start, end) -%}date_diff('day', {{ start }}, {{ end }}){%- endmacro %}
{% macro ref(name) -%}marts.{{ name }}{%- endmacro %}
{% macro customer_features_by_event(cutoff) %}
with customers as (
    select
        customer_id,
        first_seen_at,
        company_id is not null as is_b2b,
        phone_e164 is not null as has_phone
    from {{ ref('dim_customers') }}
    where first_seen_at <= {{ cutoff }}
),

orders as (
    select
        customer_id,
        count(*) as orders_total,
        count(*) filter (where ordered_at > {{ cutoff }} - interval 90 day) as orders_90d,
        count(*) filter (where ordered_at > {{ cutoff }} - interval 365 day) as orders_365d,
        sum(total_amount) as revenue_total,
        sum(total_amount) filter (where ordered_at > {{ cutoff }} - interval 365 day) as revenue_365d,
        max(ordered_at) as last_order_at,
        min(ordered_at) as first_order_at
    from {{ ref('fct_orders') }}
    where status = 'completed' and customer_id is not null and ordered_at <= {{ cutoff }}
    group by customer_id
),

web as (
    select
        customer_id,
        count(*) filter (where event_at > {{ cutoff }} - interval 7 day) as web_7d,
        count(*) filter (where event_at > {{ cutoff }} - interval 30 day) as web_30d,
        count(*) filter (where event_at > {{ cutoff }} - interval 90 day) as web_90d,
        count(*) filter (
            where event_at > {{ cutoff }} - interval 30 day and event_name = 'product_viewed'
        ) as views_30d,
        count(*) filter (
            where event_at > {{ cutoff }} - interval 30 day and event_name = 'product_added'
        ) as cart_adds_30d,
        count(*) filter (
            where event_at > {{ cutoff }} - interval 30 day and event_name = 'checkout_started'
        ) as checkouts_30d,
        count(*) filter (
            where event_at > {{ cutoff }} - interval 90 day and event_name = 'webinar_registered'
        ) as webinar_regs_90d,
        max(event_at) as last_web_at
    from {{ ref('fct_web_events') }}
    where customer_id is not null and event_at <= {{ cutoff }}
    group by customer_id
),

sessions as (
    select
        customer_id,
        count(*) filter (where session_started_at > {{ cutoff }} - interval 30 day) as sessions_30d
    from {{ ref('fct_web_sessions') }}
    where customer_id is not null and session_started_at <= {{ cutoff }}
    group by customer_id
),

email as (
    select
        customer_id,
        count(*) filter (where event_name = 'sent' and event_at > {{ cutoff }} - interval 90 day) as email_sends_90d,
        count(*) filter (
            where event_name = 'delivered' and event_at > {{ cutoff }} - interval 90 day
        ) as emails_delivered_90d,
        count(*) filter (where event_name = 'open' and event_at > {{ cutoff }} - interval 90 day) as email_opens_90d,
        count(*) filter (where event_name = 'click' and event_at > {{ cutoff }} - interval 90 day) as email_clicks_90d,
        max(event_at) filter (where event_name = 'open') as last_open_at,
        max(event_at) filter (where event_name in ('open', 'click')) as last_engaged_at
    from {{ ref('fct_email_events') }}
    where customer_id is not null and event_at <= {{ cutoff }}
    group by customer_id
),

joined as (
    select
        c.customer_id,
        {{ cutoff }} as features_as_of,
        {{ days_between('c.first_seen_at', cutoff) }} as tenure_days,
        c.is_b2b,
        c.has_phone,
        coalesce(o.orders_total, 0) as orders_total,
        coalesce(o.orders_90d, 0) as orders_90d,
        coalesce(o.orders_365d, 0) as orders_365d,
        coalesce(o.revenue_total, 0) as revenue_total,
        coalesce(o.revenue_365d, 0) as revenue_365d,
        o.revenue_total / nullif(o.orders_total, 0) as avg_order_value,
        {{ days_between('o.last_order_at', cutoff) }} as days_since_order,
        {{ days_between('o.first_order_at', cutoff) }} as days_since_first_order,
        coalesce(w.web_7d, 0) as web_7d,
        coalesce(w.web_30d, 0) as web_30d,
        coalesce(w.web_90d, 0) as web_90d,
        coalesce(w.views_30d, 0) as views_30d,
        coalesce(w.cart_adds_30d, 0) as cart_adds_30d,
        coalesce(w.checkouts_30d, 0) as checkouts_30d,
        coalesce(w.webinar_regs_90d, 0) as webinar_regs_90d,
        coalesce(s.sessions_30d, 0) as sessions_30d,
        {{ days_between('w.last_web_at', cutoff) }} as days_since_web,
        coalesce(e.email_sends_90d, 0) as email_sends_90d,
        coalesce(e.emails_delivered_90d, 0) as emails_delivered_90d,
        coalesce(e.email_opens_90d, 0) as email_opens_90d,
        coalesce(e.email_clicks_90d, 0) as email_clicks_90d,
        {{ days_between('e.last_open_at', cutoff) }} as days_since_open,
        {{ days_between('e.last_engaged_at', cutoff) }} as days_since_email_engagement
    from customers as c
    left join orders as o on c.customer_id = o.customer_id
    left join web as w on c.customer_id = w.customer_id
    left join sessions as s on c.customer_id = s.customer_id
    left join email as e on c.customer_id = e.customer_id
)

select
    *,
    -- RFM quintiles among buyers (5 = best); null for customers with no order yet.
    case
        when orders_total > 0
            then ntile(5) over (partition by orders_total > 0 order by days_since_order desc, customer_id)
    end as r_score,
    case
        when orders_total > 0
            then ntile(5) over (partition by orders_total > 0 order by orders_total, customer_id)
    end as f_score,
    case
        when orders_total > 0
            then ntile(5) over (partition by orders_total > 0 order by revenue_total, customer_id)
    end as m_score
from joined
{% endmacro %}
