{#-
  The one definition of customer features (the mart customer_features and the ML models read it).
  `cutoff` is a SQL expression of the point in time: every input is filtered to facts dated at or
  before it, so a model trained on features at cutoff C never sees the future of C.
  ml.features renders this file outside dbt, with ref(name) = marts.<name>: use only ref() here.

  Web and email events are read per customer and day (fct_web_event_days, fct_email_event_days: counted once, in
  models incremental by day), not event by event. A window (C - N days, C] holds every whole day after the day
  C - N falls in and before C's own day; those two days (the "edge" days of the windows used here) are read event by
  event, each event at its time. A day's row stands at its latest event's time, so `seen_at > C - N` puts a whole day on
  the same side of every window as each of its events: the counts equal counting the events themselves.
-#}
{#- The day an expression's timestamp falls in, as the timestamp of its midnight. -#}
{% macro day_start_of(ts) -%}cast(cast({{ ts }} as date) as timestamp){%- endmacro %}

{#- `select_list` over `relation`'s rows (time column `time_column`) on the edge days of the windows `windows` (days) ending at
    `cutoff`, and on the cutoff's own day up to the cutoff: one range scan per day, so an engine reads only those
    days (DuckDB prunes each scan by its range even when the cutoff is a subquery). -#}
{% macro edge_day_rows(relation, time_column, cutoff, windows, select_list, where) -%}
    select {{ select_list }} from {{ relation }}
    where {{ where }} and {{ time_column }} >= {{ day_start_of(cutoff) }} and {{ time_column }} <= {{ cutoff }}
    {%- for n in windows %}
    union all
    select {{ select_list }} from {{ relation }}
    where {{ where }} and {{ time_column }} >= {{ day_start_of(cutoff ~ ' - interval ' ~ n ~ ' day') }}
        and {{ time_column }} < {{ day_start_of(cutoff ~ ' - interval ' ~ n ~ ' day') }} + interval 1 day
    {%- endfor %}
{%- endmacro %}

{#- The condition on a per-day relation's `day_column` that keeps the whole days before the cutoff's day that are
    not edge days of `windows` (those come from edge_day_rows). -#}
{% macro whole_days_before(day_column, cutoff, windows) -%}
    {{ day_column }} < cast({{ cutoff }} as date)
    {%- for n in windows %}
    and {{ day_column }} <> cast({{ cutoff }} - interval {{ n }} day as date)
    {%- endfor %}
{%- endmacro %}

{% macro customer_features_at(cutoff) %}
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

web_rows as (
    -- one row per customer, device and whole day; then the edge days' events, one by one
    select customer_id, last_event_at as seen_at, events, product_views, cart_adds, checkouts, webinar_regs
    from {{ ref('fct_web_event_days') }}
    where customer_id is not null and {{ whole_days_before('event_date', cutoff, [7, 30, 90]) }}
    union all
    {{ edge_day_rows(ref('fct_web_events'), 'event_at', cutoff, [7, 30, 90],
        "customer_id, event_at as seen_at, 1 as events,
        case when event_name = 'product_viewed' then 1 else 0 end as product_views,
        case when event_name = 'product_added' then 1 else 0 end as cart_adds,
        case when event_name = 'checkout_started' then 1 else 0 end as checkouts,
        case when event_name = 'webinar_registered' then 1 else 0 end as webinar_regs",
        'customer_id is not null') }}
),

web as (
    select
        customer_id,
        cast(sum(events) filter (where seen_at > {{ cutoff }} - interval 7 day) as bigint) as web_7d,
        cast(sum(events) filter (where seen_at > {{ cutoff }} - interval 30 day) as bigint) as web_30d,
        cast(sum(events) filter (where seen_at > {{ cutoff }} - interval 90 day) as bigint) as web_90d,
        cast(sum(product_views) filter (where seen_at > {{ cutoff }} - interval 30 day) as bigint) as views_30d,
        cast(sum(cart_adds) filter (where seen_at > {{ cutoff }} - interval 30 day) as bigint) as cart_adds_30d,
        cast(sum(checkouts) filter (where seen_at > {{ cutoff }} - interval 30 day) as bigint) as checkouts_30d,
        cast(sum(webinar_regs) filter (where seen_at > {{ cutoff }} - interval 90 day) as bigint) as webinar_regs_90d,
        max(seen_at) as last_web_at
    from web_rows
    group by customer_id
),

sessions as (
    -- only the window's sessions are read
    select customer_id, count(*) as sessions_30d
    from {{ ref('fct_web_sessions') }}
    where customer_id is not null
        and session_started_at > {{ cutoff }} - interval 30 day and session_started_at <= {{ cutoff }}
    group by customer_id
),

email_rows as (
    select customer_id, last_event_at as seen_at, sends, delivered, opens, clicks, last_open_at, last_engaged_at
    from {{ ref('fct_email_event_days') }}
    where customer_id is not null and {{ whole_days_before('event_date', cutoff, [90]) }}
    union all
    {{ edge_day_rows(ref('fct_email_events'), 'event_at', cutoff, [90],
        "customer_id, event_at as seen_at,
        case when event_name = 'sent' then 1 else 0 end as sends,
        case when event_name = 'delivered' then 1 else 0 end as delivered,
        case when event_name = 'open' then 1 else 0 end as opens,
        case when event_name = 'click' then 1 else 0 end as clicks,
        case when event_name = 'open' then event_at end as last_open_at,
        case when event_name in ('open', 'click') then event_at end as last_engaged_at",
        'customer_id is not null') }}
),

email as (
    select
        customer_id,
        cast(sum(sends) filter (where seen_at > {{ cutoff }} - interval 90 day) as bigint) as email_sends_90d,
        cast(sum(delivered) filter (where seen_at > {{ cutoff }} - interval 90 day) as bigint) as emails_delivered_90d,
        cast(sum(opens) filter (where seen_at > {{ cutoff }} - interval 90 day) as bigint) as email_opens_90d,
        cast(sum(clicks) filter (where seen_at > {{ cutoff }} - interval 90 day) as bigint) as email_clicks_90d,
        max(last_open_at) as last_open_at,
        max(last_engaged_at) as last_engaged_at
    from email_rows
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
