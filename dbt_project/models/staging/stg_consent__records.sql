-- Consent records (opt-in / opt-out per channel), keyed by email or phone.
-- A table, not a view: phone normalization may call the plugin's beacon_e164(), which only dbt's connections have.
{{ config(materialized='table') }}
with source as (
    select * from {{ source('raw', 'consent') }}
    where {{ not_erased([['id', 'customer_id'], ['email', 'email'], ['phone', 'phone']]) }}
        -- An erased person's record kept as proof (identifiers pseudonymized 'erased:<keyed hash>', docs/privacy.md):
        -- proof only, never a consent to act on (the tombstones keep the person suppressed).
        and not coalesce(email like 'erased:%' or phone like 'erased:%' or customer_id like 'erased:%', false)
),

final as (
    select
        consent_id,
        {{ normalized_email('email') }} as email,
        {{ canonical_email('email') }} as email_canonical,
        {{ phone_e164('phone') }} as phone_e164,
        lower(channel) as channel,
        lower(status) as status,
        source as consent_source,
        recorded_at,
        topic
    from source
    qualify row_number() over (partition by consent_id order by _loaded_at) = 1
)

select * from final
