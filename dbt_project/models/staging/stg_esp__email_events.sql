-- Email-service webhook events, deduplicated on the provider's event id.
-- Incremental by day of event_at (macros/incremental_by_day.sql): a normal day rebuilds only the days that got rows.
{{ day_partitioned('event_date') }}
with source as (
    select * from {{ source('raw', 'email_events') }}
    where {{ not_erased([['email', 'email']]) }}
),

{{ day_scoped('source', 'event_id', 'event_at', 'event_date') }},

deduplicated as (
    select
        event_id,
        lower(event) as event_name,
        {{ normalized_email('email') }} as email,
        {{ canonical_email('email') }} as email_canonical,
        event_at,
        message_id,
        campaign_id,
        bounce_type,
        url,
        topic,
        cast(event_at as date) as event_date,
        _loaded_at
    from scoped
    qualify row_number() over (partition by event_id order by _loaded_at) = 1
),

final as (
    select * from deduplicated
    {%- if is_incremental() %}
    where {{ not_kept_elsewhere('deduplicated', 'event_id', 'event_date') }}
    {%- endif %}
)

select * from final
