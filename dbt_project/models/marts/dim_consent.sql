-- Current consent per customer and channel. Latest record wins; at the same instant an opt-out wins.
with records as (
    select * from {{ ref('stg_consent__records') }}
),

keys as (
    select distinct u.email_canonical, u.phone_e164, r.customer_id
    from {{ ref('int_customer_records_unioned') }} u
    join {{ ref('int_customer_records_resolved') }} r using (source, record_id)
),

matched as (
    select c.*, coalesce(by_email.customer_id, by_phone.customer_id) as customer_id
    from records c
    left join (select distinct email_canonical, customer_id from keys where email_canonical is not null) by_email
        on c.email_canonical = by_email.email_canonical
    left join (select phone_e164, min(customer_id) as customer_id from keys where phone_e164 is not null group by 1) by_phone
        on c.email_canonical is null and c.phone_e164 = by_phone.phone_e164
),

final as (
    select
        customer_id || ':' || channel as consent_key,
        customer_id,
        channel,
        status,
        consent_source,
        recorded_at
    from matched
    where customer_id is not null
    qualify row_number() over (
        partition by customer_id, channel
        order by recorded_at desc, case status when 'opt_out' then 0 else 1 end
    ) = 1
)

select * from final
