-- Shop customers: latest version per shop customer id, identifiers normalized.
-- A table, not a view: phone normalization may call the plugin's beacon_e164(), which only dbt's connections have.
{{ config(materialized='table') }}
with source as (
    select * from {{ source('raw', 'shop_customers') }}
    where {{ not_erased([['id', 'customer_id'], ['email', 'email'], ['phone', 'phone']]) }}
),

final as (
    select
        customer_id as shop_customer_id,
        {{ normalized_email('email') }} as email,
        {{ is_valid_email('email') }} as is_email_valid,
        {{ canonical_email('email') }} as email_canonical,
        {{ clean_name('first_name') }} as first_name,
        {{ clean_name('last_name') }} as last_name,
        {{ name_key('first_name') }} as first_name_key,
        {{ name_key('last_name') }} as last_name_key,
        beacon_name_aliases({{ name_key('first_name') }}) as first_name_aliases,
        {{ phone_e164('phone') }} as phone_e164,
        {{ clean_name('address_line1') }} as street,
        {{ street_key('address_line1') }} as street_key,
        city,
        upper(state) as state,
        nullif(left({{ regex_replace_all('zip', "'[^0-9]'", "''") }}, 5), '') as postal_code,
        birth_date,
        nullif(gender, '') as gender,
        created_at
    from source
    qualify row_number() over (partition by customer_id order by _loaded_at desc, _line desc) = 1
)

select * from final
