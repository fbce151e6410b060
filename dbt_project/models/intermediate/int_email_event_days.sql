-- Email-service events counted per canonical e-mail and day: what the customer features
-- (macros/customer_features.sql) read instead of every event. Keyed by the e-mail, never by the customer:
-- fct_email_event_days adds the customer from the current e-mail mapping when read, so a merge changes a mapping row,
-- never a stored day.
-- Incremental by day (macros/incremental_by_day.sql, day_partitioned): a normal run recounts only the days whose
-- events in stg_esp__email_events differ from what this model counted (rows counted, latest load); a full refresh
-- counts every day and gives the same table.
{{ day_partitioned('event_date') }}
with events as (
    select email_canonical, event_name, event_at, event_date, _loaded_at
    from {{ ref('stg_esp__email_events') }}
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
        email_canonical,
        event_date,
        count(*) as events,
        count(*) filter (where event_name = 'sent') as sends,
        count(*) filter (where event_name = 'delivered') as delivered,
        count(*) filter (where event_name = 'open') as opens,
        count(*) filter (where event_name = 'click') as clicks,
        max(event_at) filter (where event_name = 'open') as last_open_at,
        max(event_at) filter (where event_name in ('open', 'click')) as last_engaged_at,
        max(event_at) as last_event_at,
        max(_loaded_at) as _loaded_at
    from scoped
    group by email_canonical, event_date
)

select * from final
