-- Consent records with the customer they belong to (email first, phone for SMS-only records).
with records as (
    -- Channel-level records only: a topic (subscription group) opt-out is read by governance, not here.
    select * from {{ ref('stg_consent__records') }} where topic is null
),

keys as (
    select distinct u.email_canonical, u.phone_e164, r.customer_id
    from {{ ref('int_customer_records_unioned') }} u
    join {{ ref('int_customer_records_resolved') }} r using (source, record_id)
),

by_email as (
    select email_canonical, min(customer_id) as customer_id from keys where email_canonical is not null group by 1
),

by_phone as (
    select phone_e164, min(customer_id) as customer_id from keys where phone_e164 is not null group by 1
),

final as (
    select c.*, coalesce(e.customer_id, p.customer_id) as customer_id
    from records c
    left join by_email e on c.email_canonical = e.email_canonical
    left join by_phone p on c.email_canonical is null and c.phone_e164 = p.phone_e164
)

select * from final
