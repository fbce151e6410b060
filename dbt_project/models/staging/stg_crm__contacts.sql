-- CRM contacts: latest version of each contact, names and identifiers normalized.
-- A table, not a view: phone normalization may call the plugin's beacon_e164(), which only dbt's connections have.
{{ config(materialized='table') }}
with source as (
    select * from {{ source('raw', 'crm_contacts') }}
    where {{ not_erased([['id', 'contact_id'], ['email', 'email'], ['phone', 'phone']]) }}
),

latest as (
    select *
    from source
    qualify row_number() over (partition by contact_id order by updated_at desc, _loaded_at desc, _line desc) = 1
),

final as (
    select
        contact_id,
        nullif(company_id, '') as company_id,
        {{ clean_name('first_name') }} as first_name,
        {{ clean_name('last_name') }} as last_name,
        {{ name_key('first_name') }} as first_name_key,
        {{ name_key('last_name') }} as last_name_key,
        beacon_name_aliases({{ name_key('first_name') }}) as first_name_aliases,
        {{ normalized_email('email') }} as email,
        {{ is_valid_email('email') }} as is_email_valid,
        {{ canonical_email('email') }} as email_canonical,
        {{ phone_e164('phone') }} as phone_e164,
        nullif(job_title, '') as job_title,
        lower(lifecycle_stage) as lifecycle_stage,
        lead_source,
        {{ clean_name('street') }} as street,
        {{ street_key('street') }} as street_key,
        city,
        upper(state) as state,
        nullif(left({{ regex_replace_all('postal_code', "'[^0-9]'", "''") }}, 5), '') as postal_code,
        created_at,
        updated_at
    from latest
)

select * from final
