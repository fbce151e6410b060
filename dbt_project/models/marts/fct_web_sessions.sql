-- Web sessions: a visitor's events split where they were idle longer than the session timeout
-- (var web_session_timeout_minutes, 30 as in common web analytics), with the customer once identified.
{% set timeout = var('web_session_timeout_minutes') %}
with events as (
    select * from {{ ref('fct_web_events') }}
),

gaps as (
    select
        *,
        case
            when lag(event_at) over (partition by anonymous_id order by event_at, message_id) is null then 1
            when event_at - lag(event_at) over (partition by anonymous_id order by event_at, message_id)
                 > interval '{{ timeout }} minutes' then 1
            else 0
        end as starts_session
    from events
),

numbered as (
    select
        *,
        sum(starts_session) over (partition by anonymous_id order by event_at, message_id
                                  rows between unbounded preceding and current row) as session_number
    from gaps
),

final as (
    select
        md5(anonymous_id || ':' || session_number) as session_id,
        anonymous_id,
        session_number,
        max(customer_id) as customer_id,
        min(event_at) as session_started_at,
        max(event_at) as session_ended_at,
        {{ seconds_between('min(event_at)', 'max(event_at)') }} as duration_seconds,
        count(*) as events,
        count(*) filter (where event_type = 'page') as page_views,
        count(*) filter (where event_name = 'product_viewed') as product_views,
        count(*) filter (where event_name = 'product_added') as cart_adds,
        count(*) filter (where event_name = 'checkout_started') as checkouts,
        count(*) filter (where event_name = 'order_completed') > 0 as converted,
        min_by(page_path, event_at) filter (where page_path is not null) as landing_page,
        count(*) = 1 as is_bounce
    from numbered
    group by anonymous_id, session_number
)

select * from final
