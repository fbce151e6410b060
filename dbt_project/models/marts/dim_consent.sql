-- Current consent per customer and channel. Latest record wins; at the same instant an opt-out wins.
with records as (
    select * from {{ ref('int_consent_records_matched') }}
    where customer_id is not null
),

final as (
    select
        customer_id || ':' || channel as consent_key,
        customer_id,
        channel,
        status,
        consent_source,
        recorded_at
    from records
    qualify row_number() over (
        partition by customer_id, channel
        order by recorded_at desc, case status when 'opt_out' then 0 else 1 end
    ) = 1
)

select * from final
