-- Consent records (opt-in / opt-out per channel), keyed by email or phone.
with source as (
    select * from {{ source('raw', 'consent') }}
),

final as (
    select
        consent_id,
        {{ normalized_email('email') }} as email,
        {{ canonical_email('email') }} as email_canonical,
        {{ phone_e164_nanp('phone') }} as phone_e164,
        lower(channel) as channel,
        lower(status) as status,
        source as consent_source,
        recorded_at
    from source
    qualify row_number() over (partition by consent_id order by _loaded_at) = 1
)

select * from final
