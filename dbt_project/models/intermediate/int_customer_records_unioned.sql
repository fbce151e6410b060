-- Every person-like record from the CRM and the shop, in one shape, for identity resolution.
with crm as (
    select
        'crm' as source,
        contact_id as record_id,
        1 as source_rank,  -- CRM is the most trusted source for names and stages
        email, is_email_valid, email_canonical, phone_e164, first_name, last_name, street, city, state, postal_code,
        null::date as birth_date, null::varchar as gender, company_id, job_title, lifecycle_stage,
        created_at, updated_at
    from {{ ref('stg_crm__contacts') }}
),

shop as (
    select
        'shop' as source,
        shop_customer_id as record_id,
        2 as source_rank,
        email, is_email_valid, email_canonical, phone_e164, first_name, last_name, street, city, state, postal_code,
        birth_date, gender, null::varchar as company_id, null::varchar as job_title, null::varchar as lifecycle_stage,
        created_at, created_at as updated_at
    from {{ ref('stg_shop__customers') }}
),

final as (
    select * from crm
    union all
    select * from shop
)

select * from final
