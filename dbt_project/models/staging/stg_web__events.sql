-- Segment-style web events: one row per message, event names in snake_case.
-- Two sources: the daily web_events files and the events posted to `beacon serve` (collected_events), whose
-- `payload` keeps each message whole (JSON): the fields typed here are read from it, and a new property can be
-- typed the same way without re-collecting.
-- Incremental by day of event_at (macros/incremental_by_day.sql): a normal day rebuilds only the days that got rows.
{{ day_partitioned('event_date') }}
with source as (
    select message_id, type, event, anonymous_id, user_id, event_at, email, form_email, page_path, product_id,
        webinar_id, cast(null as {{ type_json() }}) as payload, _loaded_at
    from {{ source('raw', 'web_events') }}
    where {{ not_erased([['id', 'anonymous_id'], ['id', 'user_id'], ['email', 'email'], ['email', 'form_email']]) }}
    union all
    select message_id, type, event, anonymous_id, user_id, event_at, email, form_email, page_path, product_id,
        webinar_id, payload, _loaded_at
    from {{ source('raw', 'collected_events') }}
    where {{ not_erased([['id', 'anonymous_id'], ['id', 'user_id'], ['email', 'email'], ['email', 'form_email']]) }}
),

{{ day_scoped('source', 'message_id', 'event_at', 'event_date') }},

deduplicated as (
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
        webinar_id,
        -- alias: the earlier id (usually the anonymous id) that is the same person as the user id
        nullif({{ json_text('payload', "'$.previousId'") }}, '') as previous_id,
        -- group: the account the person acts for, with its traits (name, industry, employees, ...)
        nullif({{ json_text('payload', "'$.groupId'") }}, '') as group_id,
        case when type = 'group' then {{ json_value('payload', "'$.traits'") }} end as group_traits,
        -- Segment's e-commerce spec (Order Completed and friends)
        nullif({{ json_text('payload', "'$.properties.order_id'") }}, '') as order_id,
        try_cast({{ json_text('payload', "'$.properties.revenue'") }} as double) as revenue,
        upper(nullif({{ json_text('payload', "'$.properties.currency'") }}, '')) as currency,
        {{ json_value('payload', "'$.properties.products'") }} as products,
        {{ json_text('payload', "'$.context.campaign.source'") }} as utm_source,
        {{ json_text('payload', "'$.context.campaign.medium'") }} as utm_medium,
        {{ json_text('payload', "'$.context.campaign.name'") }} as utm_campaign,
        payload,
        cast(event_at as date) as event_date,
        _loaded_at
    from scoped
    qualify row_number() over (partition by message_id order by _loaded_at) = 1
),

final as (
    select * from deduplicated
    {%- if is_incremental() %}
    where {{ not_kept_elsewhere('deduplicated', 'message_id', 'event_date') }}
    {%- endif %}
)

select * from final
