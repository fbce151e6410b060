-- Web events counted per device, shop user id and day: what the customer features (macros/customer_features.sql)
-- and the lifecycle read instead of every event. Keyed by the events' own ids, never by the customer:
-- fct_web_event_days adds the customer from the current identity mapping when read, so a merge or a newly identified
-- device changes a mapping row, never a stored day.
-- Incremental by day (macros/incremental_by_day.sql, day_partitioned): a normal run recounts only the days whose
-- events in stg_web__events differ from what this model counted (rows counted, latest load), which covers new and late
-- events and rows aged out or erased there; a full refresh counts every day and gives the same table.
{{ day_partitioned('event_date') }}
with events as (
    select anonymous_id, shop_customer_id, event_name, event_at, event_date, _loaded_at
    from {{ ref('stg_web__events') }}
),

{% if is_incremental() %}
changed_days as (
    {{ changed_days('events', 'count(*)', 'event_date', 'sum(events)') }}
),

scoped as (
    select * from events where event_date in (select day from changed_days)
),
{% else %}
scoped as (
    select * from events
),
{% endif %}

final as (
    select
        anonymous_id,
        shop_customer_id,
        event_date,
        count(*) as events,
        count(*) filter (where event_name = 'product_viewed') as product_views,
        count(*) filter (where event_name = 'product_added') as cart_adds,
        count(*) filter (where event_name = 'checkout_started') as checkouts,
        count(*) filter (where event_name = 'webinar_registered') as webinar_regs,
        min(event_at) filter (where event_name in ('form_submitted', 'webinar_registered')) as first_form_at,
        max(event_at) as last_event_at,
        max(_loaded_at) as _loaded_at
    from scoped
    group by anonymous_id, shop_customer_id, event_date
)

select * from final
