-- Shop customers: latest version per shop customer id, identifiers normalized.
with source as (
    select * from {{ source('raw', 'shop_customers') }}
),

final as (
    select
        customer_id as shop_customer_id,
        {{ normalized_email('email') }} as email,
        {{ is_valid_email('email') }} as is_email_valid,
        {{ canonical_email('email') }} as email_canonical,
        {{ clean_name('first_name') }} as first_name,
        {{ clean_name('last_name') }} as last_name,
        {{ phone_e164_nanp('phone') }} as phone_e164,
        {{ clean_name('address_line1') }} as street,
        city,
        upper(state) as state,
        zip as postal_code,
        birth_date,
        nullif(gender, '') as gender,
        created_at
    from source
    qualify row_number() over (partition by customer_id order by _loaded_at desc, _line desc) = 1
)

select * from final
