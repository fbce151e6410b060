-- Email-service webhook events, deduplicated on the provider's event id.
with source as (
    select * from {{ source('raw', 'email_events') }}
    where {{ not_erased([['email', 'email']]) }}
),

final as (
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
        topic
    from source
    qualify row_number() over (partition by event_id order by _loaded_at) = 1
)

select * from final
