-- Deterministic first pass: records sharing a canonical email (else phone) are one customer.
-- customer_id is a hash of that identity key, so it is stable across runs.
with records as (
    select * from {{ ref('int_customer_records_unioned') }}
),

keyed as (
    select
        *,
        coalesce('email:' || email_canonical, 'phone:' || phone_e164, source || ':' || record_id) as identity_key
    from records
),

final as (
    select
        source,
        record_id,
        identity_key,
        'cus_' || substr(md5(identity_key), 1, 16) as customer_id
    from keyed
)

select * from final
