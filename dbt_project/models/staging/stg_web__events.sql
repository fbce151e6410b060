-- Segment-style web events: one row per message, event names in snake_case.
-- Two sources: the daily web_events files and the events posted to `beacon serve` (collected_events).
with source as (
    select message_id, type, event, anonymous_id, user_id, event_at, email, form_email, page_path, product_id,
        webinar_id, _loaded_at
    from {{ source('raw', 'web_events') }}
    union all
    select message_id, type, event, anonymous_id, user_id, event_at, email, form_email, page_path, product_id,
        webinar_id, _loaded_at
    from {{ source('raw', 'collected_events') }}
),

final as (
    select
        message_id,
        type as event_type,
        case when type = 'track' then lower(replace(event, ' ', '_')) else type end as event_name,
        anonymous_id,
        nullif(user_id, '') as shop_customer_id,
        event_at,
        {{ normalized_email('coalesce(email, form_email)') }} as email,
        {{ canonical_email('coalesce(email, form_email)') }} as email_canonical,
        page_path,
        product_id,
        webinar_id
    from source
    qualify row_number() over (partition by message_id order by _loaded_at) = 1
)

select * from final
